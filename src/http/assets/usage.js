// Usage: the cycle by day (or the last 24 hours by hour), stacked by key,
// beside keysUsage's per-key table. The chart needs usageSeries; if that
// query fails the chart stays hidden and the table still shows.

import { graphql } from "./api.js";
import { $, h, replace } from "./dom.js";
import { stackedBars, SERIES_COLOURS } from "./chart.js";
import { hoursAgo, number } from "./format.js";
import * as Q from "./queries.js";

let range = "cycle";

export function setUpUsage() {
  for (const button of document.querySelectorAll("[data-range]")) {
    button.addEventListener("click", () => {
      range = button.dataset.range;
      for (const other of document.querySelectorAll("[data-range]")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      loadChart();
    });
  }
}

export function renderUsageTable(usage) {
  const rows = usage.keys.map((k) =>
    h("tr", {},
      h("th", { scope: "row" }, k.apiKey.name, " ", h("code", {}, k.apiKey.prefix + "…")),
      h("td", { class: "num" }, number(k.requests)),
      h("td", { class: "num" }, number(k.credits))));
  replace($("usage-body"), rows.length ? rows : h("tr", {}, h("td", { colspan: 3, class: "empty" }, "No usage in this cycle yet.")));
  $("usage-total-requests").textContent = number(usage.keys.reduce((sum, k) => sum + k.requests, 0));
  $("usage-total-credits").textContent = number(usage.totalCredits);
}

export async function loadChart() {
  const variables = range === "day" ? { from: hoursAgo(24), interval: "HOUR" } : { interval: "DAY" };
  try {
    const { usageSeries } = await graphql(Q.USAGE_SERIES, variables);
    renderChart(usageSeries);
  } catch (_) {
    // Charts are extra: the table above says the same in numbers.
    $("usage-chart").hidden = true;
  }
}

function renderChart(series) {
  const stacks = series.keys.map((k) => ({ name: k.apiKey.name, points: k.points }));
  const total = series.total.reduce((sum, p) => sum + p.credits, 0);
  const requests = series.total.reduce((sum, p) => sum + p.requests, 0);
  const what = range === "day" ? "in the last 24 hours, by hour" : "this cycle, by day";
  const title = `Credits used ${what}: ${number(total)} credits, ${number(requests)} requests`;
  replace($("chart-box"), stackedBars({ points: series.total, stacks, interval: series.interval, title }));
  $("chart-caption").textContent = title + ".";
  replace($("chart-legend"), stacks.map((stack, k) =>
    h("li", {}, h("span", { class: "swatch series-" + (k % SERIES_COLOURS), "aria-hidden": "true" }), stack.name,
      " ", h("span", { class: "muted" }, number(stack.points.reduce((sum, p) => sum + p.credits, 0))))));
  $("usage-chart").hidden = false;
}
