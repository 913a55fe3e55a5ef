// The keys table and what can be done to a key: create, rename, set or
// remove its rate limit, rotate, revoke. The table is rendered from the
// state, keyed by key id: a refresh rebuilds only the rows whose key
// changed, redraws a sparkline only when its points did, and keeps keyboard
// focus on the same button of the same row (or the nearest logical place,
// if that row or button is gone).

import { graphql, reporter } from "./api.js";
import { refresh } from "./dashboard.js";
import { $, ask, field, h, reconcile, replace } from "./dom.js";
import { dateTime, date, number, SOON } from "./format.js";
import { sparkline } from "./chart.js";
import * as Q from "./queries.js";
import { showSecret } from "./secret.js";
import { set, state, watch } from "./state.js";

const { act, report } = reporter("keys-error");

const EXPIRY_DAYS = { never: null, "7d": 7, "30d": 30, "90d": 90, "1y": 365 };
const GRACE_SECONDS = { now: 0, "1h": 3600, "24h": 86400, "7d": 604800 };

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("key-name").value.trim();
  if (!name) return report("Give the key a name.");
  const days = EXPIRY_DAYS[$("key-expiry").value];
  const input = { name, keyType: $("key-type").value, accountId: state.accountId };
  if (days) input.expiresAt = new Date(Date.now() + days * 86400000).toISOString();
  await act(async () => {
    const { createKey } = await graphql(Q.CREATE_KEY, { input });
    $("key-name").value = "";
    await refresh();
    await showSecret(createKey);
  });
});

// Revoked keys are in the state already: showing them is a render, not a load.
const toggle = $("show-revoked");
toggle.addEventListener("change", () => set({ showRevoked: toggle.checked }));
// A browser that restored the box's state on reload starts where it left off.
set({ showRevoked: toggle.checked });

watch(["keys", "showRevoked"], renderKeys);
watch(["sparklines"], renderSparklines);

// What each row on screen was drawn from: `look` (the key as the row shows
// it) and `points` (its sparkline's), compared as JSON.
const drawn = new WeakMap();

function renderKeys({ keys, showRevoked }) {
  if (!keys) return;
  const revokedCount = keys.filter((k) => k.status === "REVOKED").length;
  $("revoked-count").textContent = revokedCount ? `(${revokedCount})` : "";
  // A key already rotated cannot be rotated again (it is on its way out).
  const replaced = new Set(keys.map((k) => k.rotatedFromId).filter(Boolean));
  const shown = keys.filter((k) => showRevoked || k.status !== "REVOKED");
  const body = $("keys-body");
  const focused = focusedButton(body);
  const onScreen = new Map([...body.rows].map((tr) => [tr.dataset.keyId, tr]));
  const rows = shown.map((key) => {
    const look = JSON.stringify([key, replaced.has(key.id), status(key)]);
    const tr = onScreen.get(key.id);
    return tr && drawn.get(tr).look === look ? tr : row(key, replaced.has(key.id), look);
  });
  reconcile(body, rows.length ? rows : [h("tr", {}, h("td", { colspan: 10, class: "empty" }, "No keys yet. Create one above."))]);
  if (focused && document.activeElement !== focused.button) refocus(body, focused);
}

// Only the sparkline cells: the rows and their buttons stay as they are.
function renderSparklines() {
  for (const tr of $("keys-body").rows) {
    const was = drawn.get(tr);
    if (!was) continue;
    const points = pointsOf(was.key);
    if (JSON.stringify(points) === was.points) continue;
    was.points = JSON.stringify(points);
    replace(tr.querySelector("td.spark"), points ? sparkline(points, was.key.name) : "–");
  }
}

const pointsOf = (key) => state.sparklines ? (state.sparklines.get(key.id) || []) : null;

function row(key, isReplaced, look) {
  const nameId = "key-" + key.id;
  const points = pointsOf(key);
  const revoked = key.status === "REVOKED";
  const { text, tone } = status(key);
  const button = (action, label, className = "small") =>
    h("button", { type: "button", class: className, "data-action": action, "aria-describedby": nameId,
      onclick: () => ACTIONS[action](key) }, label);
  const tr = h("tr", { "data-key-id": key.id, class: revoked ? "revoked" : "" },
    h("td", { "data-label": "Name" }, h("span", { id: nameId, class: "key-name" }, key.name)),
    h("td", { "data-label": "Key" }, h("code", {}, key.prefix + "…"), " ",
      h("span", { class: "badge " + key.keyType.toLowerCase() }, key.keyType)),
    h("td", { "data-label": "Status" }, h("span", { class: "status " + tone }, text)),
    h("td", { "data-label": "Created" }, date(key.createdAt)),
    h("td", { "data-label": "Made by" }, key.createdBy.email),
    h("td", { "data-label": "Last used" }, key.lastUsedAt ? dateTime(key.lastUsedAt) : "Never used"),
    h("td", { "data-label": "Expires" }, key.expiresAt ? dateTime(key.expiresAt) : "Never"),
    // The limit is its own control: a fourth row action would not fit.
    h("td", { "data-label": "Rate limit", class: "limit" }, revoked ? limitText(key.rateLimit)
      : button("limit", [h("span", { class: "sr-only" }, "Rate limit: "), limitText(key.rateLimit)], "small secondary")),
    h("td", { "data-label": "Last 30 days", class: "spark" }, points ? sparkline(points, key.name) : "–"),
    h("td", { class: "row-actions" }, revoked ? null : [
      button("rename", "Rename"),
      key.status === "ACTIVE" && !isReplaced ? button("rotate", "Rotate") : null,
      button("revoke", "Revoke", "small danger"),
    ]));
  drawn.set(tr, { key, look, points: JSON.stringify(points) });
  return tr;
}

// The row button that has focus, if one has: which key, which action, and
// where its row stood.
function focusedButton(body) {
  const button = document.activeElement;
  const tr = button && button.dataset && button.dataset.action ? button.closest("tr") : null;
  if (!tr || tr.parentNode !== body) return null;
  return { button, keyId: tr.dataset.keyId, action: button.dataset.action, index: tr.sectionRowIndex };
}

// After a render replaced (or removed) the focused button: the same action
// in the same row, else that row's first button; if the row has none left
// (revoked, or hidden), the rows after it, then before it; else the name
// field of the create form. (WAI-ARIA's dialog pattern: focus returns to
// the control that opened it, or a logical place.)
function refocus(body, { keyId, action, index }) {
  const rows = [...body.rows];
  const at = rows.findIndex((tr) => tr.dataset.keyId === keyId);
  const from = at >= 0 ? at : Math.min(index, rows.length - 1);
  const order = [...rows.slice(from), ...rows.slice(0, from).reverse()];
  for (const tr of order) {
    const button = tr.querySelector(`button[data-action="${action}"]`) || tr.querySelector("button[data-action]");
    if (button) return button.focus();
  }
  $("key-name").focus();
}

// What the Status cell says, and its class.
function status(key) {
  if (key.status === "REVOKED") return { text: "Revoked", tone: "revoked" };
  if (key.status === "EXPIRED") return { text: "Expired", tone: "expired" };
  if (key.expiresAt && new Date(key.expiresAt).getTime() - Date.now() < SOON) {
    return { text: "Expires soon", tone: "soon" };
  }
  return { text: "Active", tone: "active" };
}

// "100 / 60 s": calls answered VALID per window, as the contract counts them.
function limitText(rateLimit) {
  if (!rateLimit) return "None";
  return number(rateLimit.limit) + " / " + number(rateLimit.windowSeconds) + " s";
}

const ACTIONS = { rename, limit, rotate, revoke };

async function rename(key) {
  const input = h("input", { name: "name", value: key.name, required: true, maxlength: 64, autocomplete: "off" });
  const data = await ask({ title: "Rename " + key.name, fields: [field("New name", input)], confirm: "Rename" });
  if (!data) return;
  await act(async () => {
    await graphql(Q.RENAME_KEY, { id: key.id, name: String(data.get("name")) });
    await refresh();
  });
}

// Any member may set a key's limit, or remove it ("Remove limit", offered
// when there is one to remove). The bounds are the
// contract's, checked by the browser first and by the server anyway.
async function limit(key) {
  const current = key.rateLimit;
  const calls = h("input", { name: "limit", type: "number", min: 1, max: 1000000, step: 1, required: true,
    inputmode: "numeric", value: current ? current.limit : "" });
  const seconds = h("input", { name: "window", type: "number", min: 1, max: 86400, step: 1, required: true,
    inputmode: "numeric", value: current ? current.windowSeconds : 60 });
  const data = await ask({
    title: "Rate limit of " + key.name,
    body: h("p", {}, "At most this many calls are accepted in each window; the rest are refused until the next window starts. 1 to 1,000,000 calls, in windows of 1 to 86,400 seconds (a day)."),
    fields: [field("Calls per window", calls), field("Window in seconds", seconds)],
    confirm: "Save limit",
    also: current ? [{ value: "remove", label: "Remove limit" }] : [],
  });
  if (!data) return;
  const rateLimit = data.get("choice") === "remove"
    ? null
    : { limit: Number(data.get("limit")), windowSeconds: Number(data.get("window")) };
  await act(async () => {
    await graphql(Q.SET_KEY_RATE_LIMIT, { id: key.id, rateLimit });
    await refresh();
  });
}

async function rotate(key) {
  const select = h("select", { name: "grace" },
    h("option", { value: "now" }, "Immediately"),
    h("option", { value: "1h" }, "1 hour"),
    h("option", { value: "24h", selected: true }, "24 hours"),
    h("option", { value: "7d" }, "7 days"));
  const data = await ask({
    title: "Rotate " + key.name,
    body: h("p", {}, "A new secret replaces this key. Until the grace period ends, the old secret keeps working, so you can deploy the new one."),
    fields: [field("Old key keeps working for", select)],
    confirm: "Rotate",
  });
  if (!data) return;
  await act(async () => {
    const input = { id: key.id, gracePeriodSeconds: GRACE_SECONDS[data.get("grace")] };
    const { rotateKey } = await graphql(Q.ROTATE_KEY, { input });
    await refresh();
    await showSecret(rotateKey, "The new secret for " + rotateKey.apiKey.name + ". Copy it now: this is the only time it is shown.");
  });
}

async function revoke(key) {
  const data = await ask({
    title: "Revoke " + key.name + "?",
    body: h("p", {}, "Every request using this key is refused from now on. This cannot be undone."),
    confirm: "Revoke",
    danger: true,
  });
  if (!data) return;
  await act(async () => {
    await graphql(Q.REVOKE_KEY, { id: key.id });
    await refresh();
  });
}
