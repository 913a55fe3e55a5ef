//! The account a key's charge is priced against, as read with the key.

use crate::domain::{AccountPricing, KeyAccount};
use crate::error::Result;

/// `key`'s account. Every key belongs to one (migration 16 gave each key
/// its maker's own account); a key read without it is a broken row.
pub fn priced_account(key: &KeyAccount) -> Result<AccountPricing> {
    key.account
        .clone()
        .ok_or_else(|| anyhow::anyhow!("key {} was read without its account", key.key_id).into())
}
