// The members page (a view, see view.js): who is in the account on screen,
// with their role and when they joined. An OWNER also invites (the accept
// link is shown once, with Copy), revokes pending invitations, changes
// roles and removes members; anyone but in their own account may leave.

import { graphql, describe, reporter } from "./api.js";
import { $, ask, copyText, h, replace } from "./dom.js";
import { date, dateTime } from "./format.js";
import * as Q from "./queries.js";
import { set, state } from "./state.js";
import { loaded, register, show } from "./view.js";

const { act, report } = reporter("members-error");

let current = null;

register("members", {
  element: $("members-view"),
  signedIn: true,
  accountBar: true,
  load: () =>
    loaded(async () => {
      const { me, account } = await graphql(Q.MEMBERS, { id: state.accountId });
      const invitations = account.role === "OWNER"
        ? (await graphql(Q.INVITATIONS, { id: account.id })).account.invitations
        : [];
      current = { me, account, invitations };
    }),
  enter() {
    report("");
    render();
  },
});

async function reload() {
  const focusedId = document.activeElement && document.activeElement.id;
  try {
    const { me, account } = await graphql(Q.MEMBERS, { id: state.accountId });
    const invitations = account.role === "OWNER"
      ? (await graphql(Q.INVITATIONS, { id: account.id })).account.invitations
      : [];
    current = { me, account, invitations };
    render();
  } catch (error) {
    report(describe(error));
  }
  // A control that is still there keeps the focus; else the invite field.
  const back = focusedId && $(focusedId);
  if (back) back.focus();
}

function render() {
  const { me, account, invitations } = current;
  const owner = account.role === "OWNER";
  const own = state.accounts && state.accounts.length && state.accounts[0].id === account.id;
  $("members-title").textContent = "Members of " + account.name;
  const owners = account.members.filter((m) => m.role === "OWNER").length;
  replace($("members-body"), account.members.map((member) => {
    const self = member.user.id === me.id;
    const label = member.user.email;
    const button = (text, onclick, className = "secondary small") =>
      h("button", { type: "button", class: className, "aria-label": text + " " + label, onclick }, text);
    return h("tr", { "data-user-id": member.user.id },
      h("td", { "data-label": "Email" }, member.user.email, self ? " (you)" : ""),
      h("td", { "data-label": "Role" }, member.role === "OWNER" ? "Owner" : "Member"),
      h("td", { "data-label": "Joined" }, date(member.joinedAt)),
      h("td", { class: "row-actions" },
        owner && !(member.role === "OWNER" && owners === 1)
          ? button(member.role === "OWNER" ? "Make member" : "Make owner", () => setRole(member))
          : null,
        owner && !self ? button("Remove", () => remove(member), "small danger") : null,
        self && !own ? button("Leave", () => leave(member), "small danger") : null));
  }));
  $("owner-tools").hidden = !owner;
  replace($("invitations"), invitations.length
    ? invitations.map((invitation) => h("li", {},
      invitation.email, " (", invitation.role === "OWNER" ? "Owner" : "Member", "), invited by ",
      invitation.invitedBy.email, ", expires ", dateTime(invitation.expiresAt), " ",
      h("button", { type: "button", class: "small danger", "aria-label": "Revoke invitation of " + invitation.email,
        onclick: () => revokeInvitation(invitation) }, "Revoke")))
    : h("li", { class: "muted" }, "No pending invitations."));
}

$("invite-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = $("invite-email").value.trim();
  if (!email) return report("Enter the email to invite.");
  await act(async () => {
    const input = { accountId: current.account.id, email, role: $("invite-role").value };
    const { createInvitation } = await graphql(Q.CREATE_INVITATION, { input });
    $("invite-email").value = "";
    $("invite-to").textContent = createInvitation.invitation.email;
    $("invite-url").textContent = createInvitation.acceptUrl;
    $("invite-copy-status").textContent = "";
    $("invite-link").hidden = false;
    await reload();
    $("copy-invite").focus();
  });
});

$("copy-invite").addEventListener("click", async () => {
  const url = $("invite-url");
  const copied = await copyText(url.textContent, url);
  $("invite-copy-status").textContent = copied
    ? "Copied to the clipboard."
    : "Could not copy: the link is selected, copy it with Ctrl+C (⌘C).";
});

// The link goes for good: it is not kept anywhere.
$("invite-done").addEventListener("click", () => {
  $("invite-link").hidden = true;
  $("invite-url").textContent = "";
  $("invite-email").focus();
});

async function setRole(member) {
  const role = member.role === "OWNER" ? "MEMBER" : "OWNER";
  await act(async () => {
    await graphql(Q.SET_MEMBER_ROLE, { accountId: current.account.id, userId: member.user.id, role });
    await reload();
  });
}

async function remove(member) {
  const data = await ask({
    title: "Remove " + member.user.email + "?",
    body: h("p", {}, "They lose access to this account at once. The keys they made stay with the account."),
    confirm: "Remove",
    danger: true,
  });
  if (!data) return;
  await act(async () => {
    await graphql(Q.REMOVE_MEMBER, { accountId: current.account.id, userId: member.user.id });
    await reload();
  });
}

async function leave(member) {
  const data = await ask({
    title: "Leave " + current.account.name + "?",
    body: h("p", {}, "You lose access to this account and its keys at once."),
    confirm: "Leave",
    danger: true,
  });
  if (!data) return;
  await act(async () => {
    await graphql(Q.REMOVE_MEMBER, { accountId: current.account.id, userId: member.user.id });
    set({ accountId: null });
    await show("dashboard");
  });
}

async function revokeInvitation(invitation) {
  await act(async () => {
    await graphql(Q.REVOKE_INVITATION, { id: invitation.id });
    await reload();
  });
}
