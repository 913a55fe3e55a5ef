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
}

/// The calls that may be charged in one statement, without locking first:
/// those without a requestId whose account, as read, has room for every
/// such call of the batch on it. The statement checks again on the locked
/// row; this only avoids sending calls that would certainly not fit.
pub fn fit_as_read(asks: &[Ask]) -> Vec<bool> {
    let mut wanted: BTreeMap<CounterKey, i64> = BTreeMap::new();
    for ask in asks.iter().filter(|ask| !ask.has_request_id) {
        *wanted.entry(ask.counter).or_default() += ask.credits;
    }
    asks.iter()
        .map(|ask| {
            !ask.has_request_id && ask.used_before + wanted[&ask.counter] <= ask.monthly_credits
        })
        .collect()
}

/// A call's fate under its counter's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Charged; the counter stands at `used` after it.
    Admitted { used: i64 },
    /// Does not fit; the counter stands at `used` without it.
    Exceeded { used: i64 },
}

/// Admits calls in arrival order while their credits fit, moving each
/// counter (`used`, keyed by counter) as it goes: a batch that would cross
/// the limit admits exactly the calls that fit, and a later, smaller call
/// may still fit after a larger one was refused.
pub fn admit_in_order(used: &mut BTreeMap<CounterKey, i64>, asks: &[Ask]) -> Vec<Admission> {
    asks.iter()
        .map(|ask| {
            let counter = used.entry(ask.counter).or_default();
            if *counter + ask.credits <= ask.monthly_credits {
                *counter += ask.credits;
                Admission::Admitted { used: *counter }
            } else {
                Admission::Exceeded { used: *counter }
            }
        })
        .collect()
}

/// After one statement added each account's calls to its counter, the
/// total each call saw: the batch's calls on an account come last in its
/// counter, in arrival order, so each gets the total up to and including
/// itself. `None` for calls on accounts the statement did not charge.
pub fn running_totals(
    calls: &[(Uuid, i64)],
    charged_totals: &HashMap<Uuid, i64>,
) -> Vec<Option<i64>> {
    let mut later: HashMap<Uuid, i64> = HashMap::new();
    let mut totals = vec![None; calls.len()];
    for (index, (account, credits)) in calls.iter().enumerate().rev() {
        if let Some(total) = charged_totals.get(account) {
            let after_this = later.entry(*account).or_default();
            totals[index] = Some(total - *after_this);
            *after_this += credits;
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
        assert_eq!(
            admit_in_order(&mut used, &asks),
            [
                Admission::Admitted { used: 98 },
                Admission::Exceeded { used: 98 },
                Admission::Admitted { used: 100 },
                Admission::Admitted { used: 100 },
                Admission::Exceeded { used: 100 },
            ]
        );
        assert_eq!(used[&counter(1)], 100);
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
