//! The one ciphertext format both layers use (root key → data key, data key → token):
//! `base64(version || 96-bit random nonce || AES-256-GCM ciphertext and tag)`, with
//! associated data built by [`aad`] so that each ciphertext is bound to where it belongs.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;

/// Why a ciphertext did not open; the caller turns it into an error naming the context.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OpenFailure {
    /// Not this format at all (bad base64, too short, unknown version): a damaged value.
    Malformed(String),
    /// Well-formed, but the tag did not verify: wrong key, wrong context, or tampered.
    DidNotOpen,
}

/// Associated data `"{domain}|{len}:{part}|{len}:{part}..."`. The byte-length prefixes
/// keep the parts apart, so ("a|b", "c") and ("a", "b|c") give different bytes.
pub(super) fn aad(domain: &str, parts: &[&str]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(domain.len() + parts.iter().map(|p| p.len() + 8).sum::<usize>());
    out.extend_from_slice(domain.as_bytes());
    for part in parts {
        out.push(b'|');
        out.extend_from_slice(part.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Encrypts `plaintext` under a fresh random nonce.
///
/// Panics only if `plaintext` exceeds AES-GCM's limit of 64 GiB, which no secret this
/// module seals comes near (tokens and keys are bytes to kilobytes).
pub(super) fn seal(cipher: &Aes256Gcm, version: u8, aad: &[u8], plaintext: &[u8]) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    // ThreadRng is a CSPRNG seeded from the OS; 96 random bits per message keep the
    // chance of a repeat negligible for far more messages than one key will ever seal.
    rand::fill(&mut nonce);
    // Holds the plaintext until it is encrypted in place: wipe it if anything unwinds.
    let mut buf = Zeroizing::new(Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN));
    buf.push(version);
    buf.extend_from_slice(&nonce);
    buf.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(&Nonce::from(nonce), aad, &mut buf[HEADER_LEN..])
        // Fails only above 64 GiB of plaintext; see the doc comment.
        .expect("AES-GCM plaintext within its 64 GiB limit");
    buf.extend_from_slice(&tag);
    B64.encode(&*buf)
}

/// Decrypts what [`seal`] produced with the same `version` and `aad`.
pub(super) fn open(
    cipher: &Aes256Gcm,
    version: u8,
    aad: &[u8],
    sealed: &str,
) -> Result<Zeroizing<Vec<u8>>, OpenFailure> {
    // One buffer: it holds the ciphertext, then (decrypted in place) the plaintext, and is
    // wiped on drop, spare capacity included.
    let mut buf = Zeroizing::new(
        B64.decode(sealed.trim())
            .map_err(|_| OpenFailure::Malformed("not base64".into()))?,
    );
    if buf.len() < HEADER_LEN + TAG_LEN {
        return Err(OpenFailure::Malformed(format!(
            "{} bytes, shorter than the {} of an empty value",
            buf.len(),
            HEADER_LEN + TAG_LEN
        )));
    }
    if buf[0] != version {
        return Err(OpenFailure::Malformed(format!(
            "format version {} (this build reads version {version})",
            buf[0]
        )));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&buf[1..HEADER_LEN]);
    buf.drain(..HEADER_LEN);
    cipher
        .decrypt_in_place(&Nonce::from(nonce), aad, &mut *buf)
        .map_err(|_| OpenFailure::DidNotOpen)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use aes_gcm::KeyInit;

    use super::*;

    fn cipher(byte: u8) -> Aes256Gcm {
        Aes256Gcm::new(&[byte; 32].into())
    }

    #[test]
    fn aad_parts_cannot_be_shifted_across_the_separator() {
        assert_ne!(aad("d", &["a|b", "c"]), aad("d", &["a", "b|c"]));
        assert_ne!(aad("d", &["a", ""]), aad("d", &["", "a"]));
        assert_eq!(
            aad("sb/v1", &["alice", "google"]),
            b"sb/v1|5:alice|6:google"
        );
    }

    #[test]
    fn a_sealed_value_opens_with_the_same_key_version_and_aad() {
        let sealed = seal(&cipher(1), 1, b"ctx", b"hello");
        assert_eq!(&**open(&cipher(1), 1, b"ctx", &sealed).unwrap(), b"hello");
        assert_eq!(
            open(&cipher(2), 1, b"ctx", &sealed),
            Err(OpenFailure::DidNotOpen)
        );
        assert_eq!(
            open(&cipher(1), 1, b"ctx2", &sealed),
            Err(OpenFailure::DidNotOpen)
        );
        assert!(matches!(
            open(&cipher(1), 2, b"ctx", &sealed),
            Err(OpenFailure::Malformed(_))
        ));
    }

    #[test]
    fn an_empty_plaintext_round_trips() {
        let sealed = seal(&cipher(1), 1, b"", b"");
        assert!(open(&cipher(1), 1, b"", &sealed).unwrap().is_empty());
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bad in ["", "!!!", "AAAA", &B64.encode([1u8; 20])] {
            assert!(
                matches!(
                    open(&cipher(1), 1, b"", bad),
                    Err(OpenFailure::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }
}
