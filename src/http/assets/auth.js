// Signing in and out, as two views (see view.js): "signed-out" (sign up,
// log in, or a provider's button) and "callback", the provider's way back
// (/auth/callback), which ends on the dashboard. Also the header's Log out.

import { ApiError, graphql, describe } from "./api.js";
import { $, h, replace } from "./dom.js";
import * as Q from "./queries.js";
import { set } from "./state.js";
import { register, show } from "./view.js";

const PROVIDER_ERRORS = {
  access_denied: "You cancelled the sign-in, or the provider did not allow it.",
  login_required: "The provider needs you to sign in with it first.",
  consent_required: "The provider needs your consent to share your account.",
  interaction_required: "The provider needs you to confirm something first.",
  temporarily_unavailable: "The provider is unavailable for now; try again in a moment.",
  server_error: "The provider ran into an error; try again in a moment.",
};

const SIGN_IN_ERRORS = {
  INVALID_CREDENTIALS: "This sign-in link has expired or was already used. Please sign in again.",
  EMAIL_TAKEN: "An account with this email already exists. Log in with its password instead.",
};

// `message`: what to say on arrival (why the person is signed out), or none.
register("signed-out", {
  element: $("signed-out"),
  enter(message) {
    // A new sign-in starts on its own account.
    set({ accountId: null });
    showError(message || "");
    loadProviders();
  },
});

// Completes the provider's sign-in, then the dashboard shows its new key
// (first sign-in); if it failed, the signed-out view says why (unless a
// session from before is still good).
register("callback", {
  path: "/auth/callback",
  async load() {
    let arrival;
    try {
      arrival = { newKey: await completeCallback() };
    } catch (error) {
      arrival = { message: error.message };
    }
    show("dashboard", arrival);
    return false;
  },
});

$("logout").addEventListener("click", async () => {
  await graphql(Q.LOGOUT).catch(() => {});
  show("signed-out", "You are logged out.");
});

$("auth-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const signup = event.submitter && event.submitter.value === "signup";
  const input = { email: $("email").value, password: $("password").value };
  if (!input.email.trim() || !input.password) {
    return showError("Enter your email and a password.");
  }
  // A fresh attempt: the last one's error goes until this one answers.
  showError("");
  setBusy(form, true);
  try {
    const data = signup ? await graphql(Q.SIGNUP, { input }) : await graphql(Q.LOGIN, { input });
    $("password").value = "";
    showError("");
    const arrival = { newKey: signup ? data.signup.defaultKey : null };
    // Signing in on an invitation's page (accept.js) goes on to accept it.
    show(location.pathname === "/invitations/accept" ? "accept" : "dashboard", arrival);
  } catch (error) {
    showError(describe(error));
  } finally {
    setBusy(form, false);
  }
});

async function loadProviders() {
  const list = $("providers");
  try {
    const { authProviders } = await graphql(Q.AUTH_PROVIDERS);
    replace(list, authProviders.length ? h("p", { class: "or" }, "or") : null,
      authProviders.map((provider) =>
        h("button", { type: "button", class: "provider", onclick: () => startSignIn(provider.id) },
          "Sign in with " + provider.name)));
  } catch (_) {
    replace(list);
  }
}

async function startSignIn(provider) {
  try {
    const data = await graphql(Q.START_SIGN_IN, { provider });
    location.assign(data.startSignIn.authorizationUrl);
  } catch (error) {
    showError("Could not start signing in: " + describe(error));
  }
}

// On /auth/callback: completes the sign-in and returns its new default key
// (first sign-in), or null; throws an ApiError whose message is what the
// signed-out view says.
async function completeCallback() {
  const params = new URLSearchParams(location.search);
  // The code must not linger in the address bar or the history.
  history.replaceState(null, "", "/");
  const providerError = params.get("error");
  if (providerError) {
    const words = PROVIDER_ERRORS[providerError] || "The provider could not sign you in (" + providerError + ").";
    throw new ApiError(words, "PROVIDER_ERROR", { error: providerError });
  }
  const code = params.get("code");
  const state = params.get("state");
  if (!code || !state) {
    throw new ApiError("This address is where sign-in providers send you back; sign in below.", "NO_CALLBACK");
  }
  // The state keymeter made reads "<provider id>.<random>".
  const provider = state.split(".")[0];
  try {
    const data = await graphql(Q.COMPLETE_SIGN_IN, { input: { provider, code, state } });
    return data.completeSignIn.defaultKey;
  } catch (error) {
    throw new ApiError(SIGN_IN_ERRORS[error.code] || describe(error), error.code, error.extensions);
  }
}

function showError(text) {
  const error = $("auth-error");
  error.textContent = text;
  error.hidden = !text;
}

function setBusy(form, busy) {
  for (const button of form.querySelectorAll("button")) button.disabled = busy;
  form.setAttribute("aria-busy", busy ? "true" : "false");
}
