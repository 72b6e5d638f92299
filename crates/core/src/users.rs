//! Who may call the API: tokens mapped to users, each with signing keys.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::signing::SigningKeys;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub token: String,
    /// Keys this user starts with; the store keeps them after rotation.
    pub initial_keys: SigningKeys,
}

impl User {
    pub fn new(id: &str, token: &str, current: &str, next: &str) -> Self {
        Self {
            id: id.into(),
            token: token.into(),
            initial_keys: SigningKeys {
                current: current.into(),
                next: next.into(),
            },
        }
    }
}

/// The four users of the official local dev server, with the exact tokens
/// and keys its docs publish, so `.env` files written for it work unchanged.
pub fn dev_users() -> Vec<User> {
    [
        (
            "defaultUser",
            "defaultPassword",
            "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r",
            "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs",
        ),
        (
            "testUser1",
            "testPassword",
            "sig_7GVPjvuwsfqF65iC8fSrs1dfYruM",
            "sig_5NoELc3EFnZn4DVS5bDs2Nk4b7Ua",
        ),
        (
            "testUser2",
            "testPassword",
            "sig_6jWGaWRxHsw4vMSPJprXadyvrybF",
            "sig_7qHbvhmahe5GwfePDiS5Lg3pi6Qx",
        ),
        (
            "testUser3",
            "testPassword",
            "sig_5T8FcSsynBjn9mMLBsXhpacRovJf",
            "sig_7GFR4YaDshFcqsxWRZpRB161jguD",
        ),
    ]
    .into_iter()
    .map(|(id, password, current, next)| User::new(id, &dev_token(id, password), current, next))
    .collect()
}

/// A dev-server token: base64 of `{"UserID":"…","Password":"…"}`.
pub fn dev_token(user: &str, password: &str) -> String {
    STANDARD.encode(format!(r#"{{"UserID":"{user}","Password":"{password}"}}"#))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_tokens_match_the_documented_ones() {
        let users = dev_users();
        assert_eq!(
            users[0].token,
            "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
        );
        assert_eq!(
            users[1].token,
            "eyJVc2VySUQiOiJ0ZXN0VXNlcjEiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9"
        );
        assert_eq!(
            users[3].token,
            "eyJVc2VySUQiOiJ0ZXN0VXNlcjMiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9"
        );
    }
}
