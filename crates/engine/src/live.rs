//! The console's reads: live messages, how many wait, the DLQ size, and
//! the last hour's per-minute counts.

use qstash_core::clock::Millis;
use qstash_store::{LiveCounts, LiveCursor, LivePage, MessageFilter, StoreError};

use crate::stats::MinuteCounts;
use crate::Engine;

impl Engine {
    /// A page of the user's pending and in-flight messages, newest first.
    pub async fn live_messages(
        &self,
        user_id: &str,
        filter: MessageFilter,
        cursor: Option<LiveCursor>,
        count: usize,
    ) -> Result<LivePage, StoreError> {
        self.store
            .list_live_messages(user_id, filter, cursor, count)
            .await
    }

    /// How many of the user's live messages match, by kind, up to `cap`.
    pub async fn live_counts(
        &self,
        user_id: &str,
        filter: MessageFilter,
        cap: u64,
    ) -> Result<LiveCounts, StoreError> {
        self.store
            .count_live_messages(user_id, filter, self.now(), cap)
            .await
    }

    /// How many entries the user's DLQ holds, counting at most `cap` + 1.
    pub async fn dlq_size(&self, user_id: &str, cap: u64) -> Result<u64, StoreError> {
        self.store.count_dlq(user_id, cap).await
    }

    /// The user's last hour, minute by minute, oldest first.
    pub fn minute_stats(&self, user_id: &str) -> Vec<MinuteCounts> {
        self.stats.last_hour(user_id, self.now())
    }

    /// When this process started counting [`Engine::minute_stats`].
    pub fn stats_since(&self) -> Millis {
        self.started_at
    }
}
