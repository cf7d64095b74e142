//! Message priority: six levels, mapped to SMTP MT-PRIORITY (RFC 6710) and to the three
//! X.400 priorities (X.411 `Priority`).
//!
//! The six levels are the precedences of STANAG 4406 / ACP 123, and their MT-PRIORITY values
//! are those of RFC 6710's STANAG 4406 priority profile (Appendix C). The X.400 mapping follows
//! ACP 123: Deferred and Routine travel as non-urgent, Normal ("Priority" in STANAG terms) and
//! Immediate as normal, Flash and Override as urgent. A message with no priority is `Normal`.

/// A message's priority. Ordered: `Override` is the highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Priority {
    /// The lowest: deliver when nothing else waits.
    Deferred = 0,
    /// Below normal (X.400 non-urgent).
    Routine = 1,
    /// The default (MT-PRIORITY 0, X.400 normal).
    #[default]
    Normal = 2,
    /// Above normal.
    Immediate = 3,
    /// High (X.400 urgent).
    Flash = 4,
    /// The highest.
    Override = 5,
}

/// The X.411 `Priority` of a message envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum X400Priority {
    /// `normal (0)`
    Normal,
    /// `non-urgent (1)`
    NonUrgent,
    /// `urgent (2)`
    Urgent,
}

/// Lowest MT-PRIORITY value (RFC 6710 §3).
pub const MT_PRIORITY_MIN: i8 = -9;
/// Highest MT-PRIORITY value (RFC 6710 §3).
pub const MT_PRIORITY_MAX: i8 = 9;

impl Priority {
    /// Every level, lowest first.
    pub const ALL: [Priority; 6] = [
        Priority::Deferred,
        Priority::Routine,
        Priority::Normal,
        Priority::Immediate,
        Priority::Flash,
        Priority::Override,
    ];

    /// The level as a number 0..=5, lowest first.
    pub fn level(self) -> u8 {
        self as u8
    }

    /// The level from its number; `None` above 5.
    pub fn from_level(level: u8) -> Option<Self> {
        Self::ALL.get(usize::from(level)).copied()
    }

    /// The MT-PRIORITY value sent for this level (RFC 6710 Appendix C).
    pub fn mt_priority(self) -> i8 {
        match self {
            Priority::Deferred => -4,
            Priority::Routine => -2,
            Priority::Normal => 0,
            Priority::Immediate => 2,
            Priority::Flash => 4,
            Priority::Override => 6,
        }
    }

    /// The level for a received MT-PRIORITY value, or `None` outside -9..=9. Values between two
    /// levels take the lower one: an MTA may lower a priority it cannot honour exactly, never
    /// raise it.
    pub fn from_mt_priority(value: i8) -> Option<Self> {
        if !(MT_PRIORITY_MIN..=MT_PRIORITY_MAX).contains(&value) {
            return None;
        }
        Some(
            Self::ALL
                .iter()
                .rev()
                .copied()
                .find(|p| p.mt_priority() <= value)
                .unwrap_or(Priority::Deferred),
        )
    }

    /// The X.400 priority this level travels as.
    pub fn x400(self) -> X400Priority {
        match self {
            Priority::Deferred | Priority::Routine => X400Priority::NonUrgent,
            Priority::Normal | Priority::Immediate => X400Priority::Normal,
            Priority::Flash | Priority::Override => X400Priority::Urgent,
        }
    }

    /// The level for a received X.400 priority.
    pub fn from_x400(p: X400Priority) -> Self {
        match p {
            X400Priority::NonUrgent => Priority::Routine,
            X400Priority::Normal => Priority::Normal,
            X400Priority::Urgent => Priority::Flash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt_priority_round_trips_and_rounds_down() {
        for p in Priority::ALL {
            assert_eq!(Priority::from_mt_priority(p.mt_priority()), Some(p));
        }
        assert_eq!(Priority::from_mt_priority(-9), Some(Priority::Deferred));
        assert_eq!(Priority::from_mt_priority(-1), Some(Priority::Routine));
        assert_eq!(Priority::from_mt_priority(1), Some(Priority::Normal));
        assert_eq!(Priority::from_mt_priority(9), Some(Priority::Override));
        assert_eq!(Priority::from_mt_priority(10), None);
        assert_eq!(Priority::from_mt_priority(-10), None);
    }

    #[test]
    fn x400_mapping() {
        for p in [
            X400Priority::NonUrgent,
            X400Priority::Normal,
            X400Priority::Urgent,
        ] {
            assert_eq!(Priority::from_x400(p).x400(), p);
        }
        assert!(Priority::Override > Priority::Normal);
        assert_eq!(Priority::default(), Priority::Normal);
        assert_eq!(Priority::from_level(5), Some(Priority::Override));
        assert_eq!(Priority::from_level(6), None);
    }
}
