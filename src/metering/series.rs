//! usageSeries: charged credits and requests per key over time, in hour or
//! day buckets, zero-filled, oldest first, read from the hourly or daily
//! rollups every charge writes (`store::series`).

use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::domain::{AccountPolicy, Cycle, Interval, SeriesRange};
use crate::entity::{api_key, billing_account};
use crate::error::{Error, Result};
use crate::store::db::Db;
use crate::store::series::{keys_with_usage, KeyBuckets};

/// What a series is asked for; `None`s take the defaults: the current
/// cycle's start, now, and every key with usage in the range.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SeriesAsk {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub interval: Interval,
    pub key_ids: Option<Vec<Uuid>>,
    /// The account's billing cycle anchor, when the request has read the
    /// account already (its own account): the default `from` then needs
    /// no read of its own.
    pub cycle_anchor: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point {
    pub credits: i64,
    pub requests: i64,
}

#[derive(Clone)]
pub struct KeySeries {
    pub key: api_key::Model,
    /// One per bucket of the range, oldest first.
    pub points: Vec<Point>,
}

#[derive(Clone)]
pub struct UsageSeries {
    pub range: SeriesRange,
    /// The instant it was read at, which the keys' statuses are computed for.
    pub now: DateTime<Utc>,
    pub total: Vec<Point>,
    pub keys: Vec<KeySeries>,
}

pub async fn usage_series(
    db: &Db,
    policy: &AccountPolicy,
    account_id: Uuid,
    ask: SeriesAsk,
    now: DateTime<Utc>,
) -> Result<UsageSeries> {
    let range = resolve_range(db, policy, account_id, &ask, now).await?;
    let keys = keys_with_usage(db, account_id, range.interval, range.from, range.to).await?;
    let chosen = match &ask.key_ids {
        Some(ids) => Some(chosen_keys(ids, &keys)?),
        None => None,
    };
    let (total, keys) = bucket(&range, keys, chosen.as_deref())?;
    Ok(UsageSeries {
        range,
        now,
        total,
        keys: ordered(keys),
    })
}

/// The range asked for, defaults filled in: from the current cycle's start
/// to now.
async fn resolve_range(
    db: &Db,
    policy: &AccountPolicy,
    account_id: Uuid,
    ask: &SeriesAsk,
    now: DateTime<Utc>,
) -> Result<SeriesRange> {
    let from = match (ask.from, ask.cycle_anchor) {
        (Some(from), _) => from,
        (None, Some(anchor)) => Cycle::current(anchor, now).start,
        (None, None) => {
            let account = billing_account::Entity::find_by_id(account_id)
                .one(db)
                .await?
                .ok_or(Error::NotFound)?;
            Cycle::current(account.billing_cycle_start, now).start
        }
    };
    let to = match ask.to {
        Some(to) => to,
        // The default range always holds its first bucket, even at the
        // very instant the cycle starts.
        None => match from.checked_add_signed(ask.interval.length()) {
            Some(first_bucket_end) => now.max(first_bucket_end),
            None => now,
        },
    };
    let range = SeriesRange::parse(ask.interval, from, to)?;
    // Hours past their retention are deleted: refused, not shown as zeros
    // that would pretend nothing happened.
    let kept = policy.hourly_usage_kept;
    if range.interval == Interval::Hour
        && now
            .checked_sub_signed(kept)
            .is_some_and(|oldest| range.from < oldest)
    {
        return Err(Error::bad_input(format!(
            "usageSeries: HOUR usage is kept for the last {} days (KEYMETER_HOURLY_USAGE_RETENTION_DAYS); \
             ask DAY for older usage",
            kept.num_days()
        )));
    }
    Ok(range)
}

/// `ids` deduplicated, each one of the user's keys: another user's (or a
/// missing) id is NOT_FOUND, as everywhere.
fn chosen_keys(ids: &[Uuid], owned: &[KeyBuckets]) -> Result<Vec<Uuid>> {
    let mut chosen = Vec::with_capacity(ids.len());
    for id in ids {
        if !owned.iter().any(|owned| owned.key.id == *id) {
            return Err(Error::NotFound);
        }
        if !chosen.contains(id) {
            chosen.push(*id);
        }
    }
    Ok(chosen)
}

/// The series' total, and the series of each key that has usage in the
/// range (with `chosen`: of exactly those keys), each bucket's usage in
/// its place.
fn bucket(
    range: &SeriesRange,
    keys: Vec<KeyBuckets>,
    chosen: Option<&[Uuid]>,
) -> Result<(Vec<Point>, Vec<KeySeries>)> {
    let buckets = range.starts().count();
    let mut total = vec![Point::default(); buckets];
    let mut series = Vec::new();
    for key in keys {
        let wanted = match chosen {
            Some(ids) => ids.contains(&key.key.id),
            None => key.has_usage(),
        };
        if !wanted {
            continue;
        }
        let mut points = vec![Point::default(); buckets];
        for usage in key.buckets() {
            let usage = usage?;
            let Some(index) = range.bucket_of(usage.bucket_start) else {
                continue;
            };
            for point in [&mut points[index], &mut total[index]] {
                point.credits += usage.credits;
                point.requests += usage.requests;
            }
        }
        series.push(KeySeries {
            key: key.key,
            points,
        });
    }
    Ok((total, series))
}

/// Most credits in the range first, then newest first.
fn ordered(mut keys: Vec<KeySeries>) -> Vec<KeySeries> {
    let credits = |series: &KeySeries| series.points.iter().map(|p| p.credits).sum::<i64>();
    keys.sort_by_cached_key(|series| {
        std::cmp::Reverse((credits(series), series.key.created_at, series.key.id))
    });
    keys
}
