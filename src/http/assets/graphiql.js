// Renders GraphiQL on GET /graphql. A file, not an inline script, so the
// page's policy can be script-src 'self'.
"use strict";
// Signed in on the dashboard, the session cookie works here too: the header
// proves the call comes from keymeter's own page. Otherwise sign up or log
// in, then add {"Authorization": "Bearer <token>"} in the Headers tab.
const fetcher = GraphiQL.createFetcher({
  url: window.location.pathname,
  headers: { "X-Keymeter-CSRF": "1" },
});
// Headers stay in memory: a bearer token typed here must not outlive the tab
// in localStorage, where any script on this origin could read it. With
// false, GraphiQL also empties what an earlier version stored there, and
// offers no setting to turn persistence back on.
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, { fetcher, shouldPersistHeaders: false }),
);
