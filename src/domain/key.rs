use async_graphql::Enum;
use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use sea_orm::entity::prelude::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};

use super::text::display_name;
use crate::error::{Error, Result};

// Stored as 'dev' / 'prod'; a CHECK constraint allows nothing else.
/// Cosmetic classification of a key; both kinds behave the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(4))")]
pub enum KeyType {
    #[sea_orm(string_value = "dev")]
    Dev,
    #[sea_orm(string_value = "prod")]
    Prod,
}

impl KeyType {
    /// The kind as the contract spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dev => "DEV",
            Self::Prod => "PROD",
        }
    }

    /// The start of every secret of this kind.
    pub fn secret_prefix(self) -> &'static str {
        match self {
            Self::Dev => "sk_dev_",
            Self::Prod => "sk_prod_",
        }
    }
}

/// A key's display name: 1 to 64 printable characters after trimming (see
/// `text::is_printable`): the dashboard shows it, and a bidi override or an
/// invisible character would make it read as something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(raw: &str) -> Result<Self> {
        display_name(raw).map(Self)
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// v2: where a key stands now. A revoked key is REVOKED even after its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}

impl KeyStatus {
    /// A key's status at `now`: revocation wins, then an expiry that has come.
    pub fn at(
        revoked_at: Option<DateTime<Utc>>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        if revoked_at.is_some() {
            Self::Revoked
        } else if expires_at.is_some_and(|at| at <= now) {
            Self::Expired
        } else {
            Self::Active
        }
    }
}

/// When a new key stops verifying (createKey's expiresAt): at least a minute
/// ahead, so no key is born expired or expires before its secret can be
/// copied, and before 2100-01-01T00:00:00Z, the contract's "practically
/// never", which every client's date type can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyExpiry(DateTime<Utc>);

impl KeyExpiry {
    pub const MIN_AHEAD: Duration = Duration::seconds(60);

    pub fn latest_exclusive() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0)
            .single()
            .expect("a valid instant")
    }

    pub fn parse(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<Self> {
        // Cut to microseconds, as every stored instant is: both databases
        // then hand back exactly the instant that was accepted.
        let at = at.duration_trunc(Duration::microseconds(1)).unwrap_or(at);
        if at < now + Self::MIN_AHEAD || at >= Self::latest_exclusive() {
            return Err(Error::bad_input(
                "expiresAt: at least 60 seconds ahead and before 2100-01-01T00:00:00Z",
            ));
        }
        Ok(Self(at))
    }

    pub fn at(self) -> DateTime<Utc> {
        self.0
    }
}

/// How long a rotated key keeps verifying: 0 to 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracePeriod(Duration);

impl GracePeriod {
    pub const MAX_SECONDS: i32 = 30 * 24 * 3600;

    pub fn parse(seconds: i32) -> Result<Self> {
        if !(0..=Self::MAX_SECONDS).contains(&seconds) {
            return Err(Error::bad_input(
                "gracePeriodSeconds: 0 to 2592000 (30 days)",
            ));
        }
        Ok(Self(Duration::seconds(i64::from(seconds))))
    }

    /// A grace of 0 revokes the old key at once.
    pub fn revokes_at_once(self) -> bool {
        self.0.is_zero()
    }

    /// The old key's expiry after a rotation at `now`: the earlier of its
    /// own and the end of the grace, so a rotation never extends an expiry.
    pub fn expiry_of_replaced(
        self,
        own: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let end_of_grace = now + self.0;
        own.map_or(end_of_grace, |own| own.min(end_of_grace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn revocation_wins_over_expiry() {
        let now = t("2026-06-01T00:00:00Z");
        let past = Some(now - Duration::seconds(1));
        let future = Some(now + Duration::seconds(1));
        assert_eq!(KeyStatus::at(None, None, now), KeyStatus::Active);
        assert_eq!(KeyStatus::at(None, future, now), KeyStatus::Active);
        assert_eq!(KeyStatus::at(None, Some(now), now), KeyStatus::Expired);
        assert_eq!(KeyStatus::at(None, past, now), KeyStatus::Expired);
        assert_eq!(KeyStatus::at(past, past, now), KeyStatus::Revoked);
        assert_eq!(KeyStatus::at(past, future, now), KeyStatus::Revoked);
    }

    #[test]
    fn expiries_are_a_minute_ahead_and_before_2100() {
        let now = t("2026-06-01T00:00:00Z");
        assert!(KeyExpiry::parse(now + Duration::seconds(60), now).is_ok());
        assert!(KeyExpiry::parse(now + Duration::seconds(59), now).is_err());
        assert!(KeyExpiry::parse(now - Duration::days(1), now).is_err());
        assert!(KeyExpiry::parse(t("2099-12-31T23:59:59.999999Z"), now).is_ok());
        let refused = KeyExpiry::parse(t("2100-01-01T00:00:00Z"), now).unwrap_err();
        assert_eq!(refused.code(), "BAD_USER_INPUT");
        assert!(refused.to_string().starts_with("expiresAt"));
        let precise = KeyExpiry::parse(t("2030-01-01T00:00:00.123456789Z"), now).unwrap();
        assert_eq!(precise.at(), t("2030-01-01T00:00:00.123456Z"));
    }

    #[test]
    fn grace_periods_never_extend_an_expiry() {
        let now = t("2026-06-01T00:00:00Z");
        assert!(GracePeriod::parse(-1).is_err());
        assert!(GracePeriod::parse(2_592_001).is_err());
        assert!(GracePeriod::parse(0).unwrap().revokes_at_once());
        let hour = GracePeriod::parse(3600).unwrap();
        assert!(!hour.revokes_at_once());
        let in_an_hour = now + Duration::hours(1);
        assert_eq!(hour.expiry_of_replaced(None, now), in_an_hour);
        let sooner = now + Duration::minutes(5);
        assert_eq!(hour.expiry_of_replaced(Some(sooner), now), sooner);
        let later = now + Duration::days(1);
        assert_eq!(hour.expiry_of_replaced(Some(later), now), in_an_hour);
        let max = GracePeriod::parse(GracePeriod::MAX_SECONDS).unwrap();
        assert_eq!(max.expiry_of_replaced(None, now), now + Duration::days(30));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(KeyName::parse("  ci  ").unwrap(), KeyName("ci".into()));
        assert!(KeyName::parse("   ").is_err());
        assert!(KeyName::parse(&"x".repeat(64)).is_ok());
        assert!(KeyName::parse(&"x".repeat(65)).is_err());
        assert!(KeyName::parse("a\nb").is_err());
    }

    #[test]
    fn names_must_be_printable() {
        for bad in [
            "a\u{0}",
            "\u{7f}x",
            "gnp.exe\u{202e}",
            "ad\u{200b}min",
            "\u{feff}key",
            "x\u{2067}y",
        ] {
            assert_eq!(
                KeyName::parse(bad).unwrap_err().code(),
                "BAD_USER_INPUT",
                "{bad:?}"
            );
        }
        assert!(KeyName::parse("clé de production 🔑").is_ok());
    }
}
