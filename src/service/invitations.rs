//! Invitations to an account (contract v3): made by its OWNERs, the token
//! shown once in the accept URL and kept only as its hash, emailed through
//! the outbox when SMTP is configured, bound to the invitee's email, valid
//! 7 days, and redeemed once: by one conditional UPDATE, so ten racing
//! accepts make one member. Changes take turns with the account's other
//! member changes (`teams::take_turns`), so its caps hold under races.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, JoinType,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait, Set, TransactionTrait,
};
use uuid::Uuid;

use super::audit;
use super::billing;
use super::mail::{Email as OutgoingEmail, Mailer};
use super::teams::{take_turns, AccountView, Teams};
use crate::clock::Clock;
use crate::config::PublicOrigin;
use crate::domain::audit::{Action, Actor, Change, TargetType};
use crate::domain::membership::{INVITATION_LIFETIME, MAX_MEMBERS, MAX_PENDING_INVITATIONS};
use crate::domain::secret::InvitationToken;
use crate::domain::{Email, MemberRole, Membership, SecretHash};
use crate::entity::{account_member, billing_account, invitation, user};
use crate::error::{Error, Result};
use crate::shared_reads::SharedReads;
use crate::store::db::Db;

/// An invitation just made, with the only copy of its accept URL's token.
pub struct Invited {
    pub invitation: invitation::Model,
    pub accept_url: String,
}

#[derive(Clone)]
pub struct Invitations {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    /// Where acceptUrl points: `{public}/invitations/accept#<token>`.
    pub public: PublicOrigin,
    pub mail: Mailer,
    /// An account's pending invitations, read once for the requests asking
    /// together.
    pub pending_reads: SharedReads<Uuid, Vec<invitation::Model>>,
    /// Memberships, read as every other operation reads them.
    pub teams: Teams,
}

impl Invitations {
    /// Pending invitations (not accepted, revoked or expired), newest
    /// first. OWNER only.
    pub async fn pending(&self, member: &Membership) -> Result<Vec<invitation::Model>> {
        member.require_owner()?;
        let (db, clock, account_id) = (self.db.clone(), self.clock.clone(), member.account_id);
        let read = move || {
            let (db, now) = (db.clone(), clock.now());
            async move {
                Ok(invitation::Entity::find()
                    .filter(invitation::Column::AccountId.eq(account_id))
                    .filter(open_at(now))
                    .order_by_desc(invitation::Column::CreatedAt)
                    .order_by_desc(invitation::Column::Id)
                    .all(&db)
                    .await?)
            }
        };
        self.pending_reads.read(account_id, read).await
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
    pub async fn revoke(
        &self,
        user: &user::Model,
        actor: &Actor,
        id: Uuid,
    ) -> Result<invitation::Model> {
        let found = invitation::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound)?;
        let member = self.teams.membership(user, Some(found.account_id)).await?;
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
        let membership = self.teams.membership(user, Some(found.account_id)).await?;
        Ok(AccountView {
            account: self.teams.account(&membership).await?,
            membership,
        })
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
