// Every GraphQL document the dashboard sends, and nothing else: the test
// tests/dashboard_documents.rs reads each `export const NAME = `...``
// below and validates it against schema.graphql, so a schema change that
// breaks the page breaks the build first. Keep each document
// self-contained (no ${} interpolation): the test reads the text as is.

export const AUTH_PROVIDERS = `query AuthProviders { authProviders { id name } }`;

export const SIGNUP = `mutation Signup($input: SignupInput!) {
  signup(input: $input) { user { id email } defaultKey { secret apiKey { id name keyType prefix } } }
}`;

export const LOGIN = `mutation Login($input: LoginInput!) {
  login(input: $input) { user { id email } }
}`;

export const LOGOUT = `mutation Logout { logout }`;

export const START_SIGN_IN = `mutation StartSignIn($provider: String!) {
  startSignIn(provider: $provider) { authorizationUrl }
}`;

export const COMPLETE_SIGN_IN = `mutation CompleteSignIn($input: CompleteSignInInput!) {
  completeSignIn(input: $input) { user { id email } defaultKey { secret apiKey { id name keyType prefix } } }
}`;

export const DASHBOARD = `query Dashboard($accountId: UUID) {
  me { id email }
  accounts { id name role }
  account(id: $accountId) { id name role billingAccount { plan monthlyCredits billingCycleStart billingCycleEnd } }
  keys(includeRevoked: true, accountId: $accountId) {
    id name keyType prefix status createdAt lastUsedAt expiresAt revokedAt rotatedFromId createdBy { email }
    rateLimit { limit windowSeconds }
  }
  keysUsage(accountId: $accountId) {
    cycleStart cycleEnd totalCredits remainingCredits
    keys { credits requests apiKey { id name keyType prefix status } }
  }
}`;

export const ENSURE_DEFAULT_KEY = `mutation EnsureDefaultKey {
  ensureDefaultKey { secret apiKey { id name keyType prefix } }
}`;

export const CREATE_KEY = `mutation CreateKey($input: CreateKeyInput!) {
  createKey(input: $input) { secret apiKey { id name keyType prefix } }
}`;

export const RENAME_KEY = `mutation RenameKey($id: UUID!, $name: String!) {
  renameKey(id: $id, name: $name) { id name }
}`;

// v3: rateLimit null removes the key's limit.
export const SET_KEY_RATE_LIMIT = `mutation SetKeyRateLimit($id: UUID!, $rateLimit: RateLimitInput) {
  setKeyRateLimit(id: $id, rateLimit: $rateLimit) { id rateLimit { limit windowSeconds } }
}`;

export const ROTATE_KEY = `mutation RotateKey($input: RotateKeyInput!) {
  rotateKey(input: $input) { secret apiKey { id name keyType prefix } previousKey { id status expiresAt } }
}`;

export const REVOKE_KEY = `mutation RevokeKey($id: UUID!) {
  revokeKey(id: $id) { id status revokedAt }
}`;

// The usage chart: the cycle by day (no arguments: the server's defaults),
// or the last 24 hours by hour.
export const USAGE_SERIES = `query UsageSeries($from: DateTime, $interval: UsageInterval, $accountId: UUID) {
  usageSeries(from: $from, interval: $interval, accountId: $accountId) {
    interval from to
    total { start credits requests }
    keys { apiKey { id name } points { start credits requests } }
  }
}`;

// The keys table's sparklines: each key's last 30 days, by day.
export const KEY_SPARKLINES = `query KeySparklines($from: DateTime!, $accountId: UUID) {
  usageSeries(from: $from, interval: DAY, accountId: $accountId) {
    from to
    keys { apiKey { id } points { start credits } }
  }
}`;

// v3 accounts: a new team.
export const CREATE_ACCOUNT = `mutation CreateAccount($name: String!) {
  createAccount(name: $name) { id name role }
}`;

// The members page: everyone can read the members; only an OWNER the
// pending invitations (MEMBERS_INVITATIONS, asked only then).
export const MEMBERS = `query Members($id: UUID) {
  me { id }
  account(id: $id) { id name role members { user { id email } role joinedAt } }
}`;

export const INVITATIONS = `query Invitations($id: UUID) {
  account(id: $id) { id invitations { id email role createdAt expiresAt invitedBy { email } } }
}`;

export const CREATE_INVITATION = `mutation CreateInvitation($input: CreateInvitationInput!) {
  createInvitation(input: $input) { acceptUrl invitation { id email role } }
}`;

export const REVOKE_INVITATION = `mutation RevokeInvitation($id: UUID!) {
  revokeInvitation(id: $id) { id }
}`;

export const SET_MEMBER_ROLE = `mutation SetMemberRole($accountId: UUID!, $userId: UUID!, $role: MemberRole!) {
  setMemberRole(accountId: $accountId, userId: $userId, role: $role) { role }
}`;

export const REMOVE_MEMBER = `mutation RemoveMember($accountId: UUID!, $userId: UUID!) {
  removeMember(accountId: $accountId, userId: $userId)
}`;

export const ACCEPT_INVITATION = `mutation AcceptInvitation($token: String!) {
  acceptInvitation(token: $token) { id name role }
}`;

// The audit log, newest first, a page at a time; `actions` filters.
export const AUDIT_LOG = `query AuditLog($id: UUID, $after: String, $actions: [String!]) {
  account(id: $id) {
    id name
    auditLog(first: 50, after: $after, actions: $actions) {
      nextCursor
      events { id occurredAt action targetType targetName actor { type user { email } } }
    }
  }
}`;

// The alerts and webhooks page: any member reads the thresholds (ALERTS);
// only an OWNER the endpoints and deliveries (WEBHOOKS, asked only then).
export const ALERTS = `query Alerts($id: UUID) {
  account(id: $id) { id name role usageAlerts }
}`;

export const WEBHOOKS = `query Webhooks($id: UUID) {
  account(id: $id) {
    id
    webhookEndpoints { id url events createdAt disabledAt }
    webhookDeliveries(first: 50) {
      id endpointId eventId eventType status attempts lastResponseStatus createdAt nextAttemptAt
    }
  }
}`;

export const SET_USAGE_ALERTS = `mutation SetUsageAlerts($accountId: UUID!, $thresholds: [Int!]!) {
  setUsageAlerts(accountId: $accountId, thresholds: $thresholds) { id usageAlerts }
}`;

export const CREATE_WEBHOOK_ENDPOINT = `mutation CreateWebhookEndpoint($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { secret endpoint { id url events createdAt disabledAt } }
}`;

export const DELETE_WEBHOOK_ENDPOINT = `mutation DeleteWebhookEndpoint($id: UUID!) {
  deleteWebhookEndpoint(id: $id)
}`;

export const SEND_TEST_WEBHOOK = `mutation SendTestWebhook($endpointId: UUID!) {
  sendTestWebhook(endpointId: $endpointId) { id status }
}`;

export const REDELIVER_WEBHOOK = `mutation RedeliverWebhook($deliveryId: UUID!) {
  redeliverWebhook(deliveryId: $deliveryId) { id status attempts }
}`;
