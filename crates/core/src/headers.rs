//! Header maps as QStash shows them: Go-canonical names, values kept whole.

use std::collections::BTreeMap;

/// `{ "Canonical-Name": ["value", ...] }`, the shape of `header`,
/// `responseHeader` and `callbackHeader` in every API object.
pub type HeaderMap = BTreeMap<String, Vec<String>>;

/// Go's canonical MIME header form: `x-api-key` becomes `X-Api-Key`.
pub fn canonical_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

pub fn insert(map: &mut HeaderMap, name: &str, value: &str) {
    map.entry(canonical_name(name))
        .or_default()
        .push(value.to_string());
}

/// Headers that describe one hop of a connection or the request framing.
/// Forwarding them would let a publisher rewrite the delivery itself
/// (`Content-Length: 1` cut a body, `Host` redirected a virtual host), so
/// `Upstash-Forward-*` refuses them and delivery never sends stored ones.
pub const HOP_BY_HOP: [&str; 11] = [
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Te",
    "Trailer",
    "Upgrade",
];

pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// An HTTP field name: one or more token characters (RFC 9110 §5.6.2).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// CR, LF and NUL split or end a header on the wire; no value may hold one.
pub fn has_control_breaks(text: &str) -> bool {
    text.contains(['\r', '\n', '\0'])
}

/// Case-insensitive prefix strip: returns the rest of `name` after `prefix`.
pub fn strip_prefix_ci<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalizes_like_go() {
        assert_eq!(canonical_name("test-header"), "Test-Header");
        assert_eq!(canonical_name("X-API-KEY"), "X-Api-Key");
        assert_eq!(canonical_name("content-type"), "Content-Type");
    }

    #[test]
    fn hop_by_hop_and_names() {
        assert!(is_hop_by_hop("content-length") && is_hop_by_hop("HOST"));
        assert!(!is_hop_by_hop("Authorization"));
        assert!(is_valid_name("X-Api-Key") && !is_valid_name("bad name") && !is_valid_name(""));
        assert!(
            has_control_breaks("a\r\nb") && has_control_breaks("a\0") && !has_control_breaks("a b")
        );
    }

    #[test]
    fn strips_prefix_case_insensitively() {
        assert_eq!(
            strip_prefix_ci("upstash-forward-foo", "Upstash-Forward-"),
            Some("foo")
        );
        assert_eq!(strip_prefix_ci("Upstash-Delay", "Upstash-Forward-"), None);
        assert_eq!(strip_prefix_ci("up", "Upstash-"), None);
    }
}
