/**
 * Dates and times as the CLI writes them, whatever the browser's locale: a day is "6 Dec 2026"
 * (`client/src/notice.rs`'s `day_month`, in UTC like every date the CLI prints), a time of day
 * "14:05" (24-hour, the reader's clock). One formatter for the widget and the console.
 */

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"] as const;

/** "6 Dec 2026" for Unix seconds, in UTC (as the CLI's `day_month`). */
export function dayMonth(secs: number): string {
  const d = new Date(secs * 1000);
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()] ?? "?"} ${d.getUTCFullYear()}`;
}

/** "14:05" for Unix seconds, on the reader's clock. */
export function clock(secs: number): string {
  const d = new Date(secs * 1000);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/** "14:05" on the day `now` falls on (UTC), else "5 Dec 2026, 14:05": a line's time. */
export function lineTime(secs: number, now: number): string {
  const day = dayMonth(secs);
  return day === dayMonth(now) ? clock(secs) : `${day}, ${clock(secs)}`;
}
