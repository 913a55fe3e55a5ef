// Numbers, dates and durations as a person reads them.

const DAY = 86400000;

export const number = (n) => new Intl.NumberFormat().format(n);

export function date(iso) {
  return new Date(iso).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

export function dateTime(iso) {
  return new Date(iso).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

// "in 3 days", "tomorrow", "today".
export function inDays(iso, now = Date.now()) {
  const days = Math.ceil((new Date(iso).getTime() - now) / DAY);
  if (days <= 0) return "today";
  if (days === 1) return "tomorrow";
  return "in " + days + " days";
}

export function daysAgo(days, now = Date.now()) {
  return new Date(now - days * DAY).toISOString();
}

export const hoursAgo = (hours, now = Date.now()) => new Date(now - hours * 3600000).toISOString();

export function label(iso, interval) {
  const at = new Date(iso);
  return interval === "HOUR"
    ? at.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
    : at.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

export const SOON = 7 * DAY;
