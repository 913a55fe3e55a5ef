//! What one request will make the server produce, bounded by what it will
//! hold, not by how it is spelled.
//!
//! async-graphql's complexity counts a list's children once, whatever the
//! list holds, so twenty aliased HOUR series over a large account once
//! answered 38 MB. Here:
//!
//! - usage points: a usageSeries renders buckets × (its keys + the total)
//!   points. They are measured on the operation about to execute (after
//!   validation: fragments expanded, aliases counted, `@skip`/`@include`
//!   applied, so no fragment cycle is followed) and refused (BAD_USER_INPUT,
//!   saying the limit) before any resolver runs; a series without keyIds
//!   is counted with every key that was usable in its range (one indexed
//!   count, made only for such documents).
//! - lists that grow with an account (`keys`, `keysUsage.keys`, a series'
//!   `keys`) cost their items' fields once per key they really hold, in the
//!   same budget as the complexity validation counted (`RequestCost`). A
//!   series' lists are charged with its points, before it runs; `keys` and
//!   `keysUsage` charge theirs as soon as they have read the rows, before a
//!   single one is rendered, so they cost no query of their own. A list
//!   that would pass the limit answers BAD_USER_INPUT in place of its rows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::extensions::ExtensionContext;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Field, FragmentDefinition, OperationDefinition,
    OperationType, Selection, SelectionSet,
};
use async_graphql::parser::Positioned;
use async_graphql::{
    Context, ErrorExtensions, Name, Request, Response, SelectionField, ValidationResult,
    Value as ConstValue, Variables,
};
use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, HashSet};

use super::context::{signed_in_user, RequestAuth};
use crate::domain::{instant, Interval, SeriesRange};
use crate::error::{Error, Result};
use crate::state::AppState;

/// The limits one request is held to.
#[derive(Debug, Clone, Copy)]
pub struct AnswerBudget {
    /// The complexity limit, now with lists counted by their real length.
    pub max_complexity: usize,
    /// Usage points (buckets × series) one request may render.
    pub max_usage_points: u64,
}

impl AnswerBudget {
    /// A check for one request (`hooks` runs it).
    pub fn check(&self) -> BudgetCheck {
        BudgetCheck {
            budget: *self,
            captured: Mutex::default(),
            cost: Arc::new(RequestCost {
                limit: self.max_complexity as u64,
                spent: AtomicU64::new(0),
            }),
        }
    }
}

/// One request's complexity: what validation counted, plus what its lists
/// turned out to hold. Shared by the extension and the resolvers (it is
/// the request's data).
pub struct RequestCost {
    limit: u64,
    spent: AtomicU64,
}

impl RequestCost {
    /// Adds `cost`, or refuses it when the request would pass the limit
    /// (the cost is then not kept, so another list may still fit).
    fn take(&self, cost: u64, with_keys: u64) -> Result<()> {
        let before = self.spent.fetch_add(cost, Ordering::Relaxed);
        let after = before.saturating_add(cost);
        if after <= self.limit {
            return Ok(());
        }
        self.spent.fetch_sub(cost, Ordering::Relaxed);
        Err(Error::bad_input(format!(
            "Query is too complex: with this account's {with_keys} keys it costs {after}, and at \
             most {} is allowed; select fewer fields or aliases of its key lists",
            self.limit
        )))
    }
}

/// Charges a list of `rows` keys whose items select `item_fields` fields
/// (validation counted one item already), before it is rendered.
pub fn charge_key_list(ctx: &Context<'_>, rows: usize, item_fields: u64) -> Result<()> {
    let Some(cost) = ctx.data_opt::<Arc<RequestCost>>() else {
        return Ok(());
    };
    let extra = (rows as u64).saturating_sub(1).saturating_mul(item_fields);
    cost.take(extra, rows as u64)
}

/// Fields selected under `field`, at every depth: what async-graphql's
/// complexity counts for one item of the list `field` answers.
pub fn item_fields(field: SelectionField<'_>) -> u64 {
    field
        .selection_set()
        .map(|child| 1 + item_fields(child))
        .sum()
}

/// One request's check: the document kept from parsing when it asks a
/// usageSeries, and the request's complexity.
pub struct BudgetCheck {
    budget: AnswerBudget,
    captured: Mutex<Option<(ExecutableDocument, Variables)>>,
    cost: Arc<RequestCost>,
}

impl BudgetCheck {
    /// The request, carrying its cost for the resolvers' lists.
    pub fn prepare(&self, request: Request) -> Request {
        request.data(self.cost.clone())
    }

    /// Keeps the parsed document when it asks a usageSeries: most requests
    /// (verifyKey, me, keys) ask none, and then nothing is copied.
    pub fn parsed(&self, document: &ExecutableDocument, variables: &Variables) {
        if asks_usage_series(document) {
            let mut captured = self.captured.lock().unwrap_or_else(|p| p.into_inner());
            *captured = Some((document.clone(), variables.clone()));
        }
    }

    /// Starts the request's cost at what validation counted.
    pub fn validated(&self, result: &ValidationResult) {
        self.cost
            .spent
            .store(result.complexity as u64, Ordering::Relaxed);
    }

    /// Before execution: the refusal to answer, when the kept document's
    /// usage points pass the budget.
    pub async fn before_execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
    ) -> Option<Response> {
        let captured = self
            .captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let (document, variables) = captured?;
        let error = self
            .check(ctx, &document, &variables, operation_name)
            .await
            .err()?;
        let error = error.extend().into_server_error(Default::default());
        Some(Response::from_errors(vec![error]))
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
        let usable = match demand.series_window() {
            Some((from, to)) => state.keys.most_usable_within(user.id, from, to).await?,
            None => 0,
        };
        demand.within(&self.budget, &self.cost, usable)
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

/// Whether any selection anywhere in the document names `usageSeries`: a
/// walk of each definition once, spreads not followed.
fn asks_usage_series(document: &ExecutableDocument) -> bool {
    fn any(set: &SelectionSet) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                field.node.name.node == "usageSeries" || any(&field.node.selection_set.node)
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

/// Which keys a series lists at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeysListed {
    /// Keys that could have usage within the request's series window.
    UsableInWindow,
    Given(u64),
}

impl KeysListed {
    /// At most how many keys, with `usable` keys in the request's window.
    fn count(self, usable: u64) -> u64 {
        match self {
            Self::UsableInWindow => usable,
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
        for field in named(inputs, root, "usageSeries") {
            demand.add_series(inputs, field, now);
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

    /// Lists are only ever a series' own, so no series, nothing to measure.
    fn is_empty(&self) -> bool {
        self.series.is_empty()
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

    fn usage_points(&self, usable: u64) -> u64 {
        self.series
            .iter()
            .map(|series| {
                let keys = series.keys.count(usable);
                let per_bucket = series
                    .totals
                    .saturating_add(series.points_per_key.saturating_mul(keys));
                series.buckets.saturating_mul(per_bucket)
            })
            .fold(0, u64::saturating_add)
    }

    /// What the series' key lists add to the complexity validation counted
    /// (one item each), at the account's size.
    fn lists_cost(&self, usable: u64) -> u64 {
        self.lists.iter().fold(0, |total, list| {
            let extra = list.keys.count(usable).saturating_sub(1);
            total.saturating_add(extra.saturating_mul(list.item_fields))
        })
    }

    fn within(&self, budget: &AnswerBudget, cost: &RequestCost, usable: u64) -> Result<()> {
        let points = self.usage_points(usable);
        if points > budget.max_usage_points {
            return Err(Error::bad_input(format!(
                "usageSeries: at most {} usage points per request (buckets × (keys + total), over \
                 every series asked); this one asks for {points}: ask fewer buckets, use DAY, or \
                 pass keyIds",
                budget.max_usage_points
            )));
        }
        cost.take(self.lists_cost(usable), usable)
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
        assert_eq!(demand.usage_points(10), 168 * 11 + 168 * 21);
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
        assert_eq!(demand.usage_points(1_000), 33 * 2 + 33);
    }

    #[test]
    fn a_series_key_list_costs_its_fields_per_key() {
        let query = r#"{ usageSeries(keyIds: ["a", "b", "c"]) { keys { apiKey { id name } } } }"#;
        let demand = demand(query, serde_json::json!({}));
        // apiKey, id and name: 3 fields, counted once by validation.
        assert_eq!(demand.lists_cost(0), 2 * 3);
        let cost = RequestCost {
            limit: 10,
            spent: AtomicU64::new(5),
        };
        assert!(cost.take(5, 3).is_ok());
        assert!(cost
            .take(1, 3)
            .unwrap_err()
            .to_string()
            .contains("too complex"));
        assert_eq!(
            cost.spent.load(Ordering::Relaxed),
            10,
            "a refused cost is not kept"
        );
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
        let cost = RequestCost {
            limit: 10_000,
            spent: AtomicU64::new(10),
        };
        assert!(demand.within(&budget, &cost, 100).is_ok());
        let err = demand.within(&budget, &cost, 200).unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
        assert!(err.to_string().contains("25000"), "{err}");
    }
}
