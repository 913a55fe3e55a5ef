//! Accounts shared by members (contract v3): who is a member of what, teams
//! made by createAccount, roles and removal (invitations, the way in, are
//! `invitations`'s). Every membership
//! check of the API happens here, read from the database in the request
//! that needs it, so a removed member loses access at once in every
//! process; every change is written to the account's audit log in its own
//! transaction.
//!
//! The rules that must hold under races are decided by the database:
//! changes to one account's members take turns on the account's row (the
//! last-owner rule).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, JoinType, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, RelationTrait, Set, TransactionTrait,
};
use uuid::Uuid;

use super::audit::{self, Page, PageAsk};
use super::billing;
use crate::clock::Clock;
use crate::domain::audit::{Action, Actor, Change, TargetType};
use crate::domain::membership::MAX_TEAMS_PER_USER;
use crate::domain::{AccountName, AccountPolicy, MemberRole, Membership};
use crate::entity::{account_member, billing_account, user};
use crate::error::{Error, Result};
use crate::shared_reads::SharedReads;
use crate::store::db::Db;

/// An account as one of its members sees it.
#[derive(Clone)]
pub struct AccountView {
    pub account: billing_account::Model,
    pub membership: Membership,
}

/// A member with the user behind it.
#[derive(Clone)]
pub struct MemberView {
    pub user: user::Model,
    pub role: MemberRole,
    pub joined_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct Teams {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub policy: AccountPolicy,
    /// A user's accounts, an account's members, pages of its log and the
    /// users they name, each read once for the requests asking together.
    pub account_reads: SharedReads<Uuid, Vec<AccountView>>,
    pub members_reads: SharedReads<Uuid, Vec<MemberView>>,
    pub audit_reads: SharedReads<(Uuid, PageAsk), Page>,
    pub user_reads: SharedReads<Vec<Uuid>, Vec<user::Model>>,
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
        Ok(self.membership_of(user, account_id).await?.1)
    }

    /// `membership`, with the account's row, which the membership's read
    /// has anyway: `account(id)` answers from it without reading it again.
    pub async fn membership_of(
        &self,
        user: &user::Model,
        account_id: Option<Uuid>,
    ) -> Result<(billing_account::Model, Membership)> {
        let Some(account_id) = account_id else {
            let own = self.own_account(user).await?;
            let member = Membership::own(own.id, user.id);
            return Ok((own, member));
        };
        let found = account_member::Entity::find_by_id((account_id, user.id))
            .find_also_related(billing_account::Entity)
            .one(&self.db)
            .await?;
        match found {
            Some((member, Some(account))) => {
                let member = Membership {
                    account_id,
                    user_id: user.id,
                    role: member.role,
                    own: account.user_id == Some(user.id),
                };
                Ok((account, member))
            }
            _ => Err(Error::NotFound),
        }
    }

    /// The user's own account (provisioned now if signup could not).
    pub async fn own_account(&self, user: &user::Model) -> Result<billing_account::Model> {
        billing::own_account(&self.db, &self.policy, user, self.clock.now()).await
    }

    /// The accounts the user is a member of: their own first, then by name.
    pub async fn accounts(&self, user: &user::Model) -> Result<Vec<AccountView>> {
        let (teams, user_id, user) = (self.clone(), user.id, user.clone());
        let read = move || {
            let (teams, user) = (teams.clone(), user.clone());
            async move { teams.accounts_listed(&user).await }
        };
        self.account_reads.read(user_id, read).await
    }

    async fn accounts_listed(&self, user: &user::Model) -> Result<Vec<AccountView>> {
        let listed = || {
            account_member::Entity::find()
                .filter(account_member::Column::UserId.eq(user.id))
                .find_also_related(billing_account::Entity)
                .all(&self.db)
        };
        let mut rows = listed().await?;
        let own_listed = rows
            .iter()
            .any(|(_, account)| account.as_ref().is_some_and(|a| a.user_id == Some(user.id)));
        if !own_listed {
            // Signup could not provision it: made now, so it is listed.
            self.own_account(user).await?;
            rows = listed().await?;
        }
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
        let db = self.db.clone();
        self.members_reads
            .read(account_id, move || members_of(db.clone(), account_id))
            .await
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
    pub async fn audit_log(&self, member: &Membership, ask: PageAsk) -> Result<Page> {
        let (db, account_id) = (self.db.clone(), member.account_id);
        let key = (account_id, ask.clone());
        let read = move || {
            let (db, ask) = (db.clone(), ask.clone());
            async move { audit::page(&db, account_id, &ask).await }
        };
        self.audit_reads.read(key, read).await
    }

    /// Users by id, for the names an audit page or an invitation shows.
    pub async fn users(&self, mut ids: Vec<Uuid>) -> Result<Vec<user::Model>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        ids.sort_unstable();
        ids.dedup();
        let db = self.db.clone();
        let key = ids.clone();
        let read = move || {
            let (db, ids) = (db.clone(), ids.clone());
            async move {
                Ok(user::Entity::find()
                    .filter(user::Column::Id.is_in(ids))
                    .all(&db)
                    .await?)
            }
        };
        self.user_reads.read(key, read).await
    }
}

async fn members_of(db: Db, account_id: Uuid) -> Result<Vec<MemberView>> {
    let rows = account_member::Entity::find()
        .filter(account_member::Column::AccountId.eq(account_id))
        .find_also_related(user::Entity)
        .order_by_asc(account_member::Column::JoinedAt)
        .order_by_asc(account_member::Column::UserId)
        .all(&db)
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

/// Changes to one account's members and invitations take turns on its row
/// until `txn` ends (the same turn key creation takes), so counts and the
/// last-owner rule read in the turn stay true until it commits.
pub(super) async fn take_turns(txn: &DatabaseTransaction, account_id: Uuid) -> Result<()> {
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
