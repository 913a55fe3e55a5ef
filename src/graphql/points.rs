//! `[UsagePoint!]!`, resolved in one pass. A usage series answers up to
//! 168 points for each key; async-graphql's executor spends a boxed future,
//! a path node and a concurrent join on every field of every point, which
//! made the points most of usageSeries' cost. A point has three leaf fields
//! and no arguments, so the list reads its selection set once (fields,
//! aliases, fragments, `__typename`) and renders every point from that plan.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, Name, OutputType, Positioned, ScalarType, ServerResult, SimpleObject,
    Value,
};

use super::scalars::DateTime;

/// v2
#[derive(SimpleObject)]
pub struct UsagePoint {
    /// Start of the bucket (inclusive); it ends where the next one starts.
    pub start: DateTime,
    /// Credits charged in the bucket.
    pub credits: i32,
    /// Charged (VALID, credits > 0) verifications in the bucket.
    pub requests: i32,
}

/// The points of one series, oldest first.
pub struct UsagePoints(pub Vec<UsagePoint>);

/// What a response key of a point holds.
#[derive(Clone, Copy)]
enum PointField {
    Start,
    Credits,
    Requests,
    TypeName,
}

impl OutputType for UsagePoints {
    fn type_name() -> Cow<'static, str> {
        <Vec<UsagePoint> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<UsagePoint> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<UsagePoint> as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let mut plan = Vec::new();
        // `ctx.item` is the list field's selection set: each point's. Skipped
        // selections are already gone (async-graphql drops them before it
        // executes), and validation has checked every name against the type.
        plan_selection(ctx, &ctx.item.node, &mut plan);
        let points = self.0.iter().map(|point| render(point, &plan)).collect();
        Ok(Value::List(points))
    }
}

/// The response keys of a point in order, the first selection of a key
/// deciding what it holds (validation makes any repeat select the same).
fn plan_selection(
    ctx: &ContextSelectionSet<'_>,
    set: &SelectionSet,
    plan: &mut Vec<(Name, PointField)>,
) {
    for selection in &set.items {
        let fragment = match &selection.node {
            Selection::Field(field) => {
                let key = field.node.response_key().node.clone();
                let field = match field.node.name.node.as_str() {
                    "start" => PointField::Start,
                    "credits" => PointField::Credits,
                    "requests" => PointField::Requests,
                    "__typename" => PointField::TypeName,
                    _ => continue,
                };
                if !plan.iter().any(|(known, _)| *known == key) {
                    plan.push((key, field));
                }
                continue;
            }
            Selection::FragmentSpread(spread) => ctx
                .query_env
                .fragments
                .get(&spread.node.fragment_name.node)
                .map(|fragment| {
                    let on = fragment.node.type_condition.node.on.node.as_str();
                    (Some(on), &fragment.node.selection_set.node)
                }),
            Selection::InlineFragment(inline) => Some((
                inline
                    .node
                    .type_condition
                    .as_ref()
                    .map(|c| c.node.on.node.as_str()),
                &inline.node.selection_set.node,
            )),
        };
        if let Some((on, inner)) = fragment {
            if on.is_none_or(|on| on == "UsagePoint") {
                plan_selection(ctx, inner, plan);
            }
        }
    }
}

fn render(point: &UsagePoint, plan: &[(Name, PointField)]) -> Value {
    let mut object = IndexMap::with_capacity(plan.len());
    for (key, field) in plan {
        let value = match field {
            PointField::Start => point.start.to_value(),
            PointField::Credits => Value::from(point.credits),
            PointField::Requests => Value::from(point.requests),
            PointField::TypeName => Value::from("UsagePoint"),
        };
        object.insert(key.clone(), value);
    }
    Value::Object(object)
}
