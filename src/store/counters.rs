//! The statements that charge, each built with its values from the rows a
//! batch writes (`ChargeRows`, plain data that `metering::writes` makes
//! from the calls admitted): counters locked or added to, and the events,
//! rollups, lastUsedAt and usage alerts that every charge writes with them.
//! `metering::one_statement` and `metering::locked` run them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sea_orm::{DbBackend, FromQueryResult, Statement, Value};
use uuid::Uuid;

use super::rate_windows::{self, Slots};
use super::Binds;
use crate::domain::admission::CounterKey;
use crate::domain::{Interval, RateLimit};

/// How stale lastUsedAt may be. A hot key is used thousands of times a
/// second: rewriting its row for each batch would make one new row version
/// per batch (and long chains for every reader to walk), for a timestamp a
/// dashboard shows to the minute.
pub const LAST_USED_PRECISION: chrono::Duration = chrono::Duration::seconds(1);

/// What a batch's calls give one counter, and the pricing they assumed.
pub struct CounterAddition {
    pub credits: i64,
    pub anchor: DateTime<Utc>,
    pub monthly_credits: i64,
}

/// The event of a batch's calls alike: charged on one key, `credits` each,
/// for one endpoint. They share the batch's instant too, so one row with
/// their count says all that a row per call would.
pub struct EventRow {
    pub account_id: Uuid,
    pub key_id: Uuid,
    pub credits: i32,
    pub endpoint: Option<String>,
    pub calls: i32,
}

/// One key's share of a counter: added to its cycle's rollup, and to its
/// hour's and day's.
#[derive(Default)]
pub struct Rollup {
    pub credits: i64,
    pub requests: i64,
}

/// Where a rollup goes: (account, key, cycle start).
pub type RollupKey = (Uuid, Uuid, DateTime<Utc>);

/// Everything a batch of charges writes, as rows.
#[derive(Default)]
pub struct ChargeRows {
    pub counters: BTreeMap<CounterKey, CounterAddition>,
    /// One per key, credits and endpoint charged.
    pub events: Vec<EventRow>,
    pub rollups: BTreeMap<RollupKey, Rollup>,
    /// (account, key) of every key charged, with the rate limit its calls
    /// assumed (the one statement checks the key still has it).
    pub keys: BTreeMap<(Uuid, Uuid), Option<RateLimit>>,
    /// By key: the slots each limited key's calls take in its window. The
    /// one statement takes them; the locked path sets windows itself.
    pub slots: BTreeMap<Uuid, Slots>,
}

impl ChargeRows {
    /// Nothing charged: no call, so no counter either.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// A counter as `lock_counters` returns it, locked.
#[derive(FromQueryResult, Debug)]
pub struct LockedCounter {
    pub billing_account_id: Uuid,
    pub cycle_start: DateTime<Utc>,
    pub credits_used: i64,
}

/// A total after the one statement added to it: an account's counter
/// (`billing_account_id`) or a limited key's window (`api_key_id`).
#[derive(FromQueryResult, Debug)]
pub struct ChargedTotal {
    pub billing_account_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub total: i64,
}

/// Creates `counters` if missing and locks them: the no-op DO UPDATE takes
/// the row lock, so the totals read here stay true until the transaction
/// ends. In the set's order, which is account order.
pub fn lock_counters(backend: DbBackend, counters: &BTreeSet<CounterKey>) -> Statement {
    let mut binds = Binds::default();
    let rows: Vec<String> = counters
        .iter()
        .map(|c| {
            let (account, cycle) = (binds.value(c.account_id), binds.value(c.cycle_start));
            format!("({account}, {cycle}, 0)")
        })
        .collect();
    let sql = format!(
        "INSERT INTO billing_cycle_usage (billing_account_id, cycle_start, credits_used)
         VALUES {}
         ON CONFLICT (billing_account_id, cycle_start) DO UPDATE SET credits_used = billing_cycle_usage.credits_used
         RETURNING billing_account_id, cycle_start, credits_used",
        rows.join(", ")
    );
    binds.statement(backend, &sql)
}

/// A counter's move on the locked path: its total under the lock, and after.
struct CounterMove {
    counter: CounterKey,
    before: i64,
    after: i64,
}

impl CounterMove {
    /// The counter's row as (account, cycle start, then `totals`).
    fn cells(&self, totals: [i64; 2]) -> [Value; 4] {
        [
            self.counter.account_id.into(),
            self.counter.cycle_start.into(),
            totals[0].into(),
            totals[1].into(),
        ]
    }
}

/// The locked path's writes: each counter set to its total under the lock
/// (`locked`) plus its credits, and everything else beside it. PostgreSQL
/// takes them in one statement, to hold the counter locks for as few round
/// trips as possible; SQLite, in-process, one by one.
pub fn record_charges(
    rows: &ChargeRows,
    locked: &BTreeMap<CounterKey, i64>,
    backend: DbBackend,
    now: DateTime<Utc>,
) -> Vec<Statement> {
    if rows.is_empty() {
        return Vec::new();
    }
    let moves: Vec<CounterMove> = rows
        .counters
        .iter()
        .map(|(counter, addition)| {
            let before = locked.get(counter).copied().unwrap_or(0);
            CounterMove {
                counter: *counter,
                before,
                after: before + addition.credits,
            }
        })
        .collect();
    match backend {
        DbBackend::Postgres => vec![record_in_one_statement(rows, &moves, now)],
        _ => record_one_by_one(rows, &moves, backend, now),
    }
}

/// PostgreSQL's locked writes in one statement. The alerts raised read the
/// counters' moves; the time rollups' rows are the cycle rollups' (one per
/// key), in the batch's hour and day.
fn record_in_one_statement(
    rows: &ChargeRows,
    moves: &[CounterMove],
    now: DateTime<Utc>,
) -> Statement {
    let mut binds = Binds::default();
    let counters = binds.rows(moves.iter().map(|m| m.cells([m.after, m.before])));
    let at = binds.value(now);
    let stale = binds.value(now - LAST_USED_PRECISION);
    let moved = with_monthly_credits(&format!(
        "(VALUES {counters}) AS r(account, cycle_start, after, before)"
    ));
    let alerts = raise_alerts_from(&moved, &at);
    let events = insert_events(&mut binds, &rows.events, &at);
    let rollups = binds.rows(rollup_cells(&rows.rollups, None));
    let by_cycle = add_usage_rows(
        "api_key_cycle_usage",
        "cycle_start",
        &format!("VALUES {rollups}"),
    );
    let touched = touch_keys(
        &mut binds,
        rows.keys.keys().map(|(_, key)| *key),
        &at,
        &stale,
    );
    let buckets = time_buckets(&mut binds, now);
    let by_time = add_to_time_rollups(
        &format!("(VALUES {rollups}) AS r(key, cycle_start, credits, requests)"),
        &buckets,
    );
    let sql = format!(
        "WITH counters AS (UPDATE billing_cycle_usage AS u SET credits_used = v.total
               FROM (VALUES {counters}) AS v(account, cycle_start, total, before)
              WHERE u.billing_account_id = v.account AND u.cycle_start = v.cycle_start),
         alerts AS ({alerts}),
         events AS ({events}),
         rollups AS ({by_cycle}),
         {by_time}touched AS ({touched})
         SELECT 1"
    );
    binds.statement(DbBackend::Postgres, &sql)
}

/// SQLite's locked writes, one statement each.
fn record_one_by_one(
    rows: &ChargeRows,
    moves: &[CounterMove],
    backend: DbBackend,
    now: DateTime<Utc>,
) -> Vec<Statement> {
    let mut statements: Vec<Statement> = moves
        .iter()
        .map(|m| {
            let mut binds = Binds::default();
            let sql = format!(
                "UPDATE billing_cycle_usage SET credits_used = {}
                  WHERE billing_account_id = {} AND cycle_start = {}",
                binds.value(m.after),
                binds.value(m.counter.account_id),
                binds.value(m.counter.cycle_start)
            );
            binds.statement(backend, &sql)
        })
        .collect();
    let mut binds = Binds::default();
    let moved = binds.rows(moves.iter().map(|m| m.cells([m.before, m.after])));
    let at = binds.value(now);
    let moved = with_monthly_credits(&format!(
        "(WITH moved(account, cycle_start, before, after) AS (VALUES {moved}) SELECT * FROM moved) r"
    ));
    statements.push(binds.statement(backend, &raise_alerts_from(&moved, &at)));
    let mut binds = Binds::default();
    let at = binds.value(now);
    let events = insert_events(&mut binds, &rows.events, &at);
    statements.push(binds.statement(backend, &events));
    statements.push(add_to_rollups(
        backend,
        "api_key_cycle_usage",
        "cycle_start",
        &rows.rollups,
        None,
    ));
    for interval in TIME_ROLLUPS {
        let (table, bucket) = time_rollup_table(interval);
        let at = Some(interval.bucket_of_charge(now));
        statements.push(add_to_rollups(backend, table, bucket, &rows.rollups, at));
    }
    let mut binds = Binds::default();
    let (at, stale) = (binds.value(now), binds.value(now - LAST_USED_PRECISION));
    let touched = touch_keys(
        &mut binds,
        rows.keys.keys().map(|(_, key)| *key),
        &at,
        &stale,
    );
    statements.push(binds.statement(backend, &touched));
    statements
}

/// The usage alerts a charge raises: for each counter it moved (a FROM
/// item `moved` with columns account, cycle_start, before, after and
/// monthly, the account's monthly credits as the charge was checked
/// against), every threshold of the account that `before` was under and
/// `after` is not. The alert's key (account, cycle, threshold) keeps it to
/// one per cycle, whatever races across it or changes the plan since.
/// `at` is the charge's time.
fn raise_alerts_from(moved: &str, at: &str) -> String {
    format!(
        "INSERT INTO usage_alerts (account_id, cycle_start, threshold, credits_used, monthly_credits, raised_at)
         SELECT m.account, m.cycle_start, t.threshold, m.after, m.monthly, {at}
           FROM {moved}
           JOIN usage_alert_thresholds t ON t.account_id = m.account
          WHERE m.before * 100 < t.threshold * m.monthly
            AND m.after * 100 >= t.threshold * m.monthly
         ON CONFLICT DO NOTHING"
    )
}

/// The accounts' monthly credits beside `rows` (columns account,
/// cycle_start, before, after): the locked paths read them from the row
/// the counter's lock already serialises.
fn with_monthly_credits(rows: &str) -> String {
    format!(
        "(SELECT r.account, r.cycle_start, r.before, r.after, b.monthly_credits AS monthly
            FROM {rows} JOIN billing_accounts b ON b.id = r.account) m"
    )
}

/// Inserts `events`, each at `at`.
fn insert_events(binds: &mut Binds, events: &[EventRow], at: &str) -> String {
    let rows: Vec<String> = events
        .iter()
        .map(|e| {
            let key = binds.value(e.key_id);
            let credits = binds.value(e.credits);
            let endpoint = binds.value(e.endpoint.clone());
            let calls = binds.value(e.calls);
            format!("({key}, {credits}, {endpoint}, {calls}, {at})")
        })
        .collect();
    format!(
        "INSERT INTO api_key_usage (api_key_id, credits, endpoint, calls, created_at) VALUES {}",
        rows.join(", ")
    )
}

/// The rollups as rows of (key, bucket start, credits, requests): the
/// cycle's start, or `bucket` for a time rollup's rows.
fn rollup_cells(
    rollups: &BTreeMap<RollupKey, Rollup>,
    bucket: Option<DateTime<Utc>>,
) -> impl Iterator<Item = [Value; 4]> + '_ {
    rollups.iter().map(move |((_, key, start), rollup)| {
        [
            (*key).into(),
            bucket.unwrap_or(*start).into(),
            rollup.credits.into(),
            rollup.requests.into(),
        ]
    })
}

/// Adds `rollups` to `table`'s buckets: each cycle's start, or `bucket`.
fn add_to_rollups(
    backend: DbBackend,
    table: &str,
    column: &str,
    rollups: &BTreeMap<RollupKey, Rollup>,
    bucket: Option<DateTime<Utc>>,
) -> Statement {
    let mut binds = Binds::default();
    let rows = binds.rows(rollup_cells(rollups, bucket));
    let sql = add_usage_rows(table, column, &format!("VALUES {rows}"));
    binds.statement(backend, &sql)
}

/// The buckets every charge adds to beside its cycle's: the batch's hour
/// and the batch's day (UTC).
pub const TIME_ROLLUPS: [Interval; 2] = [Interval::Hour, Interval::Day];

/// The table and bucket column of each key's usage by `interval`.
pub fn time_rollup_table(interval: Interval) -> (&'static str, &'static str) {
    match interval {
        Interval::Hour => ("api_key_hourly_usage", "hour_start"),
        Interval::Day => ("api_key_daily_usage", "day_start"),
    }
}

/// Adds rows of (key, bucket start, credits, requests) to each key's usage
/// by `interval` (the benchmark seeds series with it).
pub fn add_to_time_rollup(
    backend: DbBackend,
    interval: Interval,
    rows: impl IntoIterator<Item = (Uuid, DateTime<Utc>, i64, i64)>,
) -> Statement {
    let (table, column) = time_rollup_table(interval);
    let mut binds = Binds::default();
    let rows = binds.rows(rows.into_iter().map(|(key, start, credits, requests)| {
        [key.into(), start.into(), credits.into(), requests.into()]
    }));
    binds.statement(
        backend,
        &add_usage_rows(table, column, &format!("VALUES {rows}")),
    )
}

/// The batch's bucket of each time rollup, in `TIME_ROLLUPS`' order, bound.
fn time_buckets(binds: &mut Binds, now: DateTime<Utc>) -> [String; 2] {
    TIME_ROLLUPS.map(|interval| binds.value(interval.bucket_of_charge(now)))
}

/// CTEs adding each rollup of `rollups` (a FROM item with columns `key`,
/// `credits` and `requests`, aliased `r`) to its key's bucket of each time
/// rollup (`buckets`, in `TIME_ROLLUPS`' order): a batch shares one
/// instant, so one bucket each. Each CTE ends with a comma.
fn add_to_time_rollups(rollups: &str, buckets: &[String; 2]) -> String {
    TIME_ROLLUPS
        .into_iter()
        .zip(buckets)
        .map(|(interval, bucket)| {
            let (table, column) = time_rollup_table(interval);
            let name = match interval {
                Interval::Hour => "by_hour",
                Interval::Day => "by_day",
            };
            let rows = format!("SELECT r.key, {bucket}, r.credits, r.requests FROM {rollups}");
            format!("{name} AS ({}),\n", add_usage_rows(table, column, &rows))
        })
        .collect()
}

/// Adds `rows` (a VALUES list or a SELECT of key, bucket start, credits,
/// requests) to a per-key usage table: every rollup, cycle or time, is
/// this one upsert.
fn add_usage_rows(table: &str, bucket: &str, rows: &str) -> String {
    format!(
        "INSERT INTO {table} (api_key_id, {bucket}, credits, requests) {rows}
         ON CONFLICT (api_key_id, {bucket}) DO UPDATE
            SET credits = {table}.credits + excluded.credits,
                requests = {table}.requests + excluded.requests"
    )
}

/// Moves `keys`' lastUsedAt to `at` where it is older than `stale`.
fn touch_keys(
    binds: &mut Binds,
    keys: impl Iterator<Item = Uuid>,
    at: &str,
    stale: &str,
) -> String {
    let list = binds.list(keys.map(Value::from));
    format!(
        "UPDATE api_keys SET last_used_at = {at}
          WHERE id IN ({list}) AND (last_used_at IS NULL OR last_used_at <= {stale})"
    )
}

/// PostgreSQL: a batch's calls without requestIds in one statement (its
/// own transaction): the one-statement path. An account is charged only if its keys in the batch
/// are all still active with the rate limits the calls assumed, and the
/// account still has the cycle anchor and monthly credits the calls were
/// priced with (they may come from `KnownKeys`, not a read), and only if
/// the sum fits its monthly credits (checked on the locked row). The
/// events, rollups and lastUsedAt of an account are written only if its
/// counter was, and only after its row is locked, so two such statements
/// lock in account order, like the locked path. With limited keys
/// (`slots`), their slots are taken after the counters
/// (`rate_windows::take_slots`), and a charged account whose window was
/// full fails the whole statement (`rate_windows::EVERY_SLOT_TAKEN`).
/// A key revoked or expired at the batch's instant `now` is never charged
/// here, whatever this process remembers of it. Rows answered: each charged
/// account's total (`billing_account_id`, `total`) and each window's
/// (`api_key_id`, `total`).
pub fn charge_in_one_statement(rows: &ChargeRows, now: DateTime<Utc>) -> Statement {
    let mut binds = Binds::default();
    let counters = binds.rows(rows.counters.iter().map(|(counter, addition)| {
        [
            counter.account_id.into(),
            counter.cycle_start.into(),
            addition.credits.into(),
            addition.anchor.into(),
            addition.monthly_credits.into(),
        ]
    }));
    let at = binds.value(now);
    let stale = binds.value(now - LAST_USED_PRECISION);
    let keys = binds.rows(rows.keys.iter().map(|((account, key), limit)| {
        [
            (*account).into(),
            (*key).into(),
            limit.map(|limit| limit.limit).into(),
            limit.map(|limit| limit.window_secs).into(),
        ]
    }));
    let events = binds.rows(rows.events.iter().map(|e| {
        [
            e.account_id.into(),
            e.key_id.into(),
            e.credits.into(),
            e.endpoint.clone().into(),
            e.calls.into(),
        ]
    }));
    let rollups = binds.rows(rows.rollups.iter().map(|((account, key, start), rollup)| {
        [
            (*account).into(),
            (*key).into(),
            (*start).into(),
            rollup.credits.into(),
            rollup.requests.into(),
        ]
    }));
    let buckets = time_buckets(&mut binds, now);
    let checked = checked_and_charged(&keys, &counters, &at);
    let written = written_where_charged(&events, &rollups, &at, &stale, &buckets);
    // The counters' values again, not `fits`: a CTE read twice would be
    // materialised, and `charged`'s plan with it. `fits` checked that each
    // account is priced as the values say.
    let moved = format!(
        "(SELECT c.billing_account_id AS account, v.cycle_start, c.credits_used - v.total AS before,
                 c.credits_used AS after, v.monthly_credits AS monthly
            FROM charged c
            JOIN (VALUES {counters}) AS v(account, cycle_start, total, anchor, monthly_credits)
              ON v.account = c.billing_account_id) m"
    );
    let alerts = raise_alerts_from(&moved, &at);
    let accounts = "SELECT billing_account_id, NULL::uuid AS api_key_id, credits_used AS total";
    let sql = if rows.slots.is_empty() {
        format!("WITH {checked},\n{written},\nalerts AS ({alerts})\n{accounts} FROM charged")
    } else {
        let slots = rate_windows::take_slots(&mut binds, &rows.slots);
        let guard = rate_windows::EVERY_SLOT_TAKEN;
        format!(
            "WITH {checked},\n{written},\nalerts AS ({alerts}),\n{slots}
             {accounts}, {guard} AS whole FROM charged
             UNION ALL SELECT NULL, api_key_id, used, 1 FROM windows"
        )
    };
    binds.statement(DbBackend::Postgres, &sql)
}

/// The one statement's checks and counters: `fits` (accounts whose keys
/// are all active at `at` and whose pricing is as assumed), `charged`
/// (their counters, added to only where the sum fits).
fn checked_and_charged(keys: &str, counters: &str, at: &str) -> String {
    format!(
        "batch_keys AS (
           SELECT * FROM (VALUES {keys}) AS t(account, key, rate_limit, window_secs)),
         fits AS (
           SELECT v.account, v.cycle_start, v.total
             FROM (VALUES {counters}) AS v(account, cycle_start, total, anchor, monthly_credits)
             JOIN billing_accounts b ON b.id = v.account
            WHERE b.billing_cycle_start = v.anchor AND b.monthly_credits = v.monthly_credits
              AND v.total <= b.monthly_credits
              AND NOT EXISTS (SELECT 1 FROM batch_keys t JOIN api_keys k ON k.id = t.key
                               WHERE t.account = v.account
                                 AND (k.revoked_at IS NOT NULL OR k.expires_at <= {at}
                                      OR k.rate_limit IS DISTINCT FROM t.rate_limit
                                      OR k.rate_window_secs IS DISTINCT FROM t.window_secs))),
         charged AS (
           INSERT INTO billing_cycle_usage (billing_account_id, cycle_start, credits_used)
           SELECT account, cycle_start, total FROM fits
           ON CONFLICT (billing_account_id, cycle_start) DO UPDATE
              SET credits_used = billing_cycle_usage.credits_used + excluded.credits_used
            WHERE billing_cycle_usage.credits_used + excluded.credits_used
                  <= (SELECT b.monthly_credits FROM billing_accounts b WHERE b.id = excluded.billing_account_id)
           RETURNING billing_account_id, credits_used)"
    )
}

/// The one statement's writes, each only for the accounts in `charged`:
/// events at `at`, cycle and time rollups (in `buckets`), lastUsedAt where
/// older than `stale`.
fn written_where_charged(
    events: &str,
    rollups: &str,
    at: &str,
    stale: &str,
    buckets: &[String; 2],
) -> String {
    let charged_rollups = format!(
        "(VALUES {rollups}) AS r(account, key, cycle_start, credits, requests)
           JOIN charged c ON c.billing_account_id = r.account"
    );
    let by_cycle = add_usage_rows(
        "api_key_cycle_usage",
        "cycle_start",
        &format!("SELECT r.key, r.cycle_start, r.credits, r.requests FROM {charged_rollups}"),
    );
    let by_time = add_to_time_rollups(&charged_rollups, buckets);
    format!(
        "events AS (
           INSERT INTO api_key_usage (api_key_id, credits, endpoint, calls, created_at)
           SELECT e.key, e.credits, e.endpoint, e.calls, {at}
             FROM (VALUES {events}) AS e(account, key, credits, endpoint, calls)
             JOIN charged c ON c.billing_account_id = e.account),
         rollups AS ({by_cycle}),
         {by_time}touched AS (
           UPDATE api_keys k SET last_used_at = {at}
             FROM batch_keys t
             JOIN charged c ON c.billing_account_id = t.account
            WHERE k.id = t.key AND (k.last_used_at IS NULL OR k.last_used_at <= {stale}))"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::binds_match;

    /// A batch of `events` calls over `keys` keys of `accounts` accounts,
    /// `limited` of the keys with a rate limit.
    fn batch(accounts: usize, keys: usize, events: usize, limited: usize) -> ChargeRows {
        let now = Utc::now();
        let account_ids: Vec<Uuid> = (0..accounts).map(|_| Uuid::new_v4()).collect();
        let key_ids: Vec<(Uuid, Uuid)> = (0..keys)
            .map(|k| (account_ids[k % accounts], Uuid::new_v4()))
            .collect();
        let mut rows = ChargeRows::default();
        for (e, &(account_id, key_id)) in key_ids.iter().cycle().take(events).enumerate() {
            let counter = CounterKey {
                account_id,
                cycle_start: now,
            };
            rows.counters
                .entry(counter)
                .or_insert(CounterAddition {
                    credits: 0,
                    anchor: now,
                    monthly_credits: 100,
                })
                .credits += 1;
            let rollup = rows.rollups.entry((account_id, key_id, now)).or_default();
            rollup.credits += 1;
            rollup.requests += 1;
            let limit = (e % keys < limited).then_some(RateLimit {
                limit: 10,
                window_secs: 60,
            });
            rows.keys.insert((account_id, key_id), limit);
            if limit.is_some() {
                rows.slots
                    .entry(key_id)
                    .or_insert(Slots {
                        account_id,
                        window_start: now,
                        calls: 0,
                    })
                    .calls += 1;
            }
            rows.events.push(EventRow {
                account_id,
                key_id,
                credits: 1,
                endpoint: (e % 2 == 0).then(|| "/v1/a".to_owned()),
                calls: 1,
            });
        }
        rows
    }

    #[test]
    fn every_statement_binds_each_value_its_text_names() {
        let now = Utc::now();
        for (accounts, keys, events) in [(1, 1, 1), (1, 2, 5), (3, 7, 64), (16, 16, 16)] {
            for limited in [0, 1, keys] {
                let rows = batch(accounts, keys, events, limited);
                binds_match(&charge_in_one_statement(&rows, now));
                let locked: BTreeMap<CounterKey, i64> =
                    rows.counters.keys().map(|counter| (*counter, 7)).collect();
                for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
                    let statements = record_charges(&rows, &locked, backend, now);
                    assert!(!statements.is_empty());
                    statements.iter().for_each(binds_match);
                    let counters = rows.counters.keys().copied().collect();
                    binds_match(&lock_counters(backend, &counters));
                }
            }
        }
        let hours = (0..3).map(|h| (Uuid::new_v4(), now, h, h));
        binds_match(&add_to_time_rollup(
            DbBackend::Postgres,
            Interval::Hour,
            hours,
        ));
        let empty = ChargeRows::default();
        assert!(record_charges(&empty, &BTreeMap::new(), DbBackend::Postgres, now).is_empty());
    }
}
