//! Which operation a request ran, as async-graphql chose and validated it.
//! The operation name a client sends is only a claim: it may name nothing
//! in the document, or the document may not validate. What reaches
//! execution is known, so only that may name a metric label.

use std::sync::{Arc, OnceLock};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::Response;

/// What the request ran: unset when nothing was executed; then the
/// operation's name, `None` for an anonymous one.
#[derive(Clone, Default)]
pub struct RanOperation(Arc<OnceLock<Option<String>>>);

impl RanOperation {
    /// None: nothing ran. Some(None): an anonymous operation ran.
    pub fn get(&self) -> Option<Option<&str>> {
        self.0.get().map(Option::as_deref)
    }
}

/// Records the executed operation into the request's `RanOperation`.
pub struct RecordOperation;

impl ExtensionFactory for RecordOperation {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RecordOperation)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for RecordOperation {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Some(ran) = ctx.data_opt::<RanOperation>() {
            let _ = ran.0.set(operation_name.map(str::to_owned));
        }
        next.run(ctx, operation_name).await
    }
}
