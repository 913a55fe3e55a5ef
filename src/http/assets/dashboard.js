// The signed-in dashboard as a view (see view.js), and everything it reads
// from the server: the account, keys and usage, then the chart and the
// sparklines, all into the state (state.js), which account.js, keys.js and
// usage.js render. `refresh` is the one way to reload after a change. Also
// the first key's secret, and lazy provisioning.

import { graphql, describe } from "./api.js";
import { $ } from "./dom.js";
import { daysAgo, hoursAgo } from "./format.js";
import * as Q from "./queries.js";
import { showSecret } from "./secret.js";
import { set, state, watch } from "./state.js";
import { register, setStatus, show } from "./view.js";

const FIRST_KEY = "Your account is ready. This is your first API key: copy it now, it is shown only this once.";

// `arg`: { newKey } to show once (a first sign-in), { message } to say on
// the signed-out view if the session is not good after all.
register("dashboard", {
  element: $("signed-in"),
  path: "/",
  signedIn: true,
  accountBar: true,
  load: (arg = {}) => load(() => arg.message),
  async enter(arg = {}) {
    performance.mark("keys-shown");
    loadExtras();
    if (arg.newKey) await showSecret(arg.newKey, FIRST_KEY);
    await provisionDefaultKey();
  },
});

watch(["range"], loadChart);

// Reloads the dashboard after a change; a session that has ended goes to
// the signed-out view.
export async function refresh() {
  if (await load(describe)) loadExtras();
}

// The account, keys and usage into the state; false if they could not be
// read: the status line says why, or, when the session is not good, the
// signed-out view shows, saying `signedOut(error)`.
async function load(signedOut) {
  try {
    const data = await graphql(Q.DASHBOARD, { accountId: state.accountId });
    set({ me: data.me, accounts: data.accounts, account: data.account, keys: data.keys, usage: data.keysUsage });
    return true;
  } catch (error) {
    if (error.code === "UNAUTHENTICATED") show("signed-out", signedOut(error));
    else if (error.code === "NOT_FOUND" && state.accountId) {
      // No longer a member of the chosen account: back to the user's own.
      set({ accountId: null });
      return load(signedOut);
    }
    else setStatus(describe(error));
    return false;
  }
}

// Lazy provisioning: a user who never got a default key (provisioning
// failed at signup or first sign-in) gets it now, and sees it once.
async function provisionDefaultKey() {
  const data = await graphql(Q.ENSURE_DEFAULT_KEY).catch(() => null);
  const created = data && data.ensureDefaultKey;
  if (!created) return;
  await refresh();
  await showSecret(created, FIRST_KEY);
}

// The charts, after the tables: they need usageSeries, and the page works
// without them if it fails.
function loadExtras() {
  loadChart();
  graphql(Q.KEY_SPARKLINES, { from: daysAgo(30), accountId: state.accountId })
    .then(({ usageSeries }) => new Map(usageSeries.keys.map((k) => [k.apiKey.id, k.points])))
    .catch(() => null)
    .then((sparklines) => set({ sparklines }));
}

async function loadChart() {
  const range = state.range;
  const accountId = state.accountId;
  const variables = range === "day" ? { from: hoursAgo(24), interval: "HOUR", accountId } : { interval: "DAY", accountId };
  // Charts are extra: on failure the table beside says the same in numbers.
  const series = await graphql(Q.USAGE_SERIES, variables).then((data) => data.usageSeries, () => null);
  // An answer for a range no longer chosen is not shown.
  if (state.range === range && state.accountId === accountId) set({ series });
}
