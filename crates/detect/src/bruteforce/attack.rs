//! The life of one attack: when it starts, when it is over, and when it has grown enough to be
//! reported again. One attack gives one alert, not one per window.

use maillog::Ts;

/// Where an attack by one attacker (address, network, campaign), or against one account, stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Attack {
    /// Never over its rule's threshold, or over it last more than `attack_quiet` ago.
    #[default]
    Quiet,
    /// Reported; the rule's condition last held at `last_over`.
    Active {
        /// When the condition first held (the attack's start as reported).
        start: Ts,
        /// When the condition last held.
        last_over: Ts,
        /// The rule's measure (failures, addresses) in the last alert.
        reported: u64,
    },
}

/// What one more event over the threshold means for the attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A new attack: report it.
    Started,
    /// The same attack, grown by the escalation factor since its last alert: report again.
    Escalated {
        /// The measure in the previous alert.
        before: u64,
    },
    /// The same attack, already reported.
    Continues,
}

impl Step {
    /// Whether this step raises an alert.
    pub fn reports(self) -> bool {
        !matches!(self, Step::Continues)
    }

    /// The previous alert's measure, for an escalation.
    pub fn escalated_from(self) -> Option<u64> {
        match self {
            Step::Escalated { before } => Some(before),
            _ => None,
        }
    }
}

impl Attack {
    /// Whether the attack is going on at `now` (its condition held within `quiet` seconds).
    pub fn is_active(&self, now: Ts, quiet: i64) -> bool {
        match self {
            Attack::Active { last_over, .. } => last_over.plus_secs(quiet) >= now,
            Attack::Quiet => false,
        }
    }

    /// When the current attack started, if one is going on.
    pub fn start(&self, now: Ts, quiet: i64) -> Option<Ts> {
        match self {
            Attack::Active { start, .. } if self.is_active(now, quiet) => Some(*start),
            _ => None,
        }
    }

    /// The rule's condition holds at `now` with `measure` (failures or addresses in the window).
    ///
    /// A new attack starts when the previous one has been quiet for more than `quiet` seconds.
    /// An attack escalates when `measure` reaches `factor` times the measure of its last alert
    /// (`factor` < 2 never escalates).
    pub fn over(&mut self, now: Ts, measure: u64, quiet: i64, factor: u64) -> Step {
        let active = self.is_active(now, quiet);
        match self {
            Attack::Active {
                last_over,
                reported,
                ..
            } if active => {
                *last_over = (*last_over).max(now);
                if factor >= 2 && measure >= reported.saturating_mul(factor) {
                    let before = *reported;
                    *reported = measure;
                    Step::Escalated { before }
                } else {
                    Step::Continues
                }
            }
            _ => {
                *self = Attack::Active {
                    start: now,
                    last_over: now,
                    reported: measure,
                };
                Step::Started
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn one_alert_per_attack_until_quiet_or_escalated() {
        let t0 = Ts::from_secs(1_000_000);
        let mut a = Attack::default();
        assert_eq!(a.over(t0, 21, 7 * DAY, 10), Step::Started);
        // Every hour for three days: the same attack.
        for h in 1..72 {
            assert_eq!(
                a.over(t0.plus_secs(h * 3600), 30, 7 * DAY, 10),
                Step::Continues
            );
        }
        // Ten times the reported rate: escalated, once.
        let t = t0.plus_secs(73 * 3600);
        assert_eq!(a.over(t, 210, 7 * DAY, 10), Step::Escalated { before: 21 });
        assert_eq!(a.over(t, 300, 7 * DAY, 10), Step::Continues);
        // Quiet for more than a week, then back: a new attack.
        let later = t.plus_secs(7 * DAY + 1);
        assert!(!a.is_active(later, 7 * DAY));
        assert_eq!(a.over(later, 25, 7 * DAY, 10), Step::Started);
        assert_eq!(a.start(later, 7 * DAY), Some(later));
    }
}
