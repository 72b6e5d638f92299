//! What the API asks of queues and flow-control keys: each call changes
//! the store, then tells the gate, so the change takes effect at once.

use qstash_core::flow_control::{FlowKey, FlowKeyChange};
use qstash_core::message::{CancelRequest, CancelResult};
use qstash_store::StoreError;

use super::KeyRuntime;
use crate::Engine;

/// What `GET /v2/flowControl` shows of a key.
#[derive(Debug, Clone)]
pub struct FlowKeyInfo {
    pub key: FlowKey,
    /// Messages waiting for the key, not counting those already started.
    pub waiting: u64,
    pub runtime: KeyRuntime,
}

impl FlowKeyInfo {
    fn new(key: FlowKey, stored_waiting: u64, runtime: KeyRuntime) -> Self {
        Self {
            waiting: stored_waiting.saturating_sub(runtime.claiming.into()),
            key,
            runtime,
        }
    }
}

impl Engine {
    pub async fn upsert_queue(
        &self,
        user_id: &str,
        name: &str,
        parallelism: u32,
        paused: bool,
    ) -> Result<(), StoreError> {
        self.store
            .upsert_queue(user_id, name, parallelism, paused, self.now())
            .await?;
        self.gate.queue_changed(user_id, name);
        Ok(())
    }

    /// False when the queue does not exist.
    pub async fn set_queue_paused(
        &self,
        user_id: &str,
        name: &str,
        paused: bool,
    ) -> Result<bool, StoreError> {
        let found = self
            .store
            .set_queue_paused(user_id, name, paused, self.now())
            .await?;
        self.gate.queue_changed(user_id, name);
        Ok(found)
    }

    /// Deletes the queue and cancels its undelivered messages.
    pub async fn delete_queue(&self, user_id: &str, name: &str) -> Result<Option<u64>, StoreError> {
        let cancelled = self.store.delete_queue(user_id, name, self.now()).await?;
        crate::meter::deliveries("cancelled", user_id, cancelled.unwrap_or(0));
        self.gate.queue_changed(user_id, name);
        Ok(cancelled)
    }

    pub async fn change_flow_key(
        &self,
        user_id: &str,
        key: &str,
        change: FlowKeyChange,
    ) -> Result<FlowKey, StoreError> {
        let reset = matches!(change, FlowKeyChange::Pin { .. } | FlowKeyChange::ResetRate);
        let now = self.now();
        let k = self
            .store
            .change_flow_key(user_id, key, change, now)
            .await?;
        self.gate.key_changed(&k, reset, now);
        Ok(k)
    }

    /// A key, its wait list and its counters, as one consistent picture:
    /// the wait list is read from the store while starts are counted in
    /// memory, so a start committed during the read would otherwise show
    /// the message both in flight and waiting. Re-reads when that happened.
    pub async fn flow_key_info(
        &self,
        user_id: &str,
        key: &str,
    ) -> Result<Option<FlowKeyInfo>, StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let before = self.gate.key_changes(user_id, key);
            let Some((k, waiting)) = self.store.flow_key(user_id, key).await? else {
                return Ok(None);
            };
            let runtime = self.gate.key_runtime(&k, self.now());
            // Under a steady stream of starts, settle for a near picture.
            if runtime.changes == before || tries == 3 {
                return Ok(Some(FlowKeyInfo::new(k, waiting, runtime)));
            }
        }
    }

    /// Every key of the user; a key whose starts moved during the read is
    /// read again on its own.
    pub async fn flow_keys_info(&self, user_id: &str) -> Result<Vec<FlowKeyInfo>, StoreError> {
        let before = self.gate.user_key_changes(user_id);
        let mut infos = Vec::new();
        for (k, waiting) in self.store.flow_keys(user_id).await? {
            let runtime = self.gate.key_runtime(&k, self.now());
            if runtime.changes == before.get(&k.key).copied().unwrap_or(0) {
                infos.push(FlowKeyInfo::new(k, waiting, runtime));
            } else if let Some(info) = self.flow_key_info(user_id, &k.key).await? {
                infos.push(info);
            }
        }
        Ok(infos)
    }

    /// (max, in flight) of the user's queued and flow-controlled deliveries.
    pub fn global_parallelism(&self, user_id: &str) -> (u32, u32) {
        self.gate.global_parallelism(user_id)
    }

    /// Cancels messages; a cancelled message may have held a queue's head.
    pub async fn cancel(
        &self,
        user_id: &str,
        request: CancelRequest,
    ) -> Result<CancelResult, StoreError> {
        let result = self.store.cancel(user_id, request, self.now()).await?;
        crate::meter::deliveries("cancelled", user_id, result.cancelled);
        if result.cancelled > 0 {
            self.gate.user_changed(user_id);
        }
        Ok(result)
    }
}
