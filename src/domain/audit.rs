//! What the audit log records (contract v3): who did a change, what it was
//! and what it touched. Secrets, their hashes and tokens have no field here,
//! so none can be written by mistake.

use std::net::IpAddr;

use uuid::Uuid;

use super::text::is_printable;

/// Who did it: a signed-in user (with the request's address and
/// User-Agent), an operator at the command line, or keymeter itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User {
        user_id: Uuid,
        ip: Option<IpAddr>,
        user_agent: Option<String>,
    },
    Operator,
    System,
}

/// Most characters of a User-Agent kept: enough to recognise a browser.
const USER_AGENT_CHARS: usize = 512;

impl Actor {
    /// A user acting through a request from `ip` with this User-Agent
    /// (cut to 512 characters; dropped if it holds unprintable ones).
    pub fn user(user_id: Uuid, ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent
            .filter(|agent| is_printable(agent))
            .map(|agent| agent.chars().take(USER_AGENT_CHARS).collect());
        Self::User {
            user_id,
            ip,
            user_agent,
        }
    }

    /// As stored in `audit_events.actor_type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User { .. } => "user",
            Self::Operator => "operator",
            Self::System => "system",
        }
    }

    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Self::User { user_id, .. } => Some(*user_id),
            _ => None,
        }
    }
}

/// What an event touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetType {
    Key,
    Account,
    Invitation,
    Member,
    WebhookEndpoint,
}

impl TargetType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Key => "KEY",
            Self::Account => "ACCOUNT",
            Self::Invitation => "INVITATION",
            Self::Member => "MEMBER",
            Self::WebhookEndpoint => "WEBHOOK_ENDPOINT",
        }
    }
}

/// One change, as the log shows it.
#[derive(Debug, Clone)]
pub struct Change {
    pub action: Action,
    pub target_type: TargetType,
    pub target_id: String,
    /// A name a person recognises: the key's name, an email, a URL.
    pub target_name: Option<String>,
}

impl Change {
    pub fn new(action: Action, target_type: TargetType, target_id: impl ToString) -> Self {
        Self {
            action,
            target_type,
            target_id: target_id.to_string(),
            target_name: None,
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.target_name = Some(name.into());
        self
    }
}

/// Every action the contract lists at `AuditEvent.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    KeyCreated,
    KeyRenamed,
    KeyRotated,
    KeyRevoked,
    KeyRateLimitChanged,
    AccountCreated,
    AccountRenamed,
    PlanChanged,
    InvitationCreated,
    InvitationRevoked,
    MemberJoined,
    MemberRoleChanged,
    MemberRemoved,
    WebhookEndpointCreated,
    WebhookEndpointDeleted,
    UsageAlertsChanged,
    UsageThresholdReached,
}

impl Action {
    pub const ALL: [Action; 17] = [
        Self::KeyCreated,
        Self::KeyRenamed,
        Self::KeyRotated,
        Self::KeyRevoked,
        Self::KeyRateLimitChanged,
        Self::AccountCreated,
        Self::AccountRenamed,
        Self::PlanChanged,
        Self::InvitationCreated,
        Self::InvitationRevoked,
        Self::MemberJoined,
        Self::MemberRoleChanged,
        Self::MemberRemoved,
        Self::WebhookEndpointCreated,
        Self::WebhookEndpointDeleted,
        Self::UsageAlertsChanged,
        Self::UsageThresholdReached,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::KeyCreated => "key.created",
            Self::KeyRenamed => "key.renamed",
            Self::KeyRotated => "key.rotated",
            Self::KeyRevoked => "key.revoked",
            Self::KeyRateLimitChanged => "key.rate_limit_changed",
            Self::AccountCreated => "account.created",
            Self::AccountRenamed => "account.renamed",
            Self::PlanChanged => "plan.changed",
            Self::InvitationCreated => "invitation.created",
            Self::InvitationRevoked => "invitation.revoked",
            Self::MemberJoined => "member.joined",
            Self::MemberRoleChanged => "member.role_changed",
            Self::MemberRemoved => "member.removed",
            Self::WebhookEndpointCreated => "webhook_endpoint.created",
            Self::WebhookEndpointDeleted => "webhook_endpoint.deleted",
            Self::UsageAlertsChanged => "usage_alerts.changed",
            Self::UsageThresholdReached => "usage.threshold_reached",
        }
    }

    /// The action a name stands for, as a filter gives it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_back_from_its_name() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.name()), Some(action));
        }
        assert_eq!(Action::parse("key.deleted"), None);
    }

    #[test]
    fn user_agents_are_cut_and_unprintable_ones_dropped() {
        let long = "a".repeat(600);
        let Actor::User { user_agent, .. } = Actor::user(Uuid::nil(), None, Some(&long)) else {
            unreachable!()
        };
        assert_eq!(user_agent.map(|agent| agent.len()), Some(512));
        let Actor::User { user_agent, .. } = Actor::user(Uuid::nil(), None, Some("a\u{0}b")) else {
            unreachable!()
        };
        assert_eq!(user_agent, None);
    }
}
