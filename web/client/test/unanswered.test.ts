/**
 * `ui/unanswered.ts`'s rules, without a page: which line read back confirms a send the relay did
 * not answer (the sender's own text, the same words, sealed while it was on its way, above every
 * item known then — one line for one send), and that "not stored" is said only after the
 * session that carried it has gone and a new one has read. Each case fails if its check goes.
 */
import { describe, expect, it } from "vitest";
import { SEND_UNANSWERED, SessionError } from "../src/index.js";
import { UnansweredSends, wasOffline, wasUnanswered, type LineSeen } from "../src/ui/unanswered.js";

const line = (over: Partial<LineSeen>): LineSeen => ({ seq: 10, mine: true, text: "hi", sentAt: 1000, ...over });

describe("sends the relay did not answer", () => {
  it("tells an unanswered send from a refusal and from no session", () => {
    expect(wasUnanswered(new SessionError("timeout", SEND_UNANSWERED))).toBe(true);
    // Another request's timeout (the handshake's) says nothing of a send's fate.
    expect(wasUnanswered(new SessionError("timeout", "no response in time"))).toBe(false);
    // Its session closed while it waited: the frame may have reached the relay.
    expect(wasUnanswered(new SessionError("closed", "1006"))).toBe(true);
    // No session to send on: nothing sealed, nothing sent.
    expect(wasUnanswered(new SessionError("closed", "offline"))).toBe(false);
    expect(wasOffline(new SessionError("closed", "offline"))).toBe(true);
    expect(wasOffline(new SessionError("closed", "1006"))).toBe(false);
    expect(wasOffline(new SessionError("timeout", SEND_UNANSWERED))).toBe(false);
  });

  it("is confirmed only by the sender's own line of the same text, sealed meanwhile, above what was known", () => {
    const sends = new UnansweredSends();
    const u = sends.add("c", "hi", 9, 999, 1001);
    const wrong: LineSeen[] = [
      line({ mine: false }),
      line({ text: "hi!" }),
      line({ seq: 9 }),
      line({ sentAt: 998 }),
      line({ sentAt: 1002 }),
      line({ attachment: {} }),
    ];
    for (const l of wrong) expect(sends.confirmedBy("c", [l]), JSON.stringify(l)).toEqual([]);
    expect(sends.confirmedBy("other", [line({})])).toEqual([]);
    expect(sends.of("c")).toEqual([u]);
    expect(sends.confirmedBy("c", [line({ sentAt: 1001 })])).toEqual([u]);
    expect(sends.of("c")).toEqual([]);
  });

  it("matches one line to one send: two sends of the same words need two lines", () => {
    const sends = new UnansweredSends();
    const a = sends.add("c", "ok", 5, 1000, 1000);
    const b = sends.add("c", "ok", 5, 1000, 1000);
    expect(sends.confirmedBy("c", [line({ seq: 6, text: "ok" })])).toEqual([a]);
    expect(sends.of("c")).toEqual([b]);
    // The line already taken is read again with the whole history: it confirms nothing more.
    expect(sends.confirmedBy("c", [line({ seq: 6, text: "ok" })])).toEqual([]);
    expect(sends.confirmedBy("c", [line({ seq: 6, text: "ok" }), line({ seq: 7, text: "ok" })])).toEqual([b]);
    // Within one look too: one line, two sends of the same words, one confirmed.
    const c = sends.add("c", "ok", 5, 1000, 1000);
    const d = sends.add("c", "ok", 5, 1000, 1000);
    expect(sends.confirmedBy("c", [line({ seq: 8, text: "ok" })])).toEqual([c]);
    expect(sends.of("c")).toEqual([d]);
  });

  it("says not stored only once the session that carried it has gone and a new one read", () => {
    const sends = new UnansweredSends();
    const u = sends.add("c", "hi", 0, 1, 2);
    // An online state told before the carrying session's close arrived: too early to tell.
    expect(sends.settle()).toEqual([]);
    expect(u.state).toBe("pending");
    sends.disconnected();
    expect(sends.settle()).toEqual([u]);
    expect(u.state).toBe("not_stored");
    // Told after the page saw its session go (a close that rejected it): the next online settles it.
    const late = sends.add("c", "late", 0, 1, 2, false);
    expect(sends.settle()).toEqual([late]);
    // Still matched by a line that comes later (the old connection's frame stored after the read).
    expect(sends.confirmedBy("c", [line({ seq: 1, text: "hi", sentAt: 2 })])).toEqual([u]);
  });

  it("leaves a send being sent again to its own answer", () => {
    const sends = new UnansweredSends();
    const u = sends.add("c", "hi", 0, 1, 2);
    u.state = "resending";
    expect(sends.confirmedBy("c", [line({ seq: 1, sentAt: 2 })])).toEqual([]);
  });
});
