//! The engine → worker token: HS256, `{aud:"worker", ver:"1", iat, exp}`, keyed with the
//! worker secret as UTF-8 (arcade-serve checks exactly this; `ver` must be the string "1").

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How long a token the gateway mints stays valid.
pub const TOKEN_LIFETIME_SECS: u64 = 60;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    aud: serde_json::Value,
    ver: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JwtError {
    #[error("could not sign the worker token: {0}")]
    Sign(String),
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("unsupported token version")]
    UnsupportedVersion,
}

/// Mints a token for one call to a worker, valid for [`TOKEN_LIFETIME_SECS`].
pub fn sign(secret: &str, now_unix: u64) -> Result<String, JwtError> {
    let claims = Claims {
        aud: "worker".into(),
        ver: "1".into(),
        iat: Some(now_unix),
        exp: Some(now_unix + TOKEN_LIFETIME_SECS),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| JwtError::Sign(e.to_string()))
}

/// Checks a token as arcade-serve does: HS256 only, `aud` "worker" (or a list holding
/// it), `ver` the string "1", `exp`/`nbf` only when present.
pub fn verify(secret: &str, token: &str) -> Result<(), JwtError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["worker"]);
    validation.required_spec_claims.clear();
    validation.required_spec_claims.insert("aud".into());
    validation.leeway = 0;
    validation.validate_nbf = true;
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| JwtError::Invalid(e.to_string()))?;
    if data.claims.ver != serde_json::Value::String("1".into()) {
        return Err(JwtError::UnsupportedVersion);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    #[test]
    fn signed_token_verifies_with_same_secret_only() {
        let token = sign("s3cret", now()).unwrap();
        assert_eq!(verify("s3cret", &token), Ok(()));
        assert!(matches!(verify("other", &token), Err(JwtError::Invalid(_))));
    }

    #[test]
    fn expired_token_is_rejected() {
        let token = sign("s3cret", now() - 3600).unwrap();
        assert!(matches!(
            verify("s3cret", &token),
            Err(JwtError::Invalid(_))
        ));
    }

    #[test]
    fn integer_version_is_rejected() {
        let claims = serde_json::json!({"aud": "worker", "ver": 1, "exp": now() + 60});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert_eq!(verify("s3cret", &token), Err(JwtError::UnsupportedVersion));
    }

    #[test]
    fn hs512_is_rejected() {
        let claims = serde_json::json!({"aud": "worker", "ver": "1", "exp": now() + 60});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(verify("s3cret", &token).is_err());
    }
}
