//! What an attempt's result means for the message: pure rules, no IO.

use std::time::{Duration, UNIX_EPOCH};

use qstash_core::backoff::{parse_retry_hint, retry_delay, RETRY_HINT_HEADERS};
use qstash_core::clock::Millis;
use qstash_core::outcome::{AttemptResponse, OutcomeKind};
use qstash_core::retry_delay::RetryDelayExpr;
use qstash_core::Message;

/// The result of one attempt as the dispatcher saw it.
#[derive(Debug, Clone)]
pub enum Attempt {
    Answered(AttemptResponse),
    /// No answer: connection refused, DNS, timeout.
    NoAnswer(String),
}

/// Decides between delivered, retry and failed.
pub fn decide(message: &Message, attempt: &Attempt, now: Millis) -> OutcomeKind {
    let (response, error) = match attempt {
        Attempt::Answered(r) if (200..300).contains(&r.status) => {
            if non_workflow_destination(message, r) {
                let error = qstash_core::workflow::NON_WORKFLOW_DESTINATION.to_string();
                return OutcomeKind::Failed { error };
            }
            return OutcomeKind::Delivered;
        }
        Attempt::Answered(r) => (Some(r), format!("destination answered {}", r.status)),
        Attempt::NoAnswer(e) => (None, e.clone()),
    };
    if response.is_some_and(non_retryable) || message.retried >= message.spec.max_retries {
        return OutcomeKind::Failed { error };
    }
    let expr = message
        .spec
        .retry_delay
        .as_deref()
        .and_then(|e| RetryDelayExpr::parse(e).ok());
    let hint = response.and_then(|r| retry_hint(r, now));
    let delay = retry_delay(message.retried + 1, expr.as_ref(), hint);
    OutcomeKind::Retry {
        next_due: now + delay.as_millis() as Millis,
        error,
    }
}

/// A workflow trigger (`WF_DetectTrigger`) answered 2xx by something that
/// is not a workflow SDK: the run fails at once, retrying cannot help.
fn non_workflow_destination(message: &Message, r: &AttemptResponse) -> bool {
    message.spec.callback_of.is_none()
        && message.spec.workflow.as_ref().is_some_and(|t| {
            t.non_workflow_answer(header(r, qstash_core::workflow::SDK_VERSION_HEADER).is_some())
        })
}

/// A 489 with `Upstash-NonRetryable-Error: true` stops retries at once.
fn non_retryable(r: &AttemptResponse) -> bool {
    r.status == 489
        && header(r, "Upstash-NonRetryable-Error").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn retry_hint(r: &AttemptResponse, now: Millis) -> Option<Duration> {
    let now = UNIX_EPOCH + Duration::from_millis(now.max(0) as u64);
    RETRY_HINT_HEADERS
        .iter()
        .find_map(|name| header(r, name).and_then(|v| parse_retry_hint(v, now)))
}

fn header<'a>(r: &'a AttemptResponse, name: &str) -> Option<&'a str> {
    r.header
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qstash_core::{MessageSpec, MessageState};

    fn msg(retried: u32, max_retries: u32, expr: Option<&str>) -> Message {
        Message {
            id: "m".into(),
            user_id: "u".into(),
            spec: MessageSpec {
                max_retries,
                retry_delay: expr.map(String::from),
                ..Default::default()
            },
            body: bytes::Bytes::new(),
            created_at: 0,
            not_before: 0,
            due_at: 0,
            retried,
            state: MessageState::Active,
        }
    }

    fn answered(status: u16, headers: &[(&str, &str)]) -> Attempt {
        let mut r = AttemptResponse {
            status,
            ..Default::default()
        };
        for (k, v) in headers {
            r.header.insert(k.to_string(), vec![v.to_string()]);
        }
        Attempt::Answered(r)
    }

    #[test]
    fn any_2xx_is_delivered() {
        assert_eq!(
            decide(&msg(0, 3, None), &answered(204, &[]), 0),
            OutcomeKind::Delivered
        );
    }

    #[test]
    fn failure_retries_with_default_backoff_until_exhausted() {
        let retry = decide(&msg(0, 3, None), &answered(500, &[]), 1000);
        assert!(
            matches!(
                retry,
                OutcomeKind::Retry {
                    next_due: 13_182,
                    ..
                }
            ),
            "{retry:?}"
        );
        assert!(matches!(
            decide(&msg(3, 3, None), &answered(500, &[]), 0),
            OutcomeKind::Failed { .. }
        ));
        assert!(matches!(
            decide(&msg(0, 0, None), &Attempt::NoAnswer("timeout".into()), 0),
            OutcomeKind::Failed { .. }
        ));
    }

    #[test]
    fn expression_sets_the_delay() {
        let retry = decide(
            &msg(2, 3, Some("pow(2, retried) * 100")),
            &answered(500, &[]),
            0,
        );
        assert!(
            matches!(retry, OutcomeKind::Retry { next_due: 400, .. }),
            "{retry:?}"
        );
    }

    #[test]
    fn retry_after_overrides_expression() {
        let retry = decide(
            &msg(0, 3, Some("100000")),
            &answered(429, &[("Retry-After", "2")]),
            0,
        );
        assert!(
            matches!(retry, OutcomeKind::Retry { next_due: 2000, .. }),
            "{retry:?}"
        );
        let reset = decide(
            &msg(0, 3, None),
            &answered(429, &[("X-Ratelimit-Reset", "6m5s")]),
            0,
        );
        assert!(
            matches!(
                reset,
                OutcomeKind::Retry {
                    next_due: 365_000,
                    ..
                }
            ),
            "{reset:?}"
        );
    }

    #[test]
    fn a_workflow_trigger_answered_by_a_non_workflow_endpoint_fails() {
        let mut m = msg(0, 3, None);
        m.spec.workflow = Some(qstash_core::workflow::WorkflowTag {
            run_id: "wfr_1".into(),
            init: true,
            features: "LazyFetch,WF_DetectTrigger".into(),
            ..Default::default()
        });
        assert!(matches!(
            decide(&m, &answered(200, &[]), 0),
            OutcomeKind::Failed { error } if error.contains("non-workflow destination")
        ));
        let sdk = answered(200, &[("Upstash-Workflow-Sdk-Version", "1")]);
        assert_eq!(decide(&m, &sdk, 0), OutcomeKind::Delivered);
        m.spec.workflow.as_mut().unwrap().features = "LazyFetch".into();
        assert_eq!(decide(&m, &answered(200, &[]), 0), OutcomeKind::Delivered);
        m.spec.workflow.as_mut().unwrap().features = "WF_DetectTrigger".into();
        m.spec.workflow.as_mut().unwrap().init = false;
        assert_eq!(decide(&m, &answered(200, &[]), 0), OutcomeKind::Delivered);
    }

    #[test]
    fn non_retryable_489_fails_at_once() {
        let r = answered(489, &[("Upstash-Nonretryable-Error", "true")]);
        assert!(matches!(
            decide(&msg(0, 3, None), &r, 0),
            OutcomeKind::Failed { .. }
        ));
        assert!(matches!(
            decide(&msg(0, 3, None), &answered(489, &[]), 0),
            OutcomeKind::Retry { .. }
        ));
    }
}
