//! URL groups as the API changes them. Publishing to a group reads it in
//! `Engine::plan`; nothing else in the engine holds group state, so these
//! only write through to the store.

use qstash_core::url_group::{Endpoint, EndpointRef};
use qstash_store::StoreError;

use crate::Engine;

impl Engine {
    /// Creates the group if missing; adds or updates endpoints.
    pub async fn upsert_endpoints(
        &self,
        user_id: &str,
        name: &str,
        endpoints: Vec<Endpoint>,
    ) -> Result<(), StoreError> {
        self.store
            .upsert_endpoints(user_id, name, endpoints, self.now())
            .await
    }

    /// False when the group does not exist; removing the last endpoint
    /// deletes the group.
    pub async fn remove_endpoints(
        &self,
        user_id: &str,
        name: &str,
        endpoints: Vec<EndpointRef>,
    ) -> Result<bool, StoreError> {
        self.store
            .remove_endpoints(user_id, name, endpoints, self.now())
            .await
    }

    pub async fn delete_url_group(&self, user_id: &str, name: &str) -> Result<bool, StoreError> {
        self.store.delete_url_group(user_id, name).await
    }

    /// Replaces the group's default headers; false when the group does not
    /// exist.
    pub async fn set_url_group_headers(
        &self,
        user_id: &str,
        name: &str,
        headers: Vec<(String, String)>,
    ) -> Result<bool, StoreError> {
        self.store
            .set_url_group_headers(user_id, name, headers)
            .await
    }
}
