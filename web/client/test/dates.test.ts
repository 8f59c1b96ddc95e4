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

  it("says the day the CLI says on each side of midnight UTC, whatever the reader's time zone", () => {
    // 3 Dec 2026 00:00:00 UTC, 1 Jan 2027 00:00:00 UTC, 1 Mar 2028 00:00:00 UTC (a leap year).
    const cases: [number, string, string][] = [
      [1_796_256_000, "2 Dec 2026", "3 Dec 2026"],
      [1_798_761_600, "31 Dec 2026", "1 Jan 2027"],
      [1_835_481_600, "29 Feb 2028", "1 Mar 2028"],
    ];
    const zone = process.env.TZ;
    try {
      // UTC+14, UTC−8 (in December), UTC: the browser's zone never moves the day.
      for (const tz of ["Pacific/Kiritimati", "America/Los_Angeles", "UTC"]) {
        process.env.TZ = tz;
        for (const [midnight, before, after] of cases) {
          expect(dayMonth(midnight - 1), `${tz}: a second before`).toBe(before);
          expect(dayMonth(midnight), `${tz}: midnight`).toBe(after);
          expect(dayMonth(midnight + 1), `${tz}: a second after`).toBe(after);
        }
      }
      // The zone was applied: in UTC+14 the local day of 2 Dec 23:59:59 UTC is 3 Dec.
      process.env.TZ = "Pacific/Kiritimati";
      expect(new Date((1_796_256_000 - 1) * 1000).getDate()).toBe(3);
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it("says a line's time as hours and minutes today, with the day before", () => {
    const t = 1_796_205_600;
    expect(clock(t)).toMatch(/^\d\d:\d\d$/);
    expect(lineTime(t, t + 60)).toBe(clock(t));
    expect(lineTime(t, t + 3 * 86_400)).toBe(`2 Dec 2026, ${clock(t)}`);
  });
});
