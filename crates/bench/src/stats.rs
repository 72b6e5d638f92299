//! Percentiles and rates from plain numbers.

use serde::Serialize;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Nearest-rank percentile of sorted samples; `p` in 0..=100.
pub fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    // The epsilon keeps 0.999 * 1000 (999.0000000000001 in floating point)
    // at rank 999.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Percentiles of samples given in microseconds.
pub fn percentiles_us(mut samples: Vec<i64>) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let ms = |us: i64| us as f64 / 1000.0;
    Some(Percentiles {
        count: samples.len(),
        p50_ms: ms(percentile(&samples, 50.0)),
        p99_ms: ms(percentile(&samples, 99.0)),
        p999_ms: ms(percentile(&samples, 99.9)),
        max_ms: ms(*samples.last().unwrap()),
    })
}

pub fn per_second(count: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        count as f64 / secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<i64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), 500);
        assert_eq!(percentile(&v, 99.0), 990);
        assert_eq!(percentile(&v, 99.9), 999);
        assert_eq!(percentile(&v, 100.0), 1000);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn percentiles_in_ms_from_unsorted_us() {
        let p = percentiles_us(vec![3000, 1000, 2000, 4000]).unwrap();
        assert_eq!(p.count, 4);
        assert_eq!(p.p50_ms, 2.0);
        assert_eq!(p.p99_ms, 4.0);
        assert_eq!(p.max_ms, 4.0);
        assert!(percentiles_us(vec![]).is_none());
    }

    #[test]
    fn rates() {
        assert_eq!(per_second(500, 2.0), 250.0);
        assert_eq!(per_second(5, 0.0), 0.0);
    }
}
