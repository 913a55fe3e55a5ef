//! Which calls of a charging batch are charged, decided on numbers alone:
//! no I/O, so every rule here is unit-tested in milliseconds. The charging
//! paths (`metering`) read the numbers, call these, and write the result.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One account's counter for one billing cycle: what a charge adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterKey {
    pub account_id: Uuid,
    pub cycle_start: DateTime<Utc>,
}

/// What one call asks of its account's counter.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub counter: CounterKey,
    pub credits: i64,
    pub monthly_credits: i64,
    /// Credits used in the cycle when the call's key was read.
    pub used_before: i64,
    /// The call carries a requestId: it must be claimed, so never goes the
    /// one-statement way.
    pub has_request_id: bool,
    /// The call's key has a rate limit.
    pub rate: Option<RateAsk>,
}

/// What one call asks of its key's rate limit window: one slot.
#[derive(Debug, Clone, Copy)]
pub struct RateAsk {
    pub key: Uuid,
    pub limit: i64,
    /// Calls the key's current window had admitted when the key was read.
    pub used_before: i64,
}

/// The calls that may be charged in one statement, without locking first:
/// those without a requestId, with credits to charge, whose account, as
/// read, has room for every such call of the batch on it, and whose key's
/// window, as read, a slot for every such call on it. The statement checks
/// again on the locked rows; this only avoids sending calls that would
/// certainly not fit. A free check (credits 0, which arrives here only for
/// a limited key) takes its slot the locked way.
pub fn fit_as_read(asks: &[Ask]) -> Vec<bool> {
    let candidate = |ask: &Ask| !ask.has_request_id && ask.credits > 0;
    let mut wanted: BTreeMap<CounterKey, i64> = BTreeMap::new();
    let mut slots: HashMap<Uuid, i64> = HashMap::new();
    for ask in asks.iter().filter(|ask| candidate(ask)) {
        *wanted.entry(ask.counter).or_default() += ask.credits;
        if let Some(rate) = ask.rate {
            *slots.entry(rate.key).or_default() += 1;
        }
    }
    asks.iter()
        .map(|ask| {
            candidate(ask)
                && ask.used_before + wanted[&ask.counter] <= ask.monthly_credits
                && ask
                    .rate
                    .is_none_or(|rate| rate.used_before + slots[&rate.key] <= rate.limit)
        })
        .collect()
}

/// A call's fate under its counter's and its key window's locks, with the
/// counter (`used`) and the window (`window`, for a limited key) as they
/// stand after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub outcome: Outcome,
    pub used: i64,
    pub window: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Charged, and a slot of its key's window taken.
    Admitted,
    /// Its key's window has no slot left: nothing taken.
    RateLimited,
    /// Its credits do not fit: nothing taken.
    Exceeded,
}

/// Admits calls in arrival order while they fit, moving each counter
/// (`used`, keyed by counter) and each limited key's window (`windows`,
/// keyed by key: the calls its current window admitted) as it goes: a
/// batch that would cross a limit admits exactly the calls that fit, and a
/// later, smaller call may still fit after a larger one was refused. The
/// rate limit is weighed before the credits, so a call refused by both is
/// RATE_LIMITED.
pub fn admit_in_order(
    used: &mut BTreeMap<CounterKey, i64>,
    windows: &mut HashMap<Uuid, i64>,
    asks: &[Ask],
) -> Vec<Admission> {
    asks.iter()
        .map(|ask| {
            let counter = used.entry(ask.counter).or_default();
            let window = ask
                .rate
                .map(|rate| (rate.limit, windows.entry(rate.key).or_default()));
            let outcome = match &window {
                Some((limit, taken)) if **taken >= *limit => Outcome::RateLimited,
                _ if *counter + ask.credits > ask.monthly_credits => Outcome::Exceeded,
                _ => Outcome::Admitted,
            };
            let window = window.map(|(_, taken)| {
                if outcome == Outcome::Admitted {
                    *taken += 1;
                }
                *taken
            });
            if outcome == Outcome::Admitted {
                *counter += ask.credits;
            }
            Admission {
                outcome,
                used: *counter,
                window,
            }
        })
        .collect()
}

/// After one statement added each group's calls to its total (an
/// account's counter, a key's window), the total each call saw: the
/// batch's calls in a group come last in its total, in arrival order, so
/// each gets the total up to and including itself. `None` for calls in
/// groups the statement did not add to.
pub fn running_totals<G: Copy + Eq + std::hash::Hash>(
    calls: &[(G, i64)],
    charged_totals: &HashMap<G, i64>,
) -> Vec<Option<i64>> {
    let mut later: HashMap<G, i64> = HashMap::new();
    let mut totals = vec![None; calls.len()];
    for (index, (group, amount)) in calls.iter().enumerate().rev() {
        if let Some(total) = charged_totals.get(group) {
            let after_this = later.entry(*group).or_default();
            totals[index] = Some(total - *after_this);
            *after_this += amount;
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(n: u128) -> CounterKey {
        CounterKey {
            account_id: Uuid::from_u128(n),
            cycle_start: DateTime::from_timestamp(0, 0).unwrap(),
        }
    }

    fn ask(account: u128, credits: i64, used_before: i64, has_request_id: bool) -> Ask {
        Ask {
            counter: counter(account),
            credits,
            monthly_credits: 100,
            used_before,
            has_request_id,
            rate: None,
        }
    }

    fn limited(account: u128, key: u128, limit: i64, window_used: i64) -> Ask {
        Ask {
            rate: Some(RateAsk {
                key: Uuid::from_u128(key),
                limit,
                used_before: window_used,
            }),
            ..ask(account, 1, 0, false)
        }
    }

    fn admitted(used: i64, window: Option<i64>) -> Admission {
        Admission {
            outcome: Outcome::Admitted,
            used,
            window,
        }
    }

    #[test]
    fn calls_fit_as_read_only_when_all_of_their_account_fits() {
        let asks = [
            ask(1, 40, 10, false),
            ask(1, 40, 10, false),
            ask(2, 60, 0, false),
            ask(2, 50, 0, false),
            ask(3, 1, 0, true),
        ];
        assert_eq!(fit_as_read(&asks), [true, true, false, false, false]);
    }

    #[test]
    fn a_request_id_call_does_not_take_room_from_the_one_statement() {
        let asks = [ask(1, 90, 0, true), ask(1, 90, 0, false)];
        assert_eq!(fit_as_read(&asks), [false, true]);
    }

    #[test]
    fn admission_stops_exactly_at_the_limit_in_arrival_order() {
        let mut used = BTreeMap::from([(counter(1), 95)]);
        let asks = [
            ask(1, 3, 0, false),
            ask(1, 5, 0, false),
            ask(1, 2, 0, false),
            ask(2, 100, 0, false),
            ask(2, 1, 0, false),
        ];
        let exceeded = |used| Admission {
            outcome: Outcome::Exceeded,
            used,
            window: None,
        };
        assert_eq!(
            admit_in_order(&mut used, &mut HashMap::new(), &asks),
            [
                admitted(98, None),
                exceeded(98),
                admitted(100, None),
                admitted(100, None),
                exceeded(100),
            ]
        );
        assert_eq!(used[&counter(1)], 100);
    }

    #[test]
    fn a_window_admits_its_limit_and_refusals_take_no_slot() {
        let mut used = BTreeMap::from([(counter(1), 0)]);
        let mut windows = HashMap::from([(Uuid::from_u128(7), 1)]);
        let big = Ask {
            credits: 200,
            ..limited(1, 7, 3, 0)
        };
        let asks = [
            limited(1, 7, 3, 0),
            big,
            limited(1, 7, 3, 0),
            limited(1, 7, 3, 0),
        ];
        let outcomes: Vec<_> = admit_in_order(&mut used, &mut windows, &asks)
            .into_iter()
            .map(|a| (a.outcome, a.used, a.window))
            .collect();
        assert_eq!(
            outcomes,
            [
                (Outcome::Admitted, 1, Some(2)),
                (Outcome::Exceeded, 1, Some(2)),
                (Outcome::Admitted, 2, Some(3)),
                (Outcome::RateLimited, 2, Some(3)),
            ]
        );
        assert_eq!(windows[&Uuid::from_u128(7)], 3);
    }

    #[test]
    fn with_both_exhausted_the_rate_limit_is_said() {
        let mut used = BTreeMap::from([(counter(1), 100)]);
        let mut windows = HashMap::from([(Uuid::from_u128(7), 3)]);
        let admission = admit_in_order(&mut used, &mut windows, &[limited(1, 7, 3, 3)]);
        assert_eq!(admission[0].outcome, Outcome::RateLimited);
    }

    #[test]
    fn calls_fit_as_read_only_while_their_window_has_slots_for_all() {
        let asks = [
            limited(1, 7, 3, 1),
            limited(1, 7, 3, 1),
            limited(2, 8, 3, 1),
            limited(2, 8, 3, 1),
            limited(2, 8, 3, 1),
            Ask {
                credits: 0,
                ..limited(3, 9, 3, 0)
            },
        ];
        assert_eq!(fit_as_read(&asks), [true, true, false, false, false, false]);
    }

    #[test]
    fn each_call_sees_the_total_up_to_itself() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let calls = [(a, 1), (b, 5), (a, 2), (a, 3), (c, 1)];
        let charged = HashMap::from([(a, 16), (b, 5)]);
        assert_eq!(
            running_totals(&calls, &charged),
            [Some(11), Some(5), Some(13), Some(16), None]
        );
    }
}
