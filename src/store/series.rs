//! usageSeries' read: a user's keys' time rollups in a range, the hourly
//! or the daily ones. Its cost grows with keys × buckets, never with
//! events.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, QueryResult};
use uuid::Uuid;

use super::counters::time_rollup_table;
use super::statement;
use crate::domain::Interval;

/// A user's keys' usage by `interval` in [$2, $3): one row per key with
/// usage, holding its buckets as one text of `start:credits:requests`
/// (start in Unix seconds) joined by commas. A HOUR series is thousands of
/// buckets; as one row each, decoding them led the server's profile, where
/// one text per key is split in one pass. (PostgreSQL's json_agg cost it
/// more than the rows did; string_agg costs the same.)
pub fn usage_by_key_sql(backend: DbBackend, interval: Interval) -> String {
    let (table, bucket) = time_rollup_table(interval);
    let buckets = match backend {
        DbBackend::Sqlite => format!(
            "group_concat(unixepoch(t.{bucket}) || ':' || t.credits || ':' || t.requests, ',')"
        ),
        _ => format!(
            "string_agg(concat_ws(':', extract(epoch FROM t.{bucket})::bigint, t.credits, t.requests), ',')"
        ),
    };
    format!(
        "SELECT t.api_key_id, {buckets} AS buckets
           FROM api_keys k
           JOIN {table} t ON t.api_key_id = k.id
          WHERE k.user_id = $1 AND t.{bucket} >= $2 AND t.{bucket} < $3
          GROUP BY t.api_key_id"
    )
}

/// One key's usage in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketUsage {
    pub bucket_start: DateTime<Utc>,
    pub credits: i64,
    pub requests: i64,
}

/// One key's buckets with usage, in no particular order.
#[derive(Debug)]
pub struct KeyBuckets {
    pub api_key_id: Uuid,
    pub buckets: Vec<BucketUsage>,
}

impl FromQueryResult for KeyBuckets {
    fn from_query_result(row: &QueryResult, prefix: &str) -> Result<Self, DbErr> {
        let text: String = row.try_get(prefix, "buckets")?;
        Ok(Self {
            api_key_id: row.try_get(prefix, "api_key_id")?,
            buckets: text
                .split(',')
                .map(parse_bucket)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// One `start:credits:requests` of the statement's text.
fn parse_bucket(text: &str) -> Result<BucketUsage, DbErr> {
    let mut numbers = text.split(':').map(str::parse::<i64>);
    let bucket = match (
        numbers.next(),
        numbers.next(),
        numbers.next(),
        numbers.next(),
    ) {
        (Some(Ok(start)), Some(Ok(credits)), Some(Ok(requests)), None) => {
            DateTime::from_timestamp(start, 0).map(|bucket_start| BucketUsage {
                bucket_start,
                credits,
                requests,
            })
        }
        _ => None,
    };
    bucket.ok_or_else(|| DbErr::Type(format!("a key's usage bucket: {text:?}")))
}

pub async fn usage_by_key(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    interval: Interval,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<KeyBuckets>, DbErr> {
    let backend = conn.get_database_backend();
    let values = vec![user_id.into(), from.into(), to.into()];
    let sql = usage_by_key_sql(backend, interval);
    KeyBuckets::find_by_statement(statement(backend, &sql, values))
        .all(conn)
        .await
}
