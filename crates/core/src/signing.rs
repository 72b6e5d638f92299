//! `Upstash-Signature`: an HS256 JWT over the destination and the body hash,
//! verified by the official SDKs' `Receiver`.

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// How long a signature stays valid after it is made.
const VALIDITY_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeys {
    pub current: String,
    pub next: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub exp: i64,
    /// Always 0, as QStash sends it: PyJWT rejects any `nbf` in the future,
    /// so a receiver whose clock lags ours must still accept the request.
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SigningError(#[from] jsonwebtoken::errors::Error);

/// Base64url (padded, as QStash sends it) of the body's SHA-256.
pub fn body_hash(body: &[u8]) -> String {
    URL_SAFE.encode(digest(&SHA256, body))
}

/// A signing key made ready once: the HMAC secret is set up when the key
/// is loaded or rotated, not again for every delivery.
pub struct Signer(EncodingKey);

impl Signer {
    /// The key's UTF-8 bytes are the HMAC secret, exactly as the SDKs use
    /// them.
    pub fn new(key: &str) -> Self {
        Self(EncodingKey::from_secret(key.as_bytes()))
    }

    /// Signs a delivery of `body` to `url` at unix time `now_secs`.
    pub fn sign(&self, url: &str, body: &[u8], now_secs: i64) -> Result<String, SigningError> {
        let claims = Claims {
            iss: "Upstash".into(),
            sub: url.into(),
            exp: now_secs + VALIDITY_SECS,
            nbf: 0,
            iat: now_secs,
            jti: crate::ids::jwt_id(),
            body: body_hash(body),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.0,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn signature_verifies_with_the_key_and_carries_the_claims() {
        let token = Signer::new("sig_test")
            .sign("http://127.0.0.1:1/x?a=b", b"hello", 1_700_000_000)
            .unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_issuer(&["Upstash"]);
        let data = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"sig_test"),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims.sub, "http://127.0.0.1:1/x?a=b");
        assert_eq!(data.claims.exp, 1_700_000_300);
        assert_eq!(data.claims.nbf, 0);
        assert_eq!(data.claims.body, body_hash(b"hello"));
        assert!(jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"other"),
            &validation
        )
        .is_err());
    }

    #[test]
    fn body_hash_is_padded_base64url() {
        // sha256("") = e3b0c442...; base64url with padding, never '+' or '/'.
        assert_eq!(
            body_hash(b""),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
