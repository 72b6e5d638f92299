//! Identifiers: `msg_…` message ids and `sig_…` signing keys.

use rand::Rng;

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A message id. UUIDv7 underneath, so ids created close in time sit close
/// together in the store's primary-key index.
pub fn message_id() -> String {
    prefixed("msg_", uuid::Uuid::now_v7())
}

/// `prefix` and the id in base58, written into one string (a `format!`
/// of the two cost a second allocation and the formatting machinery).
fn prefixed(prefix: &str, id: uuid::Uuid) -> String {
    // 24: what bs58 reserves for 16 bytes before it encodes (22 or 23 used).
    let mut out = String::with_capacity(prefix.len() + 24);
    out.push_str(prefix);
    bs58::encode(id.as_bytes())
        .onto(&mut out)
        .expect("a String takes any base58 length");
    out
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
    prefixed("jwt_", uuid::Uuid::new_v4())
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
        let id = uuid::Uuid::now_v7();
        let text = prefixed("msg_", id);
        assert_eq!(
            text,
            format!("msg_{}", bs58::encode(id.as_bytes()).into_string())
        );
    }
}
