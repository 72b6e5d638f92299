//! Identifiers: `msg_…` message ids and `sig_…` signing keys.

use rand::Rng;

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A message id. UUIDv7 underneath, so ids created close in time sit close
/// together in the store's primary-key index.
pub fn message_id() -> String {
    prefixed("msg_", uuid::Uuid::now_v7())
}

/// `prefix` and the id in base58, written into one string.
pub(crate) fn prefixed(prefix: &str, id: uuid::Uuid) -> String {
    let mut out = String::with_capacity(prefix.len() + MAX_DIGITS);
    out.push_str(prefix);
    base58_onto(id.as_bytes(), &mut out);
    out
}

/// Base58 digits of 16 bytes: at most 22 (58^22 > 2^128), and one `1` per
/// leading zero byte on top, 16 for all zeros.
const MAX_DIGITS: usize = 24;

/// 58^10, the largest power of 58 below 2^64.
const CHUNK: u128 = 430_804_206_899_405_824;

/// 16 bytes in base58, as `bs58` writes them (the tests compare the two),
/// appended to `out`. `bs58` divides the whole number by 58 once per digit,
/// byte by byte; a 16-byte number fits a `u128`, so this takes ten digits
/// per `u128` division and the rest in `u64`: about a tenth of `bs58`'s
/// instructions, for every message id and every signature's JWT id (issue
/// 17: `bs58` was 1.4% of the instructions of a delivered message).
fn base58_onto(bytes: &[u8; 16], out: &mut String) {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    let mut rest = u128::from_be_bytes(*bytes);
    let mut digits = [0u8; MAX_DIGITS];
    let mut n = 0;
    while rest > 0 {
        let mut chunk = (rest % CHUNK) as u64;
        rest /= CHUNK;
        // A chunk below the top one has all ten digits, zeros included.
        for _ in 0..10 {
            if rest == 0 && chunk == 0 {
                break;
            }
            digits[n] = BASE58[(chunk % 58) as usize];
            chunk /= 58;
            n += 1;
        }
    }
    out.extend(std::iter::repeat_n('1', zeros));
    out.extend(digits[..n].iter().rev().map(|d| *d as char));
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
    }

    fn ours(bytes: [u8; 16]) -> String {
        let mut out = String::new();
        base58_onto(&bytes, &mut out);
        out
    }

    #[test]
    fn base58_writes_what_bs58_writes_at_the_edges() {
        let mut cases = vec![[0u8; 16], [0xff; 16], *uuid::Uuid::now_v7().as_bytes()];
        for i in 0..16 {
            let mut one = [0u8; 16];
            one[i] = 1;
            cases.push(one);
            let mut tail = [0xffu8; 16];
            tail[..i].fill(0);
            cases.push(tail);
        }
        // Around powers of 58, where a digit or a chunk boundary turns over.
        for p in [1u32, 9, 10, 11, 20, 21] {
            let power = 58u128.pow(p);
            for v in [power - 1, power, power + 1] {
                cases.push(v.to_be_bytes());
            }
        }
        for bytes in cases {
            assert_eq!(ours(bytes), bs58::encode(bytes).into_string(), "{bytes:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn base58_writes_what_bs58_writes(bytes: [u8; 16], zeros in 0usize..16) {
            let mut bytes = bytes;
            bytes[..zeros].fill(0);
            proptest::prop_assert_eq!(ours(bytes), bs58::encode(bytes).into_string());
        }
    }
}
