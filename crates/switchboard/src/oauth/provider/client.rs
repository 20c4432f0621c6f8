//! HTTP to providers: the authorization URL, code exchange, refresh, user info, revoke.
//!
//! Every request has the provider's timeout (10 s by default) and sends
//! `Accept: application/json` (GitHub answers form-encoded otherwise) and a User-Agent
//! (Reddit refuses generic ones). Failures map to [`OAuthError`] by what the caller should
//! do: connection errors, timeouts, 5xx and 429 are `Unavailable` (keep the tokens, retry
//! later); a dead grant is `InvalidGrant`; any other OAuth error is `Rejected`.

use reqwest::header::{ACCEPT, CONTENT_TYPE, USER_AGENT};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Map, Value};

use super::config::Vars;
use super::token::{self, Grant, Redactor, parse_body};
use super::{BodyFormat, ClientAuth, OAuthError, Provider, ResponseMap, RevokeStyle, TokenKind};
use super::{TokenSet, UserInfoMethod};

const AGENT: &str = concat!("switchboard/", env!("CARGO_PKG_VERSION"));
/// Provider answers are small; anything bigger is not a token answer.
const MAX_BODY: usize = 1024 * 1024;

impl Provider {
    /// The URL to send the user's browser to. Scopes are this provider's defaults plus
    /// `scopes`, joined with its delimiter; then the template's and config's parameters
    /// (Google `access_type=offline`...), which replace standard ones of the same name.
    pub fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        scopes: &[String],
        pkce_challenge: Option<&str>,
    ) -> String {
        let all_scopes = self.scopes_with_defaults(scopes);
        let joined = self.join_scopes(&all_scopes);
        let mut params: Vec<(String, String)> = vec![
            ("response_type".into(), "code".into()),
            ("client_id".into(), self.client_id.clone()),
            ("redirect_uri".into(), redirect_uri.into()),
        ];
        if !joined.is_empty() {
            params.push((self.quirks.scope_param.into(), joined.clone()));
        }
        params.push(("state".into(), state.into()));
        if let Some(challenge) = pkce_challenge {
            params.push(("code_challenge".into(), challenge.into()));
            params.push(("code_challenge_method".into(), "S256".into()));
        }
        let vars = Vars {
            client_id: Some(&self.client_id),
            redirect_uri: Some(redirect_uri),
            scopes: Some(&joined),
            state: Some(state),
            code_challenge: pkce_challenge,
            ..Vars::default()
        };
        vars.merge(&mut params, &self.authorize_params);

        let mut url = self.endpoints.authorize.clone();
        if !url.ends_with('?') && !url.ends_with('&') {
            url.push(if url.contains('?') { '&' } else { '?' });
        }
        for (i, (k, v)) in params.iter().enumerate() {
            if i > 0 {
                url.push('&');
            }
            url.push_str(&encode(k));
            url.push('=');
            url.push_str(&encode(v));
        }
        url
    }

    /// The provider's default scopes first, then `requested`, without duplicates.
    pub fn scopes_with_defaults(&self, requested: &[String]) -> Vec<String> {
        let mut all: Vec<String> = Vec::with_capacity(self.default_scopes.len() + requested.len());
        for scope in self.default_scopes.iter().chain(requested) {
            if !all.contains(scope) {
                all.push(scope.clone());
            }
        }
        all
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3). A bad, expired or used code is
    /// `InvalidGrant` (`invalid_grant`) or `Rejected` (GitHub `bad_verification_code`,
    /// Slack `invalid_code`); the flow fails either way.
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, OAuthError> {
        let mut params: Vec<(String, String)> = vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code.into()),
            ("redirect_uri".into(), redirect_uri.into()),
        ];
        if let Some(verifier) = pkce_verifier {
            params.push(("code_verifier".into(), verifier.into()));
        }
        self.push_client_params(&mut params);
        let secret = self.client_secret.as_ref().map(|s| s.expose());
        let vars = Vars {
            client_id: Some(&self.client_id),
            client_secret: secret,
            redirect_uri: Some(redirect_uri),
            code: Some(code),
            code_verifier: pkce_verifier,
            ..Vars::default()
        };
        vars.merge(&mut params, &self.token_params);
        let mut redactor = self.redactor();
        redactor.add(code);
        redactor.add_opt(pkce_verifier);
        self.token_call(
            http,
            &self.endpoints.token,
            params,
            Grant::Code,
            &self.token_response_map,
            &redactor,
        )
        .await
    }

    /// Refreshes (RFC 6749 §6). `refresh_token` in the answer is `None` when the provider
    /// sent none (Google): keep the old one. `InvalidGrant`: re-authorize.
    /// `Unavailable`: keep the tokens and retry later.
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &str,
    ) -> Result<TokenSet, OAuthError> {
        let mut params: Vec<(String, String)> = vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), refresh_token.into()),
        ];
        self.push_client_params(&mut params);
        let secret = self.client_secret.as_ref().map(|s| s.expose());
        let vars = Vars {
            client_id: Some(&self.client_id),
            client_secret: secret,
            refresh_token: Some(refresh_token),
            ..Vars::default()
        };
        vars.merge(&mut params, &self.refresh_params);
        let mut redactor = self.redactor();
        redactor.add(refresh_token);
        self.token_call(
            http,
            &self.endpoints.refresh,
            params,
            Grant::Refresh,
            &self.refresh_response_map,
            &redactor,
        )
        .await
    }

    /// The user's profile from the user-info endpoint; `None` if the provider has none.
    /// Take the stable id with [`Provider::user_id_from_info`].
    pub async fn user_info(
        &self,
        http: &reqwest::Client,
        access_token: &str,
    ) -> Result<Option<Value>, OAuthError> {
        let Some(endpoint) = &self.endpoints.user_info else {
            return Ok(None);
        };
        let what = "user info endpoint";
        let mut req = match endpoint.method {
            UserInfoMethod::Get => http.get(&endpoint.url),
            UserInfoMethod::PostEmpty => http.post(&endpoint.url),
            UserInfoMethod::PostJson(body) => http
                .post(&endpoint.url)
                .header(CONTENT_TYPE, "application/json")
                .body(body),
        };
        for (name, value) in &endpoint.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        req = self.common(req).bearer_auth(access_token);
        let mut redactor = self.redactor();
        redactor.add(access_token);
        let answer = self.send(req, what).await?;
        answer.retryable(what)?;
        let parsed = serde_json::from_slice::<Value>(&answer.body).ok();
        // Slack `auth.test` says `{"ok":false,"error":"invalid_auth"}` with a 200.
        if let Some(Value::Object(map)) = &parsed
            && let Some(e) = token::oauth_error(map, Grant::Other, &redactor)
        {
            return Err(e);
        }
        if matches!(
            answer.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(OAuthError::Rejected {
                error: "invalid_token".into(),
                description: Some(format!(
                    "the {what} answered HTTP {}",
                    answer.status.as_u16()
                )),
            });
        }
        answer.success(what)?;
        match parsed {
            Some(v @ Value::Object(_)) => Ok(Some(v)),
            _ => Err(OAuthError::BadResponse(format!(
                "the {what} did not answer a JSON object"
            ))),
        }
    }

    /// Revokes `token` at the provider. `Ok(false)`: the provider offers no revocation
    /// (forget the tokens locally). A token the provider already considers dead counts as
    /// revoked. Which token to pass: [`Provider::revoke_token_kind`], or use
    /// [`Provider::revoke_grant`].
    pub async fn revoke(&self, http: &reqwest::Client, token: &str) -> Result<bool, OAuthError> {
        let Some(endpoint) = &self.endpoints.revoke else {
            return Ok(false);
        };
        let what = "revocation endpoint";
        let secret = self.client_secret.as_ref().map(|s| s.expose());
        let req = match endpoint.style {
            RevokeStyle::Rfc7009 => {
                let mut params = vec![("token".to_owned(), token.to_owned())];
                self.push_client_params(&mut params);
                self.body(self.client_auth(http.post(&endpoint.url)), &params)
            }
            RevokeStyle::SlackAuthRevoke | RevokeStyle::BearerPost => {
                http.post(&endpoint.url).bearer_auth(token)
            }
            RevokeStyle::GitHubApplicationToken => http
                .delete(&endpoint.url)
                .basic_auth(&self.client_id, secret)
                .json(&serde_json::json!({ "access_token": token })),
        };
        let mut redactor = self.redactor();
        redactor.add(token);
        let answer = self.send(self.common(req), what).await?;
        answer.retryable(what)?;
        if let Some(map) = parse_body(answer.content_type.as_deref(), &answer.body)
            && let Some(e) = token::oauth_error(&map, Grant::Other, &redactor)
        {
            return match e.error_code() {
                // Already dead is as good as revoked (Slack says `invalid_auth`).
                Some("invalid_token" | "invalid_grant" | "token_revoked" | "invalid_auth") => {
                    Ok(true)
                }
                _ => Err(e),
            };
        }
        // GitHub: 404 = no such token (already gone).
        if answer.status == StatusCode::NOT_FOUND
            && endpoint.style == RevokeStyle::GitHubApplicationToken
        {
            return Ok(true);
        }
        answer.success(what)?;
        Ok(true)
    }

    /// Revokes a connection's grant with whichever of its tokens this provider takes.
    pub async fn revoke_grant(
        &self,
        http: &reqwest::Client,
        access_token: &str,
        refresh_token: Option<&str>,
    ) -> Result<bool, OAuthError> {
        let token = match (self.revoke_token_kind(), refresh_token) {
            (Some(TokenKind::Refresh), Some(rt)) => rt,
            _ => access_token,
        };
        self.revoke(http, token).await
    }

    /// The one scrubber for anything this provider says: its client secret and Basic
    /// credential in every encoding, whatever the request was (a provider that has seen
    /// the secret once can echo it anywhere). Callers add the request's own tokens.
    fn redactor(&self) -> Redactor {
        let mut redactor = Redactor::new();
        if let Some(secret) = &self.client_secret {
            redactor.add_client(&self.client_id, secret.expose());
        }
        redactor
    }

    /// Provider text (an authorization error's `error_description`, a failure reason)
    /// fit to show a user or log: the client secret in every encoding replaced, control
    /// characters dropped, length capped.
    pub fn scrub(&self, text: &str) -> String {
        self.redactor().clean(text)
    }

    /// Client credentials in the body: always for `client_secret_post`, and the client id
    /// alone for a public client (no secret), which cannot use Basic.
    fn push_client_params(&self, params: &mut Vec<(String, String)>) {
        match (&self.client_secret, self.client_auth) {
            (Some(secret), ClientAuth::Post) => {
                params.push(("client_id".into(), self.client_id.clone()));
                params.push(("client_secret".into(), secret.expose().to_owned()));
            }
            (None, _) => params.push(("client_id".into(), self.client_id.clone())),
            (Some(_), ClientAuth::Basic) => {}
        }
    }

    fn client_auth(&self, req: RequestBuilder) -> RequestBuilder {
        match (&self.client_secret, self.client_auth) {
            (Some(secret), ClientAuth::Basic) => {
                req.basic_auth(&self.client_id, Some(secret.expose()))
            }
            _ => req,
        }
    }

    fn body(&self, req: RequestBuilder, params: &[(String, String)]) -> RequestBuilder {
        match self.body_format {
            BodyFormat::Form => req.form(params),
            BodyFormat::Json => {
                let object: Map<String, Value> = params
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                req.json(&object)
            }
        }
    }

    fn common(&self, req: RequestBuilder) -> RequestBuilder {
        req.timeout(self.timeout)
            // GitHub quirk: token answers are form-encoded unless JSON is asked for.
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, AGENT)
    }

    async fn token_call(
        &self,
        http: &reqwest::Client,
        url: &str,
        params: Vec<(String, String)>,
        grant: Grant,
        map: &ResponseMap,
        redactor: &Redactor,
    ) -> Result<TokenSet, OAuthError> {
        let what = "token endpoint";
        let req = self.body(self.client_auth(self.common(http.post(url))), &params);
        let answer = self.send(req, what).await?;
        tracing::debug!(provider = %self.id, status = answer.status.as_u16(), ?grant, "token endpoint answered");
        answer.retryable(what)?;
        let parsed = parse_body(answer.content_type.as_deref(), &answer.body);
        // GitHub and Slack report errors in 200 bodies too: look before trusting status.
        if let Some(body) = &parsed
            && let Some(e) = token::oauth_error(body, grant, redactor)
        {
            return Err(e);
        }
        answer.success(what)?;
        match parsed {
            Some(body) => token::token_set(&body, &self.quirks, map),
            None => Err(OAuthError::BadResponse(format!(
                "the {what} answered a body that is neither JSON nor form-encoded"
            ))),
        }
    }

    async fn send(&self, req: RequestBuilder, what: &str) -> Result<Answer, OAuthError> {
        let mut resp = req.send().await.map_err(|e| self.transport(e, what))?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(e, what))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(OAuthError::BadResponse(format!(
                    "the {what} answered more than {MAX_BODY} bytes"
                )));
            }
        }
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }

    fn transport(&self, e: reqwest::Error, what: &str) -> OAuthError {
        // `network.allowlist` refused the address: say which host and why.
        let message = if let Some(refused) = crate::net::refusal(&e) {
            format!("the {what} of {} is not reachable: {refused}", self.id)
        } else if e.is_timeout() {
            format!(
                "the {what} of {} did not answer within {:?}",
                self.id, self.timeout
            )
        } else if e.is_connect() {
            format!("could not connect to the {what} of {}", self.id)
        } else {
            // Without the URL: a misconfigured endpoint could carry a query secret.
            format!(
                "the request to the {what} of {} failed: {}",
                self.id,
                e.without_url()
            )
        };
        OAuthError::Unavailable(message)
    }
}

struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    /// 5xx and 429: the provider is there but cannot serve now.
    fn retryable(&self, what: &str) -> Result<(), OAuthError> {
        if self.status.is_server_error() || self.status == StatusCode::TOO_MANY_REQUESTS {
            return Err(OAuthError::Unavailable(format!(
                "the {what} answered HTTP {}",
                self.status.as_u16()
            )));
        }
        Ok(())
    }

    /// A non-2xx answer without an OAuth error body.
    fn success(&self, what: &str) -> Result<(), OAuthError> {
        if self.status.is_success() {
            return Ok(());
        }
        // The client follows no redirect: the request (a client secret, a token) must not
        // be sent on to wherever a provider points.
        let redirect = if self.status.is_redirection() {
            ", a redirect, which is not followed"
        } else {
            ""
        };
        Err(OAuthError::Rejected {
            error: format!("http_{}", self.status.as_u16()),
            description: Some(format!(
                "the {what} answered HTTP {}{redirect}",
                self.status.as_u16()
            )),
        })
    }
}

/// Percent-encoding for a query component; spaces as `%20` (some providers, Atlassian
/// among them, document `%20` and not `+`).
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthProviderConfig, SecretValue};
    use crate::oauth::provider::resolve_provider;
    use serde_json::json;

    fn provider(id: &str, extra: Value) -> Provider {
        let cfg = AuthProviderConfig {
            id: format!("{id}-test"),
            description: None,
            enabled: true,
            provider_type: "oauth2".into(),
            provider_id: Some(id.into()),
            client_id: Some("my client".into()),
            client_secret: Some(SecretValue::new("s3cret")),
            extra,
        };
        resolve_provider(&cfg, "http://localhost:9099").unwrap()
    }

    fn query(url: &str) -> Vec<(String, String)> {
        url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
        q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn google_asks_for_offline_access_and_consent() {
        let p = provider("google", json!({}));
        let url = p.authorization_url(
            "https://gw.example/v1/oauth/callback",
            "st&ate",
            &[
                "openid".into(),
                "https://www.googleapis.com/auth/gmail.readonly".into(),
            ],
            Some("chal"),
        );
        assert!(
            url.starts_with("https://accounts.google.com/o/oauth2/v2/auth?response_type=code&")
        );
        assert!(url.contains("scope=openid%20https%3A%2F%2Fwww.googleapis.com"));
        assert!(url.contains("client_id=my%20client"));
        let q = query(&url);
        assert_eq!(param(&q, "access_type"), Some("offline"));
        assert_eq!(param(&q, "prompt"), Some("consent"));
        assert_eq!(param(&q, "state"), Some("st&ate"));
        assert_eq!(param(&q, "code_challenge_method"), Some("S256"));
        assert_eq!(
            param(&q, "redirect_uri"),
            Some("https://gw.example/v1/oauth/callback")
        );
    }

    #[test]
    fn slack_joins_scopes_with_commas_under_user_scope() {
        let p = provider("slack", json!({}));
        let q = query(&p.authorization_url(
            "https://r",
            "s",
            &["chat:write".into(), "users:read".into()],
            None,
        ));
        assert_eq!(param(&q, "user_scope"), Some("chat:write,users:read"));
        assert_eq!(param(&q, "scope"), None);
        assert_eq!(param(&q, "code_challenge"), None);
    }

    #[test]
    fn each_builtins_authorization_extras_are_sent() {
        let cases = [
            ("dropbox", "token_access_type", "offline"),
            ("reddit", "duration", "permanent"),
            ("atlassian", "audience", "api.atlassian.com"),
            ("atlassian", "prompt", "consent"),
            ("notion", "owner", "user"),
        ];
        for (id, key, value) in cases {
            let q = query(&provider(id, json!({})).authorization_url("https://r", "s", &[], None));
            assert_eq!(param(&q, key), Some(value), "{id}");
        }
        let scope_of = |id: &str| {
            let q = query(&provider(id, json!({})).authorization_url(
                "https://r",
                "s",
                &["a".into()],
                None,
            ));
            param(&q, "scope").map(str::to_owned)
        };
        assert_eq!(scope_of("microsoft").as_deref(), Some("offline_access a"));
        assert_eq!(scope_of("x").as_deref(), Some("offline.access a"));
        assert_eq!(scope_of("atlassian").as_deref(), Some("offline_access a"));
    }

    #[test]
    fn configured_authorize_params_fill_placeholders_and_override() {
        let p = provider(
            "google",
            json!({"oauth2": {"authorize_request": {"params": {
                "prompt": "select_account", "login_hint": "{{client_id}}",
                "cc": "{{code_challenge}}"}}}}),
        );
        let q = query(&p.authorization_url("https://r", "s", &[], None));
        assert_eq!(param(&q, "prompt"), Some("select_account"));
        assert_eq!(param(&q, "login_hint"), Some("my client"));
        assert_eq!(param(&q, "cc"), None);
    }

    #[test]
    fn an_endpoint_with_a_query_keeps_it() {
        let p = provider(
            "google",
            json!({"authorization": {"url": "https://a.example/auth?tenant=t1"}}),
        );
        assert!(
            p.authorization_url("https://r", "s", &[], None)
                .starts_with("https://a.example/auth?tenant=t1&response_type=code")
        );
    }

    #[test]
    fn revoke_grant_picks_the_token_the_provider_takes() {
        assert_eq!(
            provider("google", json!({})).revoke_token_kind(),
            Some(TokenKind::Refresh)
        );
        assert_eq!(
            provider("github", json!({})).revoke_token_kind(),
            Some(TokenKind::Access)
        );
        assert_eq!(provider("microsoft", json!({})).revoke_token_kind(), None);
        let gh = provider("github", json!({}));
        assert_eq!(
            gh.endpoints.revoke.unwrap().url,
            "https://api.github.com/applications/my%20client/token"
        );
    }
}
