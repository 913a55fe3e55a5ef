//! The ceiling the stack itself sets: async-graphql 7 on axum 0.8 answering
//! the benchmark's request shapes with constants, no database and no work.
//! Nothing built on this stack can be faster.
//!
//!     bare-stack 127.0.0.1:8100

use async_graphql::{EmptySubscription, Enum, InputObject, Object, Schema, SimpleObject};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::routing::post;
use axum::Router;

type BareSchema = Schema<Query, Mutation, EmptySubscription>;

#[derive(InputObject)]
struct VerifyKeyInput {
    key: String,
    #[graphql(default = 1)]
    credits: i32,
    endpoint: Option<String>,
    request_id: Option<String>,
}

#[derive(SimpleObject)]
struct VerifyKeyResult {
    valid: bool,
    code: &'static str,
    remaining_credits: Option<i32>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Dev,
}

#[derive(SimpleObject, Clone)]
struct ApiKey {
    id: String,
    name: String,
    key_type: KeyType,
    prefix: String,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

#[derive(SimpleObject, Clone)]
struct KeyUsage {
    api_key: ApiKey,
    credits: i32,
    requests: i32,
}

#[derive(SimpleObject)]
struct KeysUsage {
    cycle_start: String,
    cycle_end: String,
    total_credits: i32,
    remaining_credits: i32,
    keys: Vec<KeyUsage>,
}

#[derive(SimpleObject)]
struct User {
    id: String,
    email: String,
}

const TIME: &str = "2026-11-25T12:00:00.000000Z";

struct Query;

#[Object]
impl Query {
    async fn me(&self) -> User {
        User {
            id: "00000000-0000-0000-0000-000000000000".into(),
            email: "bench@example.com".into(),
        }
    }

    /// The benchmark's keysUsage shape: 20 keys, every field it asks for.
    async fn keys_usage(&self) -> KeysUsage {
        let key = KeyUsage {
            api_key: ApiKey {
                id: "00000000-0000-0000-0000-000000000000".into(),
                name: "key".into(),
                key_type: KeyType::Dev,
                prefix: "sk_dev_AbCd".into(),
                created_at: TIME.into(),
                last_used_at: Some(TIME.into()),
                revoked_at: None,
            },
            credits: 1000,
            requests: 1000,
        };
        KeysUsage {
            cycle_start: TIME.into(),
            cycle_end: TIME.into(),
            total_credits: 20_000,
            remaining_credits: 0,
            keys: vec![key; 20],
        }
    }
}

struct Mutation;

#[Object]
impl Mutation {
    async fn verify_key(&self, input: VerifyKeyInput) -> VerifyKeyResult {
        let _ = (input.key, input.credits, input.endpoint, input.request_id);
        VerifyKeyResult {
            valid: true,
            code: "VALID",
            remaining_credits: Some(1000),
        }
    }
}

async fn graphql(State(schema): State<BareSchema>, request: GraphQLRequest) -> GraphQLResponse {
    schema.execute(request.into_inner()).await.into()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8100".into());
    let schema = Schema::build(Query, Mutation, EmptySubscription).finish();
    let app = Router::new()
        .route("/graphql", post(graphql))
        .with_state(schema);
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("bare-stack listening addr={}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
