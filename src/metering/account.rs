//! The billing account a key's charge is priced against, provisioned on the
//! spot when signup could not (through `billing::billing_account`, the one
//! home of lazy provisioning).

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::domain::{AccountPolicy, AccountPricing, KeyAccount};
use crate::error::Result;
use crate::service::billing;

/// `key`'s account, as read with it or provisioned now; `key` keeps it.
pub async fn priced_account(
    conn: &impl ConnectionTrait,
    policy: &AccountPolicy,
    key: &mut KeyAccount,
    now: DateTime<Utc>,
) -> Result<AccountPricing> {
    if let Some(account) = &key.account {
        return Ok(account.clone());
    }
    let account = billing::billing_account(conn, policy, key.user_id, now).await?;
    let pricing = AccountPricing {
        account_id: account.id,
        monthly_credits: account.monthly_credits,
        anchor: account.billing_cycle_start,
        latest: None,
    };
    key.account = Some(pricing.clone());
    Ok(pricing)
}
