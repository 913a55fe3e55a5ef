// keymeter's sign-in pages: `/` (who is signed in, or the providers to sign
// in with) and `/auth/callback` (where providers send the browser back).
// Served from our origin, as a file: the pages' policy forbids inline script.
"use strict";

// Temporary: the session token lives in localStorage until the dashboard
// moves sessions to an HttpOnly cookie.
const TOKEN = "keymeter.token";

const PROVIDER_ERRORS = {
  access_denied: "You cancelled the sign-in, or the provider did not allow it.",
  login_required: "The provider needs you to sign in with it first.",
  consent_required: "The provider needs your consent to share your account.",
  interaction_required: "The provider needs you to confirm something first.",
  temporarily_unavailable: "The provider is unavailable for now; try again in a moment.",
  server_error: "The provider ran into an error; try again in a moment.",
};

const API_ERRORS = {
  INVALID_CREDENTIALS: "This sign-in link has expired or was already used. Please sign in again.",
  EMAIL_TAKEN: "An account with this email already exists. Sign in with its password instead.",
  RATE_LIMITED: "Too many new accounts from here; try again later.",
};

async function graphql(query, variables, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch("/graphql", {
    method: "POST",
    headers,
    credentials: "same-origin",
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors && body.errors.length) {
    const error = body.errors[0];
    const code = (error.extensions && error.extensions.code) || "";
    throw Object.assign(new Error(error.message), { code });
  }
  return body.data;
}

function show(id, text) {
  const element = document.getElementById(id);
  element.textContent = text;
  element.hidden = false;
}

async function index() {
  const token = localStorage.getItem(TOKEN);
  if (token) {
    try {
      const data = await graphql("query { me { email } }", {}, token);
      show("status", "Signed in as " + data.me.email + ".");
      const signOut = document.getElementById("sign-out");
      signOut.hidden = false;
      signOut.addEventListener("click", async () => {
        await graphql("mutation { logout }", {}, token).catch(() => {});
        localStorage.removeItem(TOKEN);
        location.reload();
      });
      return;
    } catch (_) {
      localStorage.removeItem(TOKEN);
    }
  }
  const data = await graphql("query { authProviders { id name } }", {});
  if (data.authProviders.length === 0) {
    show("status", "Not signed in. No sign-in providers are configured.");
    return;
  }
  show("status", "Not signed in.");
  const list = document.getElementById("providers");
  for (const provider of data.authProviders) {
    const button = document.createElement("button");
    button.textContent = "Sign in with " + provider.name;
    button.addEventListener("click", () => startSignIn(provider.id));
    list.appendChild(button);
  }
}

async function startSignIn(provider) {
  try {
    const data = await graphql(
      "mutation Start($provider: String!) { startSignIn(provider: $provider) { authorizationUrl } }",
      { provider },
    );
    location.assign(data.startSignIn.authorizationUrl);
  } catch (error) {
    show("status", "Could not start signing in: " + error.message);
  }
}

async function callback() {
  const params = new URLSearchParams(location.search);
  // The code must not linger in the address bar or the history.
  history.replaceState(null, "", location.pathname);
  const failed = (text) => {
    show("status", text);
    document.getElementById("again").hidden = false;
  };
  const providerError = params.get("error");
  if (providerError) {
    return failed(PROVIDER_ERRORS[providerError] || "The provider could not sign you in (" + providerError + ").");
  }
  const code = params.get("code");
  const state = params.get("state");
  if (!code || !state) {
    return failed("This page is where sign-in providers send you back; start from the sign-in page.");
  }
  // The state keymeter made reads "<provider id>.<random>".
  const provider = state.split(".")[0];
  try {
    const data = await graphql(
      `mutation Complete($input: CompleteSignInInput!) {
        completeSignIn(input: $input) { token user { email } defaultKey { secret } }
      }`,
      { input: { provider, code, state } },
    );
    const result = data.completeSignIn;
    localStorage.setItem(TOKEN, result.token);
    if (result.defaultKey) {
      show("status", "Signed in as " + result.user.email + ".");
      document.getElementById("secret").textContent = result.defaultKey.secret;
      document.getElementById("new-key").hidden = false;
    } else {
      location.replace("/");
    }
  } catch (error) {
    failed(API_ERRORS[error.code] || error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.getElementById("callback")) {
    callback();
  } else {
    index().catch((error) => show("status", "Could not reach keymeter: " + error.message));
  }
});
