// The alerts and webhooks page (a view, see view.js): the account's usage
// alert thresholds, which any member reads and an OWNER edits; for an
// OWNER only, the webhook endpoints (add: the signing secret is shown once,
// with Copy; send a test; delete after a confirmation) and the last 50
// deliveries, newest first, with Redeliver and Refresh. A MEMBER's page
// never asks for the OWNER-only fields (see load).

import { graphql, reporter } from "./api.js";
import { $, ask, copyText, h, replace } from "./dom.js";
import { dateTime } from "./format.js";
import * as Q from "./queries.js";
import { state } from "./state.js";
import { loaded, register, setStatus } from "./view.js";

const alerts = reporter("alerts-error");
const hooks = reporter("webhooks-error");

// { account, webhooks }: webhooks is null for a MEMBER.
let current = null;

async function read() {
  const { account } = await graphql(Q.ALERTS, { id: state.accountId });
  const webhooks = account.role === "OWNER"
    ? (await graphql(Q.WEBHOOKS, { id: account.id })).account
    : null;
  return { account, webhooks };
}

register("alerts", {
  element: $("alerts-view"),
  signedIn: true,
  accountBar: true,
  load: () =>
    loaded(async () => {
      current = await read();
    }),
  enter() {
    alerts.report("");
    hooks.report("");
    hideSecret();
    $("alerts-input").value = current.account.usageAlerts.join(", ");
    render();
  },
});

// Reads the page again; a refusal is said under the webhooks.
async function reload() {
  const focusedId = document.activeElement && document.activeElement.id;
  current = await read();
  render();
  const back = focusedId && $(focusedId);
  if (back) back.focus();
}

function thresholdsText(thresholds) {
  return thresholds.length ? thresholds.map((t) => t + "%").join(", ") : "none (no alerts)";
}

function render() {
  const { account, webhooks } = current;
  const owner = account.role === "OWNER";
  $("alerts-title").textContent = "Alerts and webhooks of " + account.name;
  $("alerts-thresholds").textContent = thresholdsText(account.usageAlerts);
  $("alerts-edit").hidden = !owner;
  $("webhook-tools").hidden = !owner;
  if (!owner) {
    replace($("endpoints-body"));
    replace($("deliveries-body"));
    return;
  }
  const endpoints = webhooks.webhookEndpoints;
  const urls = new Map(endpoints.map((e) => [e.id, e.url]));
  const button = (text, label, onclick, className = "secondary small") =>
    h("button", { type: "button", class: className, "aria-label": text + " " + label, onclick }, text);
  replace($("endpoints-body"), endpoints.length
    ? endpoints.map((endpoint) => h("tr", { "data-endpoint-id": endpoint.id },
      h("td", { "data-label": "URL" }, h("code", {}, endpoint.url)),
      h("td", { "data-label": "Events" }, endpoint.events.length ? endpoint.events.join(", ") : "all events"),
      h("td", { "data-label": "Created" }, dateTime(endpoint.createdAt)),
      h("td", { "data-label": "Status" }, endpoint.disabledAt ? "disabled " + dateTime(endpoint.disabledAt) : "active"),
      h("td", { class: "row-actions" },
        button("Send test", endpoint.url, () => sendTest(endpoint)),
        button("Delete", endpoint.url, () => remove(endpoint), "small danger"))))
    : h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No endpoints yet.")));
  const deliveries = webhooks.webhookDeliveries;
  replace($("deliveries-body"), deliveries.length
    ? deliveries.map((delivery) => h("tr", { "data-delivery-id": delivery.id, "data-event-id": delivery.eventId },
      h("td", { "data-label": "Event" }, h("code", {}, delivery.eventType)),
      h("td", { "data-label": "Endpoint" }, urls.get(delivery.endpointId) || "deleted endpoint"),
      h("td", { "data-label": "Status" }, delivery.status),
      h("td", { "data-label": "Attempts", class: "num" }, String(delivery.attempts)),
      h("td", { "data-label": "Last response" }, delivery.lastResponseStatus === null ? "none" : String(delivery.lastResponseStatus)),
      h("td", { "data-label": "Created" }, dateTime(delivery.createdAt)),
      h("td", { "data-label": "Next attempt" }, delivery.nextAttemptAt ? dateTime(delivery.nextAttemptAt) : "none"),
      h("td", { class: "row-actions" },
        delivery.status === "SUCCEEDED" || delivery.status === "FAILED"
          ? button("Redeliver", delivery.eventType + " of " + dateTime(delivery.createdAt), () => redeliver(delivery))
          : null)))
    : h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No deliveries yet.")));
}

// "80, 100" or "80 100" → [80, 100]; null when a part is not a whole number.
function parseThresholds(text) {
  const parts = text.split(/[\s,;%]+/).filter(Boolean);
  if (!parts.every((part) => /^\d+$/.test(part))) return null;
  return parts.map(Number);
}

$("alerts-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const thresholds = parseThresholds($("alerts-input").value);
  if (!thresholds) return alerts.report("Thresholds are whole numbers from 1 to 100, separated by commas.");
  await alerts.act(async () => {
    const { setUsageAlerts } = await graphql(Q.SET_USAGE_ALERTS, { accountId: current.account.id, thresholds });
    current.account.usageAlerts = setUsageAlerts.usageAlerts;
    $("alerts-input").value = setUsageAlerts.usageAlerts.join(", ");
    render();
    setStatus("Thresholds saved: " + thresholdsText(setUsageAlerts.usageAlerts) + ".");
  });
});

$("endpoint-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const url = $("endpoint-url").value.trim();
  if (!url) return hooks.report("Enter the URL to send webhooks to.");
  const events = $("endpoint-events").value.split(/[\s,]+/).filter(Boolean);
  await hooks.act(async () => {
    const input = { accountId: current.account.id, url, events };
    const { createWebhookEndpoint } = await graphql(Q.CREATE_WEBHOOK_ENDPOINT, { input });
    $("endpoint-url").value = "";
    $("endpoint-events").value = "";
    $("endpoint-secret-url").textContent = createWebhookEndpoint.endpoint.url;
    $("endpoint-secret-value").textContent = createWebhookEndpoint.secret;
    $("endpoint-copy-status").textContent = "";
    $("endpoint-secret").hidden = false;
    await reload();
    $("copy-endpoint-secret").focus();
  });
});

$("copy-endpoint-secret").addEventListener("click", async () => {
  const value = $("endpoint-secret-value");
  const copied = await copyText(value.textContent, value);
  $("endpoint-copy-status").textContent = copied
    ? "Copied to the clipboard."
    : "Could not copy: the secret is selected, copy it with Ctrl+C (⌘C).";
});

// The secret goes for good: it is not kept anywhere.
function hideSecret() {
  $("endpoint-secret").hidden = true;
  $("endpoint-secret-value").textContent = "";
  $("endpoint-secret-url").textContent = "";
}

$("endpoint-secret-done").addEventListener("click", () => {
  hideSecret();
  $("endpoint-url").focus();
});

$("deliveries-refresh").addEventListener("click", () => hooks.act(reload));

async function sendTest(endpoint) {
  await hooks.act(async () => {
    await graphql(Q.SEND_TEST_WEBHOOK, { endpointId: endpoint.id });
    await reload();
    setStatus("Test event sent to " + endpoint.url + ": Refresh to see how it went.");
  });
}

async function redeliver(delivery) {
  await hooks.act(async () => {
    await graphql(Q.REDELIVER_WEBHOOK, { deliveryId: delivery.id });
    await reload();
  });
}

async function remove(endpoint) {
  const data = await ask({
    title: "Delete the endpoint " + endpoint.url + "?",
    body: h("p", {}, "Nothing more is sent to it, pending deliveries included. A new endpoint gets a new secret."),
    confirm: "Delete",
    danger: true,
  });
  if (!data) return;
  await hooks.act(async () => {
    await graphql(Q.DELETE_WEBHOOK_ENDPOINT, { id: endpoint.id });
    await reload();
  });
}
