// Talking to keymeter's GraphQL API from its own pages. The session is an
// HttpOnly cookie this script never sees; the header below is what makes
// the server accept that cookie (a cross-site form cannot send it).

import { $ } from "./dom.js";

export class ApiError extends Error {
  constructor(message, code, extensions) {
    super(message);
    this.code = code;
    this.extensions = extensions || {};
  }
}

export async function graphql(query, variables = {}) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Keymeter-CSRF": "1" },
      credentials: "same-origin",
      body: JSON.stringify({ query, variables }),
    });
  } catch (_) {
    throw new ApiError("keymeter could not be reached. Check your connection and try again.", "NETWORK");
  }
  const body = await response.json().catch(() => ({}));
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    const extensions = first.extensions || {};
    throw new ApiError(first.message, extensions.code || "", extensions);
  }
  if (!body.data) throw new ApiError("keymeter answered with an error (" + response.status + ").", "HTTP");
  return body.data;
}

// What a person reads for each error code.
export function describe(error) {
  switch (error.code) {
    case "INVALID_CREDENTIALS":
      return "Wrong email or password.";
    case "EMAIL_TAKEN":
      return "An account with this email already exists. Log in instead.";
    case "RATE_LIMITED":
      return "Too many attempts. Try again " + waitText(error.extensions.retryAfterSeconds) + ".";
    case "UNAUTHENTICATED":
      return "Your session has ended. Please log in again.";
    case "FORBIDDEN":
      return error.message ? capitalize(error.message) + (error.message.endsWith(".") ? "" : ".") : "Only an owner of this account may do that.";
    case "BAD_USER_INPUT":
    case "NOT_FOUND":
      return capitalize(error.message) + (error.message.endsWith(".") ? "" : ".");
    default:
      return error.message || "Something went wrong. Please try again.";
  }
}

function waitText(seconds) {
  if (!seconds) return "later";
  if (seconds < 60) return "in " + seconds + (seconds === 1 ? " second" : " seconds");
  const minutes = Math.ceil(seconds / 60);
  return "in " + minutes + (minutes === 1 ? " minute" : " minutes");
}

function capitalize(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

// A page's way to run a change and say its refusal in words, in the
// element `id` (cleared when the next change starts).
export function reporter(id) {
  const report = (text) => {
    const message = $(id);
    message.textContent = text;
    message.hidden = !text;
  };
  const act = async (work) => {
    report("");
    try {
      await work();
    } catch (error) {
      report(describe(error));
    }
  };
  return { act, report };
}
