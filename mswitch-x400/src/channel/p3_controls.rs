//! Delivery controls (X.411 §8.3.1.3): what a bound MTS user lets the MTA deliver on its
//! association, and what the MTA therefore holds.
//!
//! The controls in force on an association are the last `delivery-control` with `restrict`
//! TRUE (absent controls restrict nothing); `restrict` FALSE removes them. A delivery the
//! controls do not permit is held: the P3 delivery channel answers "try later" and the QMGR
//! retries it on its schedule (and at once for the deliveries a later `delivery-control`
//! permits). Evaluated: permissible operations (message delivery, report delivery), maximum
//! content length, lowest priority and content types, the last three for messages only.
//! Recorded but not evaluated: encoded information types and the security context (the
//! switch handles neither EIT conversion nor security labels).
//!
//! The `Waiting` result of a `delivery-control` lists what the channel has held on that
//! association since it was bound (at most [`MAX_HELD`] deliveries) and the new controls still
//! hold: the operations, the reasons (long content, low priority) and the content types.
//! Messages waiting for the user agent that the channel has not tried on this association are
//! not counted.

use std::collections::HashMap;

use mswitch_core::id::QueueId;

use crate::mts::{BitString, ContentType, Priority};
use crate::p3::P3Operation;
use crate::p3::types::{Controls, Waiting, operations, waiting_messages};

/// Deliveries remembered per association for the `Waiting` result.
pub(crate) const MAX_HELD: usize = 4096;

/// What delivery controls look at in a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Traits {
    /// A report delivery (else a message delivery).
    pub(crate) report: bool,
    /// Content length in octets (messages).
    pub(crate) length: usize,
    /// Priority (messages).
    pub(crate) priority: Priority,
    /// Content type (messages).
    pub(crate) content_type: Option<ContentType>,
}

impl Traits {
    /// The traits of a delivery operation; `None` for other operations.
    pub(crate) fn of(operation: &P3Operation) -> Option<Traits> {
        match operation {
            P3Operation::MessageDelivery(d) => Some(Traits {
                report: false,
                length: d.content.len(),
                priority: d.envelope.other_fields.priority.unwrap_or_default(),
                content_type: Some(d.envelope.other_fields.content_type.clone()),
            }),
            P3Operation::ReportDelivery(_) => Some(Traits {
                report: true,
                length: 0,
                priority: Priority::Normal,
                content_type: None,
            }),
            _ => None,
        }
    }
}

/// Why the controls hold a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Hold {
    /// The operation is not permitted.
    pub(crate) operation: bool,
    /// Longer than the permissible maximum content length.
    pub(crate) long_content: bool,
    /// Below the permissible lowest priority.
    pub(crate) low_priority: bool,
    /// Not of a permissible content type.
    pub(crate) content_type: bool,
}

impl Hold {
    fn any(self) -> bool {
        self.operation || self.long_content || self.low_priority || self.content_type
    }
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.operation {
            parts.push("operation not permitted");
        }
        if self.long_content {
            parts.push("content too long");
        }
        if self.low_priority {
            parts.push("priority too low");
        }
        if self.content_type {
            parts.push("content type not permitted");
        }
        f.write_str(&parts.join(", "))
    }
}

/// Orders X.411 priorities: non-urgent < normal < urgent.
fn rank(p: Priority) -> u8 {
    match p {
        Priority::NonUrgent => 0,
        Priority::Normal => 1,
        Priority::Urgent => 2,
    }
}

/// Whether `controls` hold a delivery with these traits; `None` when it is permitted.
pub(crate) fn holds(controls: &Controls, t: &Traits) -> Option<Hold> {
    if !controls.restrict {
        return None;
    }
    let bit = if t.report {
        operations::PROBE_SUBMISSION_OR_REPORT_DELIVERY
    } else {
        operations::MESSAGE_SUBMISSION_OR_MESSAGE_DELIVERY
    };
    let mut h = Hold {
        operation: !controls.permits_operation(bit),
        ..Hold::default()
    };
    if !t.report {
        h.long_content = controls
            .permissible_maximum_content_length
            .is_some_and(|max| i64::try_from(t.length).map_or(true, |l| l > max));
        h.low_priority = controls
            .permissible_lowest_priority
            .is_some_and(|lowest| rank(t.priority) < rank(lowest));
        h.content_type = match (&controls.permissible_content_types, &t.content_type) {
            (Some(types), Some(c)) => !types.contains(c),
            _ => false,
        };
    }
    h.any().then_some(h)
}

/// The delivery controls of one association and the deliveries they held.
#[derive(Debug, Default)]
pub(crate) struct AssociationControls {
    controls: Option<Controls>,
    held: HashMap<(QueueId, usize), Traits>,
}

impl AssociationControls {
    /// Whether the controls in force hold this delivery; if so it is remembered under `key`
    /// (the queued message and recipient) for the `Waiting` result.
    pub(crate) fn check(&mut self, key: (QueueId, usize), t: &Traits) -> Option<Hold> {
        let hold = holds(self.controls.as_ref()?, t)?;
        if self.held.len() < MAX_HELD || self.held.contains_key(&key) {
            self.held.insert(key, t.clone());
        }
        Some(hold)
    }

    /// Forgets a delivery made.
    pub(crate) fn delivered(&mut self, key: (QueueId, usize)) {
        self.held.remove(&key);
    }

    /// Puts `controls` in force (or removes them all when `restrict` is FALSE). Returns what
    /// they still hold and the messages of the deliveries they now permit.
    pub(crate) fn set(&mut self, controls: Controls) -> (Waiting, Vec<QueueId>) {
        self.controls = controls.restrict.then_some(controls);
        let mut waiting = Waiting::default();
        let mut ops = BitString::new();
        let mut why = BitString::new();
        let mut released = Vec::new();
        let controls = self.controls.clone();
        self.held.retain(|&(queue_id, _), t| {
            let Some(h) = controls.as_ref().and_then(|c| holds(c, t)) else {
                released.push(queue_id);
                return false;
            };
            ops.set_bit(
                if t.report {
                    operations::PROBE_SUBMISSION_OR_REPORT_DELIVERY
                } else {
                    operations::MESSAGE_SUBMISSION_OR_MESSAGE_DELIVERY
                },
                true,
            );
            if h.long_content {
                why.set_bit(waiting_messages::LONG_CONTENT, true);
            }
            if h.low_priority {
                why.set_bit(waiting_messages::LOW_PRIORITY, true);
            }
            if h.content_type
                && let Some(c) = &t.content_type
                && !waiting.waiting_content_types.contains(c)
            {
                waiting.waiting_content_types.push(c.clone());
            }
            true
        });
        waiting.waiting_operations = ops;
        waiting.waiting_messages = why;
        released.sort_unstable();
        released.dedup();
        (waiting, released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(length: usize, priority: Priority, ct: u16) -> Traits {
        Traits {
            report: false,
            length,
            priority,
            content_type: Some(ContentType::BuiltIn(ct)),
        }
    }

    fn report() -> Traits {
        Traits {
            report: true,
            length: 0,
            priority: Priority::Normal,
            content_type: None,
        }
    }

    fn only(bit: usize) -> BitString {
        let mut b = BitString::zeros(2);
        b.set_bit(bit, true);
        b
    }

    #[test]
    fn each_control_holds_what_it_does_not_permit() {
        let m = message(100, Priority::Normal, 22);
        assert_eq!(holds(&Controls::default(), &m), None, "nothing restricted");
        assert_eq!(holds(&Controls::remove(), &m), None);
        let none = Controls {
            permissible_operations: Some(BitString::new()),
            ..Controls::default()
        };
        assert!(holds(&none, &m).is_some_and(|h| h.operation));
        assert!(holds(&none, &report()).is_some_and(|h| h.operation));
        let reports_only = Controls {
            permissible_operations: Some(only(operations::PROBE_SUBMISSION_OR_REPORT_DELIVERY)),
            ..Controls::default()
        };
        assert!(holds(&reports_only, &m).is_some());
        assert_eq!(holds(&reports_only, &report()), None);
        let short = Controls {
            permissible_maximum_content_length: Some(99),
            ..Controls::default()
        };
        assert!(holds(&short, &m).is_some_and(|h| h.long_content && !h.operation));
        assert_eq!(holds(&short, &message(99, Priority::Normal, 22)), None);
        assert_eq!(
            holds(&short, &report()),
            None,
            "reports have no content length"
        );
        let urgent = Controls {
            permissible_lowest_priority: Some(Priority::Urgent),
            ..Controls::default()
        };
        assert!(holds(&urgent, &m).is_some_and(|h| h.low_priority));
        assert_eq!(holds(&urgent, &message(100, Priority::Urgent, 22)), None);
        let normal = Controls {
            permissible_lowest_priority: Some(Priority::Normal),
            ..Controls::default()
        };
        assert!(holds(&normal, &message(1, Priority::NonUrgent, 22)).is_some());
        assert_eq!(holds(&normal, &m), None);
        let ipm = Controls {
            permissible_content_types: Some(vec![ContentType::IPM_1988]),
            ..Controls::default()
        };
        assert_eq!(holds(&ipm, &m), None);
        assert!(holds(&ipm, &message(1, Priority::Normal, 35)).is_some_and(|h| h.content_type));
    }

    #[test]
    fn waiting_lists_what_the_new_controls_still_hold() {
        let mut a = AssociationControls::default();
        let m = message(5000, Priority::NonUrgent, 35);
        assert_eq!(a.check((QueueId(1), 0), &m), None, "no controls yet");
        let (w, released) = a.set(Controls {
            permissible_operations: Some(BitString::new()),
            ..Controls::default()
        });
        assert!(w.is_empty() && released.is_empty(), "nothing held yet");
        assert!(a.check((QueueId(1), 0), &m).is_some());
        assert!(a.check((QueueId(2), 0), &report()).is_some());
        // Reports allowed now; the message is long, non-urgent and of type 35.
        let (w, released) = a.set(Controls {
            permissible_operations: None,
            permissible_maximum_content_length: Some(1000),
            permissible_lowest_priority: Some(Priority::Normal),
            permissible_content_types: Some(vec![ContentType::IPM_1988]),
            ..Controls::default()
        });
        assert_eq!(released, vec![QueueId(2)]);
        assert!(
            w.waiting_operations
                .bit(operations::MESSAGE_SUBMISSION_OR_MESSAGE_DELIVERY)
        );
        assert!(
            !w.waiting_operations
                .bit(operations::PROBE_SUBMISSION_OR_REPORT_DELIVERY)
        );
        assert!(w.waiting_messages.bit(waiting_messages::LONG_CONTENT));
        assert!(w.waiting_messages.bit(waiting_messages::LOW_PRIORITY));
        assert_eq!(w.waiting_content_types, vec![ContentType::BuiltIn(35)]);
        // Lifted: nothing waits, the message is released.
        let (w, released) = a.set(Controls::remove());
        assert!(w.is_empty());
        assert_eq!(released, vec![QueueId(1)]);
        assert_eq!(a.check((QueueId(1), 0), &m), None);
    }

    #[test]
    fn a_delivery_made_is_forgotten_and_the_record_is_bounded() {
        let mut a = AssociationControls::default();
        a.set(Controls {
            permissible_operations: Some(BitString::new()),
            ..Controls::default()
        });
        for n in 0..MAX_HELD + 10 {
            assert!(a.check((QueueId(n as u64), 0), &report()).is_some());
        }
        assert_eq!(a.held.len(), MAX_HELD);
        a.delivered((QueueId(0), 0));
        assert_eq!(a.held.len(), MAX_HELD - 1);
    }
}
