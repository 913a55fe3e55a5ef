//! Accounts shared by members (contract v3): who is a member of what, teams
//! made by createAccount, invitations, roles and removal. Every membership
//! check of the API happens here, read from the database in the request
//! that needs it, so a removed member loses access at once in every
//! process; every change is written to the account's audit log in its own
//! transaction.
//!
//! The rules that must hold under races are decided by the database:
//! changes to one account's members take turns on the account's row (the
//! last-owner rule), and an invitation is redeemed by one conditional
//! UPDATE (ten racing accepts make one member).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, EntityTrait,
    JoinType, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait, Set,
    TransactionTrait,
};
use uuid::Uuid;

use super::audit::{self, Page, PageAsk};
use super::billing;
use super::mail::{Email as OutgoingEmail, Mailer};
use crate::clock::Clock;
use crate::config::PublicOrigin;
use crate::domain::audit::{Action, Actor, Change, TargetType};
use crate::domain::membership::{
    INVITATION_LIFETIME, MAX_MEMBERS, MAX_PENDING_INVITATIONS, MAX_TEAMS_PER_USER,
};
use crate::domain::secret::InvitationToken;
use crate::domain::{AccountName, AccountPolicy, Email, MemberRole, Membership, SecretHash};
use crate::entity::{account_member, billing_account, invitation, user};
use crate::error::{Error, Result};

/// An account as one of its members sees it.
pub struct AccountView {
    pub account: billing_account::Model,
    pub membership: Membership,
}

/// A member with the user behind it.
pub struct MemberView {
    pub user: user::Model,
    pub role: MemberRole,
    pub joined_at: DateTime<Utc>,
}

/// An invitation just made, with the only copy of its accept URL's token.
pub struct Invited {
    pub invitation: invitation::Model,
    pub accept_url: String,
}

#[derive(Clone)]
pub struct Teams {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub policy: AccountPolicy,
    /// Where acceptUrl points: `{public}/invitations/accept#<token>`.
    pub public: PublicOrigin,
    pub mail: Mailer,
}

impl Teams {
    /// The user's membership of `account_id`, or of their own account when
    /// None (provisioned now if signup could not). Not a member, or no such
    /// account: NOT_FOUND, the same answer for both.
    pub async fn membership(
        &self,
        user: &user::Model,
        account_id: Option<Uuid>,
    ) -> Result<Membership> {
        let Some(account_id) = account_id else {
            let own = self.own_account(user).await?;
            return Ok(Membership {
                account_id: own.id,
                user_id: user.id,
                role: MemberRole::Owner,
                own: true,
            });
        };
        let found = account_member::Entity::find_by_id((account_id, user.id))
            .find_also_related(billing_account::Entity)
            .one(&self.db)
            .await?;
        match found {
            Some((member, Some(account))) => Ok(Membership {
                account_id,
                user_id: user.id,
                role: member.role,
                own: account.user_id == Some(user.id),
            }),
            _ => Err(Error::NotFound),
        }
    }

    /// The user's own account (provisioned now if signup could not).
    pub async fn own_account(&self, user: &user::Model) -> Result<billing_account::Model> {
        billing::own_account(&self.db, &self.policy, user, self.clock.now()).await
    }

    /// The accounts the user is a member of: their own first, then by name.
    pub async fn accounts(&self, user: &user::Model) -> Result<Vec<AccountView>> {
        // Provisions the own account if signup could not, so it is listed.
        self.membership(user, None).await?;
        let rows = account_member::Entity::find()
            .filter(account_member::Column::UserId.eq(user.id))
            .find_also_related(billing_account::Entity)
            .all(&self.db)
            .await?;
        let mut views: Vec<AccountView> = rows
            .into_iter()
            .filter_map(|(member, account)| {
                let account = account?;
                Some(AccountView {
                    membership: Membership {
                        account_id: account.id,
                        user_id: user.id,
                        role: member.role,
                        own: account.user_id == Some(user.id),
                    },
                    account,
                })
            })
            .collect();
        views.sort_by(|a, b| {
            (!a.membership.own, &a.account.name, a.account.id).cmp(&(
                !b.membership.own,
                &b.account.name,
                b.account.id,
            ))
        });
        Ok(views)
    }

    /// The account a membership is of.
    pub async fn account(&self, member: &Membership) -> Result<billing_account::Model> {
        billing_account::Entity::find_by_id(member.account_id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound)
    }

    /// createAccount: a team with the user as its only member and OWNER, its
    /// own billing account on the default plan, no keys. At most
    /// `MAX_TEAMS_PER_USER` per user, counted while the user's own account
    /// row is held, so racing calls cannot pass it.
    pub async fn create_account(
        &self,
        user: &user::Model,
        actor: &Actor,
        name: AccountName,
    ) -> Result<AccountView> {
        let own = self.membership(user, None).await?;
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        take_turns(&txn, own.account_id).await?;
        let made = billing_account::Entity::find()
            .join(
                JoinType::InnerJoin,
                billing_account::Relation::AccountMember.def(),
            )
            .filter(account_member::Column::UserId.eq(user.id))
            .filter(account_member::Column::Role.eq(MemberRole::Owner))
            .filter(billing_account::Column::UserId.is_null())
            .count(&txn)
            .await?;
        if made >= MAX_TEAMS_PER_USER {
            return Err(Error::bad_input(format!(
                "name: at most {MAX_TEAMS_PER_USER} accounts per user"
            )));
        }
        let account = billing_account::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(None),
            name: Set(name.into_inner()),
            plan: Set(self.policy.plan.clone()),
            monthly_credits: Set(self.policy.monthly_credits),
            billing_cycle_start: Set(now),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        billing::add_member(&txn, account.id, user.id, MemberRole::Owner, now).await?;
        billing::seed_alerts(&txn, account.id).await?;
        let change = Change::new(Action::AccountCreated, TargetType::Account, account.id)
            .named(&account.name);
        audit::record(&txn, account.id, actor, change, now).await?;
        txn.commit().await?;
        Ok(AccountView {
            membership: Membership {
                account_id: account.id,
                user_id: user.id,
                role: MemberRole::Owner,
                own: false,
            },
            account,
        })
    }

    /// renameAccount: OWNER.
    pub async fn rename(
        &self,
        member: &Membership,
        actor: &Actor,
        name: AccountName,
    ) -> Result<billing_account::Model> {
        member.require_owner()?;
        let name = name.into_inner();
        let txn = self.db.begin().await?;
        billing_account::Entity::update_many()
            .col_expr(billing_account::Column::Name, Expr::value(name.clone()))
            .filter(billing_account::Column::Id.eq(member.account_id))
            .exec(&txn)
            .await?;
        let change = Change::new(
            Action::AccountRenamed,
            TargetType::Account,
            member.account_id,
        )
        .named(name);
        audit::record(&txn, member.account_id, actor, change, self.clock.now()).await?;
        txn.commit().await?;
        self.account(member).await
    }

    /// The account's members, oldest first.
    pub async fn members(&self, account_id: Uuid) -> Result<Vec<MemberView>> {
        let rows = account_member::Entity::find()
            .filter(account_member::Column::AccountId.eq(account_id))
            .find_also_related(user::Entity)
            .order_by_asc(account_member::Column::JoinedAt)
            .order_by_asc(account_member::Column::UserId)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(member, user)| {
                Some(MemberView {
                    user: user?,
                    role: member.role,
                    joined_at: member.joined_at,
                })
            })
            .collect())
    }

    /// Pending invitations (not accepted, revoked or expired), newest
    /// first. OWNER only.
    pub async fn invitations(&self, member: &Membership) -> Result<Vec<invitation::Model>> {
        member.require_owner()?;
        Ok(invitation::Entity::find()
            .filter(invitation::Column::AccountId.eq(member.account_id))
            .filter(open_at(self.clock.now()))
            .order_by_desc(invitation::Column::CreatedAt)
            .order_by_desc(invitation::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// createInvitation: OWNER. A pending invitation of the same email is
    /// replaced (revoked, and logged as such); the email of a member, more
    /// than `MAX_PENDING_INVITATIONS` pending or `MAX_MEMBERS` members is
    /// BAD_USER_INPUT. The token is returned once, in the accept URL, and
    /// stored as its hash; with SMTP configured the URL is also emailed,
    /// through the outbox written in the same transaction.
    pub async fn invite(
        &self,
        member: &Membership,
        actor: &Actor,
        email: Email,
        role: MemberRole,
    ) -> Result<Invited> {
        member.require_owner()?;
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        take_turns(&txn, member.account_id).await?;
        let account = billing_account::Entity::find_by_id(member.account_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        let already = account_member::Entity::find()
            .filter(account_member::Column::AccountId.eq(member.account_id))
            .join(JoinType::InnerJoin, account_member::Relation::User.def())
            .filter(user::Column::Email.eq(email.as_str()))
            .count(&txn)
            .await?;
        if already > 0 {
            return Err(Error::bad_input("email: already a member of this account"));
        }
        let members = account_member::Entity::find()
            .filter(account_member::Column::AccountId.eq(member.account_id))
            .count(&txn)
            .await?;
        if members >= MAX_MEMBERS {
            return Err(Error::bad_input(format!(
                "email: at most {MAX_MEMBERS} members per account"
            )));
        }
        // The open invitation of this email (expired ones included, which
        // the unique index also counts) is replaced.
        let replaced = invitation::Entity::find()
            .filter(invitation::Column::AccountId.eq(member.account_id))
            .filter(invitation::Column::Email.eq(email.as_str()))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null())
            .all(&txn)
            .await?;
        for old in replaced {
            revoke_in(&txn, &old, actor, now).await?;
        }
        let pending = invitation::Entity::find()
            .filter(invitation::Column::AccountId.eq(member.account_id))
            .filter(open_at(now))
            .count(&txn)
            .await?;
        if pending >= MAX_PENDING_INVITATIONS {
            return Err(Error::bad_input(format!(
                "email: at most {MAX_PENDING_INVITATIONS} pending invitations per account; revoke one first"
            )));
        }
        let token = InvitationToken::generate();
        let invitation = invitation::ActiveModel {
            id: Set(Uuid::new_v4()),
            account_id: Set(member.account_id),
            email: Set(email.as_str().to_owned()),
            role: Set(role),
            token_hash: Set(token.hash().to_vec()),
            invited_by: Set(member.user_id),
            created_at: Set(now),
            expires_at: Set(now + INVITATION_LIFETIME),
            accepted_at: Set(None),
            revoked_at: Set(None),
        }
        .insert(&txn)
        .await?;
        let change = Change::new(
            Action::InvitationCreated,
            TargetType::Invitation,
            invitation.id,
        )
        .named(&invitation.email);
        audit::record(&txn, member.account_id, actor, change, now).await?;
        let accept_url = format!(
            "{}/invitations/accept#{}",
            self.public.as_str(),
            token.expose()
        );
        self.mail
            .enqueue(
                &txn,
                invitation_email(&account, &invitation, &accept_url),
                now,
            )
            .await?;
        txn.commit().await?;
        Ok(Invited {
            invitation,
            accept_url,
        })
    }

    /// revokeInvitation: OWNER of the invitation's account. An invitation of
    /// an account the user is not a member of is NOT_FOUND; revoking a
    /// revoked, accepted or expired one changes nothing.
    pub async fn revoke_invitation(
        &self,
        user: &user::Model,
        actor: &Actor,
        id: Uuid,
    ) -> Result<invitation::Model> {
        let found = invitation::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound)?;
        let member = self.membership(user, Some(found.account_id)).await?;
        member.require_owner()?;
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        revoke_in(&txn, &found, actor, now).await?;
        txn.commit().await?;
        invitation::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound)
    }

    /// acceptInvitation: the signed-in user joins with the invitation's role.
    /// The token is redeemed by one conditional UPDATE, so of racing
    /// accepts one joins. A user whose email is not the invitation's is
    /// FORBIDDEN (and redeems nothing); an unknown, used, revoked or expired
    /// token, or a user already a member, is BAD_USER_INPUT.
    pub async fn accept(
        &self,
        user: &user::Model,
        actor: &Actor,
        token: &str,
    ) -> Result<AccountView> {
        let unusable =
            || Error::bad_input("token: unknown, already used, revoked or expired invitation");
        let now = self.clock.now();
        let hash = SecretHash::of(token).to_vec();
        let found = invitation::Entity::find()
            .filter(invitation::Column::TokenHash.eq(hash))
            .one(&self.db)
            .await?
            .ok_or_else(unusable)?;
        if found.accepted_at.is_some() || found.revoked_at.is_some() || found.expires_at <= now {
            return Err(unusable());
        }
        if found.email != user.email {
            return Err(Error::Forbidden);
        }
        let txn = self.db.begin().await?;
        take_turns(&txn, found.account_id).await?;
        let redeemed = invitation::Entity::update_many()
            .col_expr(invitation::Column::AcceptedAt, Expr::value(now))
            .filter(invitation::Column::Id.eq(found.id))
            .filter(open_at(now))
            .exec(&txn)
            .await?;
        if redeemed.rows_affected == 0 {
            return Err(unusable());
        }
        // Invitations may outnumber the room left: the cap holds at joining.
        let members = account_member::Entity::find()
            .filter(account_member::Column::AccountId.eq(found.account_id))
            .count(&txn)
            .await?;
        if members >= MAX_MEMBERS {
            return Err(Error::bad_input(format!(
                "token: the account already has {MAX_MEMBERS} members, its most"
            )));
        }
        let joined = billing::add_member(&txn, found.account_id, user.id, found.role, now).await?;
        if joined == 0 {
            return Err(Error::bad_input(
                "token: you are already a member of this account",
            ));
        }
        let change =
            Change::new(Action::MemberJoined, TargetType::Member, user.id).named(&user.email);
        audit::record(&txn, found.account_id, actor, change, now).await?;
        txn.commit().await?;
        let membership = self.membership(user, Some(found.account_id)).await?;
        Ok(AccountView {
            account: self.account(&membership).await?,
            membership,
        })
    }

    /// setMemberRole: OWNER. Demoting the last OWNER is BAD_USER_INPUT,
    /// decided while the account's row is held, so two owners demoting each
    /// other at once leave one.
    pub async fn set_role(
        &self,
        member: &Membership,
        actor: &Actor,
        user_id: Uuid,
        role: MemberRole,
    ) -> Result<MemberView> {
        member.require_owner()?;
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        take_turns(&txn, member.account_id).await?;
        let (target, target_user) = find_member(&txn, member.account_id, user_id).await?;
        // The acting owner is re-read in the turn: an owner demoted a moment
        // ago is an owner no more.
        still_owner(&txn, member).await?;
        if target.role == MemberRole::Owner && role == MemberRole::Member {
            let account = billing_account::Entity::find_by_id(member.account_id)
                .one(&txn)
                .await?
                .ok_or(Error::NotFound)?;
            if account.user_id == Some(user_id) {
                return Err(Error::bad_input(
                    "userId: the owner of their own account stays its owner",
                ));
            }
            if owners(&txn, member.account_id).await? <= 1 {
                return Err(Error::bad_input(
                    "role: the account's last OWNER cannot be demoted; make another member OWNER first",
                ));
            }
        }
        if target.role != role {
            account_member::Entity::update_many()
                .col_expr(account_member::Column::Role, Expr::value(role))
                .filter(account_member::Column::AccountId.eq(member.account_id))
                .filter(account_member::Column::UserId.eq(user_id))
                .exec(&txn)
                .await?;
            let change = Change::new(Action::MemberRoleChanged, TargetType::Member, user_id)
                .named(&target_user.email);
            audit::record(&txn, member.account_id, actor, change, now).await?;
        }
        txn.commit().await?;
        Ok(MemberView {
            user: target_user,
            role,
            joined_at: target.joined_at,
        })
    }

    /// removeMember: an OWNER removes a member, or a member removes
    /// themself. Removing the last OWNER, or anyone from their own account,
    /// is BAD_USER_INPUT. Access ends at once: every request reads its
    /// membership afresh. Their keys stay with the account.
    pub async fn remove(&self, member: &Membership, actor: &Actor, user_id: Uuid) -> Result<()> {
        if user_id != member.user_id {
            member.require_owner()?;
        }
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        take_turns(&txn, member.account_id).await?;
        let (target, target_user) = find_member(&txn, member.account_id, user_id).await?;
        if user_id != member.user_id {
            still_owner(&txn, member).await?;
        }
        let account = billing_account::Entity::find_by_id(member.account_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        if account.user_id == Some(user_id) {
            return Err(Error::bad_input(
                "userId: nobody leaves or is removed from their own account",
            ));
        }
        if target.role == MemberRole::Owner && owners(&txn, member.account_id).await? <= 1 {
            return Err(Error::bad_input(
                "userId: the account's last OWNER cannot be removed; make another member OWNER first",
            ));
        }
        account_member::Entity::delete_many()
            .filter(account_member::Column::AccountId.eq(member.account_id))
            .filter(account_member::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        let change = Change::new(Action::MemberRemoved, TargetType::Member, user_id)
            .named(&target_user.email);
        audit::record(&txn, member.account_id, actor, change, now).await?;
        txn.commit().await?;
        Ok(())
    }

    /// The account's audit log (any member), newest first.
    pub async fn audit_log(&self, member: &Membership, ask: PageAsk<'_>) -> Result<Page> {
        audit::page(&self.db, member.account_id, ask).await
    }

    /// Users by id, for the names an audit page or an invitation shows.
    pub async fn users(&self, ids: Vec<Uuid>) -> Result<Vec<user::Model>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(user::Entity::find()
            .filter(user::Column::Id.is_in(ids))
            .all(&self.db)
            .await?)
    }
}

/// Not accepted, not revoked, not expired at `now`.
fn open_at(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(invitation::Column::AcceptedAt.is_null())
        .add(invitation::Column::RevokedAt.is_null())
        .add(invitation::Column::ExpiresAt.gt(now))
}

/// Revokes an invitation not yet accepted or revoked, logging it once.
async fn revoke_in(
    txn: &DatabaseTransaction,
    found: &invitation::Model,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<()> {
    let revoked = invitation::Entity::update_many()
        .col_expr(invitation::Column::RevokedAt, Expr::value(now))
        .filter(invitation::Column::Id.eq(found.id))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .exec(txn)
        .await?;
    if revoked.rows_affected == 1 {
        let change = Change::new(Action::InvitationRevoked, TargetType::Invitation, found.id)
            .named(&found.email);
        audit::record(txn, found.account_id, actor, change, now).await?;
    }
    Ok(())
}

/// Changes to one account's members and invitations take turns on its row
/// until `txn` ends (the same turn key creation takes), so counts and the
/// last-owner rule read in the turn stay true until it commits.
async fn take_turns(txn: &DatabaseTransaction, account_id: Uuid) -> Result<()> {
    super::keys::serialize_key_creation(txn, account_id).await
}

async fn find_member(
    txn: &DatabaseTransaction,
    account_id: Uuid,
    user_id: Uuid,
) -> Result<(account_member::Model, user::Model)> {
    match account_member::Entity::find_by_id((account_id, user_id))
        .find_also_related(user::Entity)
        .one(txn)
        .await?
    {
        Some((member, Some(user))) => Ok((member, user)),
        _ => Err(Error::NotFound),
    }
}

/// The acting member is still an OWNER, as read in the turn.
async fn still_owner(txn: &DatabaseTransaction, member: &Membership) -> Result<()> {
    let (acting, _) = find_member(txn, member.account_id, member.user_id).await?;
    match acting.role {
        MemberRole::Owner => Ok(()),
        MemberRole::Member => Err(Error::Forbidden),
    }
}

async fn owners(txn: &DatabaseTransaction, account_id: Uuid) -> Result<u64> {
    Ok(account_member::Entity::find()
        .filter(account_member::Column::AccountId.eq(account_id))
        .filter(account_member::Column::Role.eq(MemberRole::Owner))
        .count(txn)
        .await?)
}

/// The invitation email: who invites, to what, and the link. The body
/// holds the token, so it is never logged (see `mail`).
fn invitation_email(
    account: &billing_account::Model,
    invitation: &invitation::Model,
    accept_url: &str,
) -> OutgoingEmail {
    OutgoingEmail {
        to: invitation.email.clone(),
        subject: format!("You are invited to {} on keymeter", account.name),
        text: format!(
            "You are invited to join the account \"{}\" on keymeter.\n\n\
             Accept the invitation (sign in or sign up with this email first):\n{}\n\n\
             The link works once and expires on {}.\n",
            account.name,
            accept_url,
            invitation.expires_at.format("%Y-%m-%d %H:%M UTC"),
        ),
    }
}
