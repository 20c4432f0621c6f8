//! Plaintext secrets in memory: redacted when printed, wiped when dropped.

use std::{fmt, io};

use serde::Serialize;
use zeroize::Zeroizing;

/// A plaintext secret string (an access token, a refresh token, a client secret).
///
/// Wiped on drop; `Debug` prints `***`; there is no `Display` and no `Serialize`, so it
/// cannot reach a log line, an error or a JSON body without an explicit [`expose`] (or a
/// field marked `#[serde(with = "crate::vault::serde_secret")]`, for a value that is sealed
/// whole, see [`SecretString::json`]).
///
/// [`expose`]: SecretString::expose
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The plaintext, for the one place that must send it (an HTTP header, the worker's
    /// `context.authorization`). Don't keep the `&str` longer than that call.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON of a value that holds secrets (a pending grant, before it is sealed),
    /// itself a secret. Written into one buffer sized beforehand, so that no partial copy
    /// is left behind in memory freed by a growing buffer.
    pub fn json(value: &impl Serialize) -> Result<Self, serde_json::Error> {
        let mut size = ByteCount(0);
        serde_json::to_writer(&mut size, value)?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(size.0));
        serde_json::to_writer(&mut *bytes, value)?;
        // serde_json writes UTF-8 only; should that ever fail, the bytes are still wiped.
        String::from_utf8(std::mem::take(&mut *bytes))
            .map(Self::new)
            .map_err(|e| {
                drop(Zeroizing::new(e.into_bytes()));
                <serde_json::Error as serde::ser::Error>::custom("serialized JSON is not UTF-8")
            })
    }
}

/// Counts what a serializer writes, to size the buffer of [`SecretString::json`].
struct ByteCount(usize);

impl io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `#[serde(with = "crate::vault::serde_secret")]` on a [`SecretString`] field: the
/// plaintext as a JSON string. Only for a struct that is sealed whole (its JSON made with
/// [`SecretString::json`]); never for one that is logged or answered.
pub mod serde_secret {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::SecretString;

    pub fn serialize<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(secret.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        // The String moves into the secret without a copy.
        String::deserialize(d).map(SecretString::new)
    }

    /// The same for an `Option<SecretString>`: `null` when absent.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::SecretString;

        pub fn serialize<S: Serializer>(
            secret: &Option<SecretString>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match secret {
                Some(secret) => s.serialize_some(secret.expose()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SecretString>, D::Error> {
            Ok(Option::<String>::deserialize(d)?.map(SecretString::new))
        }
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_stars_and_not_the_value() {
        let secret = SecretString::new("ya29.known-token-value");
        let printed = format!("{secret:?} {:?}", Some(secret.clone()));
        assert!(!printed.contains("known-token"), "{printed}");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(secret.expose(), "ya29.known-token-value");
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Sealed {
        #[serde(with = "serde_secret")]
        token: SecretString,
        #[serde(with = "serde_secret::option")]
        spare: Option<SecretString>,
        #[serde(with = "serde_secret::option")]
        none: Option<SecretString>,
        note: String,
    }

    #[test]
    fn a_struct_with_secret_fields_goes_to_json_and_back_as_plain_strings() {
        let value = Sealed {
            token: SecretString::new("at-\"quoted\"-é"),
            spare: Some(SecretString::new("rt-1")),
            none: None,
            note: "x".repeat(300),
        };
        let json = SecretString::json(&value).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(json.expose()).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "token": "at-\"quoted\"-é", "spare": "rt-1", "none": null, "note": "x".repeat(300),
            })
        );
        assert_eq!(format!("{json:?}"), "***");
        // Sized once: the buffer never grew, so no copy was left in freed memory.
        assert_eq!(json.0.capacity(), json.0.len());
        let back: Sealed = serde_json::from_str(json.expose()).unwrap();
        assert_eq!(back.token.expose(), "at-\"quoted\"-é");
        assert_eq!(back.spare.as_ref().map(SecretString::expose), Some("rt-1"));
        assert!(back.none.is_none());
    }
}
