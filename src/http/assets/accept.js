// /invitations/accept#<token>, the link an invitation sends: joins the
// account and lands on its dashboard. Signed out, the signed-out view asks
// to log in or sign up first, and the address (token included) stays, so
// that signing in comes back here (auth.js). A refusal is said in words.

import { graphql, describe } from "./api.js";
import { $ } from "./dom.js";
import * as Q from "./queries.js";
import { set } from "./state.js";
import { register, show } from "./view.js";

export const ACCEPT_PATH = "/invitations/accept";

const SIGN_IN_FIRST = "Log in, or sign up with the email the invitation was sent to, to join the team.";

let refusal = "";

// `arg`: { newKey } from a sign-up on the way, passed on to the dashboard.
register("accept", {
  element: $("accept-view"),
  path: ACCEPT_PATH,
  signedIn: true,
  async load(arg = {}) {
    const token = decodeURIComponent(location.hash.slice(1));
    if (!token) {
      refusal = "This invitation link is incomplete: open the whole link you were sent.";
      return true;
    }
    try {
      const { acceptInvitation } = await graphql(Q.ACCEPT_INVITATION, { token });
      // The token is used: it must not linger in the address bar or the history.
      history.replaceState(null, "", "/");
      set({ accountId: acceptInvitation.id });
      show("dashboard", arg);
      return false;
    } catch (error) {
      if (error.code === "UNAUTHENTICATED") {
        show("signed-out", SIGN_IN_FIRST);
        return false;
      }
      refusal = "You could not join the team: " + describe(error);
      return true;
    }
  },
  enter() {
    $("accept-error").textContent = refusal;
  },
});
