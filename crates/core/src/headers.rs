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
    fn strips_prefix_case_insensitively() {
        assert_eq!(
            strip_prefix_ci("upstash-forward-foo", "Upstash-Forward-"),
            Some("foo")
        );
        assert_eq!(strip_prefix_ci("Upstash-Delay", "Upstash-Forward-"), None);
        assert_eq!(strip_prefix_ci("up", "Upstash-"), None);
    }
}
