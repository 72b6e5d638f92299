//! The one place committed messages are announced.
//!
//! Every path that stores pending messages (a publish, the callbacks of an
//! outcome, a retry, a DLQ retry, a schedule fire) goes through a backend's
//! single insert or outcome function, which notes an [`Arrival`] per message;
//! after the commit the backend hands them to the announcer, which tells
//! every listener (the engine's scheduler and gate). A path cannot forget to
//! wake them: it never has to remember.

use std::sync::{RwLock, Weak};

use qstash_core::message::Arrival;

/// Hears of messages that became pending in a commit.
pub trait Listener: Send + Sync {
    fn arrived(&self, arrivals: &[Arrival]);
}

#[derive(Default)]
pub struct Announcer {
    /// Weak, so a listener that owns the store (the engine) is not kept
    /// alive by it.
    listeners: RwLock<Vec<Weak<dyn Listener>>>,
}

impl Announcer {
    pub fn listen(&self, listener: Weak<dyn Listener>) {
        self.listeners
            .write()
            .expect("announcer lock")
            .push(listener);
    }

    /// Called by a backend after a commit, never before.
    pub fn announce(&self, arrivals: &[Arrival]) {
        if arrivals.is_empty() {
            return;
        }
        for listener in self.listeners.read().expect("announcer lock").iter() {
            if let Some(l) = listener.upgrade() {
                l.arrived(arrivals);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Default)]
    struct Heard(Mutex<Vec<Arrival>>);

    impl Listener for Heard {
        fn arrived(&self, arrivals: &[Arrival]) {
            self.0.lock().unwrap().extend_from_slice(arrivals);
        }
    }

    #[test]
    fn every_live_listener_hears_and_dropped_ones_are_skipped() {
        let announcer = Announcer::default();
        let heard = Arc::new(Heard::default());
        let gone = Arc::new(Heard::default());
        let weak: Weak<dyn Listener> = Arc::downgrade(&heard) as Weak<dyn Listener>;
        announcer.listen(weak);
        announcer.listen(Arc::downgrade(&gone) as Weak<dyn Listener>);
        drop(gone);
        let a = Arrival {
            user_id: "u".into(),
            due_at: 5,
            queue: None,
            flow_control_key: Some("k".into()),
        };
        announcer.announce(std::slice::from_ref(&a));
        announcer.announce(&[]);
        assert_eq!(*heard.0.lock().unwrap(), vec![a]);
    }
}
