//! `Upstash-Signature`: an HS256 JWT over the destination and the body hash,
//! verified by the official SDKs' `Receiver`.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::hmac;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// How long a signature stays valid after it is made.
const VALIDITY_SECS: i64 = 300;

/// Base64url of `{"typ":"JWT","alg":"HS256"}`, the header
/// `jsonwebtoken::Header::new(Algorithm::HS256)` writes (a test compares).
const HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeys {
    pub current: String,
    pub next: String,
}

/// What a signature's JWT carries, as a receiver reads it.
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

/// [`Claims`] as they are written: the same fields in the same order,
/// borrowed, so signing copies neither the URL nor the issuer.
#[derive(Serialize)]
struct ClaimsRef<'a> {
    iss: &'a str,
    sub: &'a str,
    exp: i64,
    nbf: i64,
    iat: i64,
    jti: &'a str,
    body: &'a str,
}

#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SigningError(#[from] serde_json::Error);

/// Base64url (padded, as QStash sends it) of the body's SHA-256.
pub fn body_hash(body: &[u8]) -> String {
    URL_SAFE.encode(digest(&SHA256, body))
}

/// A signing key made ready once: the HMAC's inner and outer key blocks
/// are hashed when the key is loaded or rotated, not for every delivery.
///
/// The JWT is assembled here rather than by `jsonwebtoken::encode`, which
/// builds a new HMAC key (two SHA-256 blocks), serializes the constant
/// header and joins three strings for every token: about 8,000
/// instructions of a delivered message (issue 17; README, "Signatures,
/// one layer for the API, shared bodies").
/// The token is byte for byte the one `jsonwebtoken` makes (a test
/// compares them), and receivers check it with `jsonwebtoken` in our tests
/// and with the official SDKs' `Receiver`s.
pub struct Signer(hmac::Key);

impl Signer {
    /// The key's UTF-8 bytes are the HMAC secret, exactly as the SDKs use
    /// them.
    pub fn new(key: &str) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()))
    }

    /// Signs a delivery of `body` to `url` at unix time `now_secs`.
    pub fn sign(&self, url: &str, body: &[u8], now_secs: i64) -> Result<String, SigningError> {
        self.sign_claims(&ClaimsRef {
            iss: "Upstash",
            sub: url,
            exp: now_secs + VALIDITY_SECS,
            nbf: 0,
            iat: now_secs,
            jti: &crate::ids::jwt_id(),
            body: &body_hash(body),
        })
    }

    /// `header.claims.signature`, each part unpadded base64url (RFC 7515).
    fn sign_claims(&self, claims: &ClaimsRef) -> Result<String, SigningError> {
        let json = serde_json::to_vec(claims)?;
        let mut token = String::with_capacity(HEADER.len() + json.len() * 4 / 3 + 48);
        token.push_str(HEADER);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&json, &mut token);
        let tag = hmac::sign(&self.0, token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

    #[test]
    fn token_is_the_one_jsonwebtoken_makes() {
        let claims = ClaimsRef {
            iss: "Upstash",
            sub: "https://example.com/a?b=c&d=\"e\"",
            exp: 1_700_000_300,
            nbf: 0,
            iat: 1_700_000_000,
            jti: "jwt_abc",
            body: &body_hash(b"hello"),
        };
        for key in [
            "sig_test",
            "",
            "a key longer than one SHA-256 block: ....................................",
        ] {
            let ours = Signer::new(key).sign_claims(&claims).unwrap();
            let theirs = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(key.as_bytes()),
            )
            .unwrap();
            assert_eq!(ours, theirs, "key {key:?}");
        }
    }

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
