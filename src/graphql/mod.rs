//! The GraphQL schema: types mirroring the contract and thin resolvers that
//! read the request (its user, its client address), call one service of
//! `AppState` (`accounts`, `sign_in`, `sessions`, `teams`, `keys`,
//! `metering`) and convert the answer; the clock is read only for the
//! instant statuses are shown at. Which account a request may reach is the
//! `teams` service's to say (`context::member`), never a resolver's.

mod budget;
mod context;
pub mod cookies;
mod documents;
mod guard;
mod hooks;
mod mutation;
mod operation;
mod points;
mod query;
mod scalars;
mod teams;
mod types;
mod webhooks;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};

pub use context::{Client, RequestAuth, SignInBrowser};
pub use documents::Documents;
pub use operation::RanOperation;

use std::sync::Arc;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::state::AppState;
pub use mutation::Mutation;
pub use query::Query;

/// What a field costs in the complexity limit, beyond its children: the
/// work it makes the server do, so that the limit (500 by default) bounds
/// a request's database and hashing work, not only its size. A field that
/// reads memory costs 1, as async-graphql counts by default.
///
/// Lists that grow with an account count their items' fields once per key
/// the account holds (`budget`), so the limit (10,000 by default) also
/// bounds the answer: a dashboard's keys table fits for a few hundred keys,
/// while 50 reads are what one request may do.
mod cost {
    /// A round trip that reads (keys, an account).
    pub const READ: usize = 200;
    /// A read over every key's rollups.
    pub const USAGE: usize = 400;
    /// A write: a key made or revoked, a session ended.
    pub const WRITE: usize = 200;
    /// A charge (verifyKey): a lookup and a write, maybe a batch's wait.
    pub const CHARGE: usize = 200;
    /// An Argon2 hash (signup, login): about 50 ms of a hashing thread.
    /// At most one such field per request is allowed anyway.
    pub const PASSWORD: usize = 2_000;
}

pub type KeymeterSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema with no data attached: what `app` serves once it adds the
/// state, and what `keymeter schema` prints.
pub fn schema_builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription)
}

/// The schema as served: with the state, and the configured limits on what
/// one request may ask for.
pub fn schema(state: AppState, metrics: Arc<Metrics>, config: &Config) -> KeymeterSchema {
    let builder = schema_builder()
        .data(state)
        .data(metrics)
        .limit_depth(config.max_query_depth)
        .limit_complexity(config.max_query_complexity)
        .extension(hooks::RequestHooks {
            budget: budget::AnswerBudget {
                max_complexity: config.max_query_complexity,
                max_usage_points: config.max_usage_points,
            },
        });
    if config.introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}

/// The exported SDL, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}

/// The GraphiQL playground served on `GET /graphql`.
pub const GRAPHIQL_HTML: &str = include_str!("graphiql.html");
