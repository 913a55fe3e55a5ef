//! The write model of a charge, built once from the calls admitted and
//! rendered per path: what each counter is given, one event per call, one
//! rollup per key and cycle (and the same per key and hour, and per key and
//! day: a batch shares one instant), the keys whose lastUsedAt moves, and
//! the usage alerts the counters' moves raise (`counters::raise_alerts`). The
//! one-statement path sends it whole, priced, in one statement, with the
//! slots its limited keys' windows give (`rate_windows::take_slots`); the
//! locked path sets each counter to its locked value plus its credits and
//! writes the rest beside it (one statement on PostgreSQL, several on
//! SQLite), and sets the windows from their locked values itself.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{DbBackend, Value};
use uuid::Uuid;

use super::call::Call;
use crate::domain::admission::CounterKey;
use crate::domain::RateLimit;
use crate::store::counters::{self, LAST_USED_PRECISION, TIME_ROLLUPS};

/// What one counter is given, and the pricing the calls assumed.
struct CounterAddition {
    credits: i64,
    anchor: DateTime<Utc>,
    monthly_credits: i64,
}

/// One key's share of a counter.
#[derive(Default)]
struct Rollup {
    credits: i64,
    requests: i64,
}

/// One charged call.
struct Event {
    account_id: Uuid,
    key_id: Uuid,
    credits: i32,
    endpoint: Option<String>,
}

#[derive(Default)]
pub struct ChargeWrites {
    counters: BTreeMap<CounterKey, CounterAddition>,
    events: Vec<Event>,
    /// By (account, key, cycle start).
    rollups: BTreeMap<(Uuid, Uuid, DateTime<Utc>), Rollup>,
    /// (account, key) of every key charged, with the rate limit its calls
    /// assumed (the one statement checks the key still has it).
    touched: BTreeMap<(Uuid, Uuid), Option<RateLimit>>,
    /// By key: the slots each limited key's calls take in its window.
    slots: BTreeMap<Uuid, Slots>,
}

/// One limited key's share of its window.
struct Slots {
    account_id: Uuid,
    window_start: DateTime<Utc>,
    calls: i64,
}

impl ChargeWrites {
    /// The writes of charging `calls`, all of them.
    pub fn of<'c, 'a: 'c>(calls: impl IntoIterator<Item = &'c Call<'a>>) -> Self {
        let mut writes = Self::default();
        for call in calls {
            writes
                .counters
                .entry(call.counter())
                .or_insert(CounterAddition {
                    credits: 0,
                    anchor: call.account.anchor,
                    monthly_credits: call.account.monthly_credits,
                })
                .credits += call.credits();
            let rollup = writes
                .rollups
                .entry((call.account_id(), call.key.id, call.cycle.start))
                .or_default();
            rollup.credits += call.credits();
            rollup.requests += 1;
            writes.touched.insert(
                (call.account_id(), call.key.id),
                call.rate.map(|rate| rate.limit),
            );
            if let Some(rate) = call.rate {
                writes
                    .slots
                    .entry(call.key.id)
                    .or_insert(Slots {
                        account_id: call.account_id(),
                        window_start: rate.window.start,
                        calls: 0,
                    })
                    .calls += 1;
            }
            writes.events.push(Event {
                account_id: call.account_id(),
                key_id: call.key.id,
                credits: call.charge.credits,
                endpoint: call.charge.endpoint.clone(),
            });
        }
        writes
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// PostgreSQL's one statement: `counters::charge_in_one_statement` and its values.
    pub fn in_one_statement(&self, now: DateTime<Utc>) -> (String, Vec<Value>) {
        let mut values: Vec<Value> = Vec::new();
        for (counter, addition) in &self.counters {
            values.extend([
                counter.account_id.into(),
                counter.cycle_start.into(),
                addition.credits.into(),
                addition.anchor.into(),
                addition.monthly_credits.into(),
            ]);
        }
        for event in &self.events {
            values.extend([event.account_id.into(), event.key_id.into()]);
            values.extend(event_values(event, now).into_iter().skip(1));
        }
        for ((account, key, start), rollup) in &self.rollups {
            values.extend([(*account).into(), (*key).into()]);
            values.extend([
                (*start).into(),
                rollup.credits.into(),
                rollup.requests.into(),
            ]);
        }
        values.extend([now.into(), (now - LAST_USED_PRECISION).into()]);
        for ((account, key), limit) in &self.touched {
            values.extend([
                (*account).into(),
                (*key).into(),
                limit.map(|limit| limit.limit).into(),
                limit.map(|limit| limit.window_secs).into(),
            ]);
        }
        values.extend(time_buckets(now));
        for (key, slots) in &self.slots {
            values.extend([
                slots.account_id.into(),
                (*key).into(),
                slots.window_start.into(),
                slots.calls.into(),
            ]);
        }
        let sql = counters::charge_in_one_statement(
            self.counters.len(),
            self.events.len(),
            self.rollups.len(),
            self.touched.len(),
            self.slots.len(),
        );
        (sql, values)
    }

    /// The locked path's statements, each counter set to `locked` (its value
    /// under the lock) plus its credits. PostgreSQL takes them in one
    /// statement, to hold the counter locks for as few round trips as
    /// possible; SQLite, in-process, one by one.
    pub fn locked_statements(
        &self,
        locked: &BTreeMap<CounterKey, i64>,
        backend: DbBackend,
        now: DateTime<Utc>,
    ) -> Vec<(String, Vec<Value>)> {
        if self.is_empty() {
            return Vec::new();
        }
        let counter_rows = self.counters_after(locked);
        let events: Vec<Value> = self
            .events
            .iter()
            .flat_map(|e| event_values(e, now))
            .collect();
        let rollups = self.rollup_rows(None);
        let mut touch: Vec<Value> = vec![now.into(), (now - LAST_USED_PRECISION).into()];
        touch.extend(self.touched.keys().map(|(_, key)| Value::from(*key)));
        let (events_n, rollups_n, keys_n) =
            (self.events.len(), self.rollups.len(), self.touched.len());
        if backend == DbBackend::Postgres {
            let sql = counters::record_charges(counter_rows.len(), events_n, rollups_n, keys_n);
            let values = [
                counter_rows
                    .iter()
                    .flat_map(|row| row.values([row.after, row.before]))
                    .collect(),
                events,
                rollups,
                touch,
                time_buckets(now).collect(),
            ];
            return vec![(sql, values.concat())];
        }
        let mut statements: Vec<(String, Vec<Value>)> = counter_rows
            .iter()
            .map(|row| {
                let values = row.values([row.after]).collect();
                (counters::SET_COUNTER.to_owned(), values)
            })
            .collect();
        let mut moved: Vec<Value> = counter_rows
            .iter()
            .flat_map(|row| row.values([row.before, row.after]))
            .collect();
        moved.push(now.into());
        statements.push((counters::raise_alerts(counter_rows.len()), moved));
        statements.push((counters::insert_events(events_n, 1), events));
        statements.push((counters::add_to_rollups(rollups_n, 1), rollups));
        for interval in TIME_ROLLUPS {
            let rows = self.rollup_rows(Some(interval.bucket_of_charge(now)));
            statements.push((counters::add_to_time_rollup(interval, rollups_n, 1), rows));
        }
        statements.push((counters::touch_keys(keys_n, 1), touch));
        statements
    }

    /// Each counter's move: from its locked value to that plus its credits.
    fn counters_after(&self, locked: &BTreeMap<CounterKey, i64>) -> Vec<CounterMove> {
        self.counters
            .iter()
            .map(|(counter, addition)| {
                let before = locked.get(counter).copied().unwrap_or(0);
                CounterMove {
                    counter: *counter,
                    before,
                    after: before + addition.credits,
                }
            })
            .collect()
    }

    /// The rollups as rows of (key, bucket start, credits, requests): the
    /// cycle's start, or `bucket` for a time rollup's rows.
    fn rollup_rows(&self, bucket: Option<DateTime<Utc>>) -> Vec<Value> {
        self.rollups
            .iter()
            .flat_map(|((_, key, start), rollup)| {
                let bucket = bucket.unwrap_or(*start);
                [
                    (*key).into(),
                    bucket.into(),
                    rollup.credits.into(),
                    rollup.requests.into(),
                ]
            })
            .collect()
    }
}

/// A counter's move on the locked path: its total under the lock, and after.
struct CounterMove {
    counter: CounterKey,
    before: i64,
    after: i64,
}

impl CounterMove {
    /// The counter's row as a statement takes it: account, cycle start,
    /// then `totals` in the order the statement names them.
    fn values<const N: usize>(&self, totals: [i64; N]) -> impl Iterator<Item = Value> {
        [
            self.counter.account_id.into(),
            self.counter.cycle_start.into(),
        ]
        .into_iter()
        .chain(totals.into_iter().map(Value::from))
    }
}

/// The batch's bucket of each time rollup, in `TIME_ROLLUPS`' order.
fn time_buckets(now: DateTime<Utc>) -> impl Iterator<Item = Value> {
    TIME_ROLLUPS
        .into_iter()
        .map(move |interval| interval.bucket_of_charge(now).into())
}

/// An event's row: key, credits, endpoint, time.
fn event_values(event: &Event, now: DateTime<Utc>) -> [Value; 4] {
    [
        event.key_id.into(),
        event.credits.into(),
        event.endpoint.clone().into(),
        now.into(),
    ]
}
