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

export const DASHBOARD = `query Dashboard {
  me { id email billingAccount { plan monthlyCredits billingCycleStart billingCycleEnd } }
  keys(includeRevoked: true) {
    id name keyType prefix status createdAt lastUsedAt expiresAt revokedAt rotatedFromId
  }
  keysUsage {
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

export const ROTATE_KEY = `mutation RotateKey($input: RotateKeyInput!) {
  rotateKey(input: $input) { secret apiKey { id name keyType prefix } previousKey { id status expiresAt } }
}`;

export const REVOKE_KEY = `mutation RevokeKey($id: UUID!) {
  revokeKey(id: $id) { id status revokedAt }
}`;

// The usage chart: the cycle by day (no arguments: the server's defaults),
// or the last 24 hours by hour.
export const USAGE_SERIES = `query UsageSeries($from: DateTime, $interval: UsageInterval) {
  usageSeries(from: $from, interval: $interval) {
    interval from to
    total { start credits requests }
    keys { apiKey { id name } points { start credits requests } }
  }
}`;

// The keys table's sparklines: each key's last 30 days, by day.
export const KEY_SPARKLINES = `query KeySparklines($from: DateTime!) {
  usageSeries(from: $from, interval: DAY) {
    from to
    keys { apiKey { id } points { start credits } }
  }
}`;
