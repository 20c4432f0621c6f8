//! Built-in provider templates: real endpoints and the quirks each service needs.
//!
//! Facts come from `shared/reference/oauth-providers.md`; where that file marks a fact
//! unconfirmed, the template takes the conservative choice and says so: no revocation,
//! and PKCE on (an authorization server must ignore parameters it does not know, RFC 6749
//! §3.1 and §3.2, while a missing PKCE lets a stolen code be injected into another
//! user's flow). PKCE is off only where the provider is known not to take it. Every endpoint can be overridden in config (see `config.rs`).
//!
//! URL placeholders filled in at resolve time: `{public_url}` (the gateway's own URL, for
//! the sandbox), `{tenant}` (Microsoft, `oauth2.tenant`, default `common`), `{client_id}`
//! (GitHub's revocation path).

use super::{BodyFormat, ClientAuth};

/// A built-in provider: what `provider_id: <id>` stands for.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    pub provider_id: &'static str,
    /// Human name, for listings.
    pub name: &'static str,
    pub authorize_url: &'static str,
    pub token_url: &'static str,
    /// `None`: refresh at `token_url` (every provider but Figma).
    pub refresh_url: Option<&'static str>,
    pub revoke: Option<RevokeTemplate>,
    pub user_info: Option<UserInfoTemplate>,
    pub scope_delimiter: &'static str,
    pub pkce: PkceSupport,
    pub client_auth: ClientAuth,
    /// Body format of token and refresh requests.
    pub body_format: BodyFormat,
    /// Added to every authorization URL (before config params, which win).
    pub authorize_params: &'static [(&'static str, &'static str)],
    /// Requested on every authorization, in addition to what a tool needs.
    pub default_scopes: &'static [&'static str],
    pub quirks: Quirks,
}

/// PKCE as the catalog knows the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkceSupport {
    /// Known not to be taken for web apps, or harmful to send (Slack: enabling it is an
    /// irreversible per-app switch). Off unless config turns it on.
    Off,
    /// Supported (S256), or unconfirmed: on unless config turns it off.
    On,
    /// The provider refuses authorization without it (X): cannot be turned off.
    Required,
}

/// How a provider revokes a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokeTemplate {
    pub url: &'static str,
    pub style: RevokeStyle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeStyle {
    /// RFC 7009: POST `token=...` (body format and client auth as the token request).
    Rfc7009,
    /// Slack `auth.revoke`: POST with the token as bearer; answers `{"ok":true}`.
    SlackAuthRevoke,
    /// GitHub: `DELETE /applications/{client_id}/token`, Basic client auth, JSON body
    /// `{"access_token": ...}`; answers 204.
    GitHubApplicationToken,
    /// Dropbox `auth/token/revoke`: POST with the token as bearer and no body.
    BearerPost,
}

impl RevokeStyle {
    /// Which token revokes the grant: RFC 7009 servers revoke the whole grant from the
    /// refresh token; the others only take an access token.
    pub fn token_kind(self) -> TokenKind {
        match self {
            RevokeStyle::Rfc7009 => TokenKind::Refresh,
            _ => TokenKind::Access,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserInfoTemplate {
    pub url: &'static str,
    pub method: UserInfoMethod,
    /// Extra request headers (API versions).
    pub headers: &'static [(&'static str, &'static str)],
    /// A header that must carry the client id (Twitch `Client-Id`).
    pub client_id_header: Option<&'static str>,
    /// Where the stable user id is in the answer (dotted path).
    pub id_path: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserInfoMethod {
    Get,
    /// POST without a body (Dropbox RPC endpoints).
    PostEmpty,
    /// POST of a JSON body (Linear's GraphQL `viewer` query).
    PostJson(&'static str),
}

/// Provider behaviour that departs from plain RFC 6749. Each field names the providers
/// that need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// The provider issues a new refresh token on each refresh and the old one dies
    /// (at once or after a grace period): the returned one must be stored before anything
    /// else, and two concurrent refreshes lose the grant. Discord, X, Zoom, Box,
    /// Atlassian, Slack (rotation on), GitHub Apps, Microsoft, Notion, Linear, GitLab,
    /// Twitch, Spotify (sometimes), Salesforce (opt-in), the sandbox.
    pub rotates_refresh_token: bool,
    /// A refresh answer carries no `refresh_token`: the caller keeps the old one
    /// (`TokenSet::refresh_token` is `None`). Google, Dropbox, Figma, LinkedIn.
    pub refresh_omits_refresh_token: bool,
    /// The user's token is nested under this key when present (Slack v2 `authed_user`;
    /// the top level then holds the bot token, which is never used).
    pub user_token_under: Option<&'static str>,
    /// The authorization parameter that carries the scopes (Slack v2 puts user-token
    /// scopes in `user_scope`; `scope` would ask for bot scopes).
    pub scope_param: &'static str,
    /// Where the token response names the user (dotted path), if it does.
    pub user_id_in_token: Option<&'static str>,
    /// Non-secret fields of the token response worth keeping: (name, dotted path).
    pub extra_fields: &'static [(&'static str, &'static str)],
    /// Every token request must send `Accept: application/json` or the answer is
    /// form-encoded (GitHub). Sent to every provider anyway; form bodies are parsed too.
    pub form_encoded_unless_json_accepted: bool,
    /// Errors can come in an HTTP 200 body (Slack `{"ok":false}`, GitHub `error=`).
    /// Checked for every provider anyway.
    pub errors_in_success_body: bool,
}

impl Quirks {
    /// Plain RFC 6749: custom providers and the base of every template.
    pub const NONE: Quirks = Quirks {
        rotates_refresh_token: false,
        refresh_omits_refresh_token: false,
        user_token_under: None,
        scope_param: "scope",
        user_id_in_token: None,
        extra_fields: &[],
        form_encoded_unless_json_accepted: false,
        errors_in_success_body: false,
    };
}

impl Default for Quirks {
    fn default() -> Self {
        Quirks::NONE
    }
}

const BASE: Template = Template {
    provider_id: "",
    name: "",
    authorize_url: "",
    token_url: "",
    refresh_url: None,
    revoke: None,
    user_info: None,
    scope_delimiter: " ",
    pkce: PkceSupport::On,
    client_auth: ClientAuth::Post,
    body_format: BodyFormat::Form,
    authorize_params: &[],
    default_scopes: &[],
    quirks: Quirks::NONE,
};

const fn get(url: &'static str, id_path: &'static str) -> Option<UserInfoTemplate> {
    Some(UserInfoTemplate {
        url,
        method: UserInfoMethod::Get,
        headers: &[],
        client_id_header: None,
        id_path,
    })
}

const fn rfc7009(url: &'static str) -> Option<RevokeTemplate> {
    Some(RevokeTemplate {
        url,
        style: RevokeStyle::Rfc7009,
    })
}

const ROTATES: Quirks = Quirks {
    rotates_refresh_token: true,
    ..Quirks::NONE
};

const KEEPS_OLD_REFRESH: Quirks = Quirks {
    refresh_omits_refresh_token: true,
    ..Quirks::NONE
};

static TEMPLATES: &[Template] = &[
    Template {
        provider_id: "asana",
        name: "Asana",
        authorize_url: "https://app.asana.com/-/oauth_authorize",
        token_url: "https://app.asana.com/-/oauth_token",
        revoke: rfc7009("https://app.asana.com/-/oauth_revoke"),
        user_info: get("https://app.asana.com/api/1.0/users/me", "data.gid"),
        // Asana returns the user object as `data` in the token response.
        quirks: Quirks {
            user_id_in_token: Some("data.gid"),
            extra_fields: &[("user_gid", "data.gid"), ("user_name", "data.name")],
            ..Quirks::NONE
        },
        ..BASE
    },
    Template {
        provider_id: "atlassian",
        name: "Atlassian",
        authorize_url: "https://auth.atlassian.com/authorize",
        token_url: "https://auth.atlassian.com/oauth/token",
        // No revocation endpoint: the user disconnects the app in Atlassian.
        user_info: get("https://api.atlassian.com/me", "account_id"),
        // The token endpoint is documented with JSON bodies.
        body_format: BodyFormat::Json,
        // Atlassian quirk: `audience=api.atlassian.com` selects the cloud APIs and
        // `prompt=consent` is required for 3LO; `offline_access` to get a refresh token.
        authorize_params: &[("audience", "api.atlassian.com"), ("prompt", "consent")],
        default_scopes: &["offline_access"],
        // Atlassian rotates refresh tokens (old ones live 10 more minutes).
        quirks: ROTATES,
        ..BASE
    },
    Template {
        provider_id: "box",
        name: "Box",
        authorize_url: "https://account.box.com/api/oauth2/authorize",
        token_url: "https://api.box.com/oauth2/token",
        revoke: rfc7009("https://api.box.com/oauth2/revoke"),
        user_info: get("https://api.box.com/2.0/users/me", "id"),
        // Box: each refresh token works once; every refresh returns a new pair.
        quirks: ROTATES,
        ..BASE
    },
    Template {
        provider_id: "discord",
        name: "Discord",
        authorize_url: "https://discord.com/oauth2/authorize",
        token_url: "https://discord.com/api/oauth2/token",
        revoke: rfc7009("https://discord.com/api/oauth2/token/revoke"),
        user_info: get("https://discord.com/api/users/@me", "id"),
        pkce: PkceSupport::On,
        // Discord: refresh tokens are single-use; reusing one gives invalid_grant.
        quirks: ROTATES,
        ..BASE
    },
    Template {
        provider_id: "dropbox",
        name: "Dropbox",
        authorize_url: "https://www.dropbox.com/oauth2/authorize",
        token_url: "https://api.dropboxapi.com/oauth2/token",
        revoke: Some(RevokeTemplate {
            url: "https://api.dropboxapi.com/2/auth/token/revoke",
            style: RevokeStyle::BearerPost,
        }),
        user_info: Some(UserInfoTemplate {
            url: "https://api.dropboxapi.com/2/users/get_current_account",
            method: UserInfoMethod::PostEmpty,
            headers: &[],
            client_id_header: None,
            id_path: "account_id",
        }),
        pkce: PkceSupport::On,
        client_auth: ClientAuth::Basic,
        // Dropbox quirk: without `token_access_type=offline` only a short-lived access
        // token is issued, no refresh token.
        authorize_params: &[("token_access_type", "offline")],
        // Dropbox refresh answers carry no new refresh token.
        quirks: Quirks {
            user_id_in_token: Some("account_id"),
            extra_fields: &[("account_id", "account_id"), ("team_id", "team_id")],
            ..KEEPS_OLD_REFRESH
        },
        ..BASE
    },
    Template {
        provider_id: "figma",
        name: "Figma",
        authorize_url: "https://www.figma.com/oauth",
        token_url: "https://api.figma.com/v1/oauth/token",
        // Figma quirk: refresh has its own endpoint.
        refresh_url: Some("https://api.figma.com/v1/oauth/refresh"),
        user_info: get("https://api.figma.com/v1/me", "id"),
        // Comma per Nango's catalog; other clients use space (unconfirmed which is
        // canonical). Override with `oauth2.scope_delimiter`.
        scope_delimiter: ",",
        client_auth: ClientAuth::Basic,
        // Nango's catalog disables PKCE for Figma.
        pkce: PkceSupport::Off,
        // Figma refresh answers carry only a new access token.
        quirks: Quirks {
            user_id_in_token: Some("user_id"),
            ..KEEPS_OLD_REFRESH
        },
        ..BASE
    },
    Template {
        provider_id: "github",
        name: "GitHub",
        authorize_url: "https://github.com/login/oauth/authorize",
        token_url: "https://github.com/login/oauth/access_token",
        revoke: Some(RevokeTemplate {
            url: "https://api.github.com/applications/{client_id}/token",
            style: RevokeStyle::GitHubApplicationToken,
        }),
        user_info: get("https://api.github.com/user", "id"),
        pkce: PkceSupport::On,
        // GitHub quirks: the token endpoint answers form-encoded unless asked for JSON,
        // and reports errors (`bad_verification_code`, `bad_refresh_token`) in a 200
        // body. GitHub Apps' expiring user tokens rotate on refresh (OAuth Apps' tokens
        // never expire and have no refresh token).
        quirks: Quirks {
            rotates_refresh_token: true,
            form_encoded_unless_json_accepted: true,
            errors_in_success_body: true,
            ..Quirks::NONE
        },
        ..BASE
    },
    Template {
        provider_id: "gitlab",
        name: "GitLab",
        authorize_url: "https://gitlab.com/oauth/authorize",
        token_url: "https://gitlab.com/oauth/token",
        revoke: rfc7009("https://gitlab.com/oauth/revoke"),
        user_info: get("https://gitlab.com/api/v4/user", "id"),
        pkce: PkceSupport::On,
        quirks: ROTATES,
        ..BASE
    },
    Template {
        provider_id: "google",
        name: "Google",
        authorize_url: "https://accounts.google.com/o/oauth2/v2/auth",
        token_url: "https://oauth2.googleapis.com/token",
        revoke: rfc7009("https://oauth2.googleapis.com/revoke"),
        user_info: get("https://openidconnect.googleapis.com/v1/userinfo", "sub"),
        pkce: PkceSupport::On,
        // Google quirk: a refresh token is issued only with `access_type=offline`, and
        // only on a consent screen, so `prompt=consent` on every authorization (else a
        // re-authorization returns no refresh token). `include_granted_scopes` keeps
        // earlier scopes when a tool asks for more.
        authorize_params: &[
            ("access_type", "offline"),
            ("prompt", "consent"),
            ("include_granted_scopes", "true"),
        ],
        // Google quirk: refresh answers carry no refresh_token: keep the old one.
        quirks: KEEPS_OLD_REFRESH,
        ..BASE
    },
    Template {
        provider_id: "hubspot",
        name: "HubSpot",
        authorize_url: "https://app.hubspot.com/oauth/authorize",
        // The v1 token endpoint is sunset 2027-02-16; the dated v3 path is the successor.
        token_url: "https://api.hubapi.com/oauth/2026-03/token",
        // Revocation params for v3 unconfirmed: none.
        pkce: PkceSupport::On,
        ..BASE
    },
    Template {
        provider_id: "linear",
        name: "Linear",
        authorize_url: "https://linear.app/oauth/authorize",
        token_url: "https://api.linear.app/oauth/token",
        revoke: rfc7009("https://api.linear.app/oauth/revoke"),
        user_info: Some(UserInfoTemplate {
            url: "https://api.linear.app/graphql",
            method: UserInfoMethod::PostJson(r#"{"query":"{ viewer { id name email } }"}"#),
            headers: &[],
            client_id_header: None,
            id_path: "data.viewer.id",
        }),
        // Linear: scopes are comma-separated.
        scope_delimiter: ",",
        authorize_params: &[("prompt", "consent")],
        // Nango's catalog disables PKCE for Linear.
        pkce: PkceSupport::Off,
        // Linear: refresh tokens rotate (apps migrated 2026-04-01).
        quirks: ROTATES,
        ..BASE
    },
    Template {
        provider_id: "linkedin",
        name: "LinkedIn",
        authorize_url: "https://www.linkedin.com/oauth/v2/authorization",
        token_url: "https://www.linkedin.com/oauth/v2/accessToken",
        user_info: get("https://api.linkedin.com/v2/userinfo", "sub"),
        // LinkedIn: PKCE is for native apps only, not web apps.
        pkce: PkceSupport::Off,
        // LinkedIn: refresh tokens only for approved partners; refresh returns the same
        // refresh token on the original clock.
        quirks: KEEPS_OLD_REFRESH,
        ..BASE
    },
    Template {
        provider_id: "microsoft",
        name: "Microsoft",
        authorize_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        token_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        // No revocation endpoint (Graph revokeSignInSessions kills every session).
        // `sub` of the OIDC userinfo is pairwise per app: Graph `/me` `id` is stable.
        user_info: get("https://graph.microsoft.com/v1.0/me", "id"),
        pkce: PkceSupport::On,
        // Microsoft quirk: `offline_access` is needed for a refresh token. Scopes must be
        // space-separated (commas break refresh for work accounts).
        default_scopes: &["offline_access"],
        // Microsoft returns a new refresh token on each refresh (the old one is not
        // revoked, but the new one must still replace it).
        quirks: ROTATES,
        ..BASE
    },
    Template {
        provider_id: "notion",
        name: "Notion",
        authorize_url: "https://api.notion.com/v1/oauth/authorize",
        token_url: "https://api.notion.com/v1/oauth/token",
        revoke: rfc7009("https://api.notion.com/v1/oauth/revoke"),
        user_info: Some(UserInfoTemplate {
            url: "https://api.notion.com/v1/users/me",
            method: UserInfoMethod::Get,
            headers: &[("Notion-Version", "2022-06-28")],
            client_id_header: None,
            // `/users/me` is the bot; the human who installed it is its owner.
            id_path: "bot.owner.user.id",
        }),
        // Notion quirk: HTTP Basic client auth and a JSON body; no scopes.
        client_auth: ClientAuth::Basic,
        body_format: BodyFormat::Json,
        authorize_params: &[("owner", "user")],
        // Notion: current tokens rotate on refresh; legacy tokens have no refresh token
        // and no expiry (both handled: absent fields are None).
        quirks: Quirks {
            rotates_refresh_token: true,
            user_id_in_token: Some("owner.user.id"),
            extra_fields: &[
                ("workspace_id", "workspace_id"),
                ("workspace_name", "workspace_name"),
                ("bot_id", "bot_id"),
            ],
            ..Quirks::NONE
        },
        ..BASE
    },
    Template {
        provider_id: "reddit",
        name: "Reddit",
        authorize_url: "https://www.reddit.com/api/v1/authorize",
        token_url: "https://www.reddit.com/api/v1/access_token",
        revoke: rfc7009("https://www.reddit.com/api/v1/revoke_token"),
        // Reddit's API host is oauth.reddit.com and it wants a descriptive User-Agent
        // (every request from here sends one).
        user_info: get("https://oauth.reddit.com/api/v1/me", "id"),
        // Reddit quirk: HTTP Basic client auth, and `duration=permanent` or no refresh
        // token is issued.
        client_auth: ClientAuth::Basic,
        authorize_params: &[("duration", "permanent")],
        // Reddit: PKCE is not supported (unconfirmed either way; secondary sources agree).
        pkce: PkceSupport::Off,
        ..BASE
    },
    Template {
        provider_id: "salesforce",
        name: "Salesforce",
        // login.salesforce.com; sandboxes and My Domain hosts override the endpoints.
        authorize_url: "https://login.salesforce.com/services/oauth2/authorize",
        token_url: "https://login.salesforce.com/services/oauth2/token",
        revoke: rfc7009("https://login.salesforce.com/services/oauth2/revoke"),
        user_info: get(
            "https://login.salesforce.com/services/oauth2/userinfo",
            "user_id",
        ),
        pkce: PkceSupport::On,
        // Salesforce quirk: the `refresh_token` scope is needed for a refresh token, and
        // token answers have no `expires_in` (lifetime = the org's session timeout).
        default_scopes: &["refresh_token"],
        quirks: Quirks {
            rotates_refresh_token: true,
            user_id_in_token: Some("id"),
            extra_fields: &[("instance_url", "instance_url")],
            ..Quirks::NONE
        },
        ..BASE
    },
    Template {
        provider_id: "sandbox",
        name: "Sandbox (built-in, dev mode)",
        authorize_url: "{public_url}/sandbox/oauth/authorize",
        token_url: "{public_url}/sandbox/oauth/token",
        revoke: rfc7009("{public_url}/sandbox/oauth/revoke"),
        user_info: get("{public_url}/sandbox/api/me", "id"),
        pkce: PkceSupport::On,
        // The sandbox rotates refresh tokens, like the providers that hurt most.
        quirks: ROTATES,
        ..BASE
    },
    Template {
        provider_id: "slack",
        name: "Slack",
        authorize_url: "https://slack.com/oauth/v2/authorize",
        token_url: "https://slack.com/api/oauth.v2.access",
        revoke: Some(RevokeTemplate {
            url: "https://slack.com/api/auth.revoke",
            style: RevokeStyle::SlackAuthRevoke,
        }),
        user_info: get("https://slack.com/api/auth.test", "user_id"),
        // Slack v2 quirk: scopes are comma-separated.
        scope_delimiter: ",",
        // Slack PKCE is an irreversible per-app switch (it makes the app public): off.
        pkce: PkceSupport::Off,
        // Slack v2 quirks: user-token scopes go in `user_scope`; the user token comes
        // back under `authed_user` (top level is the bot token); errors are HTTP 200
        // `{"ok":false,"error":"invalid_refresh_token"}`; with token rotation on,
        // refresh tokens rotate.
        quirks: Quirks {
            rotates_refresh_token: true,
            user_token_under: Some("authed_user"),
            scope_param: "user_scope",
            user_id_in_token: Some("authed_user.id"),
            extra_fields: &[
                ("team_id", "team.id"),
                ("team_name", "team.name"),
                ("enterprise_id", "enterprise.id"),
                ("app_id", "app_id"),
                ("bot_user_id", "bot_user_id"),
            ],
            errors_in_success_body: true,
            ..Quirks::NONE
        },
        ..BASE
    },
    Template {
        provider_id: "spotify",
        name: "Spotify",
        authorize_url: "https://accounts.spotify.com/authorize",
        token_url: "https://accounts.spotify.com/api/token",
        user_info: get("https://api.spotify.com/v1/me", "id"),
        pkce: PkceSupport::On,
        client_auth: ClientAuth::Basic,
        // Spotify: a refresh may or may not return a new refresh token; keep the old one
        // if absent, replace it if present.
        quirks: ROTATES,
        ..BASE
    },
    Template {
        provider_id: "twitch",
        name: "Twitch",
        authorize_url: "https://id.twitch.tv/oauth2/authorize",
        token_url: "https://id.twitch.tv/oauth2/token",
        revoke: rfc7009("https://id.twitch.tv/oauth2/revoke"),
        user_info: Some(UserInfoTemplate {
            url: "https://api.twitch.tv/helix/users",
            method: UserInfoMethod::Get,
            headers: &[],
            // Twitch quirk: Helix wants the client id beside the bearer token.
            client_id_header: Some("Client-Id"),
            id_path: "data.0.id",
        }),
        // Twitch quirk: the token response's `scope` is a JSON array (parsed for every
        // provider). The refresh token may change on refresh.
        quirks: ROTATES,
        ..BASE
    },
    Template {
        provider_id: "x",
        name: "X (Twitter)",
        authorize_url: "https://x.com/i/oauth2/authorize",
        token_url: "https://api.x.com/2/oauth2/token",
        revoke: rfc7009("https://api.x.com/2/oauth2/revoke"),
        user_info: get("https://api.x.com/2/users/me", "data.id"),
        // X quirk: PKCE is mandatory, confidential clients must use HTTP Basic, and
        // `offline.access` is needed for a refresh token.
        pkce: PkceSupport::Required,
        client_auth: ClientAuth::Basic,
        default_scopes: &["offline.access"],
        // X: refresh tokens are single-use; replaying one kills the token family.
        quirks: ROTATES,
        ..BASE
    },
    Template {
        provider_id: "zoom",
        name: "Zoom",
        authorize_url: "https://zoom.us/oauth/authorize",
        token_url: "https://zoom.us/oauth/token",
        revoke: rfc7009("https://zoom.us/oauth/revoke"),
        user_info: get("https://api.zoom.us/v2/users/me", "id"),
        // Zoom: scopes are set on the app; comma if sent (per Nango, unconfirmed).
        scope_delimiter: ",",
        pkce: PkceSupport::On,
        // Zoom quirk: HTTP Basic client auth is required.
        client_auth: ClientAuth::Basic,
        // Zoom: each refresh returns a new refresh token and only the latest works.
        quirks: ROTATES,
        ..BASE
    },
];

/// The template for a built-in `provider_id`, if there is one.
pub fn builtin_template(provider_id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.provider_id == provider_id)
}

/// Every built-in `provider_id`, sorted.
pub fn builtin_ids() -> Vec<&'static str> {
    TEMPLATES.iter().map(|t| t.provider_id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_sorted_unique_and_covers_arcades_example_providers() {
        let ids = builtin_ids();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted);
        for id in [
            "atlassian",
            "discord",
            "dropbox",
            "github",
            "google",
            "linkedin",
            "microsoft",
            "reddit",
            "slack",
            "spotify",
            "twitch",
            "x",
            "zoom",
            "notion",
            "linear",
            "sandbox",
        ] {
            assert!(builtin_template(id).is_some(), "{id} missing");
        }
    }

    #[test]
    fn every_template_has_absolute_endpoints() {
        for t in TEMPLATES {
            for url in [Some(t.authorize_url), Some(t.token_url), t.refresh_url]
                .into_iter()
                .flatten()
                .chain(t.revoke.map(|r| r.url))
                .chain(t.user_info.map(|u| u.url))
            {
                let url = url.replace("{public_url}", "http://localhost:9099");
                assert!(url.starts_with("https://") || url.starts_with("http://localhost"));
                assert!(url::Url::parse(&url).is_ok(), "{}: {url}", t.provider_id);
            }
        }
    }

    #[test]
    fn a_required_pkce_template_is_x_only() {
        let required: Vec<_> = TEMPLATES
            .iter()
            .filter(|t| t.pkce == PkceSupport::Required)
            .map(|t| t.provider_id)
            .collect();
        assert_eq!(required, ["x"]);
    }

    #[test]
    fn pkce_is_off_only_where_the_provider_is_known_not_to_take_it() {
        let off: Vec<_> = TEMPLATES
            .iter()
            .filter(|t| t.pkce == PkceSupport::Off)
            .map(|t| t.provider_id)
            .collect();
        assert_eq!(off, ["figma", "linear", "linkedin", "reddit", "slack"]);
    }
}
