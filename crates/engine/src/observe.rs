//! The log line of each delivery attempt (target `qstash::delivery`).
//! It names the destination's host only: paths and queries can carry
//! secrets, and headers and bodies never appear.

use std::time::Duration;

use qstash_core::outcome::OutcomeKind;
use qstash_core::Message;
use tracing::Level;

use crate::outcome::Attempt;

pub fn attempt(message: &Message, attempt: &Attempt, kind: &OutcomeKind, took: Duration) {
    if !tracing::enabled!(target: "qstash::delivery", Level::INFO) {
        return;
    }
    let host = url::Url::parse(&message.spec.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let (status, error) = match attempt {
        Attempt::Answered(r) => (r.status, None),
        Attempt::NoAnswer(e) => (0, Some(mask_urls(e))),
    };
    tracing::info!(
        target: "qstash::delivery",
        message_id = %message.id,
        user = %message.user_id,
        host = %host,
        status,
        duration_ms = took.as_millis() as u64,
        retry = message.retried,
        outcome = crate::meter::outcome_label(kind),
        error = error.as_deref(),
        "delivery attempt"
    );
}

/// `text` with every URL cut to its scheme and host: an error names the
/// destination in the HTTP client's own spelling (normalised, with a
/// trailing slash, percent-encoded), not always as the message has it.
fn mask_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let scheme_start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(0, |i| i + 1);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || ")\"'>,".contains(c))
            .map_or(rest.len(), |i| at + i);
        let url = &rest[scheme_start..end];
        out.push_str(&rest[..scheme_start]);
        match url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(|h| format!("{}://{h}", u.scheme())))
        {
            Some(masked) => out.push_str(&masked),
            None => out.push_str("<url>"),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::mask_urls;

    #[test]
    fn urls_in_errors_keep_only_their_host() {
        assert_eq!(
            mask_urls(
                "error sending request for url (http://a.example:81/secret?token=x): refused"
            ),
            "error sending request for url (http://a.example): refused"
        );
        assert_eq!(
            mask_urls("https://b.example/p and ftp://c/q"),
            "https://b.example and ftp://c"
        );
        assert_eq!(mask_urls("no url here"), "no url here");
    }
}
