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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("user {user:?}: {field} is empty")]
    Empty { user: String, field: &'static str },
    #[error("a user has an empty id")]
    EmptyId,
    #[error("user {0:?} reuses another user's token")]
    SharedToken(String),
    #[error("user id {0:?} appears twice")]
    DuplicateId(String),
}

/// Refuses users that would let anyone in or forge signatures: an empty
/// token authenticates an empty `?qstash_token=`, and an empty signing key
/// makes every `Upstash-Signature` forgeable.
pub fn validate(users: &[User]) -> Result<(), UserError> {
    let mut tokens = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    for u in users {
        if u.id.trim().is_empty() {
            return Err(UserError::EmptyId);
        }
        let empty = |field| UserError::Empty {
            user: u.id.clone(),
            field,
        };
        if u.token.trim().is_empty() {
            return Err(empty("token"));
        }
        if u.initial_keys.current.trim().is_empty() {
            return Err(empty("current_signing_key"));
        }
        if u.initial_keys.next.trim().is_empty() {
            return Err(empty("next_signing_key"));
        }
        if !ids.insert(u.id.as_str()) {
            return Err(UserError::DuplicateId(u.id.clone()));
        }
        if !tokens.insert(u.token.as_str()) {
            return Err(UserError::SharedToken(u.id.clone()));
        }
    }
    Ok(())
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
    fn empty_credentials_are_refused_naming_user_and_field() {
        let ok = User::new("a", "t", "sig_c", "sig_n");
        assert_eq!(validate(std::slice::from_ref(&ok)), Ok(()));
        let cases = [
            (User::new("a", "", "c", "n"), "token"),
            (User::new("a", "t", " ", "n"), "current_signing_key"),
            (User::new("a", "t", "c", ""), "next_signing_key"),
        ];
        for (u, field) in cases {
            let e = validate(&[u]).unwrap_err().to_string();
            assert!(e.contains("\"a\"") && e.contains(field), "{e}");
        }
        assert_eq!(
            validate(&[User::new("", "t", "c", "n")]),
            Err(UserError::EmptyId)
        );
        let twin = User::new("b", "t", "c", "n");
        assert_eq!(
            validate(&[ok, twin]),
            Err(UserError::SharedToken("b".into()))
        );
        assert!(validate(&dev_users()).is_ok());
    }

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
