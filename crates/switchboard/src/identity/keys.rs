//! API key generation and hashing. Keys start with `arc_` so Arcade's own tools treat
//! them as service keys and call unscoped `/v1/...` paths (`reference/arcade-api.md` §1).

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::store::ApiKeyRecord;

pub const KEY_PREFIX: &str = "arc_";

/// A newly minted key: the plaintext (shown once) and the row to store.
pub struct GeneratedKey {
    pub plaintext: String,
    pub record: ApiKeyRecord,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// 32 random bytes, base62-ish (alphanumeric) so it survives shells and headers.
pub fn generate_key(name: &str, now_ms: i64) -> GeneratedKey {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let body: String = (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let plaintext = format!("{KEY_PREFIX}sb{body}");
    let record = ApiKeyRecord {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.to_string(),
        key_hash: hash_key(&plaintext),
        hint: format!("{}…", &plaintext[..10]),
        created_at_ms: now_ms,
        revoked_at_ms: None,
    };
    GeneratedKey { plaintext, record }
}

/// Lowercase hex SHA-256, as stored. Keys carry 238 bits of randomness, so a fast hash is
/// enough.
pub fn hash_key(key: &str) -> String {
    hex::encode(key_digest(key))
}

/// The SHA-256 of a key, unencoded: what the in-memory lookup cache is keyed by.
pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_unique_prefixed_and_stored_hashed() {
        let a = generate_key("ci", 1);
        let b = generate_key("ci", 1);
        assert_ne!(a.plaintext, b.plaintext);
        assert!(a.plaintext.starts_with("arc_sb"));
        assert_eq!(a.record.key_hash, hash_key(&a.plaintext));
        assert!(!a.record.hint.contains(&a.plaintext[10..]));
        assert!(!format!("{a:?}").contains(&a.plaintext));
    }
}
