//! usageSeries' read: the hourly rollups of a user's keys in a range. Its
//! cost grows with keys × hours, never with events.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use uuid::Uuid;

use super::statement;

/// A user's keys' hours with usage in [$2, $3).
pub const HOURLY_USAGE: &str = "
SELECT h.api_key_id, h.hour_start, h.credits, h.requests
  FROM api_keys k
  JOIN api_key_hourly_usage h ON h.api_key_id = k.id
 WHERE k.user_id = $1 AND h.hour_start >= $2 AND h.hour_start < $3";

/// One key's usage in one hour.
#[derive(FromQueryResult, Debug)]
pub struct HourlyUsage {
    pub api_key_id: Uuid,
    pub hour_start: DateTime<Utc>,
    pub credits: i64,
    pub requests: i64,
}

pub async fn hourly_usage(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<HourlyUsage>, DbErr> {
    let values = vec![user_id.into(), from.into(), to.into()];
    let sql = statement(conn.get_database_backend(), HOURLY_USAGE, values);
    HourlyUsage::find_by_statement(sql).all(conn).await
}
