//! Several nodes on one database: what they tell each other, and what the
//! API shows of them. The words travel as PostgreSQL notifications, at most
//! about 8,000 bytes each, so [`Signal::encode`] keeps them small and falls
//! back to [`Signal::Resync`] ("look at everything again") when a signal
//! would not fit.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::message::Arrival;

/// Longest payload sent; PostgreSQL refuses more than 8000 bytes.
pub const MAX_PAYLOAD: usize = 7900;

/// Something another node committed that this node may have to act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Signal {
    /// Messages became pending: plain ones for every node's scheduler,
    /// queued and flow-controlled ones for the leader's gate.
    Arrivals { arrivals: Vec<Arrival> },
    /// A queue was created, changed, paused, resumed or deleted.
    QueueChanged { user_id: String, name: String },
    /// A flow-control key was changed through the API; `reset_at` is set
    /// when its rate window restarted (pin, resetRate).
    KeyChanged {
        user_id: String,
        key: String,
        reset_at: Option<Millis>,
    },
    /// Messages of the user were cancelled (a queue's head may be free).
    Cancelled { user_id: String },
    /// A schedule was created or resumed and next fires at `at`.
    ScheduleDue { at: Millis },
    /// The user's signing keys were rotated.
    KeysRotated { user_id: String },
    /// Anything may have changed (a notification was too big, or some were
    /// missed while reconnecting): look at everything again.
    Resync,
    /// A node started listening: the others learn they are not alone (a
    /// node alone sends no signals).
    Joined,
}

impl Signal {
    /// What other nodes must hear of `arrivals`, as little as it can be:
    /// one per line of a queue or key (the leader's gate), and the earliest
    /// plain one if it is due by `soon` (the other nodes' schedulers may
    /// take it; a plain message due later is found by every scheduler when
    /// it next reads the due index, at most a lease later in a cluster).
    /// None when there is nothing to say.
    pub fn for_others(arrivals: &[Arrival], soon: Millis) -> Option<Signal> {
        let soon: Vec<Arrival> = arrivals
            .iter()
            .filter(|a| !a.is_plain() || a.due_at <= soon)
            .cloned()
            .collect();
        (!soon.is_empty()).then(|| Signal::arrivals(&soon))
    }

    /// The arrivals as few as they can be: the earliest plain one (every
    /// scheduler only needs the earliest due time) and one per line.
    pub fn arrivals(arrivals: &[Arrival]) -> Signal {
        let mut plain: Option<&Arrival> = None;
        let mut lines: Vec<Arrival> = Vec::new();
        for a in arrivals {
            if a.is_plain() {
                if plain.is_none_or(|p| a.due_at < p.due_at) {
                    plain = Some(a);
                }
                continue;
            }
            let same = |b: &&mut Arrival| {
                b.user_id == a.user_id
                    && b.queue == a.queue
                    && b.flow_control_key == a.flow_control_key
            };
            match lines.iter_mut().find(same) {
                Some(line) => line.due_at = line.due_at.min(a.due_at),
                None => lines.push(a.clone()),
            }
        }
        lines.extend(plain.cloned());
        Signal::Arrivals { arrivals: lines }
    }

    /// The payload of a notification: JSON, or a resync when it would be
    /// too big to send.
    pub fn encode(&self) -> String {
        match serde_json::to_string(self) {
            Ok(json) if json.len() <= MAX_PAYLOAD => json,
            _ => serde_json::to_string(&Signal::Resync).expect("a unit variant serializes"),
        }
    }

    /// A payload read back; anything unreadable (from a newer version, say)
    /// is a resync.
    pub fn decode(payload: &str) -> Signal {
        serde_json::from_str(payload).unwrap_or(Signal::Resync)
    }
}

/// A node as `GET /v2/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    /// Where its API listens, as it announced itself.
    pub address: String,
    pub started_at: Millis,
    /// Its last heartbeat, on the database's clock.
    pub heartbeat_at: Millis,
    /// Whether it holds the leader lock now.
    pub leader: bool,
    /// Deliveries it has claimed and not yet recorded.
    pub claims: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(user: &str, due: Millis, queue: Option<&str>, key: Option<&str>) -> Arrival {
        Arrival {
            user_id: user.into(),
            due_at: due,
            queue: queue.map(String::from),
            flow_control_key: key.map(String::from),
        }
    }

    #[test]
    fn arrivals_keep_the_earliest_plain_one_and_one_per_line() {
        let s = Signal::arrivals(&[
            arrival("u", 30, None, None),
            arrival("u", 10, None, None),
            arrival("u", 50, Some("q"), None),
            arrival("u", 40, Some("q"), None),
            arrival("v", 60, None, Some("k")),
        ]);
        let Signal::Arrivals { arrivals } = s else {
            panic!("arrivals")
        };
        assert_eq!(
            arrivals,
            vec![
                arrival("u", 40, Some("q"), None),
                arrival("v", 60, None, Some("k")),
                arrival("u", 10, None, None),
            ]
        );
    }

    #[test]
    fn plain_arrivals_due_later_are_not_signalled() {
        let later = arrival("u", 5_000, None, None);
        let queued_later = arrival("u", 5_000, Some("q"), None);
        assert_eq!(
            Signal::for_others(std::slice::from_ref(&later), 1_000),
            None
        );
        assert_eq!(
            Signal::for_others(&[later.clone(), queued_later.clone()], 1_000),
            Some(Signal::Arrivals {
                arrivals: vec![queued_later]
            })
        );
        assert!(Signal::for_others(&[later], 5_000).is_some());
    }

    #[test]
    fn signals_round_trip_and_oversized_or_unknown_ones_resync() {
        let s = Signal::KeyChanged {
            user_id: "u".into(),
            key: "k".into(),
            reset_at: Some(5),
        };
        assert_eq!(Signal::decode(&s.encode()), s);
        let many: Vec<Arrival> = (0..2000)
            .map(|i| arrival("u", i, Some(&format!("queue-{i}")), None))
            .collect();
        let big = Signal::arrivals(&many);
        assert_eq!(Signal::decode(&big.encode()), Signal::Resync);
        assert_eq!(
            Signal::decode("{\"t\":\"from_the_future\"}"),
            Signal::Resync
        );
    }
}
