//! The write model of a charge: the rows (`store::counters::ChargeRows`)
//! of the calls admitted, built once and sent by either path. What each
//! counter is given, one event per key, credits and endpoint (with its
//! count of calls), one rollup per key and cycle (the statements add the
//! same to the batch's hour and day: a batch shares one instant), the keys
//! whose lastUsedAt moves, and each limited key's slots.
//! The one-statement path sends them whole, priced, in one statement
//! (`counters::charge_in_one_statement`); the locked path sets each counter
//! to its locked value plus its credits and writes the rest beside it
//! (`counters::record_charges`), and sets the windows itself.

use std::collections::hash_map::{Entry, HashMap};

use uuid::Uuid;

use super::call::Call;
use crate::store::counters::{ChargeRows, CounterAddition, EventRow};
use crate::store::rate_windows::Slots;

/// The rows of charging `calls`, all of them.
pub fn rows_of<'c, 'a: 'c>(calls: impl IntoIterator<Item = &'c Call<'a>>) -> ChargeRows {
    let mut rows = ChargeRows::default();
    let mut event_places = EventPlaces::new();
    for call in calls {
        rows.counters
            .entry(call.counter())
            .or_insert(CounterAddition {
                credits: 0,
                anchor: call.account.anchor,
                monthly_credits: call.account.monthly_credits,
            })
            .credits += call.credits();
        let rollup = rows
            .rollups
            .entry((call.account_id(), call.key.id, call.cycle.start))
            .or_default();
        rollup.credits += call.credits();
        rollup.requests += 1;
        rows.keys.insert(
            (call.account_id(), call.key.id),
            call.rate.map(|rate| rate.limit),
        );
        if let Some(rate) = call.rate {
            rows.slots
                .entry(call.key.id)
                .or_insert(Slots {
                    account_id: call.account_id(),
                    window_start: rate.window.start,
                    calls: 0,
                })
                .calls += 1;
        }
        add_event(&mut rows.events, &mut event_places, call);
    }
    rows
}

/// Where each event of a batch is in `ChargeRows::events`, by what makes
/// calls alike: their key, credits and endpoint.
type EventPlaces<'a> = HashMap<(Uuid, i32, Option<&'a str>), usize>;

/// Counts `call` in its event, made by its first call.
fn add_event<'a>(events: &mut Vec<EventRow>, places: &mut EventPlaces<'a>, call: &Call<'a>) {
    let alike = (
        call.key.id,
        call.charge.credits,
        call.charge.endpoint.as_deref(),
    );
    match places.entry(alike) {
        Entry::Occupied(place) => events[*place.get()].calls += 1,
        Entry::Vacant(place) => {
            place.insert(events.len());
            events.push(EventRow {
                account_id: call.account_id(),
                key_id: call.key.id,
                credits: call.charge.credits,
                endpoint: call.charge.endpoint.clone(),
                calls: 1,
            });
        }
    }
}
