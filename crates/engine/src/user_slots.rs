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
//! The cap is exact, not "one over now and then": a plain slot is taken
//! under the gate's lock (`Gate::with_gated`), where the gate also checks
//! the cap, and the scheduler reserves its users' rooms before it claims
//! (the claim is a store call: no lock may be held across it), turns each
//! claimed message into a slot of that reservation, and gives back the
//! rest.

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

    /// Takes every configured user's room (see `rooms`) as plain slots
    /// held by the answer until it hands them out or is dropped.
    pub(crate) fn reserve(self: &Arc<Self>, gated: impl Fn(&str) -> usize) -> Reservation {
        let rooms = self.rooms(gated);
        let mut counts = self.counts.lock().expect("user slots lock");
        for (user, room) in &rooms {
            *counts.entry(user.clone()).or_default() += room;
        }
        Reservation {
            slots: self.clone(),
            rooms: rooms.into_iter().collect(),
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

/// Plain slots taken ahead of a claim, per user.
pub(crate) struct Reservation {
    slots: Arc<UserSlots>,
    rooms: HashMap<String, usize>,
}

impl Reservation {
    /// What is reserved, per user (what the claim may take).
    pub(crate) fn rooms(&self) -> Vec<(String, usize)> {
        let mut rooms: Vec<_> = self.rooms.iter().map(|(u, n)| (u.clone(), *n)).collect();
        rooms.sort();
        rooms
    }

    /// One reserved slot of `user`, now a delivery's; None when the
    /// reservation holds none for it.
    pub(crate) fn take(&mut self, user: &str) -> Option<UserSlot> {
        let n = self.rooms.get_mut(user).filter(|n| **n > 0)?;
        *n -= 1;
        Some(UserSlot {
            slots: self.slots.clone(),
            user: user.to_string(),
        })
    }

    /// Gives back the slots not handed out; answers the users who got
    /// some back (the gate may have held their lines on the cap meanwhile).
    pub(crate) fn release(mut self) -> Vec<String> {
        self.give_back()
    }

    fn give_back(&mut self) -> Vec<String> {
        let mut counts = self.slots.counts.lock().expect("user slots lock");
        let mut freed = Vec::new();
        for (user, n) in self.rooms.drain().filter(|(_, n)| *n > 0) {
            if let Some(c) = counts.get_mut(&user) {
                *c = c.saturating_sub(n);
            }
            freed.push(user);
        }
        freed.sort();
        freed
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.give_back();
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
    fn a_reservation_holds_the_room_until_handed_out_or_given_back() {
        let slots = Arc::new(UserSlots::new(Some(3), vec!["a".into(), "b".into()]));
        let _held = slots.try_take("a", 0).unwrap();
        let mut r = slots.reserve(|_| 0);
        assert_eq!(r.rooms(), vec![("a".to_string(), 2), ("b".to_string(), 3)]);
        // While reserved, nobody else gets in.
        assert!(slots.try_take("a", 0).is_none());
        assert!(slots.rooms(|_| 0).is_empty());
        let taken = r.take("a").unwrap();
        assert_eq!(slots.plain("a"), 3);
        assert_eq!(r.release(), vec!["a".to_string(), "b".to_string()]);
        assert_eq!(slots.plain("a"), 2, "the held slot and the taken one");
        assert_eq!(slots.plain("b"), 0);
        drop(taken);
        assert_eq!(slots.plain("a"), 1);
        // A reservation dropped unreleased gives back too; none beyond it.
        let mut r = slots.reserve(|_| 0);
        assert!(r.take("b").is_some());
        drop(r);
        assert_eq!(
            slots.plain("b"),
            0,
            "the slot taken was dropped with its message"
        );
        let mut r = slots.reserve(|_| 0);
        assert!(r.take("zzz").is_none());
    }
}
