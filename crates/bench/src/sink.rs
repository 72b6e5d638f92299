//! The destination: a bare hyper server that answers 200 (at once or after
//! a configured delay), counts arrivals and, for stamped bodies in the
//! measured window, keeps one number: how late the arrival was. No request
//! is kept.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::body;
use crate::clock::now_us;

/// Requests under this path prefix are flow-control deliveries; the next
/// path segment is the key, whose concurrent deliveries the sink tracks.
pub const KEYED_PREFIX: &str = "/k/";

#[derive(Default)]
struct State {
    arrivals: AtomicU64,
    /// Answer delay in microseconds.
    delay_us: AtomicU64,
    /// Arrival minus reference, µs, for stamped bodies marked `record`.
    samples: Mutex<Vec<i64>>,
    /// Deliveries in flight per flow-control key.
    per_key: Mutex<HashMap<String, u32>>,
    max_per_key: AtomicU32,
    tracking_keys: AtomicBool,
}

#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Sink {
    pub async fn start() -> anyhow::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = shared.clone();
                let service = service_fn(move |req| handle(state.clone(), req));
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Sink { addr, state })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn arrivals(&self) -> u64 {
        self.state.arrivals.load(Ordering::Relaxed)
    }

    /// Clears the samples, key tracking and answer delay between scenarios.
    pub fn reset(&self, delay: Duration) {
        self.state
            .delay_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
        self.state.samples.lock().unwrap().clear();
        self.state.per_key.lock().unwrap().clear();
        self.state.max_per_key.store(0, Ordering::Relaxed);
        self.state.tracking_keys.store(false, Ordering::Relaxed);
    }

    pub fn track_keys(&self) {
        self.state.tracking_keys.store(true, Ordering::Relaxed);
    }

    pub fn take_samples(&self) -> Vec<i64> {
        std::mem::take(&mut *self.state.samples.lock().unwrap())
    }

    /// Most deliveries seen in flight at once for any one key.
    pub fn max_per_key(&self) -> u32 {
        self.state.max_per_key.load(Ordering::Relaxed)
    }

    /// Waits until `arrivals()` reaches `n`; false on timeout.
    pub async fn wait_arrivals(&self, n: u64, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.arrivals() < n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let key = state
        .tracking_keys
        .load(Ordering::Relaxed)
        .then(|| {
            req.uri()
                .path()
                .strip_prefix(KEYED_PREFIX)
                .map(String::from)
        })
        .flatten();
    if let Some(key) = &key {
        let mut per_key = state.per_key.lock().unwrap();
        let n = per_key.entry(key.clone()).or_default();
        *n += 1;
        state.max_per_key.fetch_max(*n, Ordering::Relaxed);
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let arrived = now_us();
    if let Some(stamp) = body::decode(&body) {
        if stamp.record {
            state
                .samples
                .lock()
                .unwrap()
                .push(arrived - stamp.reference_us);
        }
    }
    state.arrivals.fetch_add(1, Ordering::Relaxed);
    let delay = state.delay_us.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_micros(delay)).await;
    }
    if let Some(key) = &key {
        if let Some(n) = state.per_key.lock().unwrap().get_mut(key) {
            *n = n.saturating_sub(1);
        }
    }
    Ok(Response::new(Full::new(Bytes::new())))
}
