//! Token responses as providers really send them: JSON or form-encoded (GitHub), errors
//! in 4xx or in a 200 body (GitHub, Slack), the user token nested (Slack `authed_user`),
//! `scope` as a string or an array (Twitch), numbers as strings, fields missing.
//!
//! Also the scrubbing of provider text: anything a provider says goes through
//! `Redactor` before it lands in an [`OAuthError`], because some echo what they got.

use serde_json::{Map, Value};

use super::{OAuthError, Quirks, ResponseMap};
use crate::vault::SecretString;

/// Tokens from a code exchange or a refresh. The tokens are [`SecretString`]s: wiped when
/// the set is dropped, `***` in `Debug`.
#[derive(Clone, Debug)]
pub struct TokenSet {
    pub access_token: SecretString,
    /// `None` when the answer has none: after a refresh, keep the old one (Google,
    /// Dropbox, Figma never send a new one).
    pub refresh_token: Option<SecretString>,
    /// Seconds from when the answer arrived; `None` if the provider says nothing (GitHub
    /// OAuth Apps, Salesforce, legacy Notion): treat as not expiring, refresh on a 401.
    pub expires_in: Option<u64>,
    /// Granted scopes, if the provider says (else assume the requested ones).
    pub scopes: Option<Vec<String>>,
    pub token_type: Option<String>,
    /// The user at the provider, when the token answer names them (Slack, Dropbox,
    /// Notion, Salesforce, Asana, Figma).
    pub provider_user_id: Option<String>,
    /// Non-secret fields worth keeping (Slack `team_id`, Salesforce `instance_url`...).
    /// Never a token.
    pub extra: Value,
}

/// Longest piece of provider text kept in an error.
const MAX_TEXT: usize = 300;
/// Shorter secrets are not searched for: replacing them would mangle ordinary words.
const MIN_SECRET: usize = 4;
/// Shortest base64 run searched for inside longer base64 text (a secret encoded at an
/// unknown offset); shorter runs match too much.
const MIN_B64_RUN: usize = 8;

/// The secrets of one request, to scrub from whatever the provider says back: a provider
/// may echo the request (its `Authorization: Basic` header, the form body) into its
/// `error_description`, and that text reaches the user's callback page, the flow's
/// failure reason and the log. Each secret is searched for in every encoding a provider
/// could plausibly echo it in.
#[derive(Default)]
pub(crate) struct Redactor {
    /// Longest first, so that a longer encoding is replaced before a piece of it.
    needles: Vec<String>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The provider's client credentials: the secret alone (every encoding) and the HTTP
    /// Basic credential `client_id:client_secret`, raw and form-encoded (RFC 6749 §2.3.1)
    /// before base64.
    pub fn add_client(&mut self, client_id: &str, client_secret: &str) {
        if client_secret.len() < MIN_SECRET {
            return;
        }
        self.add(client_secret);
        let form = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        for pair in [
            format!("{client_id}:{client_secret}"),
            format!("{}:{}", form(client_id), form(client_secret)),
        ] {
            self.push_base64(pair.as_bytes());
            self.push(pair);
        }
        self.sort();
    }

    /// One secret (a token, a code, a verifier, the client secret): raw, percent-encoded
    /// (form and RFC 3986 style, either hex case) and base64 (standard and URL-safe, with
    /// and without padding, and at any offset inside longer base64 text).
    pub fn add(&mut self, secret: &str) {
        if secret.len() < MIN_SECRET {
            return;
        }
        self.push(secret.to_owned());
        let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let rfc3986 = percent_encode_all(secret);
        for encoded in [form.clone(), form.replace('+', "%20"), rfc3986] {
            self.push(lower_hex(&encoded));
            self.push(encoded);
        }
        self.push_base64(secret.as_bytes());
        // A whole echoed form body in base64 holds the secret form-encoded.
        if form != secret {
            self.push_base64(form.as_bytes());
        }
        self.sort();
    }

    pub fn add_opt(&mut self, secret: Option<&str>) {
        if let Some(s) = secret {
            self.add(s);
        }
    }

    /// Provider text fit for an error: control characters dropped, every secret in every
    /// encoding replaced, length capped.
    pub fn clean(&self, text: &str) -> String {
        let mut out: String = text.chars().filter(|c| !c.is_control()).collect();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), "***");
            }
        }
        if out.chars().count() > MAX_TEXT {
            out = out.chars().take(MAX_TEXT).collect::<String>() + "...";
        }
        out
    }

    fn push(&mut self, needle: String) {
        if needle.len() >= MIN_SECRET && !self.needles.contains(&needle) {
            self.needles.push(needle);
        }
    }

    fn push_base64(&mut self, bytes: &[u8]) {
        use base64::Engine;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        for engine in [STANDARD, URL_SAFE] {
            self.push(engine.encode(bytes));
        }
        for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
            // The bytes may sit at any offset of a longer encoded text (a whole echoed
            // body): keep the characters that depend on these bytes alone, for each of
            // the three alignments.
            for offset in 0..3usize {
                let mut shifted = vec![0u8; offset];
                shifted.extend_from_slice(bytes);
                let encoded = engine.encode(&shifted);
                let first = (8 * offset).div_ceil(6);
                let last = (8 * (offset + bytes.len())) / 6;
                if let Some(run) = encoded.get(first..last)
                    && run.len() >= MIN_B64_RUN
                {
                    self.push(run.to_owned());
                }
            }
            self.push(engine.encode(bytes));
        }
    }

    fn sort(&mut self) {
        self.needles
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }
}

/// Percent-encoding of every byte outside RFC 3986's unreserved set.
fn percent_encode_all(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%2F` as `%2f`: some encoders write lowercase hex.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let escape = rest.get(i..i + 3).unwrap_or(&rest[i..]);
        out.push_str(&escape.to_ascii_lowercase());
        rest = &rest[i + escape.len()..];
    }
    out.push_str(rest);
    out
}

/// A response body as a JSON object: by Content-Type, else JSON then form-encoded. A form
/// body is only believed without a Content-Type saying so when it looks like an OAuth
/// answer (any text parses as a form).
pub(crate) fn parse_body(content_type: Option<&str>, body: &[u8]) -> Option<Map<String, Value>> {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let json = || match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    let form = |strict: bool| {
        let map: Map<String, Value> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        let plausible = map.contains_key("access_token") || map.contains_key("error");
        (!map.is_empty() && (!strict || plausible)).then_some(map)
    };
    if ct.contains("json") {
        json().or_else(|| form(true))
    } else if ct.contains("x-www-form-urlencoded") {
        form(false).or_else(json)
    } else {
        json().or_else(|| form(true))
    }
}

/// Which request an answer is for: an error code can mean a different thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    Code,
    Refresh,
    Other,
}

/// Error codes that mean the grant is dead and only re-authorization helps.
const DEAD_GRANT: &[&str] = &[
    "invalid_grant",
    // Slack.
    "invalid_refresh_token",
    "token_revoked",
    // GitHub.
    "bad_refresh_token",
    // HubSpot legacy `status`.
    "BAD_REFRESH_TOKEN",
];

/// The OAuth error in an answer, if it is one: RFC 6749 `error`, Slack `ok: false`,
/// HubSpot's legacy `status`.
pub(crate) fn oauth_error(
    body: &Map<String, Value>,
    grant: Grant,
    redactor: &Redactor,
) -> Option<OAuthError> {
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let code = match body.get("error") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Object(o)) => o
            .get("code")
            .and_then(scalar_string)
            .unwrap_or_else(|| "error".into()),
        _ if body.get("ok") == Some(&Value::Bool(false)) => "unknown_error".into(),
        _ => match text("status") {
            Some(status) if status.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
                status.to_owned()
            }
            _ => return None,
        },
    };
    let description = text("error_description")
        .or_else(|| text("message"))
        .or_else(|| text("reason"))
        .map(|d| redactor.clean(d));
    let code = redactor.clean(&code);
    // Zoom: a refresh token that was rotated away answers `invalid_request` with reason
    // "Invalid Token!" rather than `invalid_grant`.
    let zoom_stale = grant == Grant::Refresh && text("reason") == Some("Invalid Token!");
    if DEAD_GRANT.contains(&code.as_str()) || zoom_stale {
        let message = match description {
            Some(d) => format!("{code}: {d}"),
            None => code,
        };
        return Some(OAuthError::InvalidGrant(message));
    }
    Some(OAuthError::Rejected {
        error: code,
        description,
    })
}

/// A successful token answer as a [`TokenSet`].
pub(crate) fn token_set(
    body: &Map<String, Value>,
    quirks: &Quirks,
    map: &ResponseMap,
) -> Result<TokenSet, OAuthError> {
    let whole = Value::Object(body.clone());
    // Slack v2: the user token is under `authed_user` when the user granted user scopes;
    // the top level then holds a bot token, which is not this user's. Refresh answers
    // (user token) are flat.
    let root = quirks
        .user_token_under
        .and_then(|key| whole.get(key))
        .filter(|nested| nested.get("access_token").is_some_and(Value::is_string))
        .unwrap_or(&whole);
    let pick = |mapped: &Option<String>, key: &str| -> Option<&Value> {
        mapped
            .as_deref()
            .and_then(|p| get_path(&whole, p))
            .or_else(|| root.get(key))
            .filter(|v| !v.is_null())
    };
    let access_token = pick(&map.access_token, "access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OAuthError::BadResponse("the token answer has no access_token".into()))
        .map(SecretString::new)?;
    let refresh_token = pick(&map.refresh_token, "refresh_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(SecretString::new);
    let expires_in = pick(&map.expires_in, "expires_in")
        .and_then(as_seconds)
        .filter(|&s| s > 0);
    let scopes = pick(&map.scope, "scope").and_then(parse_scopes);
    let token_type = pick(&map.token_type, "token_type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let provider_user_id = map
        .user_id
        .as_deref()
        .or(quirks.user_id_in_token)
        .and_then(|p| get_path(&whole, p))
        .and_then(scalar_string);

    let mut extra = Map::new();
    let secret = |v: &Value| {
        v.as_str().is_some_and(|s| {
            s == access_token.expose()
                || Some(s) == refresh_token.as_ref().map(SecretString::expose)
        })
    };
    for (name, path) in quirks.extra_fields {
        if let Some(v) = get_path(&whole, path).filter(|v| is_scalar(v) && !secret(v)) {
            extra.insert((*name).to_owned(), v.clone());
        }
    }
    // Google, LinkedIn, GitHub Apps: when the refresh token itself dies.
    if let Some(v) = root.get("refresh_token_expires_in").and_then(as_seconds) {
        extra.insert("refresh_token_expires_in".into(), Value::from(v));
    }
    Ok(TokenSet {
        access_token,
        refresh_token,
        expires_in,
        scopes,
        token_type,
        provider_user_id,
        extra: Value::Object(extra),
    })
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Seconds as a number or a numeric string (some providers quote them).
fn as_seconds(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| *f >= 0.0)
            .map(|f| f as u64),
        _ => None,
    }
}

/// `scope` as a delimited string (space or comma) or an array (Twitch).
fn parse_scopes(v: &Value) -> Option<Vec<String>> {
    let scopes: Vec<String> = match v {
        Value::String(s) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => return None,
    };
    Some(scopes)
}

/// A string, or a number written as one (GitHub's numeric user id).
pub(crate) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Follows a JSONPath-ish path: `$.a.b`, `a.b`, `data[0].id`, `data.0.id`.
pub(crate) fn get_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let mut current = value;
    for segment in path_segments(path)? {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The segments of a path, or `None` if it is not one this module understands (filters,
/// wildcards, quoted keys).
pub(crate) fn path_segments(path: &str) -> Option<Vec<&str>> {
    let path = path.trim();
    let path = path.strip_prefix('$').unwrap_or(path);
    let path = path.strip_prefix('.').unwrap_or(path);
    if path.is_empty() {
        return None;
    }
    let mut segments = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        // `name[0][1]` → name, 0, 1.
        let name_end = rest.find('[').unwrap_or(rest.len());
        let name = &rest[..name_end];
        if !name.is_empty() {
            segments.push(name);
        } else if name_end == rest.len() {
            return None;
        }
        rest = &rest[name_end..];
        while let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']')?;
            let index = &inner[..close];
            if index.is_empty() || !index.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            segments.push(index);
            rest = &inner[close + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    let valid = segments.iter().all(|s| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    });
    valid.then_some(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn a_form_encoded_github_answer_parses_without_a_content_type() {
        let body = b"access_token=gho_abc&scope=repo%2Cgist&token_type=bearer";
        let map = parse_body(None, body).unwrap();
        let set = token_set(&map, &Quirks::NONE, &ResponseMap::default()).unwrap();
        assert_eq!(set.access_token.expose(), "gho_abc");
        assert_eq!(set.scopes.unwrap(), ["repo", "gist"]);
    }

    #[test]
    fn html_is_not_taken_for_a_form_body() {
        assert!(parse_body(Some("text/html"), b"<html>oops</html>").is_none());
    }

    #[test]
    fn slack_user_token_is_taken_from_authed_user() {
        let quirks = super::super::builtin_template("slack").unwrap().quirks;
        let map = obj(json!({
            "ok": true, "access_token": "xoxb-bot", "scope": "chat:write",
            "team": {"id": "T1", "name": "Acme"},
            "authed_user": {"id": "U1", "access_token": "xoxp-user", "refresh_token": "xoxe-1",
                            "expires_in": 43200, "scope": "search:read,users:read"}
        }));
        let set = token_set(&map, &quirks, &ResponseMap::default()).unwrap();
        assert_eq!(set.access_token.expose(), "xoxp-user");
        assert_eq!(set.refresh_token.unwrap().expose(), "xoxe-1");
        assert_eq!(set.expires_in, Some(43200));
        assert_eq!(set.scopes.unwrap(), ["search:read", "users:read"]);
        assert_eq!(set.provider_user_id.as_deref(), Some("U1"));
        assert_eq!(set.extra["team_id"], "T1");
        assert!(!set.extra.to_string().contains("xox"));
    }

    #[test]
    fn twitch_scope_array_and_quoted_expiry_are_understood() {
        let map = obj(
            json!({"access_token": "a", "scope": ["chat:read", "user:read:email"],
                             "expires_in": "14400"}),
        );
        let set = token_set(&map, &Quirks::NONE, &ResponseMap::default()).unwrap();
        assert_eq!(set.scopes.unwrap(), ["chat:read", "user:read:email"]);
        assert_eq!(set.expires_in, Some(14400));
    }

    #[test]
    fn a_response_map_path_wins_over_the_top_level() {
        let map = obj(json!({"access_token": "top", "data": {"tokens": [{"t": "deep"}]}}));
        let rm = ResponseMap {
            access_token: Some("$.data.tokens[0].t".into()),
            ..ResponseMap::default()
        };
        assert_eq!(
            token_set(&map, &Quirks::NONE, &rm)
                .unwrap()
                .access_token
                .expose(),
            "deep"
        );
    }

    #[test]
    fn paths_beyond_dotted_ones_are_refused() {
        assert!(path_segments("$.a[?(@.x)]").is_none());
        assert!(path_segments("$..a").is_none());
        assert!(path_segments("$").is_none());
        assert_eq!(path_segments("$.a.b[2]").unwrap(), ["a", "b", "2"]);
    }

    #[test]
    fn error_codes_map_to_their_kinds() {
        let r = Redactor::new();
        let kind = |v: Value, g| oauth_error(&obj(v), g, &r).unwrap();
        assert!(matches!(
            kind(json!({"error": "invalid_grant"}), Grant::Refresh),
            OAuthError::InvalidGrant(_)
        ));
        assert!(matches!(
            kind(
                json!({"ok": false, "error": "token_revoked"}),
                Grant::Refresh
            ),
            OAuthError::InvalidGrant(_)
        ));
        assert!(matches!(
            kind(json!({"error": "bad_refresh_token"}), Grant::Refresh),
            OAuthError::InvalidGrant(_)
        ));
        assert!(matches!(
            kind(
                json!({"status": "BAD_REFRESH_TOKEN", "message": "x"}),
                Grant::Refresh
            ),
            OAuthError::InvalidGrant(_)
        ));
        assert!(matches!(
            kind(
                json!({"error": "invalid_request", "reason": "Invalid Token!"}),
                Grant::Refresh
            ),
            OAuthError::InvalidGrant(_)
        ));
        assert_eq!(
            kind(json!({"ok": false, "error": "invalid_code"}), Grant::Code),
            OAuthError::Rejected {
                error: "invalid_code".into(),
                description: None
            }
        );
        assert!(oauth_error(&obj(json!({"access_token": "a"})), Grant::Code, &r).is_none());
    }

    #[test]
    fn the_redactor_scrubs_raw_and_encoded_secrets() {
        let mut r = Redactor::new();
        r.add("rt/secret+1");
        let text = "bad token rt/secret+1 or rt%2Fsecret%2B1\n";
        assert_eq!(r.clean(text), "bad token *** or ***");
    }

    #[test]
    fn the_redactor_scrubs_the_client_secret_and_basic_credential_in_every_encoding() {
        use base64::Engine;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let (id, secret) = ("my client", "s3cr/t+?~ value");
        let mut r = Redactor::new();
        r.add_client(id, secret);
        let pair = format!("{id}:{secret}");
        let form = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let form_pair = format!("{}:{}", form(id), form(secret));
        let mut echoes = vec![
            secret.to_owned(),
            pair.clone(),
            form(secret),
            form(secret).replace('+', "%20"),
            percent_encode_all(secret),
            percent_encode_all(secret).to_ascii_lowercase(),
        ];
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            echoes.push(format!("Basic {}", engine.encode(&pair)));
            echoes.push(engine.encode(&form_pair));
            echoes.push(engine.encode(secret));
            // Inside a longer encoded text, at each alignment.
            for prefix in ["", "a", "ab", "client_secret="] {
                echoes.push(engine.encode(format!("{prefix}{secret}&grant_type=x")));
            }
        }
        for echo in echoes {
            let cleaned = r.clean(&format!("you sent [{echo}]"));
            assert!(!cleaned.contains(secret), "{echo} -> {cleaned}");
            for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
                let b64 = engine.encode(secret);
                assert!(
                    !cleaned.contains(&b64[..b64.len() - 1]),
                    "{echo} -> {cleaned}"
                );
            }
            assert!(!cleaned.contains("s3cr%2"), "{echo} -> {cleaned}");
            assert!(cleaned.contains("***"), "{echo} -> {cleaned}");
        }
        let long = "x".repeat(1000);
        assert_eq!(r.clean(&long).chars().count(), MAX_TEXT + 3);
    }

    #[test]
    fn a_token_set_prints_no_token_in_debug() {
        let map = obj(json!({
            "access_token": "at-visible?", "refresh_token": "rt-visible?",
            "token_type": "bearer", "expires_in": 60,
        }));
        let set = token_set(&map, &Quirks::NONE, &ResponseMap::default()).unwrap();
        // The type is what redacts: the fields are secrets, not strings.
        let _: (&SecretString, Option<&SecretString>) =
            (&set.access_token, set.refresh_token.as_ref());
        let debug = format!("{set:?} {set:#?}");
        assert!(!debug.contains("visible"), "{debug}");
        assert!(debug.contains("***") && debug.contains("bearer"), "{debug}");
    }
}
