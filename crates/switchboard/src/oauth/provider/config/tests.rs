use super::vars::placeholders;
use super::*;
use crate::oauth::provider::{BodyFormat, ClientAuth, RevokeStyle};
use serde_json::json;

const PUBLIC: &str = "http://localhost:9099/";

fn entry(provider_id: Option<&str>, extra: Value) -> AuthProviderConfig {
    AuthProviderConfig {
        id: "p".into(),
        description: None,
        enabled: true,
        provider_type: "oauth2".into(),
        provider_id: provider_id.map(str::to_owned),
        client_id: Some("cid".into()),
        client_secret: Some(SecretValue::new("csecret")),
        extra,
    }
}

fn fails(cfg: AuthProviderConfig) -> String {
    resolve_provider(&cfg, PUBLIC).unwrap_err().to_string()
}

#[test]
fn a_builtin_provider_needs_only_its_client() {
    let p = resolve_provider(&entry(Some("google"), json!({})), PUBLIC).unwrap();
    assert_eq!(p.provider_id, "google");
    assert_eq!(p.endpoints.token, "https://oauth2.googleapis.com/token");
    assert_eq!(p.endpoints.refresh, p.endpoints.token);
    assert!(p.pkce && p.builtin);
    assert_eq!(p.source, ProviderSource::Config);
}

#[test]
fn arcades_long_form_makes_a_custom_provider() {
    let cfg = entry(
        None,
        json!({"oauth2": {
            "scope_delimiter": ",",
            "pkce": {"enabled": true, "code_challenge_method": "S256"},
            "authorize_request": {"endpoint": "https://h.example/auth",
                "params": {"response_type": "code", "client_id": "{{client_id}}",
                           "audience": "api"}},
            "token_request": {"endpoint": "https://h.example/token",
                "auth_method": "client_secret_basic",
                "request_content_type": "application/json",
                "params": {"grant_type": "authorization_code", "code": "{{code}}"},
                "response_map": {"access_token": "$.data.token"}},
            "refresh_request": {"endpoint": "https://h.example/refresh"},
            "user_info_request": {"endpoint": "https://h.example/me",
                "triggers": {"on_token_grant": true, "on_token_refresh": true}}
        }}),
    );
    let p = resolve_provider(&cfg, PUBLIC).unwrap();
    assert_eq!(p.provider_id, "oauth2");
    assert!(!p.builtin && p.pkce);
    assert_eq!(p.scope_delimiter, ",");
    assert_eq!(p.client_auth, ClientAuth::Basic);
    assert_eq!(p.body_format, BodyFormat::Json);
    assert_eq!(p.endpoints.refresh, "https://h.example/refresh");
    assert_eq!(
        p.token_response_map.access_token.as_deref(),
        Some("$.data.token")
    );
    assert_eq!(p.refresh_response_map, p.token_response_map);
    let ui = p.endpoints.user_info.unwrap();
    assert!(ui.on_token_refresh);
    assert_eq!(p.authorize_params.len(), 3);
}

#[test]
fn the_seeds_short_custom_form_makes_a_custom_provider() {
    let cfg = entry(
        None,
        json!({
            "authorization": {"url": "https://auth.example.com/oauth/authorize", "method": "GET"},
            "token": {"url": "https://auth.example.com/oauth/token", "method": "POST",
                      "auth_method": "client_secret_post"},
            "scopes": ["read", "write"],
            "revoke": {"url": "https://auth.example.com/oauth/revoke"},
            "user_info": {"url": "https://auth.example.com/me", "id_path": "$.user.id"}
        }),
    );
    let p = resolve_provider(&cfg, PUBLIC).unwrap();
    assert_eq!(
        p.endpoints.authorize,
        "https://auth.example.com/oauth/authorize"
    );
    assert_eq!(p.client_auth, ClientAuth::Post);
    assert_eq!(p.default_scopes, ["read", "write"]);
    assert!(
        p.pkce,
        "a custom provider uses PKCE unless its config opts out"
    );
    assert_eq!(p.endpoints.revoke.unwrap().style, RevokeStyle::Rfc7009);
    assert_eq!(
        p.endpoints.user_info.unwrap().id_path.as_deref(),
        Some("$.user.id")
    );
}

#[test]
fn a_builtins_endpoints_can_be_overridden_in_either_form() {
    let long = entry(
        Some("github"),
        json!({"oauth2": {"token_request": {"endpoint": "http://127.0.0.1:1/token"},
                          "user_info_request": {"endpoint": "http://127.0.0.1:1/user"}}}),
    );
    let p = resolve_provider(&long, PUBLIC).unwrap();
    assert_eq!(p.endpoints.token, "http://127.0.0.1:1/token");
    assert_eq!(p.endpoints.refresh, "http://127.0.0.1:1/token");
    assert_eq!(
        p.endpoints.authorize,
        "https://github.com/login/oauth/authorize"
    );
    assert!(p.quirks.form_encoded_unless_json_accepted);
    let ui = p.endpoints.user_info.unwrap();
    assert_eq!(ui.url, "http://127.0.0.1:1/user");
    assert_eq!(ui.id_path.as_deref(), Some("id"));

    let short = entry(
        Some("google"),
        json!({"authorization": {"url": "http://127.0.0.1:1/auth"}}),
    );
    let p = resolve_provider(&short, PUBLIC).unwrap();
    assert_eq!(p.endpoints.authorize, "http://127.0.0.1:1/auth");
    assert!(
        p.authorize_params
            .iter()
            .any(|(k, v)| k == "access_type" && v == "offline")
    );
}

#[test]
fn an_unknown_provider_id_without_endpoints_lists_the_builtins() {
    let msg = fails(entry(Some("myspace"), json!({})));
    assert!(msg.starts_with("provider_id: unknown provider_id 'myspace' (built-in: asana,"));
    assert!(msg.contains("google"));
}

#[test]
fn an_unknown_provider_id_with_endpoints_is_a_custom_provider() {
    let cfg = entry(
        Some("hooli"),
        json!({"authorization": {"url": "https://hooli.example/a"},
               "token": {"url": "https://hooli.example/t"}}),
    );
    let p = resolve_provider(&cfg, PUBLIC).unwrap();
    assert_eq!(p.provider_id, "hooli");
    assert!(!p.builtin);
}

#[test]
fn a_custom_provider_without_a_token_endpoint_names_the_key() {
    let cfg = entry(
        None,
        json!({"oauth2": {"authorize_request": {"endpoint": "https://h.example/a"}}}),
    );
    assert_eq!(
        fails(cfg),
        "oauth2.token_request.endpoint: required for a custom provider"
    );
    let short = entry(
        None,
        json!({"authorization": {"url": "https://h.example/a"}}),
    );
    assert_eq!(fails(short), "token.url: required for a custom provider");
}

#[test]
fn a_missing_client_id_is_an_error_except_for_the_sandbox() {
    let mut cfg = entry(Some("slack"), json!({}));
    cfg.client_id = None;
    assert_eq!(fails(cfg), "client_id: required");

    let mut sandbox = entry(Some("sandbox"), json!({"token_lifetime": "90s"}));
    sandbox.client_id = None;
    sandbox.client_secret = None;
    let p = resolve_provider(&sandbox, PUBLIC).unwrap();
    assert_eq!(p.client_id, SANDBOX_CLIENT_ID);
    assert_eq!(p.client_secret.unwrap().expose(), SANDBOX_CLIENT_SECRET);
    assert_eq!(
        p.endpoints.authorize,
        "http://localhost:9099/sandbox/oauth/authorize"
    );
    assert_eq!(
        p.endpoints.user_info.unwrap().url,
        "http://localhost:9099/sandbox/api/me"
    );
    assert_eq!(
        p.endpoints.revoke.unwrap().url,
        "http://localhost:9099/sandbox/oauth/revoke"
    );
    assert_eq!(p.token_lifetime, Some(Duration::from_secs(90)));
    assert!(p.pkce);
    assert_eq!(p.client_auth, ClientAuth::Post);
}

#[test]
fn the_client_may_come_from_arcades_oauth2_section() {
    let mut cfg = entry(
        Some("zoom"),
        json!({"oauth2": {"client_id": "inner", "client_secret": "s2"}}),
    );
    cfg.client_id = None;
    cfg.client_secret = None;
    let p = resolve_provider(&cfg, PUBLIC).unwrap();
    assert_eq!(p.client_id, "inner");
    assert_eq!(p.client_auth, ClientAuth::Basic);
}

#[test]
fn a_non_oauth2_type_is_refused() {
    let mut cfg = entry(Some("google"), json!({}));
    cfg.provider_type = "saml".into();
    assert!(fails(cfg).starts_with("type: unsupported provider type"));
}

#[test]
fn microsofts_tenant_defaults_to_common_and_can_be_set() {
    let p = resolve_provider(&entry(Some("microsoft"), json!({})), PUBLIC).unwrap();
    assert!(
        p.endpoints
            .authorize
            .contains("/common/oauth2/v2.0/authorize")
    );
    assert!(p.default_scopes.contains(&"offline_access".to_owned()));
    let cfg = entry(
        Some("microsoft"),
        json!({"oauth2": {"tenant": "contoso.onmicrosoft.com"}}),
    );
    let p = resolve_provider(&cfg, PUBLIC).unwrap();
    assert_eq!(
        p.endpoints.token,
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert!(
        fails(entry(Some("google"), json!({"oauth2": {"tenant": "x"}})))
            .starts_with("oauth2.tenant:")
    );
}

#[test]
fn pkce_follows_the_catalog_and_config_but_x_cannot_turn_it_off() {
    let on = |id, extra| {
        resolve_provider(&entry(Some(id), extra), PUBLIC)
            .unwrap()
            .pkce
    };
    assert!(!on("slack", json!({})));
    assert!(on("slack", json!({"oauth2": {"pkce": {"enabled": true}}})));
    assert!(!on(
        "google",
        json!({"oauth2": {"pkce": {"enabled": false}}})
    ));
    assert_eq!(
        fails(entry(
            Some("x"),
            json!({"oauth2": {"pkce": {"enabled": false}}})
        )),
        "oauth2.pkce.enabled: this provider requires PKCE; it cannot be disabled"
    );
    assert!(
        fails(entry(
            Some("x"),
            json!({"oauth2": {"pkce": {"enabled": true, "code_challenge_method": "plain"}}})
        ))
        .starts_with("oauth2.pkce.code_challenge_method:")
    );
}

#[test]
fn a_custom_provider_uses_pkce_by_default_and_can_opt_out() {
    let endpoints = json!({"authorization": {"url": "https://h.example/a"},
                           "token": {"url": "https://h.example/t"}});
    let custom = |extra: Value| resolve_provider(&entry(None, extra), PUBLIC).unwrap().pkce;
    assert!(custom(endpoints.clone()));
    let mut off = endpoints.clone();
    off["oauth2"] = json!({"pkce": {"enabled": false}});
    assert!(!custom(off));
    let long = json!({"oauth2": {
        "authorize_request": {"endpoint": "https://h.example/a"},
        "token_request": {"endpoint": "https://h.example/t"}}});
    assert!(custom(long.clone()));
    let mut off = long;
    off["oauth2"]["pkce"] = json!({"enabled": "false"});
    assert!(!custom(off));
    // An unknown service with its own endpoints is custom too.
    assert!(
        resolve_provider(&entry(Some("hooli"), endpoints), PUBLIC)
            .unwrap()
            .pkce
    );
}

#[test]
fn mistakes_are_named_by_their_key_path() {
    let cases = [
        (
            json!({"oauth2": {"token_request": {"endpoint": "not a url"}}}),
            "oauth2.token_request.endpoint: must be an absolute http(s) URL",
        ),
        (
            json!({"oauth2": {"tokn_request": {}}}),
            "oauth2.tokn_request: unknown key",
        ),
        (
            json!({"token": {"url": "https://a.example/t", "auth_method": "private_key_jwt"}}),
            "token.auth_method: must be",
        ),
        (
            json!({"oauth2": {"authorize_request": {"params": {"secret": "{{client_secret}}"}}}}),
            "oauth2.authorize_request.params.secret: unknown placeholder {{client_secret}}",
        ),
        (
            json!({"oauth2": {"token_request": {"response_map": {"access_token": "$..token"}}}}),
            "oauth2.token_request.response_map.access_token: only dotted paths",
        ),
        (
            json!({"oauth2": {"token_request": {"endpoint": "https://a.example/t"}}, "token": {"url": "https://a.example/t"}}),
            "token.url: give either this or oauth2.token_request.endpoint",
        ),
        (
            json!({"token_lifetime": "5m"}),
            "token_lifetime: only for provider_id sandbox",
        ),
        (
            json!({"oauth2": {"token_request": {"method": "GET"}}}),
            "oauth2.token_request.method: must be POST",
        ),
    ];
    for (extra, expected) in cases {
        let msg = fails(entry(Some("google"), extra));
        assert!(msg.starts_with(expected), "{msg}");
    }
}

#[test]
fn placeholders_fill_and_empty_ones_drop_the_parameter() {
    let vars = Vars {
        client_id: Some("cid"),
        state: Some("st"),
        ..Vars::default()
    };
    let mut params = vec![("client_id".to_owned(), "old".to_owned())];
    vars.merge(
        &mut params,
        &[
            ("client_id".into(), "{{client_id}}".into()),
            ("state".into(), "x-{{ state }}".into()),
            ("code_challenge".into(), "{{code_challenge}}".into()),
            ("scope".into(), "{{scopes}} {{existing_scopes}}".into()),
            ("client_id".into(), "".into()),
        ],
    );
    assert_eq!(params, [("state".to_owned(), "x-st".to_owned())]);
    assert_eq!(
        placeholders("a {{b}} {{ c }}").collect::<Vec<_>>(),
        ["b", "c"]
    );
}
