// v3 accounts: the switcher above the signed-in pages (the user's own
// account first, as the server orders them), "New team", and the tabs
// between the pages. Choosing an account reloads the page on screen for it.

import { graphql, describe } from "./api.js";
import { refresh } from "./dashboard.js";
import { $, ask, field, h, replace } from "./dom.js";
import * as Q from "./queries.js";
import { set, watch } from "./state.js";
import { setStatus, show } from "./view.js";

for (const tab of document.querySelectorAll("[data-page]")) {
  tab.addEventListener("click", () => show(tab.dataset.page));
}

// The pages the switcher reloads, by their element.
const PAGES = { dashboard: "signed-in", members: "members-view", audit: "audit-view", alerts: "alerts-view" };

watch(["accounts", "account"], renderSwitcher);

// Drawn again only when the list or the choice changed: the select keeps
// its focus otherwise.
let drawn = "";
function renderSwitcher({ accounts, account }) {
  if (!accounts || !account) return;
  const look = JSON.stringify([accounts, account.id]);
  if (look === drawn) return;
  drawn = look;
  const select = $("account-select");
  const focused = document.activeElement === select;
  replace(select, accounts.map((a, i) =>
    h("option", { value: a.id, selected: a.id === account.id },
      i === 0 ? a.name + " (your account)" : a.name)));
  select.value = account.id;
  if (focused) select.focus();
}

$("account-select").addEventListener("change", (event) => choose(event.target.value));

// Shows `id`'s account on the page on screen.
export async function choose(id) {
  set({ accountId: id });
  const [page] = Object.entries(PAGES).find(([, element]) => !$(element).hidden) || ["dashboard"];
  if (page === "dashboard") await refresh();
  else await show(page);
}

$("new-team").addEventListener("click", async () => {
  const input = h("input", { name: "name", required: true, maxlength: 64, autocomplete: "off" });
  const data = await ask({ title: "New team", fields: [field("Team name", input)], confirm: "Create team" });
  if (!data) return;
  try {
    const { createAccount } = await graphql(Q.CREATE_ACCOUNT, { name: String(data.get("name")).trim() });
    set({ accountId: createAccount.id });
    await show("dashboard");
    $("account-select").focus();
  } catch (error) {
    setStatus(describe(error));
  }
});
