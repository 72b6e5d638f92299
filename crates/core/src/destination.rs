//! Where a publish goes: a URL, or the name of a URL group.
//!
//! The SDKs concatenate the destination raw into the path
//! (`/v2/publish/https://host/x`) and its query string arrives as the
//! request's own query, so both are reassembled here.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Url(String),
    UrlGroup(String),
}

/// A destination and the QStash settings that came in the query string
/// (`?upstash-retries=3`), which webhooks use in place of headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDestination {
    pub destination: Destination,
    pub query_settings: Vec<(String, String)>,
    /// A URL destination as its validation parsed it, with its text, so
    /// that the destination policy need not parse it again
    /// (`PublishRequest::parsed_url`).
    pub url: Option<(String, url::Url)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DestinationError {
    #[error("invalid destination {0:?}: must be an http:// or https:// URL with a host, or a URL group name")]
    Invalid(String),
    #[error("destination {0:?} is not supported by this server")]
    Unsupported(String),
    #[error("invalid URL group name {0:?}: use only letters, digits, '-', '_' and '.'")]
    BadGroupName(String),
}

impl ParsedDestination {
    /// `raw` is the path after the route prefix, undecoded; `query` the
    /// request's raw query string.
    pub fn parse(raw: &str, query: Option<&str>) -> Result<Self, DestinationError> {
        let (kept_query, query_settings) = split_query(query.unwrap_or(""));
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(DestinationError::Invalid(raw.into()));
        }
        let (destination, url) = match scheme_of(raw) {
            Some(scheme) => {
                // One slash is a proxy's merge of two; three leave no host.
                let after = &raw[scheme.len() + 1..];
                let rest = after
                    .strip_prefix("//")
                    .or_else(|| after.strip_prefix('/'))
                    .filter(|rest| !rest.starts_with('/'))
                    .ok_or_else(|| DestinationError::Invalid(raw.into()))?;
                let mut url = format!("{scheme}://{}", decode_brackets(rest));
                if !kept_query.is_empty() {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str(&kept_query);
                }
                let parsed = parse_url(&url)?;
                (Destination::Url(url.clone()), Some((url, parsed)))
            }
            None if raw.contains("://") => return Err(DestinationError::Invalid(raw.into())),
            None if raw == "api/llm" || raw.starts_with("api/") => {
                return Err(DestinationError::Unsupported(raw.into()))
            }
            None => (
                Destination::UrlGroup(validate_group_name(raw)?.into()),
                None,
            ),
        };
        Ok(Self {
            destination,
            query_settings,
            url,
        })
    }
}

/// Checks that `url` is an absolute http(s) URL with a host and a port
/// other than 0. The URL parser reads `http:///x` as host `x`, so the text
/// after `://` is checked first.
pub fn validate_url(url: &str) -> Result<(), DestinationError> {
    parse_url(url).map(drop)
}

/// [`validate_url`], answering the parsed URL.
pub fn parse_url(url: &str) -> Result<url::Url, DestinationError> {
    let invalid = || DestinationError::Invalid(url.into());
    let after = scheme_of(url)
        .and_then(|scheme| url.get(scheme.len()..))
        .and_then(|rest| rest.strip_prefix("://"))
        .ok_or_else(invalid)?;
    if after.is_empty() || after.starts_with(['/', '?', '#', '@', ':']) {
        return Err(invalid());
    }
    match url::Url::parse(url) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.port() != Some(0) =>
        {
            Ok(u)
        }
        _ => Err(invalid()),
    }
}

pub fn validate_group_name(name: &str) -> Result<&str, DestinationError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then_some(name)
        .ok_or_else(|| DestinationError::BadGroupName(name.into()))
}

/// Some clients percent-encode `[` and `]` in the request path, which
/// turns an IPv6 host (`[::1]:8080`) into text the URL parser refuses.
/// Only the authority (up to the first `/`, `?` or `#`) is decoded.
fn decode_brackets(rest: &str) -> std::borrow::Cow<'_, str> {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // Nearly every destination has nothing to decode: no copies then.
    if !authority.contains('%') {
        return rest.into();
    }
    let decoded = authority
        .replace("%5B", "[")
        .replace("%5b", "[")
        .replace("%5D", "]")
        .replace("%5d", "]");
    format!("{decoded}{tail}").into()
}

/// `http` or `https` if `raw` starts with it and a colon; a proxy may have
/// merged `https://` into `https:/`, which is repaired by the caller.
fn scheme_of(raw: &str) -> Option<&'static str> {
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    if lower.starts_with("https:/") {
        Some("https")
    } else if lower.starts_with("http:/") {
        Some("http")
    } else {
        None
    }
}

/// Splits the query into what belongs to the destination and the QStash
/// settings: `qstash_token` is dropped, `upstash-*` keys become settings.
fn split_query(query: &str) -> (String, Vec<(String, String)>) {
    let mut kept = Vec::new();
    let mut settings = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split('=').next().unwrap_or("");
        if key == "qstash_token" {
            continue;
        }
        if key.starts_with("upstash-") {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = url::form_urlencoded::parse(format!("v={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            settings.push((k.to_string(), v));
        } else {
            kept.push(pair);
        }
    }
    (kept.join("&"), settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str, q: Option<&str>) -> String {
        match ParsedDestination::parse(raw, q).unwrap().destination {
            Destination::Url(u) => u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keeps_path_and_reattaches_query() {
        assert_eq!(
            url("https://example.com/123/", Some("asdasd=ooo")),
            "https://example.com/123/?asdasd=ooo"
        );
        assert_eq!(url("http://127.0.0.1:9/x", None), "http://127.0.0.1:9/x");
    }

    #[test]
    fn a_url_destination_keeps_its_parse_a_group_has_none() {
        let p = ParsedDestination::parse("https://E.com:8443/h", Some("a=1")).unwrap();
        let (text, parsed) = p.url.expect("parsed");
        assert_eq!(text, "https://E.com:8443/h?a=1");
        assert_eq!(parsed.as_str(), "https://e.com:8443/h?a=1");
        assert_eq!(
            ParsedDestination::parse("my-group", None).unwrap().url,
            None
        );
    }

    #[test]
    fn strips_token_and_collects_settings() {
        let p = ParsedDestination::parse(
            "https://e.com/h",
            Some("a=1&qstash_token=t&upstash-retries=3&upstash-delay=10s"),
        )
        .unwrap();
        assert_eq!(
            p.destination,
            Destination::Url("https://e.com/h?a=1".into())
        );
        assert_eq!(
            p.query_settings,
            vec![
                ("upstash-retries".into(), "3".into()),
                ("upstash-delay".into(), "10s".into())
            ]
        );
    }

    #[test]
    fn urls_need_a_host_and_a_real_port() {
        for bad in [
            "http:///x",
            "https:///x",
            "http://:8080/x",
            "http://h:0/",
            "http://@/x",
            "ftp://h/x",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
        for good in ["http://h/x", "https://h:1/x", "http://[::1]:8080/x"] {
            assert_eq!(validate_url(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn ipv6_hosts_work_raw_or_percent_encoded() {
        assert_eq!(url("http://[::1]:8080/x", None), "http://[::1]:8080/x");
        assert_eq!(url("http://%5B::1%5D:8080/x", None), "http://[::1]:8080/x");
        assert_eq!(url("http://h/%5Bkeep%5D", None), "http://h/%5Bkeep%5D");
    }

    #[test]
    fn repairs_merged_slashes() {
        assert_eq!(url("https:/example.com/x", None), "https://example.com/x");
    }

    #[test]
    fn group_names_and_bad_destinations() {
        assert_eq!(
            ParsedDestination::parse("my-group_1.a", None)
                .unwrap()
                .destination,
            Destination::UrlGroup("my-group_1.a".into())
        );
        for bad in [
            "ftp://x.com",
            "http://",
            "http:///path",
            "http://x.com:0/a",
            "http://:80/a",
            "http://[::1]:0/",
            "https:example.com",
            "bad group",
            "a/b",
            "",
        ] {
            assert!(
                ParsedDestination::parse(bad, None).is_err(),
                "{bad} should be rejected"
            );
        }
        assert!(matches!(
            ParsedDestination::parse("api/llm", None),
            Err(DestinationError::Unsupported(_))
        ));
    }
}
