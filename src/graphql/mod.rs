//! The GraphQL schema: types mirroring `api-contract.graphql` and thin
//! resolvers that translate to `service` calls.

mod context;
mod documents;
mod mutation;
mod query;
mod scalars;
mod types;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};

pub use context::{ClientAddress, RequestAuth};
pub use documents::Documents;

use crate::config::Config;
use crate::state::AppState;
pub use mutation::Mutation;
pub use query::Query;

pub type KeymeterSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema with no data attached: what `app` serves once it adds the
/// state, and what `keymeter schema` prints.
pub fn schema_builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription)
}

/// The schema as served: with the state, and the configured limits on what
/// one request may ask for.
pub fn schema(state: AppState, config: &Config) -> KeymeterSchema {
    let builder = schema_builder()
        .data(state)
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
