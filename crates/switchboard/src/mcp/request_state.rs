//! The modern era's `requestState`: what a tool call was waiting for when it returned
//! `input_required`, sealed with HMAC-SHA256 so the client can carry it but not change it.
//! The key comes from the default root key through HKDF, so every replica can open what
//! another sealed. Not encrypted: it holds nothing the client has not already been shown.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use hkdf::hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::config::RootKeyConfig;

const HKDF_SALT: &[u8] = b"switchboard/mcp-request-state/v1";

/// What a retry must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCall {
    /// User the call ran for.
    pub u: String,
    /// Tool, `Toolkit.Tool`.
    pub t: String,
    /// Authorization flow id.
    pub f: String,
    /// The link the user was shown.
    pub url: String,
    /// Expiry, ms since the epoch.
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StateError {
    #[error("requestState is malformed")]
    Malformed,
    #[error("requestState failed its integrity check")]
    Tampered,
    #[error("requestState has expired; call the tool again")]
    Expired,
}

pub struct StateSealer {
    key: Zeroizing<[u8; 32]>,
}

impl StateSealer {
    /// From the default root key (flagged default, else the first); a per-process random
    /// key when none is configured (then a retry must reach the same process).
    pub fn from_root_keys(keys: &[RootKeyConfig]) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        match keys.iter().find(|k| k.default).or_else(|| keys.first()) {
            Some(root) => {
                let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), root.value.expose().as_bytes());
                // 32 bytes is far below HKDF-SHA256's limit: this cannot fail.
                if hk.expand(root.id.as_bytes(), key.as_mut()).is_err() {
                    rand::fill(key.as_mut());
                }
            }
            None => {
                tracing::warn!(
                    "no root key configured: MCP requestState is sealed with a per-process key"
                );
                rand::fill(key.as_mut());
            }
        }
        Self { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        match <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref()) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts any key length"),
        }
    }

    pub fn seal(&self, call: &PendingCall) -> String {
        let payload = serde_json::to_vec(call).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    pub fn open(&self, sealed: &str, now_ms: i64) -> Result<PendingCall, StateError> {
        let (payload, tag) = sealed.split_once('.').ok_or(StateError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| StateError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| StateError::Malformed)?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag).map_err(|_| StateError::Tampered)?;
        let call: PendingCall =
            serde_json::from_slice(&payload).map_err(|_| StateError::Malformed)?;
        if call.exp <= now_ms {
            return Err(StateError::Expired);
        }
        Ok(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretValue;

    fn sealer(value: &str) -> StateSealer {
        StateSealer::from_root_keys(&[RootKeyConfig {
            id: "k1".into(),
            default: true,
            value: SecretValue::new(value),
        }])
    }

    fn call() -> PendingCall {
        PendingCall {
            u: "alice".into(),
            t: "Acct.Me".into(),
            f: "flow-1".into(),
            url: "http://x/l".into(),
            exp: 2_000,
        }
    }

    #[test]
    fn a_sealed_state_opens_on_another_replica_with_the_same_root_key() {
        let sealed = sealer("root-key-0123456789abcdef").seal(&call());
        assert_eq!(
            sealer("root-key-0123456789abcdef").open(&sealed, 1_000),
            Ok(call())
        );
    }

    #[test]
    fn tampered_foreign_and_expired_states_are_refused() {
        let s = sealer("root-key-0123456789abcdef");
        let sealed = s.seal(&call());
        let (payload, tag) = sealed.split_once('.').unwrap();
        let mut forged = call();
        forged.u = "mallory".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            s.open(&format!("{forged_payload}.{tag}"), 1_000),
            Err(StateError::Tampered)
        );
        assert_eq!(
            sealer("another-root-key-0123456789").open(&sealed, 1_000),
            Err(StateError::Tampered)
        );
        assert_eq!(s.open(&sealed, 3_000), Err(StateError::Expired));
        assert_eq!(s.open(payload, 1_000), Err(StateError::Malformed));
    }
}
