// Which top-level view is on screen, and the page's chrome around it: the
// header's address and Log out, and the status line. Each view registers
// itself here; a new page is a new module that calls `register`, its
// markup in index.html, and an import in app.js.
//
// A view is { element, path, signedIn, accountBar, load(arg), enter(arg) }, all
// optional: `load` runs while the current view stays on screen and
// resolves to false to stay there (it said why, or showed another view);
// then the view's element is the only one shown, and `enter` runs.

import { describe } from "./api.js";
import { $ } from "./dom.js";

const views = new Map();
// Bumped by every show: a slower, earlier show never covers a later one.
let latest = 0;

export function register(name, view) {
  views.set(name, view);
}

export async function show(name, arg) {
  const view = views.get(name);
  const mine = ++latest;
  if (view.load && (await view.load(arg)) === false) return;
  if (mine !== latest) return;
  for (const other of views.values()) {
    if (other.element) other.element.hidden = other !== view;
  }
  $("logout").hidden = !view.signedIn;
  // The account switcher and the signed-in pages' tabs (teams.js).
  $("account-bar").hidden = !view.accountBar;
  for (const tab of document.querySelectorAll("[data-page]")) {
    if (tab.dataset.page === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (!view.signedIn) $("who").textContent = "";
  setStatus("");
  if (view.enter) await view.enter(arg);
}

// The view whose path is the address's (the dashboard's page is also the
// providers' way back, /auth/callback); "/" for any other.
export function start() {
  const route = (path) => [...views].find(([, view]) => view.path === path);
  const [name] = route(location.pathname) || route("/");
  return show(name);
}

export function setStatus(text) {
  const status = $("status");
  status.textContent = text;
  status.hidden = !text;
}

// A page's `load`: runs `read`; true once it has what the page shows. A
// session that is not good goes to the signed-out view, saying why; any
// other refusal is said on the status line, and the page stays as it was.
export async function loaded(read) {
  try {
    await read();
    return true;
  } catch (error) {
    if (error.code === "UNAUTHENTICATED") show("signed-out", describe(error));
    else setStatus(describe(error));
    return false;
  }
}
