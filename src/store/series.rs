//! usageSeries' read: a user's keys with their time rollups in a range,
//! the hourly or the daily ones, in one statement. Its cost grows with
//! keys × buckets, never with events.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, QueryResult};
use uuid::Uuid;

use super::counters::time_rollup_table;
use super::statement;
use crate::domain::Interval;
use crate::entity::api_key;

/// Each of a user's keys, with its usage by `interval` in [$2, $3) as one
/// text of `start:credits:requests` (start in Unix seconds) joined by
/// commas, NULL without usage there. A HOUR series is thousands of buckets;
/// decoding them as rows led the server's profile, and splitting one text
/// per key costs a fraction of it (JSON would cost PostgreSQL more to
/// build). The correlated subquery reads each key's range through the
/// rollup's primary key, however many rows the table holds.
pub fn keys_with_usage_sql(backend: DbBackend, interval: Interval) -> String {
    let (table, bucket) = time_rollup_table(interval);
    let buckets = match backend {
        DbBackend::Sqlite => format!(
            "group_concat(unixepoch(t.{bucket}) || ':' || t.credits || ':' || t.requests, ',')"
        ),
        _ => format!(
            "string_agg(concat_ws(':', date_part('epoch', t.{bucket})::bigint, t.credits, t.requests), ',')"
        ),
    };
    format!(
        "SELECT k.id, k.account_id, k.created_by, k.name, k.key_type, k.prefix, k.secret_hash, k.created_at, k.last_used_at,
                k.revoked_at, k.expires_at, k.rotated_from_id,
                (SELECT {buckets} FROM {table} t
                  WHERE t.api_key_id = k.id AND t.{bucket} >= $2 AND t.{bucket} < $3) AS buckets
           FROM api_keys k
          WHERE k.account_id = $1"
    )
}

/// One key's usage in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketUsage {
    pub bucket_start: DateTime<Utc>,
    pub credits: i64,
    pub requests: i64,
}

/// A key with its usage in the range, as the statement's text.
#[derive(Debug)]
pub struct KeyBuckets {
    pub key: api_key::Model,
    buckets: Option<String>,
}

impl KeyBuckets {
    pub fn has_usage(&self) -> bool {
        self.buckets.is_some()
    }

    /// Its buckets with usage, in no particular order, split from the text
    /// as they are read: no list of them is built.
    pub fn buckets(&self) -> impl Iterator<Item = Result<BucketUsage, DbErr>> + '_ {
        self.buckets
            .iter()
            .flat_map(|text| text.split(','))
            .map(parse_bucket)
    }
}

impl FromQueryResult for KeyBuckets {
    fn from_query_result(row: &QueryResult, prefix: &str) -> Result<Self, DbErr> {
        Ok(Self {
            key: api_key::Model::from_query_result(row, prefix)?,
            buckets: row.try_get(prefix, "buckets")?,
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

/// Every key of the account (revoked and expired ones too), each with its
/// usage by `interval` in [`from`, `to`).
pub async fn keys_with_usage(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    interval: Interval,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<KeyBuckets>, DbErr> {
    let backend = conn.get_database_backend();
    let values = vec![account_id.into(), from.into(), to.into()];
    let sql = keys_with_usage_sql(backend, interval);
    KeyBuckets::find_by_statement(statement(backend, &sql, values))
        .all(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_split_from_the_statements_text() {
        let bucket = parse_bucket("1764547200:5:3").unwrap();
        assert_eq!(
            bucket.bucket_start.to_rfc3339(),
            "2025-12-01T00:00:00+00:00"
        );
        assert_eq!((bucket.credits, bucket.requests), (5, 3));
        for text in [
            "",
            "1764547200:5",
            "1764547200:5:3:1",
            "x:5:3",
            "1764547200::3",
        ] {
            assert!(parse_bucket(text).is_err(), "{text:?}");
        }
    }
}
