//! The contract's accounts and audit log types (v3): an account as one of
//! its members sees it, its members, invitations and log.

use std::collections::HashMap;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use uuid::Uuid;

use super::context::state;
use super::cost;
use super::scalars::DateTime;
use super::types::{BillingAccount, MemberUser};
use super::webhooks::{WebhookDelivery, WebhookEndpoint};
use crate::domain::{MemberRole, Membership};
use crate::entity::{audit_event, billing_account, invitation, user};
use crate::error::Result;
use crate::service::audit::{Page, PageAsk};
use crate::service::invitations::Invited;
use crate::service::teams::{AccountView, MemberView};

/// v3: an account: one billing account and its credits, its keys, its members.
pub struct Account {
    account: billing_account::Model,
    membership: Membership,
}

impl Account {
    pub fn new(account: billing_account::Model, membership: Membership) -> Self {
        Self {
            account,
            membership,
        }
    }
}

impl From<AccountView> for Account {
    fn from(view: AccountView) -> Self {
        Self {
            account: view.account,
            membership: view.membership,
        }
    }
}

#[Object]
impl Account {
    async fn id(&self) -> Uuid {
        self.account.id
    }

    /// 1 to 64 characters; a user's own account is named after their email.
    async fn name(&self) -> &str {
        &self.account.name
    }

    /// The signed-in user's role in it.
    async fn role(&self) -> MemberRole {
        self.membership.role
    }

    async fn billing_account(&self, ctx: &Context<'_>) -> BillingAccount {
        BillingAccount::new(self.account.clone(), state(ctx).clock.now())
    }

    /// Oldest first.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<Member>> {
        let members = state(ctx).teams.members(self.account.id).await?;
        Ok(members.into_iter().map(Member::from).collect())
    }

    /// Pending (not accepted, revoked or expired) invitations, newest first. OWNER only, else FORBIDDEN.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn invitations(&self, ctx: &Context<'_>) -> Result<Vec<Invitation>> {
        let invitations = state(ctx).invitations.pending(&self.membership).await?;
        let inviters = users_by_id(ctx, invitations.iter().map(|i| i.invited_by)).await?;
        Ok(invitations
            .into_iter()
            .map(|invitation| Invitation::new(invitation, &inviters))
            .collect())
    }

    /// Credit thresholds, in percent of monthlyCredits (1 to 100), ascending, at which
    /// usage.threshold_reached is raised, each at most once per account and cycle. Default [80, 100].
    /// Any member may read them.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn usage_alerts(&self, ctx: &Context<'_>) -> Result<Vec<i32>> {
        state(ctx).alerts.thresholds(self.account.id).await
    }

    /// first: 1 to 200. actions restricts to those actions.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(50)")] first: Option<i32>,
        after: Option<String>,
        actions: Option<Vec<String>>,
    ) -> Result<AuditLogPage> {
        let ask = PageAsk {
            first: first.unwrap_or(50),
            after,
            actions,
        };
        let page = state(ctx).teams.audit_log(&self.membership, ask).await?;
        AuditLogPage::new(ctx, page).await
    }

    /// OWNER only, else FORBIDDEN.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn webhook_endpoints(&self, ctx: &Context<'_>) -> Result<Vec<WebhookEndpoint>> {
        let endpoints = state(ctx).webhooks.endpoints(&self.membership).await?;
        Ok(endpoints.into_iter().map(WebhookEndpoint::from).collect())
    }

    /// Newest first; first: 1 to 200. OWNER only, else FORBIDDEN.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: Option<Uuid>,
        #[graphql(default_with = "Some(50)")] first: Option<i32>,
    ) -> Result<Vec<WebhookDelivery>> {
        let deliveries = state(ctx)
            .webhooks
            .deliveries(&self.membership, endpoint_id, first.unwrap_or(50))
            .await?;
        Ok(deliveries.into_iter().map(WebhookDelivery::from).collect())
    }
}

/// The users behind `ids`, in one query.
async fn users_by_id(
    ctx: &Context<'_>,
    ids: impl Iterator<Item = Uuid>,
) -> Result<HashMap<Uuid, MemberUser>> {
    let users = state(ctx).teams.users(ids.collect()).await?;
    Ok(users
        .into_iter()
        .map(|user| (user.id, MemberUser::from(user)))
        .collect())
}

/// v3
#[derive(SimpleObject)]
pub struct Member {
    user: MemberUser,
    role: MemberRole,
    joined_at: DateTime,
}

impl From<MemberView> for Member {
    fn from(view: MemberView) -> Self {
        Self {
            user: view.user.into(),
            role: view.role,
            joined_at: view.joined_at.into(),
        }
    }
}

/// v3
#[derive(SimpleObject)]
pub struct Invitation {
    id: Uuid,
    /// Who may accept it: the signed-in user's email must be this one.
    email: String,
    role: MemberRole,
    invited_by: MemberUser,
    created_at: DateTime,
    /// 7 days after createdAt; an expired invitation cannot be accepted.
    expires_at: DateTime,
}

impl Invitation {
    pub fn new(invitation: invitation::Model, users: &HashMap<Uuid, MemberUser>) -> Self {
        Self {
            invited_by: users
                .get(&invitation.invited_by)
                .cloned()
                .unwrap_or_else(|| MemberUser::unknown(invitation.invited_by)),
            id: invitation.id,
            email: invitation.email,
            role: invitation.role,
            created_at: invitation.created_at.into(),
            expires_at: invitation.expires_at.into(),
        }
    }

    pub fn from_inviter(invitation: invitation::Model, inviter: &user::Model) -> Self {
        let users = HashMap::from([(inviter.id, MemberUser::from(inviter.clone()))]);
        Self::new(invitation, &users)
    }
}

/// v3
#[derive(SimpleObject)]
pub struct CreateInvitationPayload {
    invitation: Invitation,
    /// {public URL}/invitations/accept#<token>: the token, shown this once (and emailed to the
    /// invitee when SMTP is configured). The server keeps only its hash.
    accept_url: String,
}

impl CreateInvitationPayload {
    pub fn new(invited: Invited, inviter: &user::Model) -> Self {
        Self {
            invitation: Invitation::from_inviter(invited.invitation, inviter),
            accept_url: invited.accept_url,
        }
    }
}

/// v3
#[derive(InputObject)]
pub struct CreateInvitationInput {
    /// Default: the user's own account.
    pub account_id: Option<Uuid>,
    pub email: String,
    #[graphql(default_with = "Some(MemberRole::Member)")]
    pub role: Option<MemberRole>,
}

/// v3: who did it.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ActorType {
    /// A signed-in user (dashboard or API).
    User,
    /// An operator at the command line (keymeter accounts ...).
    Operator,
    /// keymeter itself (usage alerts, expiries, retention).
    System,
}

/// v3
#[derive(SimpleObject)]
pub struct AuditActor {
    #[graphql(name = "type")]
    kind: ActorType,
    /// The user, for USER; null otherwise.
    user: Option<MemberUser>,
}

/// v3: one change to an account, written in the same transaction as the change itself.
/// Secrets, their hashes and tokens never appear in it.
#[derive(SimpleObject)]
pub struct AuditEvent {
    id: Uuid,
    occurred_at: DateTime,
    action: String,
    actor: AuditActor,
    /// KEY, ACCOUNT, INVITATION, MEMBER or WEBHOOK_ENDPOINT.
    target_type: String,
    /// The key's, invitation's, member's (user id) or endpoint's id; the account's id for ACCOUNT.
    target_id: String,
    /// A name a person recognises: the key's name, the invitee's or member's email, the URL.
    target_name: Option<String>,
    /// For USER actions: the client address and User-Agent of the request that did it.
    ip: Option<String>,
    user_agent: Option<String>,
}

impl AuditEvent {
    fn new(event: audit_event::Model, users: &HashMap<Uuid, MemberUser>) -> Self {
        let kind = match event.actor_type.as_str() {
            "operator" => ActorType::Operator,
            "system" => ActorType::System,
            _ => ActorType::User,
        };
        let user = event.actor_user_id.map(|id| {
            users
                .get(&id)
                .cloned()
                .unwrap_or_else(|| MemberUser::unknown(id))
        });
        Self {
            id: event.id,
            occurred_at: event.occurred_at.into(),
            action: event.action,
            actor: AuditActor { kind, user },
            target_type: event.target_type,
            target_id: event.target_id,
            target_name: event.target_name,
            ip: event.ip,
            user_agent: event.user_agent,
        }
    }
}

/// v3: newest first.
#[derive(SimpleObject)]
pub struct AuditLogPage {
    events: Vec<AuditEvent>,
    /// Pass as `after` for the next (older) page; null on the last page.
    next_cursor: Option<String>,
}

impl AuditLogPage {
    async fn new(ctx: &Context<'_>, page: Page) -> Result<Self> {
        let actors = users_by_id(ctx, page.events.iter().filter_map(|e| e.actor_user_id)).await?;
        Ok(Self {
            events: page
                .events
                .into_iter()
                .map(|event| AuditEvent::new(event, &actors))
                .collect(),
            next_cursor: page.next_cursor,
        })
    }
}
