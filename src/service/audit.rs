//! The audit log: writing an event in the transaction of the change it
//! records (callers pass that transaction, so a rolled-back change leaves
//! no event and an event never exists without its change), and reading an
//! account's log newest first, by an opaque cursor.

use base64::Engine;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::webhook_queue::{self, WebhookEvent};
use crate::domain::audit::{Action, Actor, Change};
use crate::entity::audit_event;
use crate::error::{Error, Result};

/// Writes `change` to `account_id`'s log, on `conn`: the change's own
/// transaction. The event also goes, as a webhook, to every endpoint of the
/// account subscribed to its action, in the same transaction, so an
/// endpoint hears of exactly the changes that happened.
pub async fn record(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    actor: &Actor,
    change: Change,
    now: DateTime<Utc>,
) -> Result<()> {
    record_with_data(conn, account_id, actor, change, now, None).await
}

/// [`record`], with the webhook's `data` given instead of the event's
/// description (usage.threshold_reached carries the figures the contract
/// names).
pub async fn record_with_data(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    actor: &Actor,
    change: Change,
    now: DateTime<Utc>,
    data: Option<serde_json::Value>,
) -> Result<()> {
    let (ip, user_agent) = match actor {
        Actor::User { ip, user_agent, .. } => (ip.map(|ip| ip.to_string()), user_agent.clone()),
        _ => (None, None),
    };
    let id = Uuid::new_v4();
    // What a receiver learns: the log's entry but for the request's address
    // and User-Agent, which stay with the account's members.
    let data = data.unwrap_or_else(|| {
        serde_json::json!({
            "accountId": account_id,
            "auditEventId": id,
            "actor": { "type": actor.kind().to_uppercase(), "userId": actor.user_id() },
            "targetType": change.target_type.name(),
            "targetId": change.target_id,
            "targetName": change.target_name,
        })
    });
    let event = WebhookEvent::of_audit_event(id, change.action.name(), now, data);
    audit_event::ActiveModel {
        id: Set(id),
        account_id: Set(account_id),
        occurred_at: Set(now),
        action: Set(change.action.name().to_owned()),
        actor_type: Set(actor.kind().to_owned()),
        actor_user_id: Set(actor.user_id()),
        target_type: Set(change.target_type.name().to_owned()),
        target_id: Set(change.target_id),
        target_name: Set(change.target_name),
        ip: Set(ip),
        user_agent: Set(user_agent),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    webhook_queue::enqueue(conn, account_id, &event, now).await?;
    Ok(())
}

/// Most events one page may ask for.
pub const MAX_PAGE: u64 = 200;

/// One page of a log, newest first.
#[derive(Clone)]
pub struct Page {
    pub events: Vec<audit_event::Model>,
    pub next_cursor: Option<String>,
}

/// What a log read asks for.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PageAsk {
    pub first: i32,
    pub after: Option<String>,
    pub actions: Option<Vec<String>>,
}

/// The events of `account_id` older than the cursor, newest first. Events
/// are ordered by the sequence they were written in, so a page read while
/// new events arrive neither repeats nor skips one. A cursor is bound to
/// its account: another account's, or one that was never made, is refused
/// the same way.
pub async fn page(conn: &impl ConnectionTrait, account_id: Uuid, ask: &PageAsk) -> Result<Page> {
    let first = u64::try_from(ask.first)
        .ok()
        .filter(|first| (1..=MAX_PAGE).contains(first))
        .ok_or_else(|| Error::bad_input(format!("first: 1 to {MAX_PAGE}")))?;
    let mut query =
        audit_event::Entity::find().filter(audit_event::Column::AccountId.eq(account_id));
    if let Some(cursor) = &ask.after {
        let before = Cursor::parse(cursor, account_id)?;
        query = query.filter(audit_event::Column::Seq.lt(before));
    }
    if let Some(actions) = &ask.actions {
        let mut names = Vec::with_capacity(actions.len());
        for name in actions {
            let action = Action::parse(name).ok_or_else(|| {
                Error::bad_input(format!("actions: {name:?} is not an audit action"))
            })?;
            names.push(action.name());
        }
        query = query.filter(audit_event::Column::Action.is_in(names));
    }
    let mut events = query
        .order_by_desc(audit_event::Column::Seq)
        .limit(first + 1)
        .all(conn)
        .await?;
    let more = events.len() as u64 > first;
    events.truncate(first as usize);
    let next_cursor = more
        .then(|| events.last().map(|last| Cursor::make(account_id, last.seq)))
        .flatten();
    Ok(Page {
        events,
        next_cursor,
    })
}

/// The opaque cursor: the account's id and the last sequence number seen,
/// base64url. It is not secret (the sequence says only how many events the
/// server has written); the account in it makes one log's cursor useless
/// on another.
struct Cursor;

impl Cursor {
    fn make(account_id: Uuid, seq: i64) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{account_id}:{seq}"))
    }

    fn parse(cursor: &str, account_id: Uuid) -> Result<i64> {
        let refused = || Error::bad_input("after: not a cursor of this account's log");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| refused())?;
        let text = String::from_utf8(bytes).map_err(|_| refused())?;
        let (account, seq) = text.split_once(':').ok_or_else(refused)?;
        if account.parse::<Uuid>().ok() != Some(account_id) {
            return Err(refused());
        }
        seq.parse::<i64>().map_err(|_| refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_work_only_on_their_own_account() {
        let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        let cursor = Cursor::make(mine, 42);
        assert_eq!(Cursor::parse(&cursor, mine).unwrap(), 42);
        let foreign = Cursor::parse(&cursor, theirs).unwrap_err();
        let garbage = Cursor::parse("%%%", mine).unwrap_err();
        assert_eq!(foreign.to_string(), garbage.to_string());
    }
}
