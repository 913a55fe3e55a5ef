// The keys table and what can be done to a key: create, rename, rotate, revoke.

import { graphql, describe } from "./api.js";
import { $, ask, field, h, replace } from "./dom.js";
import { dateTime, date, SOON } from "./format.js";
import { sparkline } from "./chart.js";
import * as Q from "./queries.js";
import { showSecret } from "./secret.js";

const EXPIRY_DAYS = { never: null, "7d": 7, "30d": 30, "90d": 90, "1y": 365 };
const GRACE_SECONDS = { now: 0, "1h": 3600, "24h": 86400, "7d": 604800 };

// `refresh()` reloads the dashboard after a change.
export function setUpKeys(refresh) {
  $("create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("key-name").value.trim();
    if (!name) return report("Give the key a name.");
    const days = EXPIRY_DAYS[$("key-expiry").value];
    const input = { name, keyType: $("key-type").value };
    if (days) input.expiresAt = new Date(Date.now() + days * 86400000).toISOString();
    await act(async () => {
      const { createKey } = await graphql(Q.CREATE_KEY, { input });
      $("key-name").value = "";
      await refresh();
      await showSecret(createKey);
    });
  });
  $("show-revoked").addEventListener("change", () => refresh({ quiet: true }));
}

let lastKeys = [];
let lastSparklines = null;

export function renderKeys(keys, refresh, sparklines = lastSparklines) {
  lastKeys = keys;
  lastSparklines = sparklines;
  const showRevoked = $("show-revoked").checked;
  const revokedCount = keys.filter((k) => k.status === "REVOKED").length;
  $("revoked-count").textContent = revokedCount ? `(${revokedCount})` : "";
  // A key already rotated cannot be rotated again (it is on its way out).
  const replaced = new Set(keys.map((k) => k.rotatedFromId).filter(Boolean));
  const shown = keys.filter((k) => showRevoked || k.status !== "REVOKED");
  replace($("keys-body"), shown.length
    ? shown.map((key) => row(key, refresh, sparklines, replaced))
    : h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No keys yet. Create one above.")));
}

export function renderSparklines(sparklines, refresh) {
  renderKeys(lastKeys, refresh, sparklines);
}

function row(key, refresh, sparklines, replaced) {
  const nameId = "key-" + key.id;
  const points = sparklines ? (sparklines.get(key.id) || []) : null;
  const revoked = key.status === "REVOKED";
  return h("tr", { "data-key-id": key.id, class: revoked ? "revoked" : "" },
    h("td", { "data-label": "Name" }, h("span", { id: nameId, class: "key-name" }, key.name)),
    h("td", { "data-label": "Key" }, h("code", {}, key.prefix + "…"), " ",
      h("span", { class: "badge " + key.keyType.toLowerCase() }, key.keyType)),
    h("td", { "data-label": "Status" }, status(key)),
    h("td", { "data-label": "Created" }, date(key.createdAt)),
    h("td", { "data-label": "Last used" }, key.lastUsedAt ? dateTime(key.lastUsedAt) : "Never used"),
    h("td", { "data-label": "Expires" }, key.expiresAt ? dateTime(key.expiresAt) : "Never"),
    h("td", { "data-label": "Last 30 days", class: "spark" }, points ? sparkline(points, key.name) : "–"),
    h("td", { class: "row-actions" }, revoked ? null : [
      h("button", { type: "button", class: "small", "aria-describedby": nameId, onclick: () => rename(key, refresh) }, "Rename"),
      key.status === "ACTIVE" && !replaced.has(key.id)
        ? h("button", { type: "button", class: "small", "aria-describedby": nameId, onclick: () => rotate(key, refresh) }, "Rotate")
        : null,
      h("button", { type: "button", class: "small danger", "aria-describedby": nameId, onclick: () => revoke(key, refresh) }, "Revoke"),
    ]));
}

function status(key) {
  if (key.status === "REVOKED") return h("span", { class: "status revoked" }, "Revoked");
  if (key.status === "EXPIRED") return h("span", { class: "status expired" }, "Expired");
  if (key.expiresAt && new Date(key.expiresAt).getTime() - Date.now() < SOON) {
    return h("span", { class: "status soon" }, "Expires soon");
  }
  return h("span", { class: "status active" }, "Active");
}

async function rename(key, refresh) {
  const input = h("input", { name: "name", value: key.name, required: true, maxlength: 64, autocomplete: "off" });
  const data = await ask({ title: "Rename " + key.name, fields: [field("New name", input)], confirm: "Rename" });
  if (!data) return;
  await act(async () => {
    await graphql(Q.RENAME_KEY, { id: key.id, name: String(data.get("name")) });
    await refresh({ quiet: true });
  });
}

async function rotate(key, refresh) {
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
    await refresh({ quiet: true });
    await showSecret(rotateKey, "The new secret for " + rotateKey.apiKey.name + ". Copy it now: this is the only time it is shown.");
  });
}

async function revoke(key, refresh) {
  const data = await ask({
    title: "Revoke " + key.name + "?",
    body: h("p", {}, "Every request using this key is refused from now on. This cannot be undone."),
    confirm: "Revoke",
    danger: true,
  });
  if (!data) return;
  await act(async () => {
    await graphql(Q.REVOKE_KEY, { id: key.id });
    await refresh({ quiet: true });
  });
}

async function act(work) {
  report("");
  try {
    await work();
  } catch (error) {
    report(describe(error));
  }
}

function report(text) {
  const message = $("keys-error");
  message.textContent = text;
  message.hidden = !text;
}
