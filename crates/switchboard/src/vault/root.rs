//! Root keys: the configured strings under `security.root_keys`, turned into AES-256 keys.

use std::fmt;

use aes_gcm::{Aes256Gcm, KeyInit};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::VaultError;
use crate::config::RootKeyConfig;

/// Configured values shorter than this are refused: a root key is a password-like string
/// only in form; it should be random and long.
pub const MIN_ROOT_KEY_CHARS: usize = 16;

/// Fixed HKDF salt: separates these keys from any other use of the same configured string.
const HKDF_SALT: &[u8] = b"switchboard/root-key/v1";

/// One root key, ready to wrap and unwrap data keys.
pub(super) struct RootKey {
    pub(super) id: String,
    /// Built once: the AES key schedule and GHASH key are computed here, not per use.
    pub(super) cipher: Aes256Gcm,
}

/// Every configured root key, one of them the default (the one new data keys and
/// `vault rotate` wrap under). Old keys stay to open what they wrapped.
pub struct RootKeyring {
    keys: Vec<RootKey>,
    default: usize,
}

impl RootKeyring {
    /// Derives each key's 32 AES bytes with HKDF-SHA256 from its configured string (info =
    /// key id), so a value of any length and alphabet works. The default is the key flagged
    /// `default`, else the first.
    pub fn new(configs: &[RootKeyConfig]) -> Result<Self, VaultError> {
        if configs.is_empty() {
            return Err(VaultError::NoRootKeys);
        }
        let mut keys: Vec<RootKey> = Vec::with_capacity(configs.len());
        let mut default: Option<usize> = None;
        for (index, config) in configs.iter().enumerate() {
            if keys.iter().any(|k| k.id == config.id) {
                return Err(VaultError::DuplicateRootKey {
                    id: config.id.clone(),
                });
            }
            let value = config.value.expose();
            if value.chars().count() < MIN_ROOT_KEY_CHARS {
                return Err(VaultError::RootKeyTooShort {
                    id: config.id.clone(),
                    min_chars: MIN_ROOT_KEY_CHARS,
                });
            }
            if config.default {
                if let Some(first) = default {
                    return Err(VaultError::SeveralDefaultRootKeys {
                        first: configs[first].id.clone(),
                        second: config.id.clone(),
                    });
                }
                default = Some(index);
            }
            keys.push(RootKey {
                id: config.id.clone(),
                cipher: derive(&config.id, value),
            });
        }
        Ok(Self {
            keys,
            default: default.unwrap_or(0),
        })
    }

    /// The id new data keys are wrapped under.
    pub fn default_id(&self) -> &str {
        &self.keys[self.default].id
    }

    /// Every configured id, in config order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    pub(super) fn default_key(&self) -> &RootKey {
        &self.keys[self.default]
    }

    pub(super) fn get(&self, id: &str) -> Option<&RootKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

fn derive(id: &str, value: &str) -> Aes256Gcm {
    let mut okm = Zeroizing::new([0u8; 32]);
    // HKDF-SHA256 can expand up to 255 * 32 bytes; 32 always fits.
    Hkdf::<Sha256>::new(Some(HKDF_SALT), value.as_bytes())
        .expand(id.as_bytes(), &mut *okm)
        .expect("32 bytes is within HKDF-SHA256's output limit");
    Aes256Gcm::new((&*okm).into())
}

/// Ids and which is default; never key material.
impl fmt::Debug for RootKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootKeyring")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .field("default", &self.default_id())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretValue;

    pub(crate) fn key(id: &str, default: bool, value: &str) -> RootKeyConfig {
        RootKeyConfig {
            id: id.into(),
            default,
            value: SecretValue::new(value),
        }
    }

    #[test]
    fn no_keys_is_an_error() {
        assert_eq!(RootKeyring::new(&[]).unwrap_err(), VaultError::NoRootKeys);
    }

    #[test]
    fn a_duplicate_id_is_an_error_naming_it() {
        let err = RootKeyring::new(&[
            key("k1", false, "0123456789abcdef"),
            key("k1", false, "fedcba9876543210"),
        ])
        .unwrap_err();
        assert_eq!(err, VaultError::DuplicateRootKey { id: "k1".into() });
        assert!(err.to_string().contains("'k1'"));
    }

    #[test]
    fn a_short_value_is_refused_naming_the_key_but_not_the_value() {
        let err = RootKeyring::new(&[key("short", true, "tooshort-secret")]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("'short'"), "{message}");
        assert!(!message.contains("tooshort-secret"), "{message}");
    }

    #[test]
    fn two_defaults_are_an_error() {
        let err = RootKeyring::new(&[
            key("a", true, "0123456789abcdef"),
            key("b", true, "0123456789abcdef"),
        ])
        .unwrap_err();
        assert!(matches!(err, VaultError::SeveralDefaultRootKeys { .. }));
    }

    #[test]
    fn the_flagged_key_is_default_else_the_first() {
        let flagged = RootKeyring::new(&[
            key("a", false, "0123456789abcdef"),
            key("b", true, "0123456789abcdef"),
        ])
        .unwrap();
        assert_eq!(flagged.default_id(), "b");
        let unflagged = RootKeyring::new(&[
            key("a", false, "0123456789abcdef"),
            key("b", false, "0123456789abcdef"),
        ])
        .unwrap();
        assert_eq!(unflagged.default_id(), "a");
        assert!(unflagged.contains("b") && !unflagged.contains("c"));
    }

    /// A data key wrapped by `ring`'s default key, opened by `other`'s key of the same id.
    fn opens_under(ring: &RootKeyring, other: &RootKeyring) -> bool {
        let (_, wrapped) = crate::vault::data_key::generate(ring, "alice");
        crate::vault::data_key::unwrap_bytes(other, "alice", &wrapped).is_ok()
    }

    #[test]
    fn any_length_and_alphabet_of_value_works_and_every_character_counts() {
        let long = "x".repeat(500);
        let ring = |id: &str, value: &str| RootKeyring::new(&[key(id, true, value)]).unwrap();
        for (id, value) in [("long", long.as_str()), ("unicode", "ключ-ключ-ключ-ключ")]
        {
            let this = ring(id, value);
            assert!(opens_under(&this, &this), "{id}");
            // The whole value is key material: one character changed anywhere (the last
            // of 500, or past the first 32 bytes) is another key.
            let mut changed: Vec<char> = value.chars().collect();
            if let Some(last) = changed.last_mut() {
                *last = if *last == 'y' { 'z' } else { 'y' };
            }
            let other = ring(id, &changed.into_iter().collect::<String>());
            assert!(!opens_under(&this, &other), "{id}");
        }
    }

    #[test]
    fn debug_shows_ids_and_no_key_material() {
        let ring = RootKeyring::new(&[key("main", true, "KNOWN-ROOT-VALUE-1234")]).unwrap();
        let printed = format!("{ring:?}");
        assert!(printed.contains("main"), "{printed}");
        assert!(!printed.contains("KNOWN-ROOT"), "{printed}");
    }
}
