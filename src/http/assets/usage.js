// The usage card, rendered from the state: keysUsage's per-key table, and
// beside it the chart, the cycle by day (or the last 24 hours by hour),
// stacked by key. The range buttons set the state's range (dashboard.js
// loads the series for it); without a series the chart stays hidden and
// the table still shows.

import { $, h, replace } from "./dom.js";
import { stackedBars, SERIES_COLOURS } from "./chart.js";
import { number } from "./format.js";
import { set, watch } from "./state.js";

const RANGES = [...document.querySelectorAll("[data-range]")];

for (const button of RANGES) {
  button.addEventListener("click", () => set({ range: button.dataset.range }));
}

watch(["usage"], ({ usage }) => renderUsageTable(usage));
watch(["range"], ({ range }) => {
  for (const button of RANGES) button.setAttribute("aria-pressed", String(button.dataset.range === range));
});
watch(["series"], ({ series, range }) => renderChart(series, range));

function renderUsageTable(usage) {
  const rows = usage.keys.map((k) =>
    h("tr", {},
      h("th", { scope: "row" }, k.apiKey.name, " ", h("code", {}, k.apiKey.prefix + "…")),
      h("td", { class: "num" }, number(k.requests)),
      h("td", { class: "num" }, number(k.credits))));
  replace($("usage-body"), rows.length ? rows : h("tr", {}, h("td", { colspan: 3, class: "empty" }, "No usage in this cycle yet.")));
  $("usage-total-requests").textContent = number(usage.keys.reduce((sum, k) => sum + k.requests, 0));
  $("usage-total-credits").textContent = number(usage.totalCredits);
}

function renderChart(series, range) {
  if (!series) {
    $("usage-chart").hidden = true;
    return;
  }
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
