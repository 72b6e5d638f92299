//! Signing keys: per user, rotated, persisted, used for deliveries.

mod common;

use common::*;
use reqwest::Method;
use serde_json::Value;

#[tokio::test]
async fn rotation_moves_next_to_current_signs_with_it_and_survives_restart() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let user = dev_user(3);
    let s = Server::start_in(bin(), dir.path(), &[]);
    let keys: Value = s
        .request(Method::GET, "/v2/keys", &user)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (keys["current"].as_str(), keys["next"].as_str()),
        (Some(user.current_key), Some(user.next_key))
    );
    let rotated: Value = s
        .request(Method::POST, "/v2/keys/rotate", &user)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rotated["current"].as_str(), Some(user.next_key));
    let new_next = rotated["next"].as_str().unwrap().to_string();
    assert!(new_next.starts_with("sig_") && new_next != user.next_key);

    let other: Value = s
        .get("/v2/keys")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        other["current"].as_str(),
        Some(dev_user(0).current_key),
        "other users keep their keys"
    );

    let url = sink.at("/signed");
    let r = s
        .request(Method::POST, &format!("/v2/publish/{url}"), &user)
        .body("b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let got = sink.wait_for("/signed", 1, WAIT).await;
    verify(&got[0], user.next_key, &url).expect("signed with the new current key");

    s.kill9();
    let s = Server::start_in(bin(), dir.path(), &[]);
    let after: Value = s
        .request(Method::GET, "/v2/keys", &user)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after, rotated, "rotation is persisted");
}
