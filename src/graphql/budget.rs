//! What one request will make the server produce, bounded before it runs.
//!
//! async-graphql's complexity counts a list's children once, whatever the
//! list holds, so twenty aliased HOUR series over a large account once
//! answered 38 MB. Here the answer is measured by what it will hold: a
//! usageSeries renders buckets × (its keys + the total) points, and the
//! lists that grow with an account (`keys`, `keysUsage.keys`, a series'
//! `keys`) cost their items' fields once per key the account really has.
//! Both are refused (BAD_USER_INPUT, saying the limit) before any resolver
//! runs, so a refused request does no work but one count of the user's keys.
//!
//! The measure runs after validation, on the operation about to execute
//! (fragments expanded, aliases counted, `@skip`/`@include` applied), so it
//! follows no fragment cycle, and the guard has already bounded the
//! expanded document to `guard::MAX_EXPANDED_FIELDS` fields.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Field, FragmentDefinition, OperationDefinition,
    OperationType, Selection, SelectionSet,
};
use async_graphql::parser::Positioned;
use async_graphql::{
    ErrorExtensions, Name, Response, ServerError, ServerResult, ValidationResult,
    Value as ConstValue, Variables,
};
use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, HashSet};

use super::context::{signed_in_user, RequestAuth};
use crate::domain::{instant, Interval, SeriesRange};
use crate::error::{Error, Result};
use crate::service::keys::{self, KeyCounts};
use crate::state::AppState;

/// The limits one request is held to.
#[derive(Debug, Clone, Copy)]
pub struct AnswerBudget {
    /// The complexity limit, now with lists counted by their real length.
    pub max_complexity: usize,
    /// Usage points (buckets × series) one request may render.
    pub max_usage_points: u64,
}

impl ExtensionFactory for AnswerBudget {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(BudgetCheck {
            budget: *self,
            captured: Mutex::default(),
            complexity: AtomicUsize::new(0),
        })
    }
}

/// One request's check: the document kept from parsing when it selects a
/// list that grows with an account, and the complexity validation counted.
struct BudgetCheck {
    budget: AnswerBudget,
    captured: Mutex<Option<(ExecutableDocument, Variables)>>,
    complexity: AtomicUsize,
}

#[async_graphql::async_trait::async_trait]
impl Extension for BudgetCheck {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        // Most requests (verifyKey, me) select no such list: no copy for them.
        if selects_account_sized_lists(&document) {
            let mut captured = self.captured.lock().unwrap_or_else(|p| p.into_inner());
            *captured = Some((document.clone(), variables.clone()));
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        self.complexity.store(result.complexity, Ordering::Relaxed);
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let captured = self
            .captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((document, variables)) = captured {
            if let Err(error) = self.check(ctx, &document, &variables, operation_name).await {
                let error = error.extend().into_server_error(Default::default());
                return Response::from_errors(vec![error]);
            }
        }
        next.run(ctx, operation_name).await
    }
}

impl BudgetCheck {
    async fn check(
        &self,
        ctx: &ExtensionContext<'_>,
        document: &ExecutableDocument,
        variables: &Variables,
        operation_name: Option<&str>,
    ) -> Result<()> {
        let Some(operation) = operation(document, operation_name) else {
            return Ok(());
        };
        if operation.node.ty != OperationType::Query {
            return Ok(());
        }
        let state = ctx.data_unchecked::<AppState>();
        let now = state.clock.now();
        let inputs = Inputs::new(&document.fragments, variables, &operation.node);
        let demand = Demand::of(&inputs, &operation.node.selection_set, now);
        if demand.is_empty() {
            return Ok(());
        }
        // Signed out, every such field answers UNAUTHENTICATED by itself.
        let Some(auth) = ctx.data_opt::<RequestAuth>() else {
            return Ok(());
        };
        let Ok(user) = signed_in_user(auth, state).await else {
            return Ok(());
        };
        let counts = keys::counts(&state.db, user.id, demand.series_window()).await?;
        let static_complexity = self.complexity.load(Ordering::Relaxed);
        demand.within(&self.budget, static_complexity, &counts)
    }
}

fn operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) => operations.values().next(),
    }
}

/// The root fields whose answers grow with the account.
const ACCOUNT_SIZED: [&str; 3] = ["keys", "keysUsage", "usageSeries"];

/// Whether any selection anywhere in the document names such a field: a
/// walk of each definition once, spreads not followed.
fn selects_account_sized_lists(document: &ExecutableDocument) -> bool {
    fn any(set: &SelectionSet) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                ACCOUNT_SIZED.contains(&field.node.name.node.as_str())
                    || any(&field.node.selection_set.node)
            }
            Selection::InlineFragment(inline) => any(&inline.node.selection_set.node),
            Selection::FragmentSpread(_) => false,
        })
    }
    document
        .operations
        .iter()
        .any(|(_, operation)| any(&operation.node.selection_set.node))
        || document
            .fragments
            .values()
            .any(|fragment| any(&fragment.node.selection_set.node))
}

/// What the measure reads: fragments to expand, variables (with their
/// declared defaults) to resolve arguments and directives.
struct Inputs<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    variables: &'a Variables,
    defaults: HashMap<&'a str, &'a ConstValue>,
}

impl<'a> Inputs<'a> {
    fn new(
        fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
        variables: &'a Variables,
        operation: &'a OperationDefinition,
    ) -> Self {
        let defaults = operation
            .variable_definitions
            .iter()
            .filter_map(|definition| {
                let default = definition.node.default_value.as_ref()?;
                Some((definition.node.name.node.as_str(), &default.node))
            })
            .collect();
        Self {
            fragments,
            variables,
            defaults,
        }
    }

    /// The fields `set` selects once fragments are expanded and skipped
    /// selections dropped, in order.
    fn fields(&self, set: &'a Positioned<SelectionSet>) -> Vec<&'a Field> {
        let mut fields = Vec::new();
        self.collect(set, &mut fields);
        fields
    }

    fn collect(&self, set: &'a Positioned<SelectionSet>, into: &mut Vec<&'a Field>) {
        for item in &set.node.items {
            match &item.node {
                Selection::Field(field) if self.included(&field.node.directives) => {
                    into.push(&field.node);
                }
                Selection::Field(_) => {}
                Selection::InlineFragment(inline) if self.included(&inline.node.directives) => {
                    self.collect(&inline.node.selection_set, into);
                }
                Selection::InlineFragment(_) => {}
                Selection::FragmentSpread(spread) if self.included(&spread.node.directives) => {
                    if let Some(fragment) = self.fragments.get(&spread.node.fragment_name.node) {
                        self.collect(&fragment.node.selection_set, into);
                    }
                }
                Selection::FragmentSpread(_) => {}
            }
        }
    }

    /// `@skip(if: true)` drops a selection, `@include(if: false)` too.
    fn included(&self, directives: &[Positioned<async_graphql::parser::types::Directive>]) -> bool {
        directives.iter().all(|directive| {
            let condition = directive.node.get_argument("if").and_then(|value| {
                value
                    .node
                    .clone()
                    .into_const_with(|n| self.variable(n))
                    .ok()
            });
            match (directive.node.name.node.as_str(), condition) {
                ("skip", Some(ConstValue::Boolean(skip))) => !skip,
                ("include", Some(ConstValue::Boolean(include))) => include,
                _ => true,
            }
        })
    }

    fn argument(&self, field: &Field, name: &str) -> Option<ConstValue> {
        let value = field.get_argument(name)?.node.clone();
        value
            .into_const_with(|n| self.variable(n))
            .ok()
            .filter(|value| *value != ConstValue::Null)
    }

    /// A variable's value as sent, else its declared default.
    fn variable(&self, name: Name) -> Result<ConstValue, ()> {
        self.variables
            .get(&name)
            .or_else(|| self.defaults.get(name.as_str()).copied())
            .cloned()
            .ok_or(())
    }

    /// Fields selected under `set`, at every depth: what async-graphql's
    /// complexity counts for one item of a list.
    fn size(&self, set: &'a Positioned<SelectionSet>) -> u64 {
        self.fields(set)
            .into_iter()
            .map(|field| 1 + self.size(&field.selection_set))
            .sum()
    }
}

/// Which of the account's keys a list holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeysListed {
    All,
    Unrevoked,
    /// Keys that could have usage within the request's series window.
    UsableInWindow,
    Given(u64),
}

impl KeysListed {
    fn count(self, counts: &KeyCounts) -> u64 {
        match self {
            Self::All => counts.all,
            Self::Unrevoked => counts.unrevoked,
            Self::UsableInWindow => counts.usable_in_window,
            Self::Given(n) => n,
        }
    }
}

/// A list of keys in the answer: which keys, and the fields of one item.
#[derive(Debug)]
struct KeyList {
    keys: KeysListed,
    item_fields: u64,
}

/// One usageSeries field: the buckets it can hold at most, the keys it
/// lists, and how many times its points are rendered per bucket.
#[derive(Debug)]
struct Series {
    buckets: u64,
    keys: KeysListed,
    /// `total` selections (each renders one point per bucket).
    totals: u64,
    /// `points` selections under each `keys` selection, summed.
    points_per_key: u64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// What an operation's answer will hold, by the account's size.
#[derive(Debug, Default)]
struct Demand {
    lists: Vec<KeyList>,
    series: Vec<Series>,
}

/// The earliest a default series can start: a billing cycle is at most 31
/// days, plus the bucket it is widened to.
const DEFAULT_FROM_REACH: Duration = Duration::days(32);

impl Demand {
    fn of<'a>(inputs: &Inputs<'a>, root: &'a Positioned<SelectionSet>, now: DateTime<Utc>) -> Self {
        let mut demand = Self::default();
        for field in inputs.fields(root) {
            match field.name.node.as_str() {
                "keys" => {
                    let revoked = inputs.argument(field, "includeRevoked");
                    demand.lists.push(KeyList {
                        keys: match revoked {
                            Some(ConstValue::Boolean(true)) => KeysListed::All,
                            _ => KeysListed::Unrevoked,
                        },
                        item_fields: inputs.size(&field.selection_set),
                    });
                }
                "keysUsage" => {
                    for keys in named(inputs, &field.selection_set, "keys") {
                        demand.lists.push(KeyList {
                            keys: KeysListed::All,
                            item_fields: inputs.size(&keys.selection_set),
                        });
                    }
                }
                "usageSeries" => demand.add_series(inputs, field, now),
                _ => {}
            }
        }
        demand
    }

    fn add_series<'a>(&mut self, inputs: &Inputs<'a>, field: &'a Field, now: DateTime<Utc>) {
        let interval = match inputs.argument(field, "interval") {
            Some(ConstValue::Enum(name)) if name.as_str() == "HOUR" => Interval::Hour,
            _ => Interval::Day,
        };
        let instant_of = |name| match inputs.argument(field, name) {
            Some(ConstValue::String(text)) => Some(instant::parse(&text).ok()),
            _ => None,
        };
        let (from, to) = (instant_of("from"), instant_of("to"));
        // A malformed instant fails the field before it reads anything.
        if matches!(from, Some(None)) || matches!(to, Some(None)) {
            return;
        }
        let earliest = from
            .flatten()
            .unwrap_or_else(|| now.checked_sub_signed(DEFAULT_FROM_REACH).unwrap_or(now));
        let to = to.flatten().unwrap_or(now).max(earliest);
        let (buckets, earliest, to) = match SeriesRange::parse(interval, earliest, to) {
            Ok(range) => (range.buckets(), range.from, range.to),
            // With `from` defaulted the real range is shorter and may fit.
            Err(_) if from.is_none() => (interval.max_buckets(), earliest, to),
            Err(_) => return,
        };
        let keys = match inputs.argument(field, "keyIds") {
            Some(ConstValue::List(ids)) => {
                let distinct: HashSet<String> = ids.iter().map(ToString::to_string).collect();
                KeysListed::Given(distinct.len() as u64)
            }
            _ => KeysListed::UsableInWindow,
        };
        let mut series = Series {
            buckets: u64::try_from(buckets).unwrap_or(0),
            keys,
            totals: 0,
            points_per_key: 0,
            from: earliest,
            to,
        };
        for part in inputs.fields(&field.selection_set) {
            match part.name.node.as_str() {
                "total" => series.totals += 1,
                "keys" => {
                    let item = &part.selection_set;
                    series.points_per_key += named(inputs, item, "points").count() as u64;
                    self.lists.push(KeyList {
                        keys,
                        item_fields: inputs.size(item),
                    });
                }
                _ => {}
            }
        }
        self.series.push(series);
    }

    fn is_empty(&self) -> bool {
        self.lists.is_empty() && self.series.is_empty()
    }

    /// The span every defaulted series' keys are counted over.
    fn series_window(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let defaulted = self
            .series
            .iter()
            .filter(|series| series.keys == KeysListed::UsableInWindow);
        defaulted.fold(None, |window, series| match window {
            None => Some((series.from, series.to)),
            Some((from, to)) => Some((from.min(series.from), to.max(series.to))),
        })
    }

    fn usage_points(&self, counts: &KeyCounts) -> u64 {
        self.series
            .iter()
            .map(|series| {
                let keys = series.keys.count(counts);
                let per_bucket = series
                    .totals
                    .saturating_add(series.points_per_key.saturating_mul(keys));
                series.buckets.saturating_mul(per_bucket)
            })
            .fold(0, u64::saturating_add)
    }

    /// async-graphql's complexity counted each list's item once; here each
    /// counts once per key the list holds.
    fn complexity(&self, static_complexity: usize, counts: &KeyCounts) -> u64 {
        self.lists
            .iter()
            .fold(static_complexity as u64, |total, list| {
                let items = list.keys.count(counts);
                total
                    .saturating_sub(list.item_fields)
                    .saturating_add(items.saturating_mul(list.item_fields))
            })
    }

    fn within(
        &self,
        budget: &AnswerBudget,
        static_complexity: usize,
        counts: &KeyCounts,
    ) -> Result<()> {
        let points = self.usage_points(counts);
        if points > budget.max_usage_points {
            return Err(Error::bad_input(format!(
                "usageSeries: at most {} usage points per request (buckets × (keys + total), over \
                 every series asked); this one asks for {points}: ask fewer buckets, use DAY, or \
                 pass keyIds",
                budget.max_usage_points
            )));
        }
        let complexity = self.complexity(static_complexity, counts);
        if complexity > budget.max_complexity as u64 {
            return Err(Error::bad_input(format!(
                "Query is too complex: with this account's keys it costs {complexity}, and at \
                 most {} is allowed; select fewer fields or aliases of its key lists",
                budget.max_complexity
            )));
        }
        Ok(())
    }
}

/// The fields named `name` that `set` selects (aliases included).
fn named<'a>(
    inputs: &Inputs<'a>,
    set: &'a Positioned<SelectionSet>,
    name: &'a str,
) -> impl Iterator<Item = &'a Field> + 'a {
    inputs
        .fields(set)
        .into_iter()
        .filter(move |field| field.name.node.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn demand(query: &str, variables: serde_json::Value) -> Demand {
        let document = parse_query(query).unwrap();
        let variables = Variables::from_json(variables);
        let operation = operation(&document, None).unwrap();
        let inputs = Inputs::new(&document.fragments, &variables, &operation.node);
        let now = instant::parse("2026-06-15T12:30:00Z").unwrap();
        Demand::of(&inputs, &operation.node.selection_set, now)
    }

    fn counts(all: u64) -> KeyCounts {
        KeyCounts {
            all,
            unrevoked: all,
            usable_in_window: all,
        }
    }

    #[test]
    fn points_count_buckets_times_keys_and_total_over_aliases_and_fragments() {
        let query = r#"
            query($from: DateTime!) {
              a: usageSeries(from: $from, to: "2026-06-08T00:00:00Z", interval: HOUR) { ...S }
              b: usageSeries(from: $from, to: "2026-06-08T00:00:00Z", interval: HOUR) {
                total { credits } keys { points { credits } again: points { start } }
              }
              c: usageSeries(from: $from, interval: HOUR) @skip(if: true) { total { credits } }
            }
            fragment S on UsageSeries { total { credits } keys { apiKey { id } points { credits } } }
        "#;
        let demand = demand(query, serde_json::json!({ "from": "2026-06-01T00:00:00Z" }));
        assert_eq!(demand.series.len(), 2);
        assert_eq!(demand.series[0].buckets, 168);
        // a: 168 × (1 + 10); b: 168 × (1 + 2 × 10).
        assert_eq!(demand.usage_points(&counts(10)), 168 * 11 + 168 * 21);
    }

    #[test]
    fn key_ids_bound_a_series_and_defaults_reach_back_a_cycle() {
        let query = r#"{
            usageSeries(keyIds: ["a", "a", "b"]) { keys { points { credits } } }
            d: usageSeries { total { credits } }
        }"#;
        let demand = demand(query, serde_json::json!({}));
        assert_eq!(demand.series[0].keys, KeysListed::Given(2));
        // From 32 days back, widened to whole days, to today's end.
        assert_eq!(demand.series[0].buckets, 33);
        assert_eq!(demand.usage_points(&counts(1_000)), 33 * 2 + 33);
    }

    #[test]
    fn lists_cost_their_fields_per_key() {
        let query = "{ keys(includeRevoked: true) { id name } keysUsage { keys { credits apiKey { id } } } }";
        let demand = demand(query, serde_json::json!({}));
        assert_eq!(demand.lists.len(), 2);
        // Validation counted one item of each: 2 and 3 fields.
        assert_eq!(
            demand.complexity(100, &counts(50)),
            100 - 2 - 3 + 50 * 2 + 50 * 3
        );
        assert_eq!(demand.complexity(100, &counts(0)), 95);
    }

    #[test]
    fn refusals_name_the_limit() {
        let demand = demand(
            r#"{ usageSeries(from: "2026-06-01T00:00:00Z", to: "2026-06-08T00:00:00Z", interval: HOUR) { keys { points { credits } } } }"#,
            serde_json::json!({}),
        );
        let budget = AnswerBudget {
            max_complexity: 10_000,
            max_usage_points: 25_000,
        };
        assert!(demand.within(&budget, 10, &counts(100)).is_ok());
        let err = demand.within(&budget, 10, &counts(200)).unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
        assert!(err.to_string().contains("25000"), "{err}");
    }
}
