//! A NUL character is never part of an id, a name, a filter or a key, and
//! PostgreSQL cannot store or compare one in text (it answered 500): a
//! path or query that decodes to one is refused with a 400 before any
//! handler reads it, on both backends alike.
//!
//! Two kinds of request are left alone: paths that carry a destination URL
//! raw (publish, enqueue, schedule create), whose `%00` stays encoded in
//! the stored URL and is checked as a URL; and the query of a workflow
//! webhook, which a third party sends and which the run receives as data.

use axum::http::Uri;

use crate::auth::HOOKS_PREFIX;
use crate::ApiError;

/// Paths whose tail is a destination URL kept as written.
const RAW_PATHS: [&str; 3] = ["/v2/publish/", "/v2/enqueue/", "/v2/schedules/"];

pub fn check(uri: &Uri) -> Result<(), ApiError> {
    let path = uri.path();
    if !RAW_PATHS.iter().any(|p| path.starts_with(p)) && decodes_to_nul(path) {
        return Err(ApiError::BadRequest(format!(
            "the path {path:?} holds a NUL character (%00)"
        )));
    }
    if path.starts_with(HOOKS_PREFIX) {
        return Ok(());
    }
    let query = uri.query().unwrap_or_default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key.contains('\0') || value.contains('\0') {
            return Err(ApiError::BadRequest(format!(
                "the query parameter {:?} holds a NUL character (%00)",
                key.replace('\0', "%00")
            )));
        }
    }
    Ok(())
}

/// Whether percent-decoding yields a NUL byte (`%00`; a raw NUL cannot be
/// in a request target).
fn decodes_to_nul(path: &str) -> bool {
    path.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(uri: &str) -> bool {
        check(&uri.parse().unwrap()).is_err()
    }

    #[test]
    fn nul_in_a_path_parameter_or_a_query_value_is_refused() {
        assert!(refused("/v2/messages/a%00b"));
        assert!(refused("/v2/workflows/runs/wfr_%00"));
        assert!(refused("/v2/events?url=a%00"));
        assert!(refused("/v2/messages?scheduleId=x&scheduleId=%00"));
        assert!(refused("/v2/workflows/dlq/resume?dlqIds=%00"));
        assert!(refused("/v2/dlq?a%00=1"));
        assert!(refused("/v2/workflows/hooks/u/r%00/e"));
    }

    #[test]
    fn raw_destinations_webhook_queries_and_plain_requests_pass() {
        assert!(!refused("/v2/publish/http://127.0.0.1:1/a%00"));
        assert!(!refused("/v2/schedules/http://127.0.0.1:1/a%00"));
        assert!(!refused("/v2/workflows/hooks/u/r/e?data=%00"));
        assert!(!refused("/v2/events?url=a%2500&count=3"));
        assert!(!refused("/v2/messages/msg_1"));
    }
}
