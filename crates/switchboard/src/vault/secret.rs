//! Plaintext secrets in memory: redacted when printed, wiped when dropped.

use std::fmt;

use zeroize::Zeroizing;

/// A plaintext secret string (an access token, a refresh token, a client secret).
///
/// Wiped on drop; `Debug` prints `***`; there is no `Display` and no `Serialize`, so it
/// cannot reach a log line, an error or a JSON body without an explicit [`expose`].
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
}
