//! A destination for deliveries: records each request and answers as
//! scripted per path (default 200 at once).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query, as requested.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// A body that need not be UTF-8; replaces `body` when set.
    pub raw_body: Option<Vec<u8>>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: vec![],
            body: String::new(),
            raw_body: None,
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, body: &str) -> Self {
        self.body = body.into();
        self
    }
    pub fn raw_body(mut self, body: &[u8]) -> Self {
        self.raw_body = Some(body.to_vec());
        self
    }
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    /// Per path (without query): answers to give in order; the last one
    /// repeats.
    script: Mutex<HashMap<String, VecDeque<Reply>>>,
    arrived: Notify,
}

#[derive(Clone)]
pub struct Sink {
    pub url: String,
    shared: Arc<Shared>,
}

impl Sink {
    pub async fn start() -> Sink {
        Self::start_on("127.0.0.1").await
    }

    /// A sink on another loopback address (`127.0.0.2`), for tests of
    /// per-address rules.
    pub async fn start_on(ip: &str) -> Sink {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind sink");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("sink serve") });
        Sink { url, shared }
    }

    /// The URL of `path` on this sink.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Answers requests to `path` with `replies` in order; the last repeats.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.shared
            .script
            .lock()
            .unwrap()
            .insert(path.into(), replies.into());
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Requests whose path (query stripped) is `path`.
    pub fn received_at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .collect()
    }

    /// Waits until at least `n` requests reached `path`, or panics.
    pub async fn wait_for(&self, path: &str, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.arrived.notified();
            let got = self.received_at(path);
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {n} requests at {path} within {within:?}, got {}",
                    self.received_at(path).len()
                );
            }
        }
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let bare = uri.path().to_string();
    let reply = {
        let mut script = shared.script.lock().unwrap();
        script.get_mut(&bare).map(|q| {
            if q.len() > 1 {
                q.pop_front().unwrap()
            } else {
                q[0].clone()
            }
        })
    };
    let received = Received {
        method: method.to_string(),
        path,
        headers,
        body,
        at: Instant::now(),
    };
    shared.received.lock().unwrap().push(received);
    shared.arrived.notify_waiters();
    let reply = reply.unwrap_or_else(|| Reply::status(200));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let mut resp = match reply.raw_body {
        Some(raw) => (status, raw).into_response(),
        None => (status, reply.body).into_response(),
    };
    for (k, v) in reply.headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}
