//! Deduplication keys: one message per key within the dedup window.

use aws_lc_rs::digest::{Context, SHA256};

use crate::headers::HeaderMap;

/// How long a deduplication id or content hash is remembered.
pub const WINDOW_MS: i64 = 10 * 60 * 1000;

/// Key for `Upstash-Deduplication-Id`, scoped to the destination so a
/// fan-out to a URL group yields one message per endpoint.
pub fn id_key(dedup_id: &str, url: &str) -> String {
    format!("id:{dedup_id}\n{url}")
}

/// Key for content-based deduplication: destination, body and the headers
/// that reach the destination (Content-Type and forwarded ones).
pub fn content_key(url: &str, body: &[u8], header: &HeaderMap) -> String {
    let mut h = Context::new(&SHA256);
    h.update(url.as_bytes());
    h.update(&[0]);
    h.update(&(body.len() as u64).to_be_bytes());
    h.update(body);
    for (name, values) in header {
        h.update(name.as_bytes());
        for v in values {
            h.update(&[0]);
            h.update(v.as_bytes());
        }
        h.update(&[1]);
    }
    format!("content:{}", hex(h.finish().as_ref()))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_key_depends_on_every_part() {
        let mut h = HeaderMap::new();
        h.insert("Content-Type".into(), vec!["text/plain".into()]);
        let base = content_key("http://a/x", b"body", &h);
        assert_eq!(base, content_key("http://a/x", b"body", &h));
        assert_ne!(base, content_key("http://a/y", b"body", &h));
        assert_ne!(base, content_key("http://a/x", b"body2", &h));
        assert_ne!(base, content_key("http://a/x", b"body", &HeaderMap::new()));
    }

    /// Keys are stored: an upgrade must derive the same key for the same
    /// publish, or deduplication breaks across it inside the window. The
    /// hex is SHA-256 of the same bytes computed elsewhere (Python's
    /// hashlib).
    #[test]
    fn content_key_is_stable_across_versions() {
        let mut h = HeaderMap::new();
        h.insert("Content-Type".into(), vec!["text/plain".into()]);
        h.insert("X-A".into(), vec!["1".into(), "2".into()]);
        assert_eq!(
            content_key("http://a/x", b"body", &h),
            "content:f1f0f396eb3e5fa8f4509c78441d39f5c3935a7d3104745471bba9f71ef22e6f"
        );
    }
}
