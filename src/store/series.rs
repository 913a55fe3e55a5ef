//! usageSeries' read: a user's keys' time rollups in a range, the hourly
//! or the daily ones, one row per key and bucket. Its cost grows with
//! keys × buckets, never with events.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use uuid::Uuid;

use super::counters::time_rollup_table;
use super::statement;
use crate::domain::Interval;

/// A user's keys' usage by `interval` in [$2, $3), one row per key and
/// bucket with usage: each charge adds to its hour's row and its day's.
pub fn usage_by_bucket_sql(interval: Interval) -> String {
    let (table, bucket) = time_rollup_table(interval);
    format!(
        "SELECT t.api_key_id, t.{bucket} AS bucket_start, t.credits, t.requests
           FROM api_keys k
           JOIN {table} t ON t.api_key_id = k.id
          WHERE k.user_id = $1 AND t.{bucket} >= $2 AND t.{bucket} < $3"
    )
}

/// One key's usage in one bucket.
#[derive(Debug)]
pub struct BucketUsage {
    pub api_key_id: Uuid,
    pub bucket_start: DateTime<Utc>,
    pub credits: i64,
    pub requests: i64,
}

impl FromQueryResult for BucketUsage {
    /// By position, in the statement's column order: a HOUR series reads
    /// thousands of rows, and looking each column up by name was a visible
    /// share of its profile.
    fn from_query_result(row: &QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        Ok(Self {
            api_key_id: row.try_get_by_index(0)?,
            bucket_start: row.try_get_by_index(1)?,
            credits: row.try_get_by_index(2)?,
            requests: row.try_get_by_index(3)?,
        })
    }
}

pub async fn usage_by_bucket(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    interval: Interval,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<BucketUsage>, DbErr> {
    let values = vec![user_id.into(), from.into(), to.into()];
    let sql = usage_by_bucket_sql(interval);
    let statement = statement(conn.get_database_backend(), &sql, values);
    BucketUsage::find_by_statement(statement).all(conn).await
}
