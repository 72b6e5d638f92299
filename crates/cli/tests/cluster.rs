//! Several nodes on one PostgreSQL database act as one QStash: nothing
//! acknowledged is lost when a node is killed, a rolling restart neither
//! loses nor repeats anything, and queues, flow-control keys and schedules
//! keep their guarantees across nodes and across the leader's death.
//!
//! They run on the PostgreSQL pass of the suite (`QSTASH_TEST_BACKEND=
//! postgres`); on SQLite there is no cluster and they say so and return.
//! Nodes use a short `--lease` so that takeovers are quick.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use qstash_testkit::backend;
use serde_json::Value;

const LEASE: &str = "2s";

/// Nodes sharing one schema, each with a data directory of its own (where
/// it keeps its node id across restarts).
struct Cluster {
    url: String,
    dirs: Vec<tempfile::TempDir>,
    nodes: Vec<Option<Arc<Server>>>,
    extra: Vec<String>,
}

impl Cluster {
    fn start(n: usize, extra: &[&str]) -> Option<Cluster> {
        if !backend::postgres() {
            eprintln!("cluster tests need PostgreSQL: run with QSTASH_TEST_BACKEND=postgres (scripts/test does)");
            return None;
        }
        let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let url = backend::database_url_for(dirs[0].path()).unwrap();
        let mut c = Cluster {
            url,
            dirs,
            nodes: Vec::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n {
            let node = c.launch(i);
            c.nodes.push(Some(node));
        }
        Some(c)
    }

    fn launch(&self, i: usize) -> Arc<Server> {
        let mut args = vec![
            "--database-url",
            self.url.as_str(),
            "--database-pool",
            "6",
            "--lease",
            LEASE,
        ];
        args.extend(self.extra.iter().map(String::as_str));
        Arc::new(Server::start_in(bin(), self.dirs[i].path(), &args))
    }

    fn node(&self, i: usize) -> Arc<Server> {
        self.nodes[i].clone().expect("node running")
    }

    fn running(&self) -> Vec<Arc<Server>> {
        self.nodes.iter().flatten().cloned().collect()
    }

    /// SIGKILL node `i`; it stays down until `restart`.
    fn kill9(&mut self, i: usize) {
        let node = sole(self.nodes[i].take().expect("node running"), i);
        node.kill9();
    }

    /// SIGTERM node `i` and wait for its clean exit.
    fn terminate(&mut self, i: usize) {
        let node = sole(self.nodes[i].take().expect("node running"), i);
        assert!(
            node.terminate(Duration::from_secs(60)),
            "node {i} did not stop cleanly"
        );
    }

    fn restart(&mut self, i: usize) {
        let node = self.launch(i);
        self.nodes[i] = Some(node);
    }

    fn dir(&self, i: usize) -> &Path {
        self.dirs[i].path()
    }
}

async fn cluster_view(s: &Server) -> Value {
    s.get("/v2/cluster")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The index of the node that leads, once every running node agrees.
async fn leader(c: &Cluster) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = HashSet::new();
        let mut at = None;
        for (i, n) in c.nodes.iter().enumerate() {
            let Some(n) = n else { continue };
            let v = cluster_view(n).await;
            let lead = v["leader"].as_str().map(String::from);
            if lead.is_some() && lead.as_deref() == v["node"].as_str() {
                at = Some(i);
            }
            seen.insert(lead);
        }
        if let (Some(i), 1) = (at, seen.len()) {
            return i;
        }
        assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Message ids of the deliveries that reached `path`, in arrival order.
fn delivered_ids(sink: &Sink, path: &str) -> Vec<String> {
    sink.received_at(path)
        .iter()
        .filter_map(|r| r.header("upstash-message-id").map(String::from))
        .collect()
}

async fn wait_all_delivered(sink: &Sink, path: &str, want: &HashSet<String>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got: HashSet<String> = delivered_ids(sink, path).into_iter().collect();
        let missing = want.difference(&got).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} acknowledged messages never arrived",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes `body` to `url` through the running nodes in turn from
/// `start`, moving on when a node does not answer; the message id once a
/// node acknowledged it, None if none did.
async fn publish_anywhere(
    c: &[Arc<Server>],
    start: usize,
    url: &str,
    body: &str,
) -> Option<String> {
    for k in 0..c.len() {
        let node = &c[(start + k) % c.len()];
        let resp = node
            .post(&format!("/v2/publish/{url}"))
            .body(body.to_string())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(r) = resp {
            if r.status().is_success() {
                let v: Value = r.json().await.ok()?;
                return v["messageId"].as_str().map(String::from);
            }
        }
    }
    None
}

/// 5,000 messages published round-robin to three nodes while one node is
/// killed and started again: every acknowledged message arrives, and the
/// duplicates are no more than the killed node could have had in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_loses_nothing_acknowledged() {
    let max_in_flight = 32;
    let Some(mut c) = Cluster::start(3, &["--max-in-flight", "32"]) else {
        return;
    };
    let sink = Sink::start().await;
    sink.script(
        "/k",
        vec![Reply::status(200).after(Duration::from_millis(20))],
    );
    let view = cluster_view(&c.node(0)).await;
    assert_eq!(view["nodes"].as_array().unwrap().len(), 3, "{view}");
    assert!(view["leader"].is_string(), "{view}");

    let url = sink.at("/k");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let total = 5000;
    let publish = |nodes: Vec<Arc<Server>>, from: usize, n: usize| {
        let (acked, sent, url) = (acked.clone(), sent.clone(), url.clone());
        tokio::spawn(async move {
            let mut i = from;
            while sent.fetch_add(1, Ordering::Relaxed) < n {
                if let Some(id) = publish_anywhere(&nodes, i, &url, "x").await {
                    acked.lock().unwrap().push(id);
                }
                i += 1;
            }
        })
    };
    // Eight publishers over all three nodes, until a third is sent.
    let first: Vec<_> = (0..8).map(|w| publish(c.running(), w, total / 3)).collect();
    for p in first {
        p.await.unwrap();
    }
    c.kill9(1);
    sent.store(total / 3, Ordering::Relaxed);
    let second: Vec<_> = (0..8)
        .map(|w| publish(c.running(), w, 2 * total / 3))
        .collect();
    for p in second {
        p.await.unwrap();
    }
    c.restart(1);
    sent.store(2 * total / 3, Ordering::Relaxed);
    let third: Vec<_> = (0..8).map(|w| publish(c.running(), w, total)).collect();
    for p in third {
        p.await.unwrap();
    }
    let want: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(
        want.len() > total * 9 / 10,
        "only {} of {total} acknowledged",
        want.len()
    );
    wait_all_delivered(&sink, "/k", &want, Duration::from_secs(90)).await;
    let all = delivered_ids(&sink, "/k");
    let duplicates = all.len() - all.iter().collect::<HashSet<_>>().len();
    eprintln!(
        "{} acknowledged, {} deliveries, {duplicates} duplicates",
        want.len(),
        all.len()
    );
    assert!(
        duplicates <= max_in_flight,
        "{duplicates} duplicates, more than the killed node's {max_in_flight} slots"
    );
}

/// Each node in turn is stopped with SIGTERM and started again while
/// messages keep coming: nothing is lost, nothing is delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_loses_and_repeats_nothing() {
    let Some(mut c) = Cluster::start(3, &[]) else {
        return;
    };
    let sink = Sink::start().await;
    let url = sink.at("/r");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let nodes = Arc::new(Mutex::new(c.running()));
    let publishers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop, url, nodes) =
                (acked.clone(), stop.clone(), url.clone(), nodes.clone());
            tokio::spawn(async move {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let now: Vec<Arc<Server>> = nodes.lock().unwrap().clone();
                    if let Some(id) = publish_anywhere(&now, i, &url, "r").await {
                        acked.lock().unwrap().push(id);
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        // Publishers stop using the node before it goes.
        *nodes.lock().unwrap() = (0..3).filter(|j| *j != i).map(|j| c.node(j)).collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::task::block_in_place(|| c.terminate(i));
        tokio::task::block_in_place(|| c.restart(i));
        *nodes.lock().unwrap() = c.running();
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        p.await.unwrap();
    }
    let want: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    wait_all_delivered(&sink, "/r", &want, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = delivered_ids(&sink, "/r");
    let mut counts: HashMap<&String, usize> = HashMap::new();
    all.iter()
        .for_each(|id| *counts.entry(id).or_default() += 1);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!("{} acknowledged, {} deliveries", want.len(), all.len());
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
}

/// A queue with parallelism 1 fed through all three nodes keeps strict
/// order and never has two deliveries at once, also while its leader (who
/// runs the gate) is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_keeps_order_and_parallelism_across_nodes_and_a_leader_kill() {
    let Some(mut c) = Cluster::start(3, &[]) else {
        return;
    };
    let sink = Sink::start().await;
    let hold = Duration::from_millis(40);
    sink.script("/q", vec![Reply::status(200).after(hold)]);
    let url = sink.at("/q");
    let mut order = Vec::new();
    let leader_at = 20;
    for n in 0..60usize {
        if n == leader_at {
            let l = leader(&c).await;
            tokio::task::block_in_place(|| c.kill9(l));
        }
        let running = c.running();
        let node = &running[n % running.len()];
        let resp = node
            .post(&format!("/v2/enqueue/ordered/{url}"))
            .body(n.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        order.push(v["messageId"].as_str().unwrap().to_string());
    }
    let want: HashSet<String> = order.iter().cloned().collect();
    wait_all_delivered(&sink, "/q", &want, Duration::from_secs(90)).await;
    let got = sink.received_at("/q");
    // First arrivals, in arrival order, are the enqueue order (a delivery
    // cut off by the kill may arrive again, right after itself).
    let mut firsts = Vec::new();
    for r in &got {
        let id = r.header("upstash-message-id").unwrap().to_string();
        if !firsts.contains(&id) {
            firsts.push(id);
        }
    }
    assert_eq!(firsts, order, "deliveries out of enqueue order");
    // The sink holds each request `hold`: a delivery that started before
    // the previous one was answered ran at the same time.
    for w in got.windows(2) {
        let gap = w[1].at.duration_since(w[0].at);
        assert!(
            gap + Duration::from_millis(5) >= hold,
            "two deliveries of the queue ran at once ({gap:?} apart)"
        );
    }
}

/// A flow-control key `rate=5, period=2s` fed through all three nodes:
/// no two seconds hold more than five starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flow_control_rate_holds_across_nodes() {
    let Some(c) = Cluster::start(3, &[]) else {
        return;
    };
    let sink = Sink::start().await;
    let url = sink.at("/f");
    let nodes = c.running();
    for n in 0..16usize {
        let resp = nodes[n % 3]
            .post(&format!("/v2/publish/{url}"))
            .header("Upstash-Flow-Control-Key", "shared-key")
            .header("Upstash-Flow-Control-Value", "rate=5,period=2s")
            .body(n.to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }
    let got = sink.wait_for("/f", 16, Duration::from_secs(30)).await;
    let times: Vec<Instant> = got.iter().map(|r| r.at).collect();
    // Starts are counted at the gate; arrivals may lag a start by a
    // moment, so a window a little shorter than the period is checked.
    let window = Duration::from_millis(2000 - 600);
    for (i, t) in times.iter().enumerate() {
        let inside = times[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < window)
            .count();
        assert!(inside <= 5, "{inside} starts within {window:?}");
    }
}

/// 100 schedules created across three nodes fire once each at the next
/// minute, even though the leader (who runs the timer) is killed just
/// before the tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_schedule_tick_fires_once_when_the_leader_dies_before_it() {
    let Some(mut c) = Cluster::start(3, &[]) else {
        return;
    };
    // Far enough from the minute to create 100 schedules and kill.
    let secs = (now_ms() / 1000) % 60;
    if secs > 45 {
        tokio::time::sleep(Duration::from_secs(61 - secs as u64)).await;
    }
    let sink = Sink::start().await;
    let mut ids = HashSet::new();
    let nodes = c.running();
    for n in 0..100usize {
        let resp = nodes[n % 3]
            .post(&format!("/v2/schedules/{}", sink.at(&format!("/s/{n}"))))
            .header("Upstash-Cron", "* * * * *")
            .body(n.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        ids.insert(v["scheduleId"].as_str().unwrap().to_string());
    }
    drop(nodes);
    let tick = (now_ms() / 60_000 + 1) * 60_000;
    let kill_at = tick - 1500;
    tokio::time::sleep(Duration::from_millis((kill_at - now_ms()).max(0) as u64)).await;
    let l = leader(&c).await;
    tokio::task::block_in_place(|| c.kill9(l));
    // Every tick arrives, once, from the new leader.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = sink.received();
        if got.len() >= 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of 100 ticks fired",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = sink.received();
    let fired: Vec<String> = got
        .iter()
        .map(|r| r.header("upstash-schedule-id").unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = fired.iter().collect();
    assert_eq!(unique.len(), 100, "{} schedules fired", unique.len());
    assert_eq!(fired.len(), 100, "a tick fired twice");
    assert!(fired.iter().all(|id| ids.contains(id)));
    c.restart(l);
    assert!(c.dir(l).join("node-id").exists());
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A change made through one node takes effect on the others within a
/// second: a key rotation is signed with by the node that delivers next,
/// and a queue paused through one node stops (and resumed through another
/// restarts) the leader's deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_through_one_node_reach_every_node_within_a_second() {
    let Some(c) = Cluster::start(3, &[]) else {
        return;
    };
    let sink = Sink::start().await;
    let l = leader(&c).await;
    let (a, b) = ((l + 1) % 3, (l + 2) % 3);

    // Rotate through node a; node b signs its next delivery with the key
    // that became current.
    let rotated: Value = c
        .node(a)
        .post("/v2/keys/rotate")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let current = rotated["current"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(1)).await;
    publish_ok(&c.node(b), &sink.at("/signed"), &[], "x").await;
    let got = sink.wait_for("/signed", 1, WAIT).await;
    verify(&got[0], &current, &sink.at("/signed")).expect("signed with the rotated key");

    // Pause a queue through a node that does not lead; nothing is
    // delivered while it is paused, even when enqueued through another.
    let pause = c
        .node(a)
        .post("/v2/queues/paused-q/pause")
        .send()
        .await
        .unwrap();
    assert_eq!(pause.status(), 404, "no such queue yet");
    let upsert = c
        .node(a)
        .post("/v2/queues")
        .json(&serde_json::json!({"queueName": "paused-q", "parallelism": 1}))
        .send()
        .await
        .unwrap();
    assert!(upsert.status().is_success());
    let pause = c
        .node(a)
        .post("/v2/queues/paused-q/pause")
        .send()
        .await
        .unwrap();
    assert!(pause.status().is_success());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resp = c
        .node(b)
        .post(&format!("/v2/enqueue/paused-q/{}", sink.at("/paused")))
        .body("p")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        sink.received_at("/paused").is_empty(),
        "delivered while paused"
    );
    let resume = c
        .node(b)
        .post("/v2/queues/paused-q/resume")
        .send()
        .await
        .unwrap();
    assert!(resume.status().is_success());
    let started = Instant::now();
    sink.wait_for("/paused", 1, WAIT).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// The node once no publisher holds it any more (one may be in the middle
/// of a request to it when the test stops using it, longer on a busy
/// machine).
fn sole(mut node: Arc<Server>, i: usize) -> Server {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Arc::try_unwrap(node) {
            Ok(server) => return server,
            Err(shared) if Instant::now() < deadline => {
                node = shared;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => panic!("node {i} still shared after 30 s"),
        }
    }
}
