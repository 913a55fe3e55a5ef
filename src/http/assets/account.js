// The account card: plan, credits used and left in the cycle, and the
// renewal; and who is signed in, in the header. Rendered from the state.

import { $ } from "./dom.js";
import { date, inDays, number } from "./format.js";
import { watch } from "./state.js";

watch(["me", "account", "usage"], ({ me, account, usage }) => renderAccount(me, account, usage));

function renderAccount(me, { billingAccount: account }, usage) {
  const used = usage.totalCredits;
  $("who").textContent = me.email;
  $("plan").textContent = account.plan;
  const bar = $("credits-bar");
  bar.max = Math.max(1, account.monthlyCredits);
  bar.value = Math.min(used, bar.max);
  bar.classList.toggle("low", usage.remainingCredits <= account.monthlyCredits * 0.1);
  $("credits-used").textContent = number(used);
  $("credits-total").textContent = number(account.monthlyCredits);
  $("credits-left").textContent = number(usage.remainingCredits);
  $("renews-on").textContent = date(account.billingCycleEnd);
  $("renews-in").textContent = inDays(account.billingCycleEnd);
}
