// keymeter's dashboard: plain ES modules served by the binary, no build
// step. Signed out it offers sign up, log in and the providers; signed in,
// the account, the keys and the usage. The session lives in an HttpOnly
// cookie (see api.js): nothing here ever holds a token.

import { graphql, describe } from "./api.js";
import { $ } from "./dom.js";
import * as Q from "./queries.js";
import { completeCallback, showSignedOut } from "./auth.js";
import { renderAccount } from "./account.js";
import { renderKeys, renderSparklines, setUpKeys } from "./keys.js";
import { loadChart, renderUsageTable, setUpUsage } from "./usage.js";
import { showSecret } from "./secret.js";
import { daysAgo } from "./format.js";

const FIRST_KEY = "Your account is ready. This is your first API key: copy it now, it is shown only this once.";

async function boot() {
  setUpKeys(refresh);
  setUpUsage();
  $("logout").addEventListener("click", logOut);
  let newKey = null;
  let message = null;
  if (location.pathname === "/auth/callback") {
    try {
      newKey = await completeCallback();
    } catch (text) {
      message = String(text);
    }
  }
  await enter(newKey, message);
}

// Shows the dashboard if the session cookie is good, else the sign-in view.
async function enter(newKey, message) {
  let data;
  try {
    data = await graphql(Q.DASHBOARD);
  } catch (error) {
    if (error.code === "UNAUTHENTICATED") {
      setStatus("");
      return showSignedOut((key) => enter(key), message);
    }
    return setStatus(describe(error));
  }
  render(data);
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  $("logout").hidden = false;
  setStatus("");
  performance.mark("keys-shown");
  loadExtras();
  if (newKey) await showSecret(newKey, FIRST_KEY);
  await provisionDefaultKey();
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

async function refresh() {
  try {
    render(await graphql(Q.DASHBOARD));
    loadExtras();
  } catch (error) {
    if (error.code === "UNAUTHENTICATED") return showSignedOut((key) => enter(key), describe(error));
    setStatus(describe(error));
  }
}

function render(data) {
  renderAccount(data.me, data.keysUsage);
  renderKeys(data.keys, refresh);
  renderUsageTable(data.keysUsage);
}

// The charts, after the tables: they need usageSeries, and the page works
// without them if it fails.
function loadExtras() {
  loadChart();
  graphql(Q.KEY_SPARKLINES, { from: daysAgo(30) })
    .then(({ usageSeries }) => new Map(usageSeries.keys.map((k) => [k.apiKey.id, k.points])))
    .catch(() => null)
    .then((sparklines) => renderSparklines(sparklines, refresh));
}

async function logOut() {
  await graphql(Q.LOGOUT).catch(() => {});
  showSignedOut((key) => enter(key), "You are logged out.");
}

function setStatus(text) {
  const status = $("status");
  status.textContent = text;
  status.hidden = !text;
}

boot();
