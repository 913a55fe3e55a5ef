// keymeter's dashboard: plain ES modules served by the binary, no build
// step. Signed out it offers sign up, log in and the providers; signed in,
// the account, the keys and the usage. The session lives in an HttpOnly
// cookie (see api.js): nothing here ever holds a token.
//
// This file only puts the page together. Each view registers itself with
// view.js when imported (a new page: one more import here), the dashboard's
// parts watch the state (state.js); then the view the address names shows.

import { start } from "./view.js";
import "./auth.js";
import "./dashboard.js";
import "./account.js";
import "./keys.js";
import "./usage.js";
import "./teams.js";
import "./members.js";
import "./accept.js";
import "./audit.js";
import "./alerts.js";

start();
