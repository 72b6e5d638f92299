//! The group commits' metrics (README.md, "Operating it").

use std::time::Duration;

/// One group commit of `jobs` write requests took `took` (until the
/// database confirmed it, or failed).
pub fn group_commit(jobs: usize, took: Duration) {
    metrics::histogram!("qstash_store_commit_batch_size").record(jobs as f64);
    metrics::histogram!("qstash_store_commit_seconds").record(took.as_secs_f64());
}
