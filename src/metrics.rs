//! What operators scrape from `GET /metrics` (OpenMetrics text, which
//! Prometheus reads): verifyKey answers by code, the size of charging
//! batches, GraphQL request durations by operation, and the pool's
//! connections. Recording is an atomic add or a short read lock, so the hot
//! path does not notice it; each process reports its own numbers.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::domain::VerifyCode;
use crate::store::db::Db;

/// Distinct operation names labelled at most: names are chosen by clients,
/// and each label value is a series kept forever. Later ones are "other".
/// Only an operation that validated and ran may name a label at all.
const MAX_OPERATIONS: usize = 100;

/// The one label of every request that ran nothing: unparsable, invalid, or
/// naming an operation its document does not hold.
const NOT_RUN: &str = "not_run";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    /// "idle" or "in_use".
    state: &'static str,
}

pub struct Metrics {
    registry: Registry,
    verify_total: Family<CodeLabel, Counter>,
    charge_batch_size: Histogram,
    request_duration: Family<OperationLabel, Histogram>,
    pool_connections: Family<StateLabel, Gauge>,
    operations: RwLock<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keymeter");
        let verify_total = Family::<CodeLabel, Counter>::default();
        registry.register(
            "verify",
            "verifyKey calls answered, by code",
            verify_total.clone(),
        );
        // 1, 2, 4, … 128: a batch holds at most KEYMETER_GROUP_COMMIT_MAX_BATCH calls.
        let charge_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 8));
        registry.register(
            "charge_batch_size",
            "verifyKey charges per charging batch",
            charge_batch_size.clone(),
        );
        let request_duration = Family::<OperationLabel, Histogram>::new_with_constructor(|| {
            // 0.5 ms to ~16 s.
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "graphql_request_duration_seconds",
            "GraphQL requests from parsed body to answer, by operation name",
            request_duration.clone(),
        );
        let pool_connections = Family::<StateLabel, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections, idle and in use",
            pool_connections.clone(),
        );
        Self {
            registry,
            verify_total,
            charge_batch_size,
            request_duration,
            pool_connections,
            operations: RwLock::default(),
        }
    }

    pub fn verify_answered(&self, code: VerifyCode) {
        let code = code.name();
        self.verify_total.get_or_create(&CodeLabel { code }).inc();
    }

    pub fn charge_batch(&self, calls: usize) {
        self.charge_batch_size.observe(calls as f64);
    }

    /// One request's duration, labelled by the operation it ran: `ran` is
    /// None when nothing was executed (the document did not parse or
    /// validate, or named no operation it holds), Some(None) for an
    /// anonymous operation.
    pub fn graphql_request(&self, ran: Option<Option<&str>>, took: Duration) {
        let operation = match ran {
            None => NOT_RUN.to_owned(),
            Some(name) => self.operation_label(name),
        };
        self.request_duration
            .get_or_create(&OperationLabel { operation })
            .observe(took.as_secs_f64());
    }

    /// The metrics as text, the pool's gauges read now.
    pub fn render(&self, db: &Db) -> String {
        let (size, idle) = db.connections();
        let gauge = |state| self.pool_connections.get_or_create(&StateLabel { state });
        gauge("idle").set(i64::from(idle));
        gauge("in_use").set(i64::from(size.saturating_sub(idle)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    fn operation_label(&self, operation: Option<&str>) -> String {
        let Some(name) = operation.filter(|name| is_plain_name(name)) else {
            return if operation.is_some() {
                "other"
            } else {
                "anonymous"
            }
            .to_owned();
        };
        // Every request asks; almost every name is known: a shared read.
        let known = self.operations.read().unwrap_or_else(|p| p.into_inner());
        if known.contains(name) {
            return name.to_owned();
        }
        drop(known);
        let mut known = self.operations.write().unwrap_or_else(|p| p.into_inner());
        if known.len() >= MAX_OPERATIONS && !known.contains(name) {
            return "other".to_owned();
        }
        known.insert(name.to_owned());
        name.to_owned()
    }
}

/// A GraphQL name of sensible length: nothing else becomes a label value
/// or a log field (a client's text could otherwise forge log lines).
pub fn is_plain_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_that_ran_nothing_share_one_label() {
        let metrics = Metrics::new();
        for _ in 0..3 {
            metrics.graphql_request(None, Duration::from_millis(1));
        }
        metrics.graphql_request(Some(Some("Keys")), Duration::from_millis(1));
        let text = {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
            text
        };
        assert!(text.contains("operation=\"not_run\"} 3"), "{text}");
        assert!(text.contains("operation=\"Keys\"} 1"), "{text}");
    }

    #[test]
    fn operation_names_are_bounded_and_plain() {
        let metrics = Metrics::new();
        assert_eq!(metrics.operation_label(None), "anonymous");
        assert_eq!(metrics.operation_label(Some("Keys")), "Keys");
        assert_eq!(metrics.operation_label(Some("a\"b")), "other");
        for i in 0..MAX_OPERATIONS * 2 {
            metrics.operation_label(Some(&format!("Op{i}")));
        }
        assert_eq!(metrics.operation_label(Some("Late")), "other");
        assert_eq!(metrics.operation_label(Some("Keys")), "Keys");
    }
}
