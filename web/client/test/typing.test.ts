/**
 * The customer's typing signals, throttled (`src/typing.ts`): "typing" at most once every
 * `TYPING_RESEND_SECS` while typing goes on, "stopped" once after a "typing" (emptied box, sent,
 * left), and nothing to stop when nothing was said.
 */
import { describe, expect, it } from "vitest";
import { TYPING_RESEND_SECS, TypingThrottle } from "../src/index.js";

describe("the typing throttle", () => {
  it("sends typing at most once per interval, then stopped once", () => {
    const t = new TypingThrottle();
    expect(t.stop()).toBeNull();
    expect(t.input(100, false)).toBe("typing");
    expect(t.input(100, false)).toBeNull();
    expect(t.input(100 + TYPING_RESEND_SECS - 1, false)).toBeNull();
    expect(t.input(100 + TYPING_RESEND_SECS, false)).toBe("typing");
    expect(t.input(104, true)).toBe("stopped");
    expect(t.input(104, true)).toBeNull();
    expect(t.stop()).toBeNull();
    expect(t.input(105, false)).toBe("typing");
    expect(t.stop()).toBe("stopped");
  });
});
