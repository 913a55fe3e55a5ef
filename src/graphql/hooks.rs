//! The schema's one extension. Once a schema has any extension,
//! async-graphql sends every field of every request through each of them
//! (a registry lookup by type and field name, and a boxed future per
//! extension and field), so keymeter's request hooks share one: it records
//! the operation that ran (`operation`) and holds the request to its answer
//! budget (`budget`).

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Variables};

use super::budget::{AnswerBudget, BudgetCheck};
use super::operation;

/// Makes each request's hooks.
pub struct RequestHooks {
    pub budget: AnswerBudget,
}

impl ExtensionFactory for RequestHooks {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Hooks {
            budget: self.budget.check(),
        })
    }
}

/// One request's hooks.
struct Hooks {
    budget: BudgetCheck,
}

#[async_graphql::async_trait::async_trait]
impl Extension for Hooks {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        next.run(ctx, self.budget.prepare(request)).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        self.budget.parsed(&document, variables);
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        self.budget.validated(&result);
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        operation::record(ctx, operation_name);
        if let Some(refusal) = self.budget.before_execute(ctx, operation_name).await {
            return refusal;
        }
        next.run(ctx, operation_name).await
    }
}
