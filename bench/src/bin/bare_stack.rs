//! The ceiling the stack itself sets: async-graphql 7 on axum 0.8 answering
//! the benchmark's request shapes with constants, no database and no work.
//! Nothing built on this stack can be faster.
//!
//!     bare-stack 127.0.0.1:8100 [ANSWERS_DIR]
//!
//! With ANSWERS_DIR (files NAME.json: the `data` keymeter answered to the
//! dashboard's document NAME), `POST /documents/NAME` runs any document on
//! keymeter's own schema (schema.graphql, built as a dynamic schema: the
//! same types, arguments and enums) whose resolvers only read that answer:
//! the same document, the same answer, no work.
//!
//! With BARE_DATABASE_URL (PostgreSQL), `POST /graphql/round-trip` and
//! `POST /documents/NAME/round-trip` first make one round trip to the
//! database (`SELECT 1`, through the database handle keymeter opens): the ceiling
//! of anything that must ask the database once per request, as a signed-in
//! read (its session) or a key's check does.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dynamic;
use async_graphql::{EmptySubscription, Enum, InputObject, Object, Schema, SimpleObject};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{Path, State};
use axum::routing::post;
use axum::Router;
use keymeter::store::db::Db;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

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

/// One round trip to the database, as a request's first statement.
async fn round_trip(db: &Db) -> Result<(), axum::http::StatusCode> {
    let one = Statement::from_string(DbBackend::Postgres, "SELECT 1");
    db.query_one_raw(one)
        .await
        .map_err(|_| axum::http::StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(())
}

async fn graphql_after_round_trip(
    State((schema, db)): State<(BareSchema, Db)>,
    request: GraphQLRequest,
) -> Result<GraphQLResponse, axum::http::StatusCode> {
    round_trip(&db).await?;
    Ok(schema.execute(request.into_inner()).await.into())
}

/// The database as keymeter opens it (`app::connect`, the same settings):
/// on PostgreSQL, a statement runs on a connection of `store::db`'s own.
async fn pool(url: &str) -> anyhow::Result<Db> {
    let mut config = keymeter::Config::from_defaults();
    config.database_url = url.to_owned();
    keymeter::app::connect(&config).await
}

/// keymeter's schema, as the server exports it.
const SDL: &str = include_str!("../../../schema.graphql");

/// keymeter's schema with resolvers that read a recorded answer: each field
/// returns its response key's value in its parent's answer (the root's is
/// the request's `data`).
fn answering_schema() -> anyhow::Result<dynamic::Schema> {
    use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};
    use dynamic::{
        Enum as DynEnum, Field, FieldFuture, FieldValue, InputObject as DynInput, InputValue,
        Object as DynObject, Scalar, TypeRef,
    };

    fn type_ref(ty: &Type) -> TypeRef {
        let base = match &ty.base {
            BaseType::Named(name) => TypeRef::Named(name.to_string().into()),
            BaseType::List(inner) => TypeRef::List(Box::new(type_ref(inner))),
        };
        if ty.nullable {
            base
        } else {
            TypeRef::NonNull(Box::new(base))
        }
    }
    fn named(ty: &Type) -> String {
        match &ty.base {
            BaseType::Named(name) => name.to_string(),
            BaseType::List(inner) => named(inner),
        }
    }
    fn input(definition: &async_graphql::parser::types::InputValueDefinition) -> InputValue {
        let value = InputValue::new(
            definition.name.node.to_string(),
            type_ref(&definition.ty.node),
        );
        match &definition.default_value {
            Some(default) => value.default_value(default.node.clone()),
            None => value,
        }
    }
    /// A recorded value as a field returns it: objects by reference, for
    /// their own fields to read; leaves as values.
    fn one(value: &serde_json::Value, object: bool) -> FieldValue<'_> {
        match object {
            true => FieldValue::borrowed_any(value),
            false => FieldValue::value(
                async_graphql::Value::from_json(value.clone()).unwrap_or_default(),
            ),
        }
    }
    fn answer(value: &serde_json::Value, object: bool) -> Option<FieldValue<'_>> {
        match value {
            serde_json::Value::Null => None,
            serde_json::Value::Array(items) => Some(FieldValue::list(
                items.iter().map(move |item| one(item, object)),
            )),
            other => Some(one(other, object)),
        }
    }
    /// Reads the field's response key in its parent's answer.
    fn resolve(ctx: dynamic::ResolverContext<'_>, object: bool) -> FieldFuture<'_> {
        FieldFuture::new(async move {
            let parent = match ctx.parent_value.try_downcast_ref::<serde_json::Value>() {
                Ok(parent) => parent,
                Err(_) => ctx.ctx.data::<Arc<serde_json::Value>>()?.as_ref(),
            };
            let key = ctx.ctx.item.node.response_key().node.as_str();
            Ok(parent.get(key).and_then(|value| answer(value, object)))
        })
    }

    let document = async_graphql::parser::parse_schema(SDL)?;
    let definitions: Vec<_> = document
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            TypeSystemDefinition::Type(ty) => Some(&ty.node),
            _ => None,
        })
        .collect();
    let objects: std::collections::HashSet<String> = definitions
        .iter()
        .filter(|ty| matches!(ty.kind, TypeKind::Object(_)))
        .map(|ty| ty.name.node.to_string())
        .collect();
    let mut schema = dynamic::Schema::build("Query", Some("Mutation"), None);
    for ty in definitions {
        let name = ty.name.node.to_string();
        schema = match &ty.kind {
            TypeKind::Scalar => schema.register(Scalar::new(name)),
            TypeKind::Enum(e) => schema.register(
                DynEnum::new(name).items(e.values.iter().map(|v| v.node.value.node.to_string())),
            ),
            TypeKind::InputObject(i) => schema.register(
                i.fields
                    .iter()
                    .fold(DynInput::new(name), |o, f| o.field(input(&f.node))),
            ),
            TypeKind::Object(o) => {
                let mut object = DynObject::new(name);
                for field in &o.fields {
                    let field = &field.node;
                    let is_object = objects.contains(&named(&field.ty.node));
                    let made = field.arguments.iter().fold(
                        Field::new(
                            field.name.node.to_string(),
                            type_ref(&field.ty.node),
                            move |ctx| resolve(ctx, is_object),
                        ),
                        |f, argument| f.argument(input(&argument.node)),
                    );
                    object = object.field(made);
                }
                schema.register(object)
            }
            _ => anyhow::bail!("bare-stack: {name}: interfaces and unions are not built"),
        };
    }
    Ok(schema.finish()?)
}

/// The recorded answers, by document name.
type Answers = Arc<HashMap<String, Arc<serde_json::Value>>>;

/// What the documents' routes share.
#[derive(Clone)]
struct Documents {
    schema: dynamic::Schema,
    answers: Answers,
    db: Option<Db>,
}

async fn document(
    State(documents): State<Documents>,
    Path(name): Path<String>,
    request: GraphQLRequest,
) -> Result<GraphQLResponse, axum::http::StatusCode> {
    let answer = documents
        .answers
        .get(&name)
        .ok_or(axum::http::StatusCode::NOT_FOUND)?;
    let request = request.into_inner().data(answer.clone());
    Ok(documents.schema.execute(request).await.into())
}

async fn document_after_round_trip(
    State(documents): State<Documents>,
    Path(name): Path<String>,
    request: GraphQLRequest,
) -> Result<GraphQLResponse, axum::http::StatusCode> {
    let db = documents
        .db
        .as_ref()
        .ok_or(axum::http::StatusCode::NOT_FOUND)?;
    round_trip(db).await?;
    document(State(documents.clone()), Path(name), request).await
}

fn read_answers(dir: &str) -> anyhow::Result<Answers> {
    let mut answers = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let answer: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        answers.insert(name.to_owned(), Arc::new(answer));
    }
    Ok(Arc::new(answers))
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8100".into());
    let schema = Schema::build(Query, Mutation, EmptySubscription).finish();
    let db = match std::env::var("BARE_DATABASE_URL") {
        Ok(url) => Some(pool(&url).await?),
        Err(_) => None,
    };
    let mut app = Router::new()
        .route("/graphql", post(graphql))
        .with_state(schema.clone());
    if let Some(db) = &db {
        let after = Router::new()
            .route("/graphql/round-trip", post(graphql_after_round_trip))
            .with_state((schema, db.clone()));
        app = app.merge(after);
    }
    if let Some(dir) = std::env::args().nth(2) {
        let documents = Documents {
            schema: answering_schema()?,
            answers: read_answers(&dir)?,
            db,
        };
        let documents = Router::new()
            .route("/documents/{name}", post(document))
            .route(
                "/documents/{name}/round-trip",
                post(document_after_round_trip),
            )
            .with_state(documents);
        app = app.merge(documents);
    }
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("bare-stack listening addr={}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
