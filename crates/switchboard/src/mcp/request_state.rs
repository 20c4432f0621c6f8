//! The modern era's `requestState`: what a tool call was waiting for when it returned
//! `input_required`, sealed with HMAC-SHA256 so the client can carry it but not change it.
//! The key comes from the default root key through HKDF, so every replica can open what
//! another sealed. Not encrypted: it holds nothing the client has not already been shown.
//!
//! A state is bound to the call it was minted for: the user, the gateway, the tool and a
//! digest of the arguments. The spec has the client retry the original request, so a
//! retry that names another tool, other arguments or another endpoint is not that call.
//! It expires by the gateway's [`Clock`]: tests advance it rather than wait.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use hkdf::hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::config::RootKeyConfig;

const HKDF_SALT: &[u8] = b"switchboard/mcp-request-state/v1";

/// What a retry must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCall {
    /// User the call ran for.
    pub u: String,
    /// Named gateway the call came through (`/mcp/{slug}`); none for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub g: Option<String>,
    /// Tool, `Toolkit.Tool`.
    pub t: String,
    /// The call's arguments: [`arguments_digest`].
    pub a: String,
    /// Authorization flow id.
    pub f: String,
    /// The link the user was shown.
    pub url: String,
    /// Expiry, ms since the epoch.
    pub exp: i64,
}

impl PendingCall {
    /// Whether a retry is the call this state was minted for.
    pub fn is_for(
        &self,
        user: &str,
        gateway: Option<&str>,
        tool: &str,
        arguments: &Map<String, Value>,
    ) -> bool {
        self.u == user
            && self.g.as_deref() == gateway
            && self.t.eq_ignore_ascii_case(tool)
            && self.a == arguments_digest(arguments)
    }
}

/// SHA-256 of the arguments with every object's keys in sorted order, so a client that
/// re-serializes the same arguments in another key order still matches; base64url.
pub fn arguments_digest(arguments: &Map<String, Value>) -> String {
    let mut hash = Sha256::new();
    digest_object(&mut hash, arguments);
    URL_SAFE_NO_PAD.encode(hash.finalize())
}

fn digest_object(hash: &mut Sha256, object: &Map<String, Value>) {
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort_unstable();
    hash.update(b"{");
    for key in keys {
        digest_str(hash, key);
        digest_value(hash, &object[key.as_str()]);
    }
    hash.update(b"}");
}

/// Each value is tagged and strings are length-prefixed, so no two different values feed
/// the hash the same bytes.
fn digest_value(hash: &mut Sha256, value: &Value) {
    match value {
        Value::Null => hash.update(b"n"),
        Value::Bool(b) => hash.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            hash.update(b"#");
            digest_str(hash, &n.to_string());
        }
        Value::String(s) => {
            hash.update(b"s");
            digest_str(hash, s);
        }
        Value::Array(items) => {
            hash.update(b"[");
            hash.update((items.len() as u64).to_le_bytes());
            items.iter().for_each(|item| digest_value(hash, item));
        }
        Value::Object(object) => digest_object(hash, object),
    }
}

fn digest_str(hash: &mut Sha256, s: &str) {
    hash.update((s.len() as u64).to_le_bytes());
    hash.update(s.as_bytes());
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
    /// What `exp` is set and checked by.
    clock: Clock,
}

impl StateSealer {
    /// From the default root key (flagged default, else the first); a per-process random
    /// key when none is configured (then a retry must reach the same process).
    pub fn from_root_keys(keys: &[RootKeyConfig], clock: Clock) -> Self {
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
        Self { key, clock }
    }

    /// The `exp` of a state that lives `ttl` from now.
    pub fn expiry_after(&self, ttl: Duration) -> i64 {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.clock.now_ms().saturating_add(ttl_ms)
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

    /// The call `sealed` was minted for, if it is intact and has not expired.
    pub fn open(&self, sealed: &str) -> Result<PendingCall, StateError> {
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
        if call.exp <= self.clock.now_ms() {
            return Err(StateError::Expired);
        }
        Ok(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretValue;
    use serde_json::json;

    fn sealer_on(value: &str, clock: &Clock) -> StateSealer {
        let key = RootKeyConfig {
            id: "k1".into(),
            default: true,
            value: SecretValue::new(value),
        };
        StateSealer::from_root_keys(&[key], clock.clone())
    }

    fn sealer(value: &str) -> StateSealer {
        sealer_on(value, &Clock::system())
    }

    /// A call that expires in a minute, by `sealer`'s clock.
    fn call_on(sealer: &StateSealer) -> PendingCall {
        PendingCall {
            exp: sealer.expiry_after(Duration::from_secs(60)),
            ..call()
        }
    }

    fn call() -> PendingCall {
        PendingCall {
            u: "alice".into(),
            g: None,
            t: "Acct.Me".into(),
            a: arguments_digest(&Map::new()),
            f: "flow-1".into(),
            url: "http://x/l".into(),
            exp: 2_000,
        }
    }

    #[test]
    fn a_sealed_state_opens_on_another_replica_with_the_same_root_key() {
        let here = sealer("root-key-0123456789abcdef");
        let pending = call_on(&here);
        let sealed = here.seal(&pending);
        assert_eq!(
            sealer("root-key-0123456789abcdef").open(&sealed),
            Ok(pending)
        );
    }

    #[test]
    fn tampered_foreign_and_expired_states_are_refused() {
        let clock = Clock::manual();
        let s = sealer_on("root-key-0123456789abcdef", &clock);
        let pending = call_on(&s);
        let sealed = s.seal(&pending);
        let (payload, tag) = sealed.split_once('.').unwrap();
        let mut forged = pending.clone();
        forged.u = "mallory".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            s.open(&format!("{forged_payload}.{tag}")),
            Err(StateError::Tampered)
        );
        assert_eq!(
            sealer("another-root-key-0123456789").open(&sealed),
            Err(StateError::Tampered)
        );
        assert_eq!(s.open(payload), Err(StateError::Malformed));
        assert_eq!(s.open(&sealed), Ok(pending));
        clock.advance(Duration::from_secs(60));
        assert_eq!(s.open(&sealed), Err(StateError::Expired));
    }

    fn args(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test arguments are objects"),
        }
    }

    #[test]
    fn the_arguments_digest_ignores_key_order_and_nothing_else() {
        let digest = |v: Value| arguments_digest(&args(v));
        let base = digest(json!({"a": 1, "b": {"x": [1, "2"], "y": null}}));
        assert_eq!(
            base,
            digest(json!({"b": {"y": null, "x": [1, "2"]}, "a": 1}))
        );
        for other in [
            json!({"a": 2, "b": {"x": [1, "2"], "y": null}}),
            json!({"a": "1", "b": {"x": [1, "2"], "y": null}}),
            json!({"a": 1, "b": {"x": ["2", 1], "y": null}}),
            json!({"a": 1, "b": {"x": [1, "2"]}}),
            json!({"a": 1, "b": {"x": [1, "2"], "y": null}, "c": false}),
            json!({"a": 1, "b": {"x": [[1], "2"], "y": null}}),
        ] {
            assert_ne!(base, digest(other.clone()), "{other}");
        }
        // Length prefixes: moving a character between a key and its value changes it.
        assert_ne!(digest(json!({"ab": "c"})), digest(json!({"a": "bc"})));
    }

    #[test]
    fn a_state_is_for_its_own_user_gateway_tool_and_arguments_only() {
        let mut pending = call();
        pending.g = Some("support".into());
        pending.a = arguments_digest(&args(json!({"q": "x"})));
        let q = args(json!({"q": "x"}));
        assert!(pending.is_for("alice", Some("support"), "acct.me", &q));
        assert!(!pending.is_for("bob", Some("support"), "Acct.Me", &q));
        assert!(!pending.is_for("alice", None, "Acct.Me", &q));
        assert!(!pending.is_for("alice", Some("sales"), "Acct.Me", &q));
        assert!(!pending.is_for("alice", Some("support"), "Acct.Other", &q));
        assert!(!pending.is_for(
            "alice",
            Some("support"),
            "Acct.Me",
            &args(json!({"q": "y"}))
        ));
    }
}
