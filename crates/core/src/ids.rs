//! Identifiers: `msg_…` message ids and `sig_…` signing keys.

use rand::Rng;

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A message id. UUIDv7 underneath, so ids created close in time sit close
/// together in the store's primary-key index.
pub fn message_id() -> String {
    format!(
        "msg_{}",
        bs58::encode(uuid::Uuid::now_v7().as_bytes()).into_string()
    )
}

/// A fresh signing key in QStash's format: `sig_` and 28 base58 characters.
pub fn signing_key() -> String {
    let mut rng = rand::rng();
    let tail: String = (0..28)
        .map(|_| BASE58[rng.random_range(0..BASE58.len())] as char)
        .collect();
    format!("sig_{tail}")
}

/// A cluster node's id when none is given: `node-` and 10 base58
/// characters.
pub fn node_id() -> String {
    let mut rng = rand::rng();
    let tail: String = (0..10)
        .map(|_| BASE58[rng.random_range(0..BASE58.len())] as char)
        .collect();
    format!("node-{tail}")
}

/// A DLQ entry id, `<ms>-<n>` as QStash shows them (`1725323658779-0`).
/// Chosen before the commit, so the failure callback can carry it.
pub fn dlq_id(at_ms: i64) -> String {
    format!("{at_ms}-{}", rand::rng().random::<u32>())
}

/// The JWT id of a signature.
pub fn jwt_id() -> String {
    format!(
        "jwt_{}",
        bs58::encode(uuid::Uuid::new_v4().as_bytes()).into_string()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_prefixes_and_are_unique() {
        let (a, b) = (message_id(), message_id());
        assert!(a.starts_with("msg_") && a != b);
        let k = signing_key();
        assert!(k.starts_with("sig_") && k.len() == 32);
        assert!(jwt_id().starts_with("jwt_"));
    }
}
