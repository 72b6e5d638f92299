//! `--max-in-flight-per-user`: one user's slow destinations cannot take
//! every delivery slot. A counter per user, consulted where plain messages
//! take a slot (the due-now shortcut of a publish, and the scheduler's
//! claim, which asks the store only for users below their cap). Queued and
//! flow-controlled deliveries are admitted by the gate under the user's
//! global parallelism (which the cap lowers), and counted here too, so a
//! user's plain and gated deliveries together stay within the cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

pub(crate) struct UserSlots {
    cap: Option<usize>,
    users: Vec<String>,
    counts: Mutex<HashMap<String, usize>>,
    /// Told when a user at its cap finishes a delivery, so the scheduler
    /// can claim that user's waiting messages.
    pub(crate) freed: Notify,
}

/// A delivery slot of one user, given back on drop.
pub(crate) struct UserSlot {
    slots: Arc<UserSlots>,
    user: String,
}

impl UserSlots {
    pub(crate) fn new(cap: Option<usize>, users: Vec<String>) -> Self {
        Self {
            cap,
            users,
            counts: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        }
    }

    pub(crate) fn is_capped(&self) -> bool {
        self.cap.is_some()
    }

    /// A slot for `user`, unless the user is at its cap.
    pub(crate) fn try_take(self: &Arc<Self>, user: &str) -> Option<UserSlot> {
        let mut counts = self.counts.lock().expect("user slots lock");
        let n = counts.entry(user.to_string()).or_default();
        if self.cap.is_some_and(|cap| *n >= cap) {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            slots: self.clone(),
            user: user.to_string(),
        })
    }

    /// A slot for a delivery the gate admitted under its own per-user
    /// limit: counted, never refused.
    pub(crate) fn take_counted(self: &Arc<Self>, user: &str) -> UserSlot {
        *self
            .counts
            .lock()
            .expect("user slots lock")
            .entry(user.to_string())
            .or_default() += 1;
        UserSlot {
            slots: self.clone(),
            user: user.to_string(),
        }
    }

    /// Each configured user below its cap, with how many more it may start.
    pub(crate) fn rooms(&self) -> Vec<(String, usize)> {
        let Some(cap) = self.cap else {
            return Vec::new();
        };
        let counts = self.counts.lock().expect("user slots lock");
        self.users
            .iter()
            .filter_map(|u| {
                let used = counts.get(u).copied().unwrap_or(0);
                (used < cap).then(|| (u.clone(), cap - used))
            })
            .collect()
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().expect("user slots lock");
        if let Some(n) = counts.get_mut(&self.user) {
            let was_full = self.slots.cap.is_some_and(|cap| *n >= cap);
            *n = n.saturating_sub(1);
            if was_full {
                self.slots.freed.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_at_its_cap_gets_no_slot_and_no_room_until_one_is_freed() {
        let slots = Arc::new(UserSlots::new(Some(2), vec!["a".into(), "b".into()]));
        let first = slots.try_take("a").unwrap();
        let _second = slots.try_take("a").unwrap();
        assert!(slots.try_take("a").is_none());
        assert_eq!(slots.rooms(), vec![("b".to_string(), 2)]);
        drop(first);
        assert_eq!(
            slots.rooms(),
            vec![("a".to_string(), 1), ("b".to_string(), 2)]
        );
        assert!(slots.try_take("a").is_some());
        let open = Arc::new(UserSlots::new(None, vec!["a".into()]));
        let held: Vec<_> = (0..100).map(|_| open.try_take("a").unwrap()).collect();
        assert_eq!(held.len(), 100);
    }
}
