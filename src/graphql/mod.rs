//! The GraphQL schema: types mirroring `api-contract.graphql` and thin
//! resolvers that translate to `service` calls.

mod context;
pub mod cookies;
mod documents;
mod guard;
mod mutation;
mod points;
mod query;
mod scalars;
mod types;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};

pub use context::{ClientAddress, RequestAuth, SignInBrowser};
pub use documents::Documents;

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
mod cost {
    /// A round trip that reads (keys, an account).
    pub const READ: usize = 10;
    /// A read over every key's rollups.
    pub const USAGE: usize = 20;
    /// A write: a key made or revoked, a session ended.
    pub const WRITE: usize = 10;
    /// A charge (verifyKey): a lookup and a write, maybe a batch's wait.
    pub const CHARGE: usize = 10;
    /// An Argon2 hash (signup, login): about 50 ms of a hashing thread.
    /// At most one such field per request is allowed anyway.
    pub const PASSWORD: usize = 100;
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
        .limit_complexity(config.max_query_complexity);
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
