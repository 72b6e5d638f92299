//! `Upstash-Redact-Fields`: parts of a message that read paths must hide.

use serde::{Deserialize, Serialize};

use aws_lc_rs::digest::{digest, SHA256};

use crate::dedup::hex;
use crate::headers::{canonical_name, HeaderMap};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    pub body: bool,
    pub all_headers: bool,
    /// Canonical names of single headers to hide.
    pub headers: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid Upstash-Redact-Fields entry {0:?}: expected body, header or header[Name]")]
pub struct RedactError(pub String);

impl Redaction {
    pub fn parse(value: &str) -> Result<Self, RedactError> {
        let mut r = Redaction::default();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let lower = item.to_ascii_lowercase();
            if lower == "body" {
                r.body = true;
            } else if lower == "header" || lower == "headers" {
                r.all_headers = true;
            } else if let Some(name) = ["header[", "headers["]
                .iter()
                .find_map(|p| lower.starts_with(p).then(|| &item[p.len()..]))
                .and_then(|rest| rest.strip_suffix(']'))
                .filter(|n| !n.trim().is_empty())
            {
                r.headers.push(canonical_name(name.trim()));
            } else {
                return Err(RedactError(item.into()));
            }
        }
        Ok(r)
    }

    pub fn is_empty(&self) -> bool {
        !self.body && !self.all_headers && self.headers.is_empty()
    }

    pub fn hides_header(&self, canonical: &str) -> bool {
        self.all_headers || self.headers.iter().any(|h| h == canonical)
    }

    /// The header map as read paths may show it.
    pub fn header_map(&self, header: &HeaderMap) -> HeaderMap {
        header
            .iter()
            .map(|(name, values)| {
                let shown = if self.hides_header(name) {
                    values.iter().map(|v| redacted(v.as_bytes())).collect()
                } else {
                    values.clone()
                };
                (name.clone(), shown)
            })
            .collect()
    }

    /// The body as read paths may show it: the original bytes, or the
    /// redaction marker.
    pub fn body<'a>(&self, body: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        if self.body {
            std::borrow::Cow::Owned(redacted(body).into_bytes())
        } else {
            std::borrow::Cow::Borrowed(body)
        }
    }
}

/// `REDACTED:<sha256 hex>`: shows that a value was there, and lets a user
/// who knows the value check it, without revealing it.
pub fn redacted(value: &[u8]) -> String {
    format!("REDACTED:{}", hex(digest(&SHA256, value).as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_forms() {
        let r = Redaction::parse("body, header[authorization], headers[X-Key]").unwrap();
        assert!(r.body && !r.all_headers);
        assert_eq!(r.headers, vec!["Authorization", "X-Key"]);
        assert!(Redaction::parse("headers").unwrap().all_headers);
        assert!(Redaction::parse("bodies").is_err());
        assert!(Redaction::parse("header[]").is_err());
    }

    #[test]
    fn hides_only_what_was_asked() {
        let r = Redaction::parse("body, header[Authorization]").unwrap();
        let mut h = HeaderMap::new();
        h.insert("Authorization".into(), vec!["secret".into()]);
        h.insert("X-Other".into(), vec!["plain".into()]);
        let shown = r.header_map(&h);
        // SHA-256 of "secret", as `sha256sum` shows it: a user who knows the
        // value can check it.
        assert_eq!(
            shown["Authorization"][0],
            "REDACTED:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
        assert_eq!(shown["X-Other"], vec!["plain"]);
        assert!(r.body(b"secret body").starts_with(b"REDACTED:"));
        assert_eq!(&*Redaction::default().body(b"x"), b"x");
    }
}
