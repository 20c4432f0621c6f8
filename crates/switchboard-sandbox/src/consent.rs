//! The authorization endpoint (RFC 6749 §4.1.1–4.1.2): a consent page, and the
//! Allow / Deny form it posts.
//!
//! Errors about the client or the redirect URI are shown on a page and never redirected
//! (§4.1.2.1: the URI cannot be trusted); every other error goes back to the client as
//! `?error=...&state=...`. Everything echoed into HTML is escaped.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use serde::Deserialize;
use url::Url;

use super::state::{Grant, Lifetimes};
use super::{DEFAULT_SCOPE, Sandbox};

/// Longest `scope` parameter accepted, in bytes, and most scopes in it.
const MAX_SCOPE_LEN: usize = 2048;
const MAX_SCOPES: usize = 50;
/// Username shown in the form until the user types another.
const DEFAULT_USERNAME: &str = "sandbox-user";

/// The query of `GET /oauth/authorize`, also carried by the form's hidden fields.
#[derive(Debug, Deserialize)]
pub(super) struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// The consent form: the original request, plus who signs in and what they chose.
/// (Fields repeated rather than `#[serde(flatten)]`, which loses serde_urlencoded's
/// duplicate detection.)
#[derive(Debug, Deserialize)]
pub(super) struct DecisionForm {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    username: Option<String>,
    decision: Option<String>,
}

impl DecisionForm {
    fn split(self) -> (AuthorizeParams, Option<String>, Option<String>) {
        let request = AuthorizeParams {
            response_type: self.response_type,
            client_id: self.client_id,
            redirect_uri: self.redirect_uri,
            scope: self.scope,
            state: self.state,
            code_challenge: self.code_challenge,
            code_challenge_method: self.code_challenge_method,
        };
        (request, self.username, self.decision)
    }
}

/// A request that passed every check.
struct Valid {
    client_id: String,
    /// As sent: the token request must repeat it exactly (§4.1.3).
    redirect_uri: String,
    redirect_url: Url,
    scopes: Vec<String>,
    state: Option<String>,
    code_challenge: Option<String>,
}

enum Rejected {
    /// Bad client or redirect URI: a 400 page, no redirect.
    Page(String),
    /// Anything else: back to the client, to this URL carrying the error code.
    Redirect(Url),
}

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        match self {
            Rejected::Page(message) => error_page(&message),
            Rejected::Redirect(url) => redirect(&url),
        }
    }
}

/// `GET /oauth/authorize`: shows the consent page for a valid request.
pub(super) async fn show_consent(
    State(sandbox): State<Sandbox>,
    params: Result<Query<AuthorizeParams>, QueryRejection>,
) -> Response {
    // A duplicated parameter is a rejection here (§3.1: "MUST NOT be included more than once").
    let Ok(Query(params)) = params else {
        return error_page(
            "The authorization request is malformed (a parameter is repeated or not valid).",
        );
    };
    match validate(&sandbox, &params) {
        Ok(valid) => {
            sandbox.count(|c| &c.authorize_requests);
            page(
                StatusCode::OK,
                &consent_page(&valid, &params, DEFAULT_USERNAME, None),
            )
        }
        Err(rejected) => rejected.into_response(),
    }
}

/// `POST /oauth/authorize`: Deny sends `access_denied` back; Allow mints a code.
pub(super) async fn decide(
    State(sandbox): State<Sandbox>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_page("The consent form is malformed.");
    };
    let (request, username, decision) = form.split();
    // The hidden fields come back from the browser: check them all again.
    let valid = match validate(&sandbox, &request) {
        Ok(valid) => valid,
        Err(rejected) => return rejected.into_response(),
    };
    match decision.as_deref() {
        Some("deny") => redirect_error(
            &valid.redirect_url,
            "access_denied",
            "The user denied access.",
            valid.state.as_deref(),
        ),
        Some("allow") => {
            let username = username.as_deref().unwrap_or_default().trim();
            if !valid_username(username) {
                let message = "Use 1 to 64 letters, digits, dots, dashes or underscores.";
                return page(
                    StatusCode::BAD_REQUEST,
                    &consent_page(&valid, &request, username, Some(message)),
                );
            }
            let settings = sandbox.settings();
            let lifetimes = Lifetimes {
                code: settings.code_lifetime,
                access: settings.access_token_lifetime,
                refresh: settings.refresh_token_lifetime,
            };
            let grant = Grant {
                client_id: valid.client_id.clone(),
                username: username.to_owned(),
                scopes: valid.scopes.clone(),
            };
            let now = sandbox.now();
            let code = sandbox.grants().issue_code(
                grant,
                valid.redirect_uri.clone(),
                valid.code_challenge.clone(),
                now,
                lifetimes,
            );
            sandbox.count(|c| &c.codes_issued);
            tracing::debug!(username, "sandbox: access allowed, code issued");
            let mut url = valid.redirect_url.clone();
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("code", &code);
                if let Some(state) = &valid.state {
                    query.append_pair("state", state);
                }
            }
            redirect(&url)
        }
        _ => error_page("Choose Allow or Deny."),
    }
}

/// The checks of §4.1.1 and RFC 7636 §4.3, in the order that decides where an error goes.
fn validate(sandbox: &Sandbox, p: &AuthorizeParams) -> Result<Valid, Rejected> {
    let settings = sandbox.settings();
    let client_id = match p.client_id.as_deref() {
        None | Some("") => return Err(Rejected::Page("The request has no client_id.".into())),
        Some(id) if id != settings.client_id => {
            return Err(Rejected::Page(format!("Unknown client \"{id}\".")));
        }
        Some(id) => id.to_owned(),
    };
    let Some(redirect_uri) = p.redirect_uri.clone().filter(|u| !u.is_empty()) else {
        return Err(Rejected::Page("The request has no redirect_uri.".into()));
    };
    let redirect_url = match Url::parse(&redirect_uri) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.has_host()
                && url.fragment().is_none() =>
        {
            url
        }
        _ => {
            return Err(Rejected::Page(
                "The redirect_uri must be an absolute http or https URL without a fragment.".into(),
            ));
        }
    };
    let state = p.state.clone();
    // From here on the redirect URI is usable: errors go back to the client.
    let back = |error: &str, description: &str| {
        Rejected::Redirect(error_url(
            &redirect_url,
            error,
            description,
            state.as_deref(),
        ))
    };
    match p.response_type.as_deref() {
        Some("code") => {}
        None => return Err(back("invalid_request", "response_type is required.")),
        Some(_) => {
            return Err(back(
                "unsupported_response_type",
                "Only response_type=code is supported.",
            ));
        }
    }
    let code_challenge = match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(back(
                "invalid_request",
                "code_challenge_method without code_challenge.",
            ));
        }
        (Some(challenge), Some("S256")) if valid_challenge(challenge) => Some(challenge.to_owned()),
        (Some(_), Some("S256")) => {
            return Err(back(
                "invalid_request",
                "code_challenge is not a valid S256 challenge.",
            ));
        }
        // RFC 7636 §4.3: a missing method means `plain`, which this server refuses.
        (Some(_), _) => {
            return Err(back(
                "invalid_request",
                "Only code_challenge_method=S256 is supported.",
            ));
        }
    };
    let scopes = parse_scopes(p.scope.as_deref()).ok_or_else(|| {
        back(
            "invalid_scope",
            "The scope parameter is too long or not valid.",
        )
    })?;
    Ok(Valid {
        client_id,
        redirect_uri,
        redirect_url,
        scopes,
        state,
        code_challenge,
    })
}

/// Space-delimited, duplicates dropped, order kept; none requested means the default.
/// Any printable characters are accepted (they are escaped wherever shown).
pub(super) fn parse_scopes(scope: Option<&str>) -> Option<Vec<String>> {
    let scope = scope.unwrap_or_default();
    if scope.len() > MAX_SCOPE_LEN || scope.chars().any(char::is_control) {
        return None;
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !scopes.iter().any(|have| have == s) {
            scopes.push(s.to_owned());
        }
    }
    if scopes.len() > MAX_SCOPES {
        return None;
    }
    if scopes.is_empty() {
        scopes.push(DEFAULT_SCOPE.to_owned());
    }
    Some(scopes)
}

/// RFC 7636 §4.2: an S256 challenge is base64url, 43 characters; up to 128 tolerated.
fn valid_challenge(challenge: &str) -> bool {
    (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_username(username: &str) -> bool {
    (1..=64).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn redirect_error(
    redirect_url: &Url,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> Response {
    redirect(&error_url(redirect_url, error, description, state))
}

/// §4.1.2.1: the error goes to the client, existing query parameters kept.
fn error_url(redirect_url: &Url, error: &str, description: &str, state: Option<&str>) -> Url {
    let mut url = redirect_url.clone();
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("error", error);
        query.append_pair("error_description", description);
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    url
}

/// 303, so the browser follows with a GET whatever the method was.
fn redirect(url: &Url) -> Response {
    let mut response = Redirect::to(url.as_str()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn error_page(message: &str) -> Response {
    let body = format!(
        r#"<h1>Authorization request refused</h1>
<p class="error">{}</p>
<p class="note">The application that sent you here is misconfigured; nothing was sent back to it.</p>"#,
        text(message)
    );
    page(StatusCode::BAD_REQUEST, &body)
}

fn consent_page(
    valid: &Valid,
    request: &AuthorizeParams,
    username: &str,
    problem: Option<&str>,
) -> String {
    let scopes: String = valid
        .scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", text(s)))
        .collect();
    let destination = valid.redirect_url.origin().ascii_serialization();
    let hidden: String = [
        ("response_type", &request.response_type),
        ("client_id", &request.client_id),
        ("redirect_uri", &request.redirect_uri),
        ("scope", &request.scope),
        ("state", &request.state),
        ("code_challenge", &request.code_challenge),
        ("code_challenge_method", &request.code_challenge_method),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        value
            .as_deref()
            .map(|v| format!(r#"<input type="hidden" name="{name}" value="{}">"#, attr(v)))
    })
    .collect::<Vec<_>>()
    .join("\n");
    let problem = problem
        .map(|p| format!(r#"<p class="error">{}</p>"#, text(p)))
        .unwrap_or_default();
    format!(
        r#"<h1>Sign in and allow access</h1>
<p><strong>{client}</strong> wants to access your sandbox account.</p>
<p>It asks for:</p>
<ul class="scopes">{scopes}</ul>
<p class="note">You will be sent back to <code>{destination}</code>.</p>
<form method="post" action="authorize">
{hidden}
<label for="username">Sign in as</label>
<input id="username" name="username" value="{username}" required maxlength="64" pattern="[A-Za-z0-9._\-]{{1,64}}" autocomplete="username" autofocus>
{problem}
<div class="buttons">
<button type="submit" name="decision" value="allow" class="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</div>
</form>
<p class="note">This is Switchboard's sandbox provider, a pretend account service for development. There is no password: any username signs in.</p>"#,
        client = text(&valid.client_id),
        destination = text(&destination),
        username = attr(username),
    )
}

/// Wraps `body` in the page chrome. Inline CSS only: the sandbox works offline.
fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchboard Sandbox — sign in and allow access</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }}
main {{ max-width: 26rem; margin: 4rem auto; background: #fff; border-radius: 10px; padding: 2rem; box-shadow: 0 2px 10px rgba(0,0,0,.08); }}
.brand {{ font-size: .85rem; color: #5a6478; letter-spacing: .02em; }}
.brand span {{ background: #ffe8a3; color: #6b5000; border-radius: 4px; padding: 0 .4rem; margin-left: .3rem; }}
h1 {{ font-size: 1.3rem; margin: .4rem 0 1rem; }}
code {{ background: #eef0f4; border-radius: 4px; padding: 0 .3rem; word-break: break-all; }}
ul.scopes {{ padding-left: 1.2rem; }}
label {{ display: block; font-weight: 600; margin-top: 1rem; }}
input {{ width: 100%; box-sizing: border-box; font: inherit; padding: .5rem; margin-top: .3rem; border: 1px solid #c5cad5; border-radius: 6px; }}
.buttons {{ display: flex; flex-direction: row-reverse; gap: .6rem; margin-top: 1.2rem; }}
button {{ font: inherit; padding: .5rem 1.2rem; border-radius: 6px; border: 1px solid #c5cad5; background: #fff; cursor: pointer; }}
button.allow {{ background: #2857d6; border-color: #2857d6; color: #fff; }}
.error {{ color: #b3261e; }}
.note {{ font-size: .85rem; color: #5a6478; }}
</style>
</head>
<body>
<main>
<div class="brand">Switchboard Sandbox<span>dev mode</span></div>
{body}
</main>
</body>
</html>"#
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // No form-action: browsers apply it to the redirect after the post, which leaves
    // for the client's origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_split_deduplicated_and_default_to_profile() {
        assert_eq!(parse_scopes(None).unwrap(), vec!["profile"]);
        assert_eq!(parse_scopes(Some("  ")).unwrap(), vec!["profile"]);
        assert_eq!(parse_scopes(Some("a b  a c")).unwrap(), vec!["a", "b", "c"]);
        assert!(parse_scopes(Some("a\nb")).is_none());
    }

    #[test]
    fn usernames_are_short_and_plain() {
        assert!(valid_username("sandbox-user"));
        assert!(valid_username("a.b_c-1"));
        assert!(!valid_username(""));
        assert!(!valid_username("a b"));
        assert!(!valid_username("<x>"));
        assert!(!valid_username(&"a".repeat(65)));
    }
}
