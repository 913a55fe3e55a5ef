//! Integration tests: each starts the real server on a random port against a
//! brand-new database and speaks HTTP to it. `on_both_databases!` runs every
//! test on SQLite and, when KEYMETER_TEST_DATABASE_URL is set, on PostgreSQL.

#[macro_use]
mod support;

// The harness, under the names every test module imports it by.
use support::{browser, gateways, helpers, oidc, receiver, server_process, smtp};

mod alerts;
mod answer_bounds;
mod attacks;
mod audit;
mod backup;
mod behind_gateways;
mod coalescing;
mod connections;
mod cookies;
mod dashboard;
mod gateway;
mod gateway_harness;
mod http;
mod inputs;
mod instants;
mod isolation;
mod key_limit_settings;
mod key_limits;
mod keys;
mod lifecycle;
mod limits;
mod mail;
mod malformed;
mod metering;
mod metering_failures;
mod metrics;
mod migrations;
mod multiprocess;
mod outage;
mod plans;
mod process;
mod rate_limits;
mod refunds;
mod refusals;
mod retention;
mod series;
mod sessions;
mod sign_in;
mod signup;
mod statement_connections;
mod teams;
mod upgrade;
mod usage;
mod webhooks;
