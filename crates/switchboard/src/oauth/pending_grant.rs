//! The tokens of a flow that waits for user verification: sealed whole into the flow row
//! at the callback, opened by `confirm_user`, then saved as the connection.
//!
//! Owns the sealed form (JSON under the user's data key, bound to user, provider and the
//! `pending_grant` field). Every copy of a token here is a [`SecretString`]: the grant, its
//! JSON before sealing and after opening are wiped when dropped.
//! Must not: touch the store (the flow row is the caller's) or put a token in an error.

use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::vault::{DataKey, SealContext, SecretString, serde_secret};

/// The seal field of a flow's pending grant.
const FIELD: &str = "pending_grant";

/// Tokens waiting for user verification, sealed whole inside the flow row. `Debug` shows
/// `***` for the tokens.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PendingGrant {
    #[serde(with = "serde_secret")]
    pub access_token: SecretString,
    #[serde(with = "serde_secret::option")]
    pub refresh_token: Option<SecretString>,
    pub expires_at_ms: Option<i64>,
    /// `expires_in` in milliseconds; absent in grants sealed before it was kept.
    #[serde(default)]
    pub lifetime_ms: Option<i64>,
    pub scopes: Vec<String>,
    pub user_info: Option<String>,
    pub provider_user_id: Option<String>,
}

impl PendingGrant {
    /// The grant sealed for `user_id` and `provider_id`, for `pending_grant_sealed`.
    pub fn seal(
        &self,
        key: &DataKey,
        user_id: &str,
        provider_id: &str,
    ) -> Result<String, serde_json::Error> {
        let json = SecretString::json(self)?;
        Ok(key.seal_str(
            &SealContext::new(user_id, provider_id, FIELD),
            json.expose(),
        ))
    }

    /// What [`seal`](Self::seal) sealed for the same user and provider.
    pub fn open(
        key: &DataKey,
        user_id: &str,
        provider_id: &str,
        sealed: &str,
    ) -> Result<Self, AuthError> {
        let json = key.open_string(&SealContext::new(user_id, provider_id, FIELD), sealed)?;
        // serde_json's message may quote the text it choked on: keep only where it was.
        serde_json::from_str(json.expose()).map_err(|e| {
            AuthError::Config(format!(
                "pending grant unreadable: {:?} error at line {}, column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RootKeyConfig, SecretValue};
    use crate::vault::{RootKeyring, Vault};

    fn data_key() -> DataKey {
        let ring = RootKeyring::new(&[RootKeyConfig {
            id: "k1".into(),
            default: true,
            value: SecretValue::new("0123456789abcdef-root"),
        }])
        .unwrap();
        Vault::new(ring).new_data_key("alice").0
    }

    fn grant() -> PendingGrant {
        PendingGrant {
            access_token: SecretString::new("at-visible?"),
            refresh_token: Some(SecretString::new("rt-visible?")),
            expires_at_ms: Some(1_000),
            lifetime_ms: Some(3_600_000),
            scopes: vec!["repo".into()],
            user_info: Some(r#"{"login":"alice"}"#.into()),
            provider_user_id: Some("42".into()),
        }
    }

    #[test]
    fn a_pending_grant_prints_no_token_in_debug() {
        let debug = format!("{:?} {:#?}", grant(), grant());
        assert!(!debug.contains("visible"), "{debug}");
        assert!(debug.contains("***") && debug.contains("repo"), "{debug}");
    }

    #[test]
    fn a_sealed_grant_opens_with_every_field_for_its_user_and_provider_only() {
        let key = data_key();
        let sealed = grant().seal(&key, "alice", "github").unwrap();
        assert!(!sealed.contains("visible"));
        let opened = PendingGrant::open(&key, "alice", "github", &sealed).unwrap();
        assert_eq!(opened.access_token.expose(), "at-visible?");
        assert_eq!(
            opened.refresh_token.as_ref().map(SecretString::expose),
            Some("rt-visible?")
        );
        assert_eq!(opened.expires_at_ms, Some(1_000));
        assert_eq!(opened.lifetime_ms, Some(3_600_000));
        assert_eq!(opened.scopes, ["repo"]);
        assert_eq!(opened.user_info.as_deref(), Some(r#"{"login":"alice"}"#));
        assert_eq!(opened.provider_user_id.as_deref(), Some("42"));
        assert!(PendingGrant::open(&key, "bob", "github", &sealed).is_err());
        assert!(PendingGrant::open(&key, "alice", "google", &sealed).is_err());
    }

    #[test]
    fn the_sealed_json_is_the_same_shape_as_when_the_tokens_were_plain_strings() {
        // As grants were sealed before the tokens became secrets (and before
        // `lifetime_ms`): a flow awaiting verification across an upgrade still opens.
        let key = data_key();
        let ctx = SealContext::new("alice", "github", FIELD);
        let old = r#"{"access_token":"at-1","refresh_token":null,"expires_at_ms":null,"scopes":["repo"],"user_info":null,"provider_user_id":null}"#;
        let opened = PendingGrant::open(&key, "alice", "github", &key.seal_str(&ctx, old)).unwrap();
        assert_eq!(opened.access_token.expose(), "at-1");
        assert!(opened.refresh_token.is_none() && opened.lifetime_ms.is_none());

        let json = SecretString::json(&grant()).unwrap();
        let written: serde_json::Value = serde_json::from_str(json.expose()).unwrap();
        assert_eq!(written["access_token"], "at-visible?");
        assert_eq!(written["refresh_token"], "rt-visible?");
        assert_eq!(written["lifetime_ms"], 3_600_000);
    }

    #[test]
    fn an_unreadable_grant_is_an_error_that_quotes_none_of_it() {
        let key = data_key();
        let ctx = SealContext::new("alice", "github", FIELD);
        let bad = r#"{"access_token":"a","refresh_token":null,"expires_at_ms":"at-visible?"}"#;
        let err = PendingGrant::open(&key, "alice", "github", &key.seal_str(&ctx, bad))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("auth provider configuration: pending grant unreadable"),
            "{err}"
        );
        assert!(!err.contains("visible"), "{err}");
    }
}
