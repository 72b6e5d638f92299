//! Signing keys per user, cached in memory and persisted by the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use qstash_core::signing::{Signer, SigningKeys};
use qstash_core::users::User;
use qstash_store::{Store, StoreError};

pub struct KeyRing {
    store: Arc<dyn Store>,
    initial: HashMap<String, SigningKeys>,
    current: RwLock<HashMap<String, Arc<Ring>>>,
}

/// A user's keys, and a signer of the current one ready for deliveries.
struct Ring {
    keys: SigningKeys,
    signer: Arc<Signer>,
}

impl Ring {
    fn new(keys: SigningKeys) -> Arc<Self> {
        let signer = Arc::new(Signer::new(&keys.current));
        Arc::new(Self { keys, signer })
    }
}

impl KeyRing {
    /// Loads every user's keys, creating them from the configured ones the
    /// first time; after a rotation the stored keys win over the config.
    pub async fn load(store: Arc<dyn Store>, users: &[User]) -> Result<Self, StoreError> {
        let mut current = HashMap::new();
        let mut initial = HashMap::new();
        for u in users {
            let keys = store.signing_keys(&u.id, &u.initial_keys).await?;
            current.insert(u.id.clone(), Ring::new(keys));
            initial.insert(u.id.clone(), u.initial_keys.clone());
        }
        Ok(Self {
            store,
            initial,
            current: RwLock::new(current),
        })
    }

    /// Every configured user's id.
    pub fn user_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.initial.keys().cloned().collect();
        ids.sort();
        ids
    }

    pub fn get(&self, user_id: &str) -> Option<SigningKeys> {
        self.ring(user_id).map(|r| r.keys.clone())
    }

    /// What signs a delivery of the user's: their current key.
    pub fn signer(&self, user_id: &str) -> Option<Arc<Signer>> {
        self.ring(user_id).map(|r| r.signer.clone())
    }

    fn ring(&self, user_id: &str) -> Option<Arc<Ring>> {
        let rings = self.current.read().expect("key ring lock");
        rings.get(user_id).cloned()
    }

    /// Reads a user's keys again from the store (another node rotated
    /// them), or every user's with None. Runs in the background: called
    /// from a listener that must not wait.
    pub fn reload_later(self: &Arc<Self>, user_id: Option<String>) {
        let ring = self.clone();
        tokio::spawn(async move {
            let users: Vec<String> = match user_id {
                Some(u) => vec![u],
                None => ring.initial.keys().cloned().collect(),
            };
            for user in users {
                let Some(initial) = ring.initial.get(&user) else {
                    continue;
                };
                match ring.store.signing_keys(&user, initial).await {
                    Ok(keys) => {
                        ring.current
                            .write()
                            .expect("key ring lock")
                            .insert(user, Ring::new(keys));
                    }
                    Err(e) => tracing::warn!(user, error = %e, "reloading signing keys failed"),
                }
            }
        });
    }

    /// Next becomes current; a fresh key becomes next.
    pub async fn rotate(&self, user_id: &str) -> Result<Option<SigningKeys>, StoreError> {
        let Some(initial) = self.initial.get(user_id) else {
            return Ok(None);
        };
        let new_next = qstash_core::ids::signing_key();
        let keys = self
            .store
            .rotate_signing_keys(user_id, initial, &new_next)
            .await?;
        self.current
            .write()
            .expect("key ring lock")
            .insert(user_id.to_string(), Ring::new(keys.clone()));
        Ok(Some(keys))
    }
}
