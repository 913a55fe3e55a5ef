//! One verifyKey call to charge, as it arrives (`ChargeRequest`) and once
//! its key is read and priced against its account (`Call`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::admission::{Ask, CounterKey, RateAsk};
use crate::domain::{
    AccountPricing, Charge, Cycle, KeyAccount, KeyRate, KeyRef, Verification, VerifyCode,
};

/// A verifyKey call to charge: the secret's hash and what the call asked.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub hash: Vec<u8>,
    pub charge: Charge,
}

/// A call on a known, active key, priced against its account's cycle.
#[derive(Clone)]
pub struct Call<'a> {
    /// Its place in the batch, which is arrival order.
    pub index: usize,
    pub key: KeyRef,
    pub account: AccountPricing,
    pub cycle: Cycle,
    /// Credits used in the cycle when the key was read.
    pub used_before: i64,
    /// The key's rate limit and window, if it has a limit.
    pub rate: Option<KeyRate>,
    pub hash: &'a [u8],
    pub charge: &'a Charge,
}

impl<'a> Call<'a> {
    /// The call `index` of a batch, on `key` whose account is `account`.
    pub fn new(
        index: usize,
        request: &'a ChargeRequest,
        key: &KeyAccount,
        account: AccountPricing,
        now: DateTime<Utc>,
    ) -> Self {
        let cycle = Cycle::current(account.anchor, now);
        Call {
            index,
            key: key.key_ref(),
            used_before: account.used_in(&cycle),
            account,
            cycle,
            rate: key.rate_at(now),
            hash: &request.hash,
            charge: &request.charge,
        }
    }

    /// The answer with the account at `used` credits and the key's window
    /// as read.
    pub fn answer(&self, code: VerifyCode, used: i64) -> Verification {
        let window = self.rate.map(|rate| rate.used_before);
        self.answer_in_window(code, used, window)
    }

    /// The answer with the account at `used` credits and the key's window
    /// at `window` calls admitted.
    pub fn answer_in_window(
        &self,
        code: VerifyCode,
        used: i64,
        window: Option<i64>,
    ) -> Verification {
        let state = self.rate.zip(window).map(|(rate, used)| rate.state(used));
        Verification::for_key(code, self.key, &self.account, used, &self.cycle)
            .with_rate_limit(state)
    }

    pub fn request_id(&self) -> Option<&str> {
        self.charge.request_id.as_deref()
    }

    pub fn credits(&self) -> i64 {
        i64::from(self.charge.credits)
    }

    pub fn account_id(&self) -> Uuid {
        self.account.account_id
    }

    pub fn counter(&self) -> CounterKey {
        CounterKey {
            account_id: self.account.account_id,
            cycle_start: self.cycle.start,
        }
    }

    /// What the call asks of its counter, for `domain::admission`.
    pub fn ask(&self) -> Ask {
        Ask {
            counter: self.counter(),
            credits: self.credits(),
            monthly_credits: self.account.monthly_credits,
            used_before: self.used_before,
            has_request_id: self.request_id().is_some(),
            rate: self.rate.map(|rate| RateAsk {
                key: self.key.id,
                limit: rate.limit(),
                used_before: rate.used_before,
            }),
        }
    }
}
