//! Playbook slots: at most `orchestrator.max_concurrent_playbooks` playbook executions run at
//! once; the others wait in a queue and start in the order they arrived when a slot frees.
//!
//! A slot is held by a playbook execution name ([`crate::correlate::execution_name`]) from the
//! moment its triage claims it until the recorder records the playbook's end (finished or
//! stopped). A queued execution's triage polls ([`Slots::claim`] again every
//! `orchestrator.queue_poll_seconds`); only the head of the queue may take a free slot, so they
//! start in order. A head that stopped polling (its triage execution was stopped or failed)
//! would block everyone behind it: a queued entry not polled for [`STALE_POLLS`] intervals is
//! dropped, and if its triage comes back it queues again at the end.
//!
//! This module is the rule only; the state lives in one item of the keys table, written with a
//! version condition (`ir_aws::store::PlaybookSlots`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How many poll intervals a queued entry may go without polling before it is dropped.
pub const STALE_POLLS: i64 = 4;

/// One waiting execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    /// The playbook execution name.
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub queued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub polled_at: OffsetDateTime,
}

/// The running executions and the queue, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slots {
    pub running: Vec<String>,
    pub queue: Vec<Waiting>,
}

/// What a claim got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A slot, just now; `waited` is how long the execution was queued (zero if it never was).
    Granted { waited_seconds: i64 },
    /// The execution already holds a slot (a retried claim).
    Held,
    /// No slot: the execution waits at `position` (1 = next), behind `running` executions.
    Queued { position: usize, running: usize },
}

impl Slots {
    /// Claims a slot for `name` at `now`, with at most `max` running and queued entries not
    /// polled for [`STALE_POLLS`] × `poll_seconds` dropped first. A free slot goes to the head
    /// of the queue, so a newcomer queues behind anyone already waiting.
    pub fn claim(&mut self, name: &str, max: u32, poll_seconds: u32, now: OffsetDateTime) -> Claim {
        if self.running.iter().any(|r| r == name) {
            return Claim::Held;
        }
        let stale = time::Duration::seconds(STALE_POLLS * i64::from(poll_seconds.max(1)));
        self.queue
            .retain(|w| w.name == name || now - w.polled_at <= stale);
        let free = self.running.len() < usize::try_from(max).unwrap_or(usize::MAX);
        let position = self.queue.iter().position(|w| w.name == name);
        let next = position == Some(0) || (position.is_none() && self.queue.is_empty());
        if free && next {
            let waited_seconds = match position {
                Some(_) => (now - self.queue.remove(0).queued_at).whole_seconds(),
                None => 0,
            };
            self.running.push(name.to_owned());
            return Claim::Granted { waited_seconds };
        }
        let running = self.running.len();
        match position {
            Some(i) => {
                self.queue[i].polled_at = now;
                Claim::Queued {
                    position: i + 1,
                    running,
                }
            }
            None => {
                self.queue.push(Waiting {
                    name: name.to_owned(),
                    queued_at: now,
                    polled_at: now,
                });
                Claim::Queued {
                    position: self.queue.len(),
                    running,
                }
            }
        }
    }

    /// `name` leaves: its slot is freed, or its place in the queue given up. Whether anything
    /// changed (a retried call changes nothing).
    pub fn leave(&mut self, name: &str) -> bool {
        let before = (self.running.len(), self.queue.len());
        self.running.retain(|r| r != name);
        self.queue.retain(|w| w.name != name);
        before != (self.running.len(), self.queue.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_800_000_000 + seconds)
    }

    #[test]
    fn beyond_the_limit_executions_wait_and_start_in_arrival_order() {
        let mut s = Slots::default();
        assert_eq!(
            s.claim("a", 2, 30, at(0)),
            Claim::Granted { waited_seconds: 0 }
        );
        assert_eq!(
            s.claim("b", 2, 30, at(1)),
            Claim::Granted { waited_seconds: 0 }
        );
        assert_eq!(s.claim("a", 2, 30, at(2)), Claim::Held);
        assert_eq!(
            s.claim("c", 2, 30, at(3)),
            Claim::Queued {
                position: 1,
                running: 2
            }
        );
        assert_eq!(
            s.claim("d", 2, 30, at(4)),
            Claim::Queued {
                position: 2,
                running: 2
            }
        );
        assert!(s.leave("a"));
        assert!(!s.leave("a"), "a second leave changes nothing");
        // d polls first: the slot is c's, who arrived first.
        assert_eq!(
            s.claim("d", 2, 30, at(10)),
            Claim::Queued {
                position: 2,
                running: 1
            }
        );
        assert_eq!(
            s.claim("c", 2, 30, at(11)),
            Claim::Granted { waited_seconds: 8 }
        );
        assert_eq!(s.running, ["b", "c"]);
        // A newcomer queues behind d even once a slot is free.
        s.leave("b");
        assert_eq!(
            s.claim("e", 2, 30, at(12)),
            Claim::Queued {
                position: 2,
                running: 1
            }
        );
        assert_eq!(
            s.claim("d", 2, 30, at(13)),
            Claim::Granted { waited_seconds: 9 }
        );
        assert_eq!(
            s.claim("e", 2, 30, at(14)),
            Claim::Queued {
                position: 1,
                running: 2
            }
        );
    }

    #[test]
    fn a_head_that_stopped_polling_is_dropped_and_blocks_nobody() {
        let mut s = Slots::default();
        s.claim("a", 1, 10, at(0));
        assert!(matches!(
            s.claim("b", 1, 10, at(1)),
            Claim::Queued { position: 1, .. }
        ));
        assert!(matches!(
            s.claim("c", 1, 10, at(2)),
            Claim::Queued { position: 2, .. }
        ));
        s.leave("a");
        // c keeps polling; b stopped at 1 s. Within four intervals b keeps its place.
        assert!(matches!(
            s.claim("c", 1, 10, at(41)),
            Claim::Queued { position: 2, .. }
        ));
        assert_eq!(
            s.claim("c", 1, 10, at(42)),
            Claim::Granted { waited_seconds: 40 }
        );
        // b comes back: it queues again, at the end.
        assert_eq!(
            s.claim("b", 1, 10, at(43)),
            Claim::Queued {
                position: 1,
                running: 1
            }
        );
    }

    #[test]
    fn leaving_the_queue_gives_up_the_place() {
        let mut s = Slots::default();
        s.claim("a", 1, 30, at(0));
        s.claim("b", 1, 30, at(1));
        s.claim("c", 1, 30, at(2));
        assert!(s.leave("b"));
        assert_eq!(
            s.claim("c", 1, 30, at(3)),
            Claim::Queued {
                position: 1,
                running: 1
            }
        );
        s.leave("a");
        assert_eq!(
            s.claim("c", 1, 30, at(4)),
            Claim::Granted { waited_seconds: 2 }
        );
    }
}
