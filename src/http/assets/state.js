// What the signed-in dashboard shows, in one object that the views read:
// the last load's account, keys and usage (dashboard.js loads them), the
// sparklines, the chart's range and series, and whether revoked keys are
// shown. `set` is the only way to change it: it stores the changes, then
// runs, once each, the renders that `watch` one of the names it was given.
// (The keys table keeps the rows whose key did not change: see keys.js.)

export const state = {
  me: null,
  // v3: the accounts the user is a member of (their own first), the one on
  // screen (its id is null until one is chosen: the user's own), and its id.
  accounts: null,
  account: null,
  accountId: null,
  keys: null,
  usage: null,
  // A Map from key id to its last 30 days' points, or null (none, or failed).
  sparklines: null,
  range: "cycle",
  // The usage chart's usageSeries for `range`, or null (not loaded, or failed).
  series: null,
  showRevoked: false,
};

const watchers = [];

// Runs `render(state)` after each `set` given one of `names`.
export function watch(names, render) {
  watchers.push({ names, render });
}

export function set(changes) {
  const changed = Object.keys(changes);
  Object.assign(state, changes);
  for (const { names, render } of watchers) {
    if (names.some((name) => changed.includes(name))) render(state);
  }
}
