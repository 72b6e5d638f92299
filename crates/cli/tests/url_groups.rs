//! URL groups: endpoint upserts and removals, per-user names, and fan-out
//! of publish, enqueue and batch to every endpoint.

mod common;
mod lines;

use common::*;
use lines::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn endpoints_are_added_updated_removed_and_the_group_goes_with_the_last() {
    let s = server();
    let (status, _) = call(
        &s,
        0,
        "POST",
        "/v2/topics/bad name/endpoints",
        Some(json!({"endpoints": [{"url": "http://a"}]})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = call(
        &s,
        0,
        "POST",
        "/v2/topics/g/endpoints",
        Some(json!({"endpoints": [{"url": "ftp://a"}]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    ok(
        &s,
        "POST",
        "/v2/topics/g/endpoints",
        Some(json!({"endpoints": [
            {"name": "one", "url": "http://127.0.0.1:1/one"},
            {"url": "http://127.0.0.1:1/two"}
        ]})),
    )
    .await;
    let g = ok(&s, "GET", "/v2/topics/g", None).await;
    assert_eq!(g["name"], "g");
    assert!(g["createdAt"].is_i64() && g["updatedAt"].is_i64());
    assert_eq!(
        g["endpoints"],
        json!([{"name": "one", "url": "http://127.0.0.1:1/one"}, {"url": "http://127.0.0.1:1/two"}])
    );
    // Same url: updated, not duplicated.
    ok(
        &s,
        "POST",
        "/v2/topics/g/endpoints",
        Some(json!({"endpoints": [{"name": "two", "url": "http://127.0.0.1:1/two"}]})),
    )
    .await;
    assert_eq!(
        ok(&s, "GET", "/v2/topics/g", None).await["endpoints"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        ok(&s, "GET", "/v2/topics", None)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Another user sees none of it.
    assert_eq!(call(&s, 1, "GET", "/v2/topics/g", None).await.0, 404);
    assert_eq!(call(&s, 1, "GET", "/v2/topics", None).await.1, json!([]));
    assert_eq!(call(&s, 1, "POST", "/v2/publish/g", None).await.0, 404);

    ok(
        &s,
        "DELETE",
        "/v2/topics/g/endpoints",
        Some(json!({"endpoints": [{"name": "one"}]})),
    )
    .await;
    assert_eq!(
        ok(&s, "GET", "/v2/topics/g", None).await["endpoints"],
        json!([{"name": "two", "url": "http://127.0.0.1:1/two"}])
    );
    ok(
        &s,
        "DELETE",
        "/v2/topics/g/endpoints",
        Some(json!({"endpoints": [{"url": "http://127.0.0.1:1/two"}]})),
    )
    .await;
    assert_eq!(call(&s, 0, "GET", "/v2/topics/g", None).await.0, 404);
    // Deleting a missing group is fine; deleting an existing one works.
    ok(&s, "DELETE", "/v2/topics/never", None).await;
    ok(
        &s,
        "POST",
        "/v2/topics/h/endpoints",
        Some(json!({"endpoints": [{"url": "http://127.0.0.1:1/h"}]})),
    )
    .await;
    ok(&s, "DELETE", "/v2/topics/h", None).await;
    assert_eq!(ok(&s, "GET", "/v2/topics", None).await, json!([]));
}

#[tokio::test]
async fn publish_to_a_group_fans_out_with_topic_and_endpoint_names() {
    let sink = Sink::start().await;
    let s = server();
    let (status, body) = call(&s, 0, "POST", "/v2/publish/missing-group", None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].is_string());
    ok(
        &s,
        "POST",
        "/v2/topics/fan/endpoints",
        Some(json!({"endpoints": [
            {"name": "a", "url": sink.at("/a")},
            {"url": sink.at("/b")}
        ]})),
    )
    .await;
    let res = send(&s, "/v2/publish/fan", &[("Upstash-Delay", "1s")], "hi").await;
    let items = res.as_array().expect("a bare array");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["url"], sink.at("/a"));
    assert_eq!(items[1]["url"], sink.at("/b"));
    let m = ok(
        &s,
        "GET",
        &format!("/v2/messages/{}", items[0]["messageId"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        (m["topicName"].as_str(), m["endpointName"].as_str()),
        (Some("fan"), Some("a")),
        "{m}"
    );
    let a = sink.wait_for("/a", 1, WAIT).await;
    let b = sink.wait_for("/b", 1, WAIT).await;
    assert_eq!(a[0].header("upstash-topic-name"), Some("fan"));
    assert_eq!(a[0].header("upstash-endpoint-name"), Some("a"));
    assert_eq!(b[0].header("upstash-topic-name"), Some("fan"));
    assert_eq!(&a[0].body[..], b"hi");
    let user = dev_user(0);
    verify(&a[0], user.current_key, &sink.at("/a")).expect("signed for the endpoint url");

    // Enqueue to the group: one queued message per endpoint.
    let res = send(&s, "/v2/enqueue/fan-q/fan", &[], "q").await;
    assert_eq!(res.as_array().unwrap().len(), 2);
    sink.wait_for("/a", 2, WAIT).await;
    sink.wait_for("/b", 2, WAIT).await;
    // Batch: a nested array for the group item.
    let res = ok(
        &s,
        "POST",
        "/v2/batch",
        Some(json!([
            {"destination": "fan", "body": "x"},
            {"destination": sink.at("/c"), "body": "y"}
        ])),
    )
    .await;
    assert_eq!(res[0].as_array().unwrap().len(), 2, "{res}");
    assert!(res[1]["messageId"].is_string(), "{res}");
    sink.wait_for("/a", 3, WAIT).await;
    sink.wait_for("/c", 1, WAIT).await;
    let (status, body) = call(
        &s,
        0,
        "POST",
        "/v2/batch",
        Some(json!([{"destination": sink.at("/c"), "body": "y"}, {"destination": "nope", "body": "x"}])),
    )
    .await;
    // As for a publish: an unknown group is a 404 naming it and the item,
    // and nothing of the batch is stored.
    assert_eq!(status, 404, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("nope") && error.contains("batch item 1"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sink.received_at("/c").len(),
        1,
        "the valid item of the refused batch was stored"
    );
}
