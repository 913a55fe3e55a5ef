//! Which operation a request ran, as async-graphql chose and validated it.
//! The operation name a client sends is only a claim: it may name nothing
//! in the document, or the document may not validate. What reaches
//! execution is known, so only that may name a metric label.

use std::sync::{Arc, OnceLock};

use async_graphql::extensions::ExtensionContext;

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

/// Records the operation about to execute into the request's
/// `RanOperation` (`hooks` calls it).
pub fn record(ctx: &ExtensionContext<'_>, operation_name: Option<&str>) {
    if let Some(ran) = ctx.data_opt::<RanOperation>() {
        let _ = ran.0.set(operation_name.map(str::to_owned));
    }
}
