// Hand-written SVG charts: a stacked bar chart of usage over time and a
// sparkline per key. Smaller than any chart library, and nothing to vendor.
// Colours come from CSS classes (series-0 …), so the policy needs no
// inline style.

import { s } from "./dom.js";
import { label, number } from "./format.js";

export const SERIES_COLOURS = 8;

// points: [{start}], stacks: [{name, points: [{credits}]}] aligned with points.
export function stackedBars({ points, stacks, interval, title }) {
  const width = 640, height = 220, left = 40, bottom = 24, top = 8;
  const plotH = height - bottom - top, plotW = width - left - 8;
  const totals = points.map((_, i) => stacks.reduce((sum, k) => sum + k.points[i].credits, 0));
  // The top of the scale: an even whole number, so the middle tick is a
  // whole number too (an empty chart reads 0, 1, 2, not 0, 1, 1).
  const max = 2 * Math.ceil(Math.max(1, ...totals) / 2);
  const step = plotW / Math.max(1, points.length);
  const barW = Math.max(1, step * 0.7);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart" });
  svg.append(s("title", {}, title));
  for (const tick of [0, 0.5, 1]) {
    const y = top + plotH - tick * plotH;
    svg.append(s("line", { x1: left, x2: width - 8, y1: y, y2: y, class: "grid" }));
    svg.append(s("text", { x: left - 4, y: y + 4, class: "axis", "text-anchor": "end" }, number(max * tick)));
  }
  points.forEach((point, i) => {
    const x = left + i * step + (step - barW) / 2;
    let y = top + plotH;
    stacks.forEach((stack, k) => {
      const credits = stack.points[i].credits;
      if (!credits) return;
      const barH = (credits / max) * plotH;
      y -= barH;
      const rect = s("rect", { x, y, width: barW, height: barH, class: "series-" + (k % SERIES_COLOURS) });
      rect.append(s("title", {}, `${stack.name}: ${number(credits)} credits, ${label(point.start, interval)}`));
      svg.append(rect);
    });
    const every = Math.ceil(points.length / 8);
    if (i % every === 0) {
      svg.append(s("text", { x: x + barW / 2, y: height - 6, class: "axis", "text-anchor": "middle" }, label(point.start, interval)));
    }
  });
  return svg;
}

// A 30-day line for one key; flat when it has no usage.
export function sparkline(points, name) {
  const width = 96, height = 24;
  const values = points.length ? points.map((p) => p.credits) : [0, 0];
  const max = Math.max(1, ...values);
  const step = width / Math.max(1, values.length - 1);
  const path = values
    .map((v, i) => `${i ? "L" : "M"}${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`)
    .join(" ");
  const total = values.reduce((a, b) => a + b, 0);
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "sparkline", role: "img",
    "aria-label": `${name}: ${number(total)} credits in the last 30 days`,
  });
  svg.append(s("path", { d: path }));
  return svg;
}
