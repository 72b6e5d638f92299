//! `--max-in-flight-per-user`: one user's slow destinations cannot take
//! every delivery slot. The cap covers a user's plain and gated (queued or
//! flow-controlled) deliveries together:
//!
//! - plain deliveries are counted here, and one starts (the due-now
//!   shortcut of a publish, or the scheduler's claim, which asks the store
//!   only for users with room) only while the user's plain plus gated
//!   deliveries are below the cap;
//! - gated deliveries are counted by the gate, which admits one only while
//!   the same sum is below the cap (and within the user's global
//!   parallelism).
//!
//! When a delivery ends, the other side is told: the scheduler through
//! `freed`, the gate through `Gate::user_freed`.
//!
//! A plain slot is taken under the gate's lock (`Gate::with_gated`), where
//! the gate also checks the cap, so the two sides never both take the last
//! place. The scheduler's claim is a store call, which no lock may be held
//! across: a publish or the gate may take a user's room during it, and the
//! message claimed then goes one over the cap, counted (`take_over`), so
//! nothing else of that user starts until it is below the cap again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

pub(crate) struct UserSlots {
    cap: Option<usize>,
    users: Vec<String>,
    /// Plain deliveries in flight per user.
    counts: Mutex<HashMap<String, usize>>,
    /// Told when a user that was at its cap finishes a delivery, so the
    /// scheduler claims that user's waiting messages.
    pub(crate) freed: Notify,
}

/// A plain delivery's slot of its user, given back on drop.
pub(crate) struct UserSlot {
    slots: Arc<UserSlots>,
    pub(crate) user: String,
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

    pub(crate) fn cap(&self) -> Option<usize> {
        self.cap
    }

    /// Plain deliveries of `user` in flight.
    pub(crate) fn plain(&self, user: &str) -> usize {
        let counts = self.counts.lock().expect("user slots lock");
        counts.get(user).copied().unwrap_or(0)
    }

    /// A slot for a plain delivery of `user`, who has `gated` deliveries in
    /// flight; None at the cap.
    pub(crate) fn try_take(self: &Arc<Self>, user: &str, gated: usize) -> Option<UserSlot> {
        let mut counts = self.counts.lock().expect("user slots lock");
        let n = counts.entry(user.to_string()).or_default();
        if self.cap.is_some_and(|cap| *n + gated >= cap) {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            slots: self.clone(),
            user: user.to_string(),
        })
    }

    /// A slot for a plain delivery of `user` already claimed, even over
    /// the cap (see the module's note): counted, so the cap holds the rest.
    pub(crate) fn take_over(self: &Arc<Self>, user: &str) -> UserSlot {
        let mut counts = self.counts.lock().expect("user slots lock");
        *counts.entry(user.to_string()).or_default() += 1;
        UserSlot {
            slots: self.clone(),
            user: user.to_string(),
        }
    }

    /// Each configured user below its cap, with how many more plain
    /// deliveries it may start; `gated` answers a user's gated ones.
    pub(crate) fn rooms(&self, gated: impl Fn(&str) -> usize) -> Vec<(String, usize)> {
        let Some(cap) = self.cap else {
            return Vec::new();
        };
        let counts = self.counts.lock().expect("user slots lock");
        self.users
            .iter()
            .filter_map(|u| {
                let used = counts.get(u).copied().unwrap_or(0) + gated(u);
                (used < cap).then(|| (u.clone(), cap - used))
            })
            .collect()
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().expect("user slots lock");
        if let Some(n) = counts.get_mut(&self.user) {
            *n = n.saturating_sub(1);
        }
        if self.slots.cap.is_some() {
            self.slots.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_gated_deliveries_share_the_cap() {
        let slots = Arc::new(UserSlots::new(Some(3), vec!["a".into(), "b".into()]));
        let first = slots.try_take("a", 0).unwrap();
        let _second = slots.try_take("a", 0).unwrap();
        assert!(
            slots.try_take("a", 1).is_none(),
            "2 plain + 1 gated is the cap"
        );
        let gated = |u: &str| if u == "a" { 1 } else { 0 };
        assert_eq!(slots.rooms(gated), vec![("b".to_string(), 3)]);
        drop(first);
        assert_eq!(slots.plain("a"), 1);
        assert_eq!(
            slots.rooms(gated),
            vec![("a".to_string(), 1), ("b".to_string(), 3)]
        );
        let open = Arc::new(UserSlots::new(None, vec!["a".into()]));
        let held: Vec<_> = (0..100)
            .map(|_| open.try_take("a", 1000).unwrap())
            .collect();
        assert_eq!(held.len(), 100);
        assert!(open.rooms(|_| 0).is_empty());
    }

    #[test]
    fn a_slot_taken_over_the_cap_is_counted() {
        let slots = Arc::new(UserSlots::new(Some(1), vec!["a".into()]));
        let first = slots.try_take("a", 0).unwrap();
        let over = slots.take_over("a");
        assert_eq!(slots.plain("a"), 2);
        drop(first);
        assert!(slots.try_take("a", 0).is_none(), "still at the cap");
        assert!(slots.rooms(|_| 0).is_empty());
        drop(over);
        assert!(slots.try_take("a", 0).is_some());
    }
}
