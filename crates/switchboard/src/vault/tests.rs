//! Scenarios across the vault's parts: keyring → data key → sealed value.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::*;
use crate::config::SecretValue;

const TOKEN: &str = "ya29.KNOWN-ACCESS-TOKEN-abc123";

fn key(id: &str, default: bool, value: &str) -> RootKeyConfig {
    RootKeyConfig {
        id: id.into(),
        default,
        value: SecretValue::new(value),
    }
}

fn vault(keys: &[RootKeyConfig]) -> Vault {
    Vault::from_config(keys).unwrap()
}

fn one_key_vault() -> Vault {
    vault(&[key("k1", true, "first-root-key-value-0001")])
}

fn access(user: &str) -> SealContext<'_> {
    SealContext::new(user, "google", field::ACCESS_TOKEN)
}

/// Flips one bit in the decoded bytes at `index` and re-encodes.
fn flip(b64: &str, index: usize) -> String {
    let mut bytes = B64.decode(b64).unwrap();
    bytes[index] ^= 0x01;
    B64.encode(bytes)
}

#[test]
fn a_sealed_token_opens_with_its_own_context() {
    let (dk, _) = one_key_vault().new_data_key("alice");
    let sealed = dk.seal_str(&access("alice"), TOKEN);
    assert!(!sealed.contains(TOKEN));
    assert_eq!(
        dk.open_string(&access("alice"), &sealed).unwrap().expose(),
        TOKEN
    );
    assert_eq!(
        &**dk.open(&access("alice"), &sealed).unwrap(),
        TOKEN.as_bytes()
    );
}

#[test]
fn another_user_provider_or_field_does_not_open_and_the_error_names_the_context() {
    let (dk, _) = one_key_vault().new_data_key("alice");
    let sealed = dk.seal_str(&access("alice"), TOKEN);
    for wrong in [
        SealContext::new("bob", "google", field::ACCESS_TOKEN),
        SealContext::new("alice", "github", field::ACCESS_TOKEN),
        SealContext::new("alice", "google", field::REFRESH_TOKEN),
    ] {
        let err = dk.open(&wrong, &sealed).unwrap_err();
        assert_eq!(
            err,
            VaultError::SealedDidNotOpen {
                user_id: wrong.user_id.into(),
                provider_id: wrong.provider_id.into(),
                field: wrong.field.into(),
            }
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("user '{}'", wrong.user_id)),
            "{message}"
        );
        assert!(!message.contains(TOKEN), "{message}");
    }
}

#[test]
fn context_parts_containing_the_separator_do_not_collide() {
    let (dk, _) = one_key_vault().new_data_key("a|b");
    let sealed = dk.seal_str(&SealContext::new("a|b", "c", field::ACCESS_TOKEN), TOKEN);
    assert!(
        dk.open(&SealContext::new("a", "b|c", field::ACCESS_TOKEN), &sealed)
            .is_err()
    );
}

#[test]
fn another_users_data_key_does_not_open_a_token() {
    let vault = one_key_vault();
    let (alice, _) = vault.new_data_key("alice");
    let (bob, _) = vault.new_data_key("bob");
    let sealed = alice.seal_str(&access("alice"), TOKEN);
    assert!(bob.open(&access("alice"), &sealed).is_err());
}

#[test]
fn tampered_ciphertext_does_not_open() {
    let (dk, _) = one_key_vault().new_data_key("alice");
    let sealed = dk.seal_str(&access("alice"), TOKEN);
    let len = B64.decode(&sealed).unwrap().len();
    // Nonce, ciphertext body and tag: each bit matters.
    for index in [1, 13, len - 1] {
        let err = dk
            .open(&access("alice"), &flip(&sealed, index))
            .unwrap_err();
        assert!(
            matches!(err, VaultError::SealedDidNotOpen { .. }),
            "{index}: {err}"
        );
    }
    // The version byte is read before decryption: a changed one is a malformed value.
    let err = dk.open(&access("alice"), &flip(&sealed, 0)).unwrap_err();
    assert!(matches!(err, VaultError::MalformedSealed { .. }), "{err}");
    let err = dk.open(&access("alice"), "not base64!").unwrap_err();
    assert!(err.to_string().contains("malformed"), "{err}");
}

#[test]
fn two_seals_of_the_same_plaintext_use_different_nonces() {
    let (dk, _) = one_key_vault().new_data_key("alice");
    let a = B64.decode(dk.seal_str(&access("alice"), TOKEN)).unwrap();
    let b = B64.decode(dk.seal_str(&access("alice"), TOKEN)).unwrap();
    assert_ne!(a[1..13], b[1..13]);
    assert_ne!(a, b);
}

#[test]
fn a_non_utf8_value_opens_as_bytes_but_not_as_a_string() {
    let (dk, _) = one_key_vault().new_data_key("alice");
    let sealed = dk.seal(&access("alice"), &[0xff, 0xfe]);
    assert_eq!(
        &**dk.open(&access("alice"), &sealed).unwrap(),
        &[0xff, 0xfe]
    );
    let err = dk.open_string(&access("alice"), &sealed).unwrap_err();
    assert!(matches!(err, VaultError::SealedNotText { .. }), "{err}");
}

#[test]
fn an_unwrapped_data_key_opens_what_the_new_one_sealed() {
    let vault = one_key_vault();
    let (dk, wrapped) = vault.new_data_key("alice");
    assert_eq!(wrapped.root_key_id, "k1");
    let sealed = dk.seal_str(&access("alice"), TOKEN);
    let reopened = vault.open_data_key("alice", &wrapped).unwrap();
    assert_eq!(
        reopened
            .open_string(&access("alice"), &sealed)
            .unwrap()
            .expose(),
        TOKEN
    );
    // A clone is the same key.
    assert_eq!(
        reopened
            .clone()
            .open_string(&access("alice"), &sealed)
            .unwrap()
            .expose(),
        TOKEN
    );
}

#[test]
fn a_wrapped_key_copied_to_another_user_does_not_open() {
    let vault = one_key_vault();
    let (_, wrapped) = vault.new_data_key("alice");
    let err = vault.open_data_key("bob", &wrapped).unwrap_err();
    assert_eq!(
        err,
        VaultError::DataKeyDidNotOpen {
            user_id: "bob".into(),
            root_key_id: "k1".into()
        }
    );
}

#[test]
fn a_wrapped_key_relabelled_with_another_root_key_id_does_not_open() {
    // Same configured value under two ids: HKDF's info separates them, and so does the AAD.
    let value = "shared-root-key-value-0001";
    let vault = vault(&[key("k1", true, value), key("k2", false, value)]);
    let (_, mut wrapped) = vault.new_data_key("alice");
    wrapped.root_key_id = "k2".into();
    assert!(matches!(
        vault.open_data_key("alice", &wrapped),
        Err(VaultError::DataKeyDidNotOpen { .. })
    ));
}

#[test]
fn a_tampered_wrapped_key_does_not_open() {
    let vault = one_key_vault();
    let (_, wrapped) = vault.new_data_key("alice");
    let tampered = WrappedKey {
        blob: flip(&wrapped.blob, 20),
        ..wrapped.clone()
    };
    assert!(matches!(
        vault.open_data_key("alice", &tampered),
        Err(VaultError::DataKeyDidNotOpen { .. })
    ));
    let garbage = WrappedKey {
        blob: "%%%".into(),
        ..wrapped
    };
    assert!(matches!(
        vault.open_data_key("alice", &garbage),
        Err(VaultError::MalformedWrappedKey { .. })
    ));
}

#[test]
fn a_changed_root_key_value_does_not_open_old_data_keys() {
    let (_, wrapped) = one_key_vault().new_data_key("alice");
    let changed = vault(&[key("k1", true, "a-different-value-for-k1")]);
    assert!(matches!(
        changed.open_data_key("alice", &wrapped),
        Err(VaultError::DataKeyDidNotOpen { .. })
    ));
}

#[test]
fn rotation_rewraps_under_the_new_default_and_old_keys_open_until_removed() {
    let old_value = "first-root-key-value-0001";
    let new_value = "second-root-key-value-002";
    let before = vault(&[key("k1", true, old_value)]);
    let (dk, old_wrapped) = before.new_data_key("alice");
    let sealed = dk.seal_str(&access("alice"), TOKEN);

    // k2 added as default, k1 kept.
    let both = vault(&[key("k1", false, old_value), key("k2", true, new_value)]);
    assert_eq!(both.default_root_key_id(), "k2");
    let new_wrapped = both.rewrap("alice", &old_wrapped).unwrap();
    assert_eq!(new_wrapped.root_key_id, "k2");
    for wrapped in [&old_wrapped, &new_wrapped] {
        let dk = both.open_data_key("alice", wrapped).unwrap();
        assert_eq!(
            dk.open_string(&access("alice"), &sealed).unwrap().expose(),
            TOKEN
        );
    }
    // New data keys go under the new default.
    assert_eq!(both.new_data_key("bob").1.root_key_id, "k2");

    // k1 removed: the re-wrapped key still opens, the stale one names what is missing.
    let after = vault(&[key("k2", true, new_value)]);
    let dk = after.open_data_key("alice", &new_wrapped).unwrap();
    assert_eq!(
        dk.open_string(&access("alice"), &sealed).unwrap().expose(),
        TOKEN
    );
    let err = after.open_data_key("alice", &old_wrapped).unwrap_err();
    assert_eq!(
        err,
        VaultError::UnknownRootKey {
            root_key_id: "k1".into(),
            user_id: "alice".into()
        }
    );
    let message = err.to_string();
    assert!(
        message.starts_with(
            "root key 'k1' is not configured; it wrapped the data key of user 'alice'"
        ),
        "{message}"
    );
    assert!(!message.contains(old_value), "{message}");
}

#[test]
fn debug_output_shows_no_key_material_or_plaintext() {
    let root_value = "KNOWN-ROOT-VALUE-0123456789";
    let vault = vault(&[key("main", true, root_value)]);
    let known = data_key::from_bytes(&[0x41; 32]);
    let secret = SecretString::new(TOKEN);
    let printed = format!("{vault:?} {known:?} {secret:?} {:?}", vault.keyring());
    assert!(!printed.contains("KNOWN-ROOT"), "{printed}");
    assert!(!printed.contains(TOKEN), "{printed}");
    // 0x41 as it would appear in hex, decimal, or as text.
    for needle in ["41", "65", "AAAA"] {
        assert!(!printed.contains(needle), "{needle} in {printed}");
    }
    assert_eq!(format!("{known:?}"), "DataKey(***)");
    assert!(printed.contains("main"), "{printed}");
}

#[test]
fn the_vault_and_its_keys_can_be_shared_across_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vault>();
    assert_send_sync::<DataKey>();
    assert_send_sync::<SecretString>();
}
