//! keymeter: the GraphQL backend behind an API product's developer dashboard
//! and gateway.

pub mod app;
pub mod batch;
pub mod bounded_map;
pub mod clock;
pub mod config;
pub mod domain;
pub mod entity;
pub mod error;
pub mod graphql;
pub mod http;
pub mod metering;
pub mod metrics;
pub mod oidc;
pub mod service;
pub mod shared_reads;
pub mod state;
pub mod store;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
