//! The statements that charge: counters locked or added to, and the
//! events, rollups, lastUsedAt and usage alerts that every charge writes
//! with them, for a number of rows. The write model (`metering::writes`) supplies their
//! values; `metering::one_statement` and `metering::locked` run them.

use chrono::{DateTime, Utc};
use sea_orm::FromQueryResult;
use uuid::Uuid;

use super::{placeholders, rate_windows};
use crate::domain::Interval;

/// How stale lastUsedAt may be. A hot key is used thousands of times a
/// second: rewriting its row for each batch would make one new row version
/// per batch (and long chains for every reader to walk), for a timestamp a
/// dashboard shows to the minute.
pub const LAST_USED_PRECISION: chrono::Duration = chrono::Duration::seconds(1);

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

/// Creates the (account, cycle) counters if missing and locks them: the
/// no-op DO UPDATE takes the row lock, so the totals read here stay true
/// until the transaction ends.
pub fn lock_counters(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| format!("(${}, ${}, 0)", 2 * r + 1, 2 * r + 2))
        .collect();
    format!(
        "INSERT INTO billing_cycle_usage (billing_account_id, cycle_start, credits_used)
         VALUES {}
         ON CONFLICT (billing_account_id, cycle_start) DO UPDATE SET credits_used = billing_cycle_usage.credits_used
         RETURNING billing_account_id, cycle_start, credits_used",
        values.join(", ")
    )
}

pub const SET_COUNTER: &str =
    "UPDATE billing_cycle_usage SET credits_used = $3 WHERE billing_account_id = $1 AND cycle_start = $2";

/// The usage alerts a charge raises: for each counter it moved (a FROM
/// item `moved` with columns account, cycle_start, before, after and
/// monthly, the account's monthly credits as the charge was checked
/// against), every threshold of the account that `before` was under and
/// `after` is not. The alert's key (account, cycle, threshold) keeps it to
/// one per cycle, whatever races across it or changes the plan since.
/// `$now` is the charge's time.
fn raise_alerts_from(moved: &str, now: usize) -> String {
    format!(
        "INSERT INTO usage_alerts (account_id, cycle_start, threshold, credits_used, monthly_credits, raised_at)
         SELECT m.account, m.cycle_start, t.threshold, m.after, m.monthly, ${now}
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

/// SQLite's alerts statement, beside the locked path's others: rows of
/// (account, cycle start, total before, total after), then the time.
pub fn raise_alerts(rows: usize) -> String {
    let rows_from = format!(
        "(WITH moved(account, cycle_start, before, after) AS (VALUES {}) SELECT * FROM moved) r",
        placeholders(rows, 4, 1)
    );
    raise_alerts_from(&with_monthly_credits(&rows_from), rows * 4 + 1)
}

pub fn insert_events(rows: usize, first: usize) -> String {
    format!(
        "INSERT INTO api_key_usage (api_key_id, credits, endpoint, created_at) VALUES {}",
        placeholders(rows, 4, first)
    )
}

/// Adds to each key's usage in its cycle: rows of (key, cycle start,
/// credits, requests) from `first`.
pub fn add_to_rollups(rows: usize, first: usize) -> String {
    add_to_usage("api_key_cycle_usage", "cycle_start", rows, first)
}

/// The buckets every charge adds to beside its cycle's: the batch's hour
/// and the batch's day (UTC), in this order wherever their times are
/// parameters.
pub const TIME_ROLLUPS: [Interval; 2] = [Interval::Hour, Interval::Day];

/// The table and bucket column of each key's usage by `interval`.
pub fn time_rollup_table(interval: Interval) -> (&'static str, &'static str) {
    match interval {
        Interval::Hour => ("api_key_hourly_usage", "hour_start"),
        Interval::Day => ("api_key_daily_usage", "day_start"),
    }
}

/// Adds to each key's usage by `interval`: rows of (key, bucket start,
/// credits, requests) from `first`.
pub fn add_to_time_rollup(interval: Interval, rows: usize, first: usize) -> String {
    let (table, bucket) = time_rollup_table(interval);
    add_to_usage(table, bucket, rows, first)
}

/// A CTE adding each rollup of `rollups` (a FROM item with columns `key`,
/// `credits` and `requests`, aliased `r`) to its key's bucket `$bucket` of
/// `interval`: a batch shares one instant, so one bucket.
fn add_to_time_rollup_cte(interval: Interval, rollups: &str, bucket: usize) -> String {
    let (table, column) = time_rollup_table(interval);
    let name = match interval {
        Interval::Hour => "by_hour",
        Interval::Day => "by_day",
    };
    let rows = format!("SELECT r.key, ${bucket}, r.credits, r.requests FROM {rollups}");
    format!("{name} AS ({})", add_usage_rows(table, column, &rows))
}

/// The time rollups' CTEs, their bucket times the parameters from `first`.
fn add_to_time_rollups(rollups: &str, first: usize) -> impl Iterator<Item = String> + '_ {
    (first..)
        .zip(TIME_ROLLUPS)
        .map(move |(bucket, interval)| add_to_time_rollup_cte(interval, rollups, bucket))
}

/// Adds rows of (key, bucket start, credits, requests) to a per-key usage table.
fn add_to_usage(table: &str, bucket: &str, rows: usize, first: usize) -> String {
    let values = format!("VALUES {}", placeholders(rows, 4, first));
    add_usage_rows(table, bucket, &values)
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

/// `$first` is the time, then the time before which lastUsedAt is
/// stale; the keys follow.
pub fn touch_keys(keys: usize, first: usize) -> String {
    let list: Vec<String> = (2..keys + 2).map(|k| format!("${}", first + k)).collect();
    format!(
        "UPDATE api_keys SET last_used_at = ${first}
          WHERE id IN ({}) AND (last_used_at IS NULL OR last_used_at <= ${})",
        list.join(", "),
        first + 1
    )
}

/// PostgreSQL: every write of a batch in one statement. Parameters: the
/// counters (account, cycle, total after, total before), then the events,
/// the rollups, the two times of `touch_keys` followed by the keys, and
/// last the batch's hour and day: the time rollups' rows are the cycle
/// rollups' (one per key), in those buckets. The alerts raised read the
/// counters' rows and the first time of `touch_keys` (the batch's instant).
pub fn record_charges(counters: usize, events: usize, rollups: usize, keys: usize) -> String {
    let mut parts = Vec::new();
    let mut next = 1;
    if counters > 0 {
        let rows = placeholders(counters, 4, next);
        parts.push(format!(
            "counters AS (UPDATE billing_cycle_usage AS u SET credits_used = v.total
               FROM (VALUES {rows}) AS v(account, cycle_start, total, before)
              WHERE u.billing_account_id = v.account AND u.cycle_start = v.cycle_start)"
        ));
        if events > 0 {
            let now = next + counters * 4 + events * 4 + rollups * 4;
            let moved = format!("(VALUES {rows}) AS r(account, cycle_start, after, before)");
            let moved = with_monthly_credits(&moved);
            parts.push(format!("alerts AS ({})", raise_alerts_from(&moved, now)));
        }
        next += counters * 4;
    }
    if events > 0 {
        parts.push(format!("events AS ({})", insert_events(events, next)));
        next += events * 4;
        let rollups_from = next;
        parts.push(format!("rollups AS ({})", add_to_rollups(rollups, next)));
        next += rollups * 4;
        parts.push(format!("touched AS ({})", touch_keys(keys, next)));
        next += keys + 2;
        let rows = format!(
            "(VALUES {}) AS r(key, cycle_start, credits, requests)",
            placeholders(rollups, 4, rollups_from)
        );
        parts.extend(add_to_time_rollups(&rows, next));
    }
    format!("WITH {} SELECT 1", parts.join(",\n"))
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
/// (`windows` > 0), their slots are taken after the counters
/// (`rate_windows::take_slots`), and a charged account whose window was
/// full fails the whole statement (`rate_windows::EVERY_SLOT_TAKEN`).
/// Parameters: the counters (account, cycle, sum, anchor, monthly credits)
/// in account order, the events (account, key, credits, endpoint, time),
/// the rollups (account, key, cycle, credits, requests), the two times of
/// `touch_keys`, the keys (account, key, rate limit, window seconds), the
/// batch's hour and day, and last the windows (account, key, window start,
/// calls). A key revoked or expired (at the batch's instant, the first
/// `touch_keys` time) is never charged here, whatever this process
/// remembers of it; the time rollups' rows are the cycle rollups' in the
/// batch's hour and day. Rows answered: each charged account's total
/// (`billing_account_id`, `total`) and each window's (`api_key_id`, `total`).
pub fn charge_in_one_statement(
    counters: usize,
    events: usize,
    rollups: usize,
    keys: usize,
    windows: usize,
) -> String {
    let events_from = counters * 5 + 1;
    let rollups_from = events_from + events * 5;
    let now = rollups_from + rollups * 5;
    let buckets = now + 2 + keys * 4;
    let checked = checked_and_charged(
        &placeholders(keys, 4, now + 2),
        &placeholders(counters, 5, 1),
        now,
    );
    let written = written_where_charged(
        &placeholders(events, 5, events_from),
        &placeholders(rollups, 5, rollups_from),
        now,
        buckets,
    );
    // The counters' values again, not `fits`: a CTE read twice would be
    // materialised, and `charged`'s plan with it. `fits` checked that each
    // account is priced as the values say.
    let moved = format!(
        "(SELECT c.billing_account_id AS account, v.cycle_start, c.credits_used - v.total AS before,
                 c.credits_used AS after, v.monthly_credits AS monthly
            FROM charged c
            JOIN (VALUES {}) AS v(account, cycle_start, total, anchor, monthly_credits)
              ON v.account = c.billing_account_id) m",
        placeholders(counters, 5, 1)
    );
    let alerts = raise_alerts_from(&moved, now);
    let accounts = "SELECT billing_account_id, NULL::uuid AS api_key_id, credits_used AS total";
    if windows == 0 {
        return format!(
            "WITH {checked},\n{written},\nalerts AS ({alerts})\n{accounts} FROM charged"
        );
    }
    let slots = rate_windows::take_slots(windows, buckets + 2);
    let guard = rate_windows::EVERY_SLOT_TAKEN;
    format!(
        "WITH {checked},\n{written},\nalerts AS ({alerts}),\n{slots}
         {accounts}, {guard} AS whole FROM charged
         UNION ALL SELECT NULL, api_key_id, used, 1 FROM windows"
    )
}

/// The one statement's checks and counters: `fits` (accounts whose keys
/// are all active at `$now` and whose pricing is as assumed), `charged`
/// (their counters, added to only where the sum fits).
fn checked_and_charged(keys: &str, counters: &str, now: usize) -> String {
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
                                 AND (k.revoked_at IS NOT NULL OR k.expires_at <= ${now}
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
/// events, cycle and time rollups (their buckets from `$buckets`), lastUsedAt.
fn written_where_charged(events: &str, rollups: &str, now: usize, buckets: usize) -> String {
    let stale = now + 1;
    let charged_rollups = format!(
        "(VALUES {rollups}) AS r(account, key, cycle_start, credits, requests)
           JOIN charged c ON c.billing_account_id = r.account"
    );
    let by_cycle = add_usage_rows(
        "api_key_cycle_usage",
        "cycle_start",
        &format!("SELECT r.key, r.cycle_start, r.credits, r.requests FROM {charged_rollups}"),
    );
    let by_time: String = add_to_time_rollups(&charged_rollups, buckets)
        .map(|cte| cte + ",\n")
        .collect();
    format!(
        "events AS (
           INSERT INTO api_key_usage (api_key_id, credits, endpoint, created_at)
           SELECT e.key, e.credits, e.endpoint, e.at
             FROM (VALUES {events}) AS e(account, key, credits, endpoint, at)
             JOIN charged c ON c.billing_account_id = e.account),
         rollups AS ({by_cycle}),
         {by_time}touched AS (
           UPDATE api_keys k SET last_used_at = ${now}
             FROM batch_keys t
             JOIN charged c ON c.billing_account_id = t.account
            WHERE k.id = t.key AND (k.last_used_at IS NULL OR k.last_used_at <= ${stale}))"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::parameters;
    use crate::store::requests::claim_request_ids;

    #[test]
    fn statements_take_as_many_values_as_the_batch_supplies() {
        for rows in [1, 2, 16, 64] {
            assert_eq!(parameters(&claim_request_ids(rows)), rows * 6 + 1);
            assert_eq!(parameters(&lock_counters(rows)), rows * 2);
            assert_eq!(parameters(&insert_events(rows, 1)), rows * 4);
            assert_eq!(parameters(&add_to_rollups(rows, 1)), rows * 4);
            assert_eq!(parameters(&touch_keys(rows, 1)), rows + 2);
            let (accounts, events) = (rows.div_ceil(2), rows * 3);
            for interval in TIME_ROLLUPS {
                assert_eq!(parameters(&add_to_time_rollup(interval, rows, 1)), rows * 4);
            }
            for windows in [0, 1, rows] {
                assert_eq!(
                    parameters(&charge_in_one_statement(
                        accounts, events, rows, rows, windows
                    )),
                    accounts * 5 + events * 5 + rows * 5 + 2 + rows * 4 + 2 + windows * 4
                );
            }
            assert_eq!(parameters(&raise_alerts(rows)), rows * 4 + 1);
            for counters in [0, 1, 3] {
                let all = counters * 4 + rows * 4 + rows * 4 + rows + 2 + 2;
                assert_eq!(parameters(&record_charges(counters, rows, rows, rows)), all);
            }
        }
    }
}
