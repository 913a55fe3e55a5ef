//! Usage alert thresholds (contract v3): percents of an account's monthly
//! credits at which `usage.threshold_reached` is raised, once per cycle.

use crate::error::{Error, Result};

/// What every new account starts with.
pub const DEFAULT_THRESHOLDS: [i32; 2] = [80, 100];

/// Most thresholds one account may have.
const MAX_THRESHOLDS: usize = 5;

/// An account's thresholds: 0 to 5 distinct values from 1 to 100, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds(Vec<i32>);

impl Thresholds {
    pub fn parse(values: &[i32]) -> Result<Self> {
        if values.len() > MAX_THRESHOLDS {
            return Err(Error::bad_input(format!(
                "thresholds: at most {MAX_THRESHOLDS} values"
            )));
        }
        if let Some(bad) = values.iter().find(|t| !(1..=100).contains(*t)) {
            return Err(Error::bad_input(format!(
                "thresholds: {bad} is not a percent from 1 to 100"
            )));
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != values.len() {
            return Err(Error::bad_input("thresholds: the values must be distinct"));
        }
        Ok(Self(sorted))
    }

    pub fn as_slice(&self) -> &[i32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_few_distinct_percents_in_order() {
        assert_eq!(Thresholds::parse(&[100, 50]).unwrap().as_slice(), [50, 100]);
        assert!(Thresholds::parse(&[]).unwrap().as_slice().is_empty());
        for bad in [&[0][..], &[101], &[50, 50], &[1, 2, 3, 4, 5, 6], &[-5]] {
            assert!(Thresholds::parse(bad).is_err(), "{bad:?}");
        }
    }
}
