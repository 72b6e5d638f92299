//! How big each scenario is: the full run the issue asks for, or a smoke
//! run of every scenario in a few seconds.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Plan {
    pub smoke: bool,
    /// Concurrent keep-alive clients of the closed-loop scenarios.
    pub workers: usize,
    pub body_bytes: usize,
    /// Discarded at the start of each throughput measurement.
    pub warmup: Duration,
    /// Length of each throughput measurement, after the warm-up.
    pub measure: Duration,
    /// End-to-end: published but not yet delivered messages allowed.
    pub e2e_window: u64,
    pub latency_rate: f64,
    pub latency_time: Duration,
    pub delay_count: u64,
    pub delay_span: Duration,
    /// Time from the start of publishing to the first due time.
    pub delay_lead: Duration,
    pub backlog_count: u64,
    /// Messages per `/v2/batch` request while loading the backlog.
    pub backlog_batch: u64,
    pub fanout_endpoints: usize,
    pub fc_keys: u64,
    pub fc_per_key: u64,
    /// The sink's answer delay in the flow-control scenario, so that
    /// deliveries of one key would overlap if parallelism were not kept.
    pub fc_sink_delay: Duration,
    /// Longest wait for deliveries to drain after a scenario.
    pub drain: Duration,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            smoke: false,
            workers: 64,
            body_bytes: 1024,
            warmup: Duration::from_secs(2),
            measure: Duration::from_secs(10),
            e2e_window: 4096,
            latency_rate: 1000.0,
            latency_time: Duration::from_secs(12),
            delay_count: 10_000,
            delay_span: Duration::from_secs(10),
            delay_lead: Duration::from_secs(4),
            backlog_count: 1_000_000,
            backlog_batch: 100,
            fanout_endpoints: 10,
            fc_keys: 1000,
            fc_per_key: 10,
            fc_sink_delay: Duration::from_millis(10),
            drain: Duration::from_secs(120),
        }
    }

    pub fn smoke() -> Plan {
        Plan {
            smoke: true,
            warmup: Duration::from_millis(100),
            measure: Duration::from_millis(300),
            latency_rate: 200.0,
            latency_time: Duration::from_millis(500),
            delay_count: 200,
            delay_span: Duration::from_millis(300),
            delay_lead: Duration::from_millis(500),
            backlog_count: 2000,
            fc_keys: 20,
            fc_per_key: 3,
            drain: Duration::from_secs(30),
            ..Plan::full()
        }
    }

    /// Messages of the latency run that fall in the warm-up.
    pub fn latency_warmup_count(&self, rate: f64) -> u64 {
        let warmup = if self.smoke { 0.1 } else { 2.0 };
        (rate * warmup) as u64
    }
}
