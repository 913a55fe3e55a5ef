// The audit log page (a view, see view.js): the account's changes, newest
// first, 50 at a time ("Older" asks for the next page with nextCursor),
// filtered by action.

import { graphql, reporter } from "./api.js";
import { $, h, replace } from "./dom.js";
import { dateTime } from "./format.js";
import * as Q from "./queries.js";
import { state } from "./state.js";
import { loaded, register } from "./view.js";

const { act: run, report } = reporter("audit-error");

// AuditEvent.action's values, as the contract lists them.
const ACTIONS = [
  "key.created", "key.renamed", "key.rotated", "key.revoked", "key.rate_limit_changed",
  "account.created", "account.renamed", "plan.changed", "invitation.created", "invitation.revoked",
  "member.joined", "member.role_changed", "member.removed", "webhook_endpoint.created",
  "webhook_endpoint.deleted", "usage_alerts.changed", "usage.threshold_reached",
];

const select = $("audit-action");
select.append(...ACTIONS.map((action) => h("option", { value: action }, action)));

// The first page, read by `load` and drawn by `enter`.
let first = null;
let cursor = null;

register("audit", {
  element: $("audit-view"),
  signedIn: true,
  accountBar: true,
  load: () =>
    loaded(async () => {
      first = await page(null);
    }),
  enter() {
    report("");
    draw(first, false);
  },
});

function page(after) {
  const actions = select.value ? [select.value] : null;
  return graphql(Q.AUDIT_LOG, { id: state.accountId, after, actions }).then((data) => data.account);
}

function draw(account, more) {
  const { events, nextCursor } = account.auditLog;
  $("audit-title").textContent = "Audit log of " + account.name;
  cursor = nextCursor;
  const rows = events.map((event) => h("tr", {},
    h("td", { "data-label": "When" }, dateTime(event.occurredAt)),
    h("td", { "data-label": "Action" }, h("code", {}, event.action)),
    h("td", { "data-label": "Target" }, event.targetName || event.targetType),
    h("td", { "data-label": "By" }, event.actor.user ? event.actor.user.email : event.actor.type.toLowerCase())));
  const body = $("audit-body");
  if (more) body.append(...rows);
  else replace(body, rows.length ? rows : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "Nothing yet.")));
  $("audit-older").hidden = !cursor;
}

select.addEventListener("change", () => run(async () => draw(await page(null), false)));

$("audit-older").addEventListener("click", () => run(async () => {
  const firstNew = $("audit-body").rows.length;
  draw(await page(cursor), true);
  // Focus moves to the first older row's place if the button went.
  if ($("audit-older").hidden) {
    const row = $("audit-body").rows[firstNew];
    if (row) {
      row.tabIndex = -1;
      row.focus();
    }
  }
}));
