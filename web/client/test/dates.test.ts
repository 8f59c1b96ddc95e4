/** Dates as the CLI writes them (`dates.ts`), whatever the locale: the CLI's own cases (`day_month`). */
import { describe, expect, it } from "vitest";
import { clock, dayMonth, lineTime } from "../src/index.js";

describe("dates as the CLI writes them", () => {
  it("says a day as the CLI's day_month does, in UTC", () => {
    expect(dayMonth(0)).toBe("1 Jan 1970");
    expect(dayMonth(951_782_400)).toBe("29 Feb 2000");
    expect(dayMonth(1_796_205_600)).toBe("2 Dec 2026");
    expect(dayMonth(1_796_205_600 + 86_399 - 36_000)).toBe("2 Dec 2026");
  });

  it("says a line's time as hours and minutes today, with the day before", () => {
    const t = 1_796_205_600;
    expect(clock(t)).toMatch(/^\d\d:\d\d$/);
    expect(lineTime(t, t + 60)).toBe(clock(t));
    expect(lineTime(t, t + 3 * 86_400)).toBe(`2 Dec 2026, ${clock(t)}`);
  });
});
