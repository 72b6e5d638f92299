//! Property tests of the parsers that read caller input: any input is a
//! valid value or an error with a message (a 4xx), never a panic, an
//! overflow or a silent default.

use std::time::Duration;

use proptest::prelude::*;
use qstash_core::destination::{validate_url, Destination, ParsedDestination};
use qstash_core::duration::{parse_duration, parse_seconds_or_duration, MAX_DURATION};
use qstash_core::policy::{parse_rules, serve_default_deny, DestinationPolicy};
use qstash_core::publish::{Limits, PublishOptions};
use qstash_core::retry_delay::RetryDelayExpr;
use qstash_core::schedule::CronExpr;

const NOW: i64 = 1_700_000_000_000;

/// Durations: digits and unit letters mixed with noise, including huge
/// numbers.
fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,25}[dhms]{0,2}([0-9]{1,12}[dhms]{1,2}){0,3}",
        "\\PC{0,20}",
        "[0-9 .dhmswy-]{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn durations_are_bounded_values_or_errors(text in duration_text()) {
        for parsed in [parse_duration(&text), parse_seconds_or_duration(&text)] {
            match parsed {
                Ok(d) => prop_assert!(d <= MAX_DURATION),
                Err(e) => prop_assert!(e.to_string().contains("invalid duration")),
            }
        }
    }

    #[test]
    fn publish_headers_never_panic_or_overflow(
        name in prop_oneof![
            Just("Upstash-Delay".to_string()),
            Just("Upstash-Timeout".to_string()),
            Just("Upstash-Retries".to_string()),
            Just("Upstash-Not-Before".to_string()),
            Just("Upstash-Retry-Delay".to_string()),
            Just("Upstash-Method".to_string()),
            Just("Upstash-Flow-Control-Value".to_string()),
            Just("Upstash-Callback".to_string()),
            Just("Upstash-Redact-Fields".to_string()),
            "Upstash-Forward-\\PC{0,12}",
            "Upstash-\\PC{0,20}",
        ],
        value in prop_oneof![duration_text(), "\\PC{0,40}", "-?[0-9]{1,25}"],
    ) {
        let mut headers = vec![(name.as_str(), value.as_str())];
        if name == "Upstash-Flow-Control-Value" {
            headers.push(("Upstash-Flow-Control-Key", "k"));
        }
        match PublishOptions::from_headers(headers, NOW) {
            Ok(o) => {
                if let Some(at) = o.not_before {
                    prop_assert!(at >= 0, "not before {at}");
                }
                if let Some(ms) = o.spec.timeout_ms {
                    prop_assert!(ms > 0 && u128::from(ms) <= MAX_DURATION.as_millis());
                }
                let _ = o.check_limits(&Limits::default(), NOW);
            }
            Err(e) => prop_assert!(e.to_string().starts_with("invalid "), "{e}"),
        }
    }

    #[test]
    fn retry_delay_expressions_give_bounded_delays_or_errors(
        expr in prop_oneof![
            "[0-9a-z+*/^%(), .-]{0,40}",
            "(pow|exp|sqrt|max|min|abs)\\((retried|[0-9]{1,6})(, ?(retried|[0-9]{1,6}))?\\)( ?[*+] ?[0-9]{1,9})?",
        ],
        retried in 0u32..1000,
    ) {
        if let Ok(parsed) = RetryDelayExpr::parse(&expr) {
            if let Ok(d) = parsed.delay(retried) {
                prop_assert!(d <= Duration::from_secs(86_400));
            }
        }
    }

    #[test]
    fn destinations_are_valid_urls_groups_or_errors(
        raw in prop_oneof![
            "(https?:/{0,3})?[a-z0-9.:@\\[\\]%-]{0,20}(/[a-z0-9%?=&]{0,10}){0,3}",
            "\\PC{0,40}",
        ],
        query in proptest::option::of("[a-z0-9=&%_-]{0,30}"),
    ) {
        match ParsedDestination::parse(&raw, query.as_deref()) {
            Ok(p) => match p.destination {
                Destination::Url(u) => prop_assert_eq!(validate_url(&u), Ok(())),
                Destination::UrlGroup(g) => prop_assert!(!g.is_empty()),
            },
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        let policy = DestinationPolicy::new(vec![], vec![], serve_default_deny());
        let _ = policy.check_url(&raw);
        let _ = parse_rules(&raw);
    }

    #[test]
    fn crons_are_schedules_that_fire_or_errors(
        cron in prop_oneof![
            "((\\*|[0-9]{1,3})(/[0-9]{1,3})?( |,)){4,6}",
            "(CRON_TZ=|TZ=)?[A-Za-z/_]{0,20} [0-9*/ ,-]{0,20}",
            "\\PC{0,30}",
        ],
    ) {
        match CronExpr::parse_firing(&cron, NOW) {
            Ok(c) => {
                let next = c.next_after(NOW);
                prop_assert!(next.is_some_and(|n| n > NOW));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
