//! Load generators: a closed loop (each worker sends its next request as
//! soon as the last is answered) and a fixed offered rate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::client::{Conn, Req};
use crate::clock::{instant_at, now_us};

/// Builds request `seq`; `intended_us` is when it is meant to be sent.
pub type MakeReq = Arc<dyn Fn(u64, i64) -> Req + Send + Sync>;
/// Whether a worker may send now (back-pressure from the caller).
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Default)]
struct Counters {
    next_seq: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
    first_error: Mutex<Option<String>>,
}

/// What one worker saw.
#[derive(Default)]
struct WorkerOut {
    /// Time to the answer of each successful request, µs.
    acks: Vec<u32>,
    /// The answer body of its last successful request (for message ids).
    last_body: Option<bytes::Bytes>,
}

/// A running load; stop it with [`Load::stop`] or let it reach its limit.
pub struct Load {
    counters: Arc<Counters>,
    workers: Vec<JoinHandle<WorkerOut>>,
    started: Instant,
}

#[derive(Debug)]
pub struct LoadOut {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Time to the answer of each successful request, µs.
    pub ack_us: Vec<i64>,
    pub first_error: Option<String>,
    pub last_body: Option<bytes::Bytes>,
}

impl Load {
    /// `workers` connections each sending requests back to back until
    /// `limit` requests were sent or [`Load::stop`]. `gate` pauses sending.
    pub fn closed(
        addr: SocketAddr,
        workers: usize,
        limit: Option<u64>,
        make: MakeReq,
        gate: Option<Gate>,
    ) -> Load {
        Self::closed_over(&[addr], workers, limit, make, gate)
    }

    /// [`Load::closed`] spread over several servers: worker `i` talks to
    /// `addrs[i % len]` (the nodes of a cluster behind no load balancer).
    pub fn closed_over(
        addrs: &[SocketAddr],
        workers: usize,
        limit: Option<u64>,
        make: MakeReq,
        gate: Option<Gate>,
    ) -> Load {
        let counters = Arc::new(Counters::default());
        let handles = (0..workers)
            .map(|i| {
                let (counters, make, gate) = (counters.clone(), make.clone(), gate.clone());
                let addr = addrs[i % addrs.len()];
                tokio::spawn(async move {
                    let mut conn = Conn::new(addr);
                    let mut out = WorkerOut::default();
                    loop {
                        if counters.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Some(gate) = &gate {
                            if !gate() {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                                continue;
                            }
                        }
                        let seq = counters.next_seq.fetch_add(1, Ordering::Relaxed);
                        if limit.is_some_and(|l| seq >= l) {
                            break;
                        }
                        let sent = now_us();
                        let req = make(seq, sent);
                        send_one(&mut conn, &req, sent, &counters, &mut out).await;
                    }
                    out
                })
            })
            .collect();
        Load {
            counters,
            workers: handles,
            started: Instant::now(),
        }
    }

    /// `rate` requests per second for `duration`, spread over `workers`
    /// connections: request `seq` is due at start + seq/rate, and carries
    /// that intended time, so a stalled worker shows up as latency instead
    /// of hiding it (no coordinated omission).
    pub fn fixed_rate(
        addr: SocketAddr,
        workers: usize,
        rate: f64,
        duration: Duration,
        make: MakeReq,
    ) -> Load {
        let counters = Arc::new(Counters::default());
        let total = (rate * duration.as_secs_f64()).round() as u64;
        let start_us = now_us() + 5_000;
        let handles = (0..workers as u64)
            .map(|w| {
                let (counters, make) = (counters.clone(), make.clone());
                tokio::spawn(async move {
                    let mut conn = Conn::new(addr);
                    let mut out = WorkerOut::default();
                    let mut seq = w;
                    while seq < total && !counters.stop.load(Ordering::Relaxed) {
                        let intended = start_us + (seq as f64 * 1e6 / rate) as i64;
                        tokio::time::sleep_until(instant_at(intended).into()).await;
                        let req = make(seq, intended);
                        send_one(&mut conn, &req, intended, &counters, &mut out).await;
                        seq += workers as u64;
                    }
                    out
                })
            })
            .collect();
        Load {
            counters,
            workers: handles,
            started: Instant::now(),
        }
    }

    pub fn ok(&self) -> u64 {
        self.counters.ok.load(Ordering::Relaxed)
    }

    /// Asks the workers to stop after their current request, then joins.
    pub async fn stop(self) -> LoadOut {
        self.counters.stop.store(true, Ordering::Relaxed);
        self.join().await
    }

    /// Waits for the workers to finish on their own.
    pub async fn join(self) -> LoadOut {
        let mut ack_us = Vec::new();
        let mut last_body = None;
        for w in self.workers {
            if let Ok(out) = w.await {
                ack_us.extend(out.acks.into_iter().map(i64::from));
                last_body = out.last_body.or(last_body);
            }
        }
        let c = &self.counters;
        LoadOut {
            ok: c.ok.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            elapsed: self.started.elapsed(),
            ack_us,
            first_error: c.first_error.lock().unwrap().clone(),
            last_body,
        }
    }
}

async fn send_one(conn: &mut Conn, req: &Req, since_us: i64, c: &Counters, out: &mut WorkerOut) {
    match conn.send(req).await {
        Ok((status, body)) if (200..300).contains(&status) => {
            out.acks
                .push((now_us() - since_us).clamp(0, u32::MAX as i64) as u32);
            c.ok.fetch_add(1, Ordering::Relaxed);
            if !body.is_empty() {
                out.last_body = Some(body);
            }
        }
        Ok((status, body)) => {
            c.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = c.first_error.lock().unwrap();
            first.get_or_insert_with(|| {
                format!("HTTP {status}: {}", String::from_utf8_lossy(&body))
            });
        }
        Err(e) => {
            c.failed.fetch_add(1, Ordering::Relaxed);
            c.first_error.lock().unwrap().get_or_insert(e.to_string());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
