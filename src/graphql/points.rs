//! `[UsagePoint!]!`, resolved in one pass. A usage series answers up to
//! 168 points for each key; async-graphql's executor spends a boxed future,
//! a path node and a concurrent join on every field of every point, which
//! led usageSeries' profile of the server. A point has three leaf fields
//! and no arguments, so the list reads its selection set once (fields,
//! aliases, fragments, `__typename`) and renders every point from that plan.

use std::borrow::Cow;
use std::sync::Arc;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, Name, OutputType, Positioned, ScalarType, ServerResult, SimpleObject,
    Value,
};

use chrono::Utc;

use super::scalars::{saturating_i32, DateTime};
use crate::metering::Point;

// The schema's type; `UsagePoints` renders its values.
/// v2
#[derive(SimpleObject)]
pub struct UsagePoint {
    /// Start of the bucket (inclusive); it ends where the next one starts.
    start: DateTime,
    /// Credits charged in the bucket.
    credits: i32,
    /// Charged (VALID, credits > 0) verifications in the bucket.
    requests: i32,
}

/// The points of one series, oldest first. Every series of an answer has
/// the same buckets, so their starts are rendered once and shared.
pub struct UsagePoints {
    starts: Arc<[Value]>,
    points: Vec<Point>,
}

impl UsagePoints {
    /// Each bucket's start, rendered as the `DateTime` scalar, to share.
    pub fn starts(starts: impl Iterator<Item = chrono::DateTime<Utc>>) -> Arc<[Value]> {
        starts.map(|start| DateTime(start).to_value()).collect()
    }

    pub fn new(starts: &Arc<[Value]>, points: Vec<Point>) -> Self {
        debug_assert_eq!(starts.len(), points.len(), "one point per bucket");
        Self {
            starts: starts.clone(),
            points,
        }
    }
}

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
        let template = Template::new(&plan);
        let points = self.starts.iter().zip(&self.points);
        Ok(Value::List(points.map(|p| template.render(p)).collect()))
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

/// A point's object with its response keys in place: each point clones it
/// and sets its values by position, so no point hashes a key (inserting
/// them one by one led a HOUR series' profile).
struct Template<'a> {
    object: IndexMap<Name, Value>,
    plan: &'a [(Name, PointField)],
}

impl<'a> Template<'a> {
    fn new(plan: &'a [(Name, PointField)]) -> Self {
        let object = plan
            .iter()
            .map(|(key, _)| (key.clone(), Value::Null))
            .collect();
        Self { object, plan }
    }

    fn render(&self, (start, point): (&Value, &Point)) -> Value {
        let mut object = self.object.clone();
        for ((_, value), (_, field)) in object.iter_mut().zip(self.plan) {
            *value = match field {
                PointField::Start => start.clone(),
                PointField::Credits => Value::from(saturating_i32(point.credits)),
                PointField::Requests => Value::from(saturating_i32(point.requests)),
                PointField::TypeName => Value::from("UsagePoint"),
            };
        }
        Value::Object(object)
    }
}
