//! usageSeries: charged credits and requests per key over time, in hour or
//! day buckets, zero-filled, oldest first, read from the hourly or daily
//! rollups every charge writes (`store::series`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::domain::{AccountPolicy, Cycle, Interval, SeriesRange};
use crate::entity::api_key;
use crate::error::{Error, Result};
use crate::service::{accounts, keys};
use crate::store::series::{usage_by_key, KeyBuckets};

/// What a series is asked for; `None`s take the defaults: the current
/// cycle's start, now, and every key with usage in the range.
pub struct SeriesAsk {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub interval: Interval,
    pub key_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point {
    pub credits: i64,
    pub requests: i64,
}

pub struct KeySeries {
    pub key: api_key::Model,
    /// One per bucket of the range, oldest first.
    pub points: Vec<Point>,
}

pub struct UsageSeries {
    pub range: SeriesRange,
    /// The instant it was read at, which the keys' statuses are computed for.
    pub now: DateTime<Utc>,
    pub total: Vec<Point>,
    pub keys: Vec<KeySeries>,
}

pub async fn usage_series(
    db: &DatabaseConnection,
    policy: &AccountPolicy,
    user_id: Uuid,
    ask: SeriesAsk,
    now: DateTime<Utc>,
) -> Result<UsageSeries> {
    let range = resolve_range(db, policy, user_id, &ask, now).await?;
    let owned: HashMap<Uuid, api_key::Model> = keys::list(db, user_id, true)
        .await?
        .into_iter()
        .map(|key| (key.id, key))
        .collect();
    let chosen = match &ask.key_ids {
        Some(ids) => Some(chosen_keys(ids, &owned)?),
        None => None,
    };
    let usage = usage_by_key(db, user_id, range.interval, range.from, range.to).await?;
    let (total, mut per_key) = bucket(&range, usage, chosen.as_deref());
    if let Some(ids) = &chosen {
        for id in ids {
            per_key
                .entry(*id)
                .or_insert_with(|| vec![Point::default(); range.starts().count()]);
        }
    }
    let keys = ordered(per_key, owned);
    Ok(UsageSeries {
        range,
        now,
        total,
        keys,
    })
}

/// The range asked for, defaults filled in: from the current cycle's start
/// (the account provisioned if missing) to now.
async fn resolve_range(
    db: &DatabaseConnection,
    policy: &AccountPolicy,
    user_id: Uuid,
    ask: &SeriesAsk,
    now: DateTime<Utc>,
) -> Result<SeriesRange> {
    let from = match ask.from {
        Some(from) => from,
        None => {
            let account = accounts::billing_account(db, policy, user_id, now).await?;
            Cycle::current(account.billing_cycle_start, now).start
        }
    };
    let to = match ask.to {
        Some(to) => to,
        // The default range always holds its first bucket, even at the
        // very instant the cycle starts.
        None => now.max(from + ask.interval.length()),
    };
    SeriesRange::parse(ask.interval, from, to)
}

/// `ids` deduplicated, each one of the user's keys: another user's (or a
/// missing) id is NOT_FOUND, as everywhere.
fn chosen_keys(ids: &[Uuid], owned: &HashMap<Uuid, api_key::Model>) -> Result<Vec<Uuid>> {
    let mut chosen = Vec::with_capacity(ids.len());
    for id in ids {
        if !owned.contains_key(id) {
            return Err(Error::NotFound);
        }
        if !chosen.contains(id) {
            chosen.push(*id);
        }
    }
    Ok(chosen)
}

/// The series' total and each key's points, each bucket's usage in its place.
fn bucket(
    range: &SeriesRange,
    usage: Vec<KeyBuckets>,
    chosen: Option<&[Uuid]>,
) -> (Vec<Point>, HashMap<Uuid, Vec<Point>>) {
    let buckets = range.starts().count();
    let mut total = vec![Point::default(); buckets];
    let mut per_key: HashMap<Uuid, Vec<Point>> = HashMap::new();
    for key in usage {
        if chosen.is_some_and(|ids| !ids.contains(&key.api_key_id)) {
            continue;
        }
        let points = per_key
            .entry(key.api_key_id)
            .or_insert_with(|| vec![Point::default(); buckets]);
        for usage in key.buckets {
            let Some(index) = range.bucket_of(usage.bucket_start) else {
                continue;
            };
            for point in [&mut points[index], &mut total[index]] {
                point.credits += usage.credits;
                point.requests += usage.requests;
            }
        }
    }
    (total, per_key)
}

/// Most credits in the range first, then newest first.
fn ordered(
    per_key: HashMap<Uuid, Vec<Point>>,
    mut owned: HashMap<Uuid, api_key::Model>,
) -> Vec<KeySeries> {
    let mut keys: Vec<KeySeries> = per_key
        .into_iter()
        .filter_map(|(id, points)| {
            Some(KeySeries {
                key: owned.remove(&id)?,
                points,
            })
        })
        .collect();
    let credits = |series: &KeySeries| series.points.iter().map(|p| p.credits).sum::<i64>();
    keys.sort_by(|a, b| {
        (credits(b), b.key.created_at, b.key.id).cmp(&(credits(a), a.key.created_at, a.key.id))
    });
    keys
}
