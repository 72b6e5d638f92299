//! Turns the `Upstash-*` headers of a publish (or enqueue, batch item,
//! schedule) into validated message settings. Every rejection names the
//! header at fault, and nothing is stored unless all headers are valid.

use crate::clock::Millis;
use crate::dedup;
use crate::destination::validate_url;
use crate::duration::{parse_duration, parse_seconds_or_duration};
use crate::flow_control::FlowControl;
use crate::headers::{
    has_control_breaks, insert, is_hop_by_hop, is_valid_name, strip_prefix_ci, HeaderMap,
};
use crate::message::{MessageSpec, DEFAULT_RETRIES, MAX_RETRIES};
use crate::redact::Redaction;
use crate::retry_delay::RetryDelayExpr;

pub const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {header} header: {reason}")]
pub struct HeaderError {
    pub header: &'static str,
    pub reason: String,
}

fn bad(header: &'static str, reason: impl ToString) -> HeaderError {
    HeaderError {
        header,
        reason: reason.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dedup {
    Id(String),
    Content,
}

/// The operator's maxima for `Upstash-Timeout` and `Upstash-Delay`
/// (`--max-timeout`, `--max-delay`): a slow destination holds a delivery
/// slot for the whole timeout, and a far delay keeps a row for as long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_timeout: std::time::Duration,
    pub max_delay: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_timeout: crate::duration::MAX_DURATION,
            max_delay: crate::duration::MAX_DURATION,
        }
    }
}

/// The settings of a publish, before they are applied to each destination.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishOptions {
    /// The message settings; `url`, `topic_name` and `endpoint_name` are
    /// filled in per destination.
    pub spec: MessageSpec,
    /// Absolute due time of the first attempt, if delayed.
    pub not_before: Option<Millis>,
    pub dedup: Option<Dedup>,
    /// `Upstash-Queue-Name`, used by schedules.
    pub queue_name: Option<String>,
    /// `Upstash-Cron` and `Upstash-Schedule-Id`, used by schedules.
    pub cron: Option<String>,
    pub schedule_id: Option<String>,
    /// `Upstash-Delay` as given, for schedules (each run is delayed by it).
    pub delay_secs: Option<u64>,
    /// `Upstash-Header-Forward: true`: the request's own headers are
    /// forwarded as they are (webhooks that cannot add a prefix).
    pub header_forward: bool,
}

impl PublishOptions {
    /// Parses request headers, given as (name, value) pairs in any case.
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: Millis,
    ) -> Result<Self, HeaderError> {
        let mut o = PublishOptions::default();
        o.spec.method = "POST".into();
        o.spec.max_retries = DEFAULT_RETRIES;
        let mut delay = None;
        let mut not_before = None;
        let mut fc_key = None;
        let mut fc_value = None;
        let mut content_dedup = false;
        let mut workflow = crate::workflow::WorkflowTag::default();
        let mut hop_by_hop = None;
        for (name, value) in headers {
            if has_control_breaks(name) || has_control_breaks(value) {
                return Err(bad(
                    "Upstash-*",
                    format!("header {name:?} holds a CR, LF or NUL character"),
                ));
            }
            let lower = name.to_ascii_lowercase();
            let value = value.trim();
            if lower == "content-type" {
                insert(&mut o.spec.header, "Content-Type", value);
                continue;
            }
            let Some(setting) = lower.strip_prefix("upstash-") else {
                continue;
            };
            if setting.ends_with("forward-") {
                return Err(bad(
                    "Upstash-*Forward-*",
                    format!("{name} names no header to forward"),
                ));
            }
            if let Some(fwd) = strip_prefix_ci(name, "Upstash-Forward-") {
                // The workflow SDKs forward the headers of the request
                // they received, connection headers included: on a
                // workflow message those are dropped, not refused.
                if is_valid_name(fwd) && is_hop_by_hop(fwd) {
                    hop_by_hop.get_or_insert(check_forwarded(name, fwd).unwrap_err());
                    continue;
                }
                check_forwarded(name, fwd)?;
                insert(&mut o.spec.header, fwd, value);
                continue;
            }
            if setting.starts_with("callback-") {
                insert(&mut o.spec.callback_header, name, value);
                continue;
            }
            if setting.starts_with("failure-callback-") {
                insert(&mut o.spec.failure_callback_header, name, value);
                continue;
            }
            match setting {
                "method" => o.spec.method = parse_method(value)?,
                "delay" => {
                    delay = Some(parse_duration(value).map_err(|e| bad("Upstash-Delay", e))?)
                }
                "not-before" => not_before = Some(parse_not_before(value)?),
                "retries" => o.spec.max_retries = parse_retries(value)?,
                "retry-delay" => {
                    let expr =
                        RetryDelayExpr::parse(value).map_err(|e| bad("Upstash-Retry-Delay", e))?;
                    o.spec.retry_delay = Some(expr.as_str().to_string());
                }
                "timeout" => o.spec.timeout_ms = Some(parse_timeout(value)?),
                "callback" => {
                    o.spec.callback = Some(parse_callback_url("Upstash-Callback", value)?)
                }
                "failure-callback" => {
                    o.spec.failure_callback =
                        Some(parse_callback_url("Upstash-Failure-Callback", value)?)
                }
                "label" => o.spec.labels = parse_labels(value),
                "deduplication-id" if !value.is_empty() => o.dedup = Some(Dedup::Id(value.into())),
                "content-based-deduplication" => {
                    content_dedup = parse_bool("Upstash-Content-Based-Deduplication", value)?
                }
                "header-forward" => o.header_forward = parse_bool("Upstash-Header-Forward", value)?,
                "redact-fields" => {
                    o.spec.redact =
                        Redaction::parse(value).map_err(|e| bad("Upstash-Redact-Fields", e))?
                }
                "flow-control-key" => fc_key = Some(value.to_string()),
                "flow-control-value" => fc_value = Some(value.to_string()),
                "queue-name" if !value.is_empty() => o.queue_name = Some(value.into()),
                "cron" => o.cron = Some(value.into()),
                "schedule-id" if !value.is_empty() => o.schedule_id = Some(value.into()),
                // Workflow settings mark the message as part of a run;
                // telemetry and unknown settings are neither stored nor
                // forwarded.
                _ => {
                    crate::workflow::read_setting(&mut workflow, setting, value);
                }
            }
        }
        if !workflow.run_id.is_empty() {
            o.spec.workflow = Some(workflow);
        } else if let Some(e) = hop_by_hop {
            return Err(e);
        }
        if o.dedup.is_none() && content_dedup {
            o.dedup = Some(Dedup::Content);
        }
        o.delay_secs = delay.map(|d| d.as_secs());
        // An absolute time wins over a relative delay.
        let delayed = match delay {
            Some(d) => Some(
                i64::try_from(d.as_millis())
                    .ok()
                    .and_then(|ms| now.checked_add(ms))
                    .ok_or_else(|| bad("Upstash-Delay", "the delay is too large"))?,
            ),
            None => None,
        };
        o.not_before = not_before.or(delayed);
        o.spec.flow_control = match (fc_key, fc_value) {
            (Some(key), value) => Some(
                FlowControl::parse(&key, value.as_deref().unwrap_or(""))
                    .map_err(|e| bad("Upstash-Flow-Control-Value", e))?,
            ),
            (None, Some(_)) => {
                return Err(bad(
                    "Upstash-Flow-Control-Value",
                    "it needs an Upstash-Flow-Control-Key",
                ))
            }
            (None, None) => None,
        };
        crate::callback::validate(&o.spec, now)?;
        Ok(o)
    }

    /// With `Upstash-Header-Forward: true`, adds the request's own headers
    /// to the forwarded ones (an explicit `Upstash-Forward-*` wins). Never
    /// forwarded: `Authorization` (the QStash token), `Upstash-*`,
    /// `Content-Type` (already kept), hop-by-hop headers, and anything that
    /// is not a clean header.
    pub fn forward_incoming<'a>(&mut self, headers: impl IntoIterator<Item = (&'a str, &'a str)>) {
        if !self.header_forward {
            return;
        }
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            let skip = lower == "authorization"
                || lower == "content-type"
                || lower.starts_with("upstash-")
                || is_hop_by_hop(name)
                || !is_valid_name(name)
                || has_control_breaks(value);
            let canonical = crate::headers::canonical_name(name);
            if !skip && !self.spec.header.contains_key(&canonical) {
                insert(&mut self.spec.header, name, value.trim());
            }
        }
    }

    /// Refuses a timeout or delay past the operator's maxima (the delay
    /// counted from `now`, whether given as a delay or as a time).
    pub fn check_limits(&self, limits: &Limits, now: Millis) -> Result<(), HeaderError> {
        if let Some(ms) = self.spec.timeout_ms {
            if u128::from(ms) > limits.max_timeout.as_millis() {
                return Err(bad(
                    "Upstash-Timeout",
                    format!(
                        "{ms} ms is more than the server's maximum of {}",
                        human(limits.max_timeout)
                    ),
                ));
            }
        }
        let delay_ms = match (self.not_before, self.delay_secs) {
            (Some(at), _) => at.saturating_sub(now).max(0) as u128,
            (None, Some(secs)) => u128::from(secs) * 1000,
            (None, None) => 0,
        };
        let scheduled_delay = self.delay_secs.map_or(0, |s| u128::from(s) * 1000);
        if delay_ms.max(scheduled_delay) > limits.max_delay.as_millis() {
            let header = if self.not_before.is_some() && self.delay_secs.is_none() {
                "Upstash-Not-Before"
            } else {
                "Upstash-Delay"
            };
            return Err(bad(
                header,
                format!(
                    "the delay is more than the server's maximum of {}",
                    human(limits.max_delay)
                ),
            ));
        }
        Ok(())
    }

    /// The deduplication key of a message to `url` with `body`, if any.
    pub fn dedup_key(&self, url: &str, body: &[u8], header: &HeaderMap) -> Option<String> {
        match &self.dedup {
            Some(Dedup::Id(id)) => Some(dedup::id_key(id, url)),
            Some(Dedup::Content) => Some(dedup::content_key(url, body, header)),
            None => None,
        }
    }
}

/// A forwarded header must be a valid field name and must not be one that
/// frames the request or the connection.
fn check_forwarded(name: &str, forwarded: &str) -> Result<(), HeaderError> {
    if !is_valid_name(forwarded) {
        return Err(bad(
            "Upstash-Forward-*",
            format!("{name:?} does not name a valid HTTP header"),
        ));
    }
    if is_hop_by_hop(forwarded) {
        return Err(bad(
            "Upstash-Forward-*",
            format!("{name:?}: {forwarded} belongs to the connection and is never forwarded"),
        ));
    }
    Ok(())
}

fn human(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn parse_method(value: &str) -> Result<String, HeaderError> {
    let upper = value.to_ascii_uppercase();
    if METHODS.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err(bad(
            "Upstash-Method",
            format!("{value:?} is not one of {}", METHODS.join(", ")),
        ))
    }
}

fn parse_not_before(value: &str) -> Result<Millis, HeaderError> {
    match value.parse::<i64>() {
        Ok(secs) if (0..=253_402_300_799).contains(&secs) => Ok(secs * 1000),
        _ => Err(bad(
            "Upstash-Not-Before",
            format!("{value:?} is not a unix timestamp in seconds"),
        )),
    }
}

fn parse_retries(value: &str) -> Result<u32, HeaderError> {
    match value.parse::<u32>() {
        Ok(n) if n <= MAX_RETRIES => Ok(n),
        _ => Err(bad(
            "Upstash-Retries",
            format!("{value:?} is not an integer from 0 to {MAX_RETRIES}"),
        )),
    }
}

fn parse_timeout(value: &str) -> Result<u64, HeaderError> {
    let d = parse_seconds_or_duration(value).map_err(|e| bad("Upstash-Timeout", e))?;
    if d.is_zero() {
        return Err(bad("Upstash-Timeout", "must be greater than zero"));
    }
    u64::try_from(d.as_millis()).map_err(|_| bad("Upstash-Timeout", "the timeout is too large"))
}

fn parse_callback_url(header: &'static str, value: &str) -> Result<String, HeaderError> {
    validate_url(value).map_err(|e| bad(header, e))?;
    Ok(value.to_string())
}

fn parse_labels(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn parse_bool(header: &'static str, value: &str) -> Result<bool, HeaderError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(bad(header, format!("{value:?} is not true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(headers: &[(&str, &str)]) -> Result<PublishOptions, HeaderError> {
        PublishOptions::from_headers(headers.iter().copied(), 1_000_000)
    }

    #[test]
    fn keeps_only_forwarded_headers_and_content_type() {
        let o = parse(&[
            ("content-type", "application/json"),
            ("upstash-forward-test-header", "a, b"),
            ("Upstash-Forward-X-API-KEY", "k"),
            ("authorization", "Bearer token"),
            ("upstash-telemetry-sdk", "js"),
            ("upstash-method", "put"),
        ])
        .unwrap();
        let names: Vec<_> = o.spec.header.keys().cloned().collect();
        assert_eq!(names, vec!["Content-Type", "Test-Header", "X-Api-Key"]);
        assert_eq!(o.spec.header["Test-Header"], vec!["a, b"]);
        assert_eq!(o.spec.method, "PUT");
    }

    #[test]
    fn a_forward_prefix_without_a_name_is_refused() {
        for name in [
            "Upstash-Forward-",
            "upstash-callback-forward-",
            "Upstash-Failure-Callback-Forward-",
        ] {
            let e = parse(&[(name, "x")]).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        }
    }

    #[test]
    fn a_workflow_message_drops_forwarded_connection_headers() {
        let o = parse(&[
            ("Upstash-Forward-Content-Length", "12"),
            ("Upstash-Forward-X-User", "u"),
            ("Upstash-Workflow-RunId", "wfr_1"),
        ])
        .unwrap();
        assert!(!o.spec.header.contains_key("Content-Length"));
        assert_eq!(o.spec.header["X-User"], vec!["u".to_string()]);
        assert_eq!(o.spec.workflow.unwrap().run_id, "wfr_1");
    }

    #[test]
    fn hop_by_hop_and_broken_headers_are_refused() {
        for name in [
            "Upstash-Forward-Host",
            "upstash-forward-content-length",
            "Upstash-Forward-Transfer-Encoding",
            "Upstash-Forward-Connection",
            "Upstash-Callback-Forward-Host",
            "Upstash-Forward-Bad Name",
        ] {
            let e = parse(&[(name, "x"), ("Upstash-Callback", "http://cb/x")])
                .unwrap_err()
                .to_string();
            let forwarded = name.rsplit("orward-").next().unwrap();
            assert!(e.contains(forwarded) && e.contains("Upstash-"), "{e}");
        }
        for (name, value) in [
            ("Upstash-Forward-X", "a\r\nInjected: 1"),
            ("Upstash-Forward-X", "a\0"),
            ("Upstash-Delay", "1s\n"),
            ("Upstash-Forward-X\r\nY", "a"),
        ] {
            let e = parse(&[(name, value)]).unwrap_err();
            assert!(e.to_string().contains("CR, LF or NUL"), "{e}");
        }
    }

    #[test]
    fn overflowing_and_over_the_limit_durations_are_refused() {
        for (h, v) in [
            ("Upstash-Delay", "200000000000d"),
            ("Upstash-Timeout", "213503982335d"),
            ("Upstash-Timeout", "99999999999999999999"),
        ] {
            let e = parse(&[(h, v)]).unwrap_err();
            assert!(e.to_string().contains(h), "{h}={v}: {e}");
        }
        let limits = Limits {
            max_timeout: std::time::Duration::from_secs(3600),
            max_delay: std::time::Duration::from_secs(86_400),
        };
        let check = |h: &[(&str, &str)]| parse(h).unwrap().check_limits(&limits, 1_000_000);
        assert!(check(&[("Upstash-Timeout", "1h")]).is_ok());
        assert!(check(&[("Upstash-Delay", "1d")]).is_ok());
        let e = check(&[("Upstash-Timeout", "1000d")]).unwrap_err();
        assert_eq!(e.header, "Upstash-Timeout");
        let e = check(&[("Upstash-Delay", "2d")]).unwrap_err();
        assert_eq!(e.header, "Upstash-Delay");
        let e = check(&[("Upstash-Not-Before", "99999999999")]).unwrap_err();
        assert_eq!(e.header, "Upstash-Not-Before");
    }

    #[test]
    fn header_forward_adds_the_request_headers_but_never_the_token() {
        let mut o = parse(&[
            ("Upstash-Header-Forward", "true"),
            ("Upstash-Forward-X-Sig", "explicit"),
        ])
        .unwrap();
        o.forward_incoming([
            ("x-sig", "incoming"),
            ("stripe-signature", "t=1"),
            ("authorization", "Bearer qstash-token"),
            ("host", "qstash.local"),
            ("content-length", "5"),
            ("upstash-retries", "3"),
        ]);
        let names: Vec<_> = o.spec.header.keys().cloned().collect();
        assert_eq!(names, vec!["Stripe-Signature", "X-Sig"]);
        assert_eq!(o.spec.header["X-Sig"], vec!["explicit"]);
        let mut off = parse(&[]).unwrap();
        off.forward_incoming([("stripe-signature", "t=1")]);
        assert!(off.spec.header.is_empty());
        assert!(parse(&[("Upstash-Header-Forward", "maybe")]).is_err());
    }

    #[test]
    fn not_before_wins_over_delay() {
        assert_eq!(
            parse(&[("Upstash-Delay", "10s")]).unwrap().not_before,
            Some(1_010_000)
        );
        let o = parse(&[("Upstash-Delay", "10s"), ("Upstash-Not-Before", "5000")]).unwrap();
        assert_eq!(o.not_before, Some(5_000_000));
    }

    #[test]
    fn defaults() {
        let o = parse(&[]).unwrap();
        assert_eq!(
            (o.spec.method.as_str(), o.spec.max_retries, o.not_before),
            ("POST", 3, None)
        );
    }

    #[test]
    fn settings_are_parsed() {
        let o = parse(&[
            ("Upstash-Retries", "5"),
            ("Upstash-Retry-Delay", "pow(2, retried) * 100"),
            ("Upstash-Timeout", "2s"),
            ("Upstash-Label", "a,b"),
            ("Upstash-Content-Based-Deduplication", "True"),
            ("Upstash-Flow-Control-Key", "k"),
            ("Upstash-Flow-Control-Value", "parallelism=2"),
            ("Upstash-Callback", "http://cb/x"),
            ("Upstash-Callback-Retries", "1"),
        ])
        .unwrap();
        assert_eq!(o.spec.max_retries, 5);
        assert_eq!(o.spec.timeout_ms, Some(2000));
        assert_eq!(o.spec.labels, vec!["a", "b"]);
        assert_eq!(o.dedup, Some(Dedup::Content));
        assert_eq!(o.spec.flow_control.unwrap().parallelism, Some(2));
        assert_eq!(
            o.spec.callback_header["Upstash-Callback-Retries"],
            vec!["1"]
        );
    }

    #[test]
    fn every_bad_value_names_its_header() {
        let cases = [
            ("Upstash-Delay", "soon"),
            ("Upstash-Not-Before", "tomorrow"),
            ("Upstash-Retries", "-1"),
            ("Upstash-Retries", "1000"),
            ("Upstash-Method", "FETCH"),
            ("Upstash-Timeout", "0s"),
            ("Upstash-Retry-Delay", "retried +"),
            ("Upstash-Callback", "ftp://x"),
            ("Upstash-Content-Based-Deduplication", "yes"),
            ("Upstash-Flow-Control-Value", "rate=0"),
        ];
        for (header, value) in cases {
            let mut headers = vec![(header, value)];
            if header == "Upstash-Flow-Control-Value" {
                headers.push(("Upstash-Flow-Control-Key", "k"));
            }
            let err = parse(&headers).unwrap_err();
            assert!(err.to_string().contains(header), "{header}={value}: {err}");
        }
    }
}
