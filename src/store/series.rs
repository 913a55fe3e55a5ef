//! usageSeries' read: the hourly rollups of a user's keys in a range, by
//! hour or summed by day. Its cost grows with keys × hours, never with events.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult};
use uuid::Uuid;

use super::statement;

/// A user's keys' usage in [$2, $3), one row per key and bucket: the hours
/// summed by day in the database when `by_day`, so that a month of hours
/// crosses the wire as 31 rows per key, not 744.
pub fn usage_by_bucket_sql(backend: DbBackend, by_day: bool) -> String {
    let bucket = match (by_day, backend) {
        (false, _) => "h.hour_start",
        (true, DbBackend::Postgres) => "date_trunc('day', h.hour_start, 'UTC')",
        // SQLite keeps instants as RFC 3339 text in UTC: the day is its date.
        (true, _) => "substr(h.hour_start, 1, 10) || 'T00:00:00+00:00'",
    };
    format!(
        "SELECT h.api_key_id, {bucket} AS bucket_start,
                CAST(SUM(h.credits) AS BIGINT) AS credits,
                CAST(SUM(h.requests) AS BIGINT) AS requests
           FROM api_keys k
           JOIN api_key_hourly_usage h ON h.api_key_id = k.id
          WHERE k.user_id = $1 AND h.hour_start >= $2 AND h.hour_start < $3
          GROUP BY h.api_key_id, {bucket}"
    )
}

/// One key's usage in one bucket.
#[derive(FromQueryResult, Debug)]
pub struct BucketUsage {
    pub api_key_id: Uuid,
    pub bucket_start: DateTime<Utc>,
    pub credits: i64,
    pub requests: i64,
}

pub async fn usage_by_bucket(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    by_day: bool,
) -> Result<Vec<BucketUsage>, DbErr> {
    let backend = conn.get_database_backend();
    let values = vec![user_id.into(), from.into(), to.into()];
    let sql = statement(backend, &usage_by_bucket_sql(backend, by_day), values);
    BucketUsage::find_by_statement(sql).all(conn).await
}
