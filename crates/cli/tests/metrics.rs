//! `GET /metrics`: counters move by exactly the traffic sent, gauges
//! follow the stored state, and the flags that move or remove it.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// One sample: metric name and its labels, sorted.
type Key = (String, BTreeMap<String, String>);

async fn scrape(http: &reqwest::Client, url: &str) -> BTreeMap<Key, f64> {
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    parse(&resp.text().await.unwrap())
}

fn parse(text: &str) -> BTreeMap<Key, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once("=\"").expect("label");
                (k.to_string(), v.trim_end_matches('"').to_string())
            })
            .collect();
        out.insert((name.to_string(), labels), value.parse().unwrap());
    }
    out
}

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (name.to_string(), labels)
}

fn get(m: &BTreeMap<Key, f64>, k: &Key) -> f64 {
    m.get(k).copied().unwrap_or(0.0)
}

/// Scrapes until `ok` holds for the samples (gauges are sampled at most
/// once a second; counters move when deliveries end), or fails.
async fn scrape_until(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    ok: impl Fn(&BTreeMap<Key, f64>) -> bool,
) -> BTreeMap<Key, f64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = scrape(http, url).await;
        if ok(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {m:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn published(kind: &str) -> Key {
    key("qstash_messages_published_total", &[("kind", kind)])
}

fn deliveries(outcome: &str) -> Key {
    key("qstash_deliveries_total", &[("outcome", outcome)])
}

fn requests(method: &str, route: &str, status: &str) -> Key {
    key(
        "qstash_http_requests_total",
        &[("method", method), ("route", route), ("status", status)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_by_exactly_the_traffic_sent() {
    let s = server();
    let sink = Sink::start().await;
    sink.script("/fail", vec![Reply::status(500)]);
    sink.script("/flaky", vec![Reply::status(500), Reply::status(200)]);
    let metrics = format!("{}/metrics", s.url);
    let before = scrape(&s.http, &metrics).await;

    for i in 0..3 {
        publish_ok(&s, &sink.at("/ok"), &[], &format!("m{i}")).await;
    }
    let resp = s
        .post(&format!("/v2/enqueue/q1/{}", sink.at("/ok")))
        .body("queued")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let batch = json!([
        {"destination": sink.at("/ok"), "body": "b1"},
        {"destination": sink.at("/ok"), "body": "b2"},
    ]);
    let resp = s.post("/v2/batch").json(&batch).send().await.unwrap();
    assert!(resp.status().is_success());
    publish_ok(&s, &sink.at("/fail"), &[("Upstash-Retries", "0")], "f").await;
    let flaky = [("Upstash-Retries", "1"), ("Upstash-Retry-Delay", "10")];
    publish_ok(&s, &sink.at("/flaky"), &flaky, "r").await;
    let callback = [("Upstash-Callback", sink.at("/cb"))];
    let callback: Vec<(&str, &str)> = callback.iter().map(|(k, v)| (*k, v.as_str())).collect();
    publish_ok(&s, &sink.at("/ok"), &callback, "c").await;
    let delayed = publish_ok(&s, &sink.at("/ok"), &[("Upstash-Delay", "1h")], "d").await;
    // The delayed message shows as waiting, then is cancelled.
    scrape_until(&s.http, &metrics, "a delayed message waiting", |m| {
        get(m, &key("qstash_messages_waiting", &[("state", "delayed")])) == 1.0
    })
    .await;
    let resp = s
        .delete(&format!("/v2/messages/{delayed}"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    // The failed message goes to the DLQ; retried from there, it fails
    // again and is back in the DLQ.
    let dlq_id = wait_dlq(&s).await;
    let resp = s
        .post(&format!("/v2/dlq/retry/{dlq_id}"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let resp = s.get("/v2/no/such/route").send().await.unwrap();
    assert_eq!(resp.status(), 404);

    let want = [
        (published("publish"), 7.0),
        (published("enqueue"), 1.0),
        (published("batch"), 2.0),
        (published("callback"), 1.0),
        (published("dlq_retry"), 1.0),
        (published("schedule"), 0.0),
        // 3 + 1 queued + 2 batched + the flaky one's second attempt + the
        // one with a callback + its callback.
        (deliveries("delivered"), 9.0),
        (deliveries("retried"), 1.0),
        (deliveries("failed"), 2.0),
        (deliveries("cancelled"), 1.0),
        (requests("POST", "/v2/publish/{*destination}", "2xx"), 7.0),
        (
            requests("POST", "/v2/enqueue/{queue}/{*destination}", "2xx"),
            1.0,
        ),
        (requests("POST", "/v2/batch", "2xx"), 1.0),
        (requests("DELETE", "/v2/messages/{id}", "2xx"), 1.0),
        (requests("POST", "/v2/dlq/retry/{id}", "2xx"), 1.0),
        (requests("GET", "unmatched", "4xx"), 1.0),
    ];
    let delta = |m: &BTreeMap<Key, f64>, k: &Key| get(m, k) - get(&before, k);
    let after = scrape_until(&s.http, &metrics, "every delivery counted", |m| {
        want.iter().all(|(k, n)| delta(m, k) >= *n)
    })
    .await;
    // Nothing more arrives late: the counts are exact.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = {
        let later = scrape(&s.http, &metrics).await;
        for (k, _) in &want {
            assert_eq!(get(&later, k), get(&after, k), "{k:?} kept moving");
        }
        later
    };
    for (k, n) in &want {
        assert_eq!(delta(&after, k), *n, "{k:?}");
    }
    // No raw path or id ever becomes a label.
    for (name, labels) in after.keys() {
        for v in labels.values() {
            assert!(
                !v.contains("msg_") && !v.contains("127.0.0.1"),
                "{name} {v}"
            );
        }
    }
    let count = |name: &str| {
        get(
            &after,
            &(format!("{name}_count"), BTreeMap::<String, String>::new()),
        )
    };
    // 9 delivered + 1 retried + 2 failed attempts.
    assert_eq!(count("qstash_destination_response_seconds"), 12.0);
    assert_eq!(count("qstash_delivery_latency_seconds"), 9.0);
    assert!(count("qstash_store_commit_seconds") >= 1.0);
    let publish_count = get(
        &after,
        &key(
            "qstash_publish_duration_seconds_count",
            &[("kind", "publish")],
        ),
    );
    assert_eq!(publish_count, 7.0);
    // The gauges: one message in the DLQ, nothing waiting or in flight.
    scrape_until(&s.http, &metrics, "the gauges settled", |m| {
        get(m, &key("qstash_dlq_messages", &[])) == 1.0
            && get(m, &key("qstash_messages_waiting", &[("state", "delayed")])) == 0.0
            && get(m, &key("qstash_deliveries_in_flight", &[])) == 0.0
    })
    .await;
}

async fn wait_dlq(s: &Server) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let page: Value = s.get("/v2/dlq").send().await.unwrap().json().await.unwrap();
        if let Some(id) = page["messages"][0]["dlqId"].as_str() {
            return id.to_string();
        }
        assert!(Instant::now() < deadline, "nothing reached the DLQ");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn per_user_labels_only_when_asked() {
    let sink = Sink::start().await;
    let s = Server::start(bin(), &["--metrics-per-user"]);
    publish_ok(&s, &sink.at("/ok"), &[], "x").await;
    let metrics = format!("{}/metrics", s.url);
    let m = scrape_until(&s.http, &metrics, "the delivery", |m| {
        let k = key(
            "qstash_deliveries_total",
            &[("outcome", "delivered"), ("user", "defaultUser")],
        );
        get(m, &k) == 1.0
    })
    .await;
    let k = key(
        "qstash_messages_published_total",
        &[("kind", "publish"), ("user", "defaultUser")],
    );
    assert_eq!(get(&m, &k), 1.0);
    // Without the flag no sample carries a user.
    let plain = server();
    let m = scrape(&plain.http, &format!("{}/metrics", plain.url)).await;
    assert!(m.keys().all(|(_, labels)| !labels.contains_key("user")));
}

#[tokio::test]
async fn metrics_can_move_to_their_own_port_or_be_turned_off() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = Server::start(bin(), &["--metrics-port", &port.to_string()]);
    let elsewhere = format!("http://127.0.0.1:{port}/metrics");
    let m = scrape(&s.http, &elsewhere).await;
    assert!(m.contains_key(&published("publish")), "{m:?}");
    let on_api = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(on_api.status(), 404);

    let off = Server::start(bin(), &["--metrics=false"]);
    let resp = off
        .http
        .get(format!("{}/metrics", off.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
}
