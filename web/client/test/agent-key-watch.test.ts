/**
 * `AgentKeyWatch` (`customer-agent-key.ts`) without a relay: a session whose `get_certificate`
 * answers the test chooses, a policy holding only what the certificate check reads (the org and
 * its master), and Vitest's fake timers for the timed checks. A certified other key is a change
 * told once, after which nothing is checked; an unconfirmed reason is told once, another reason
 * again; the timer checks until stopped; a tick during a check is skipped, a push during one is
 * checked after it; a lost session on the timer is not an error.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { IdentityKeys, agentCertificateSignedBytes, issueCard, type AgentCertificate, type IdentityCard, type Policy } from "@sealdesk/protocol";
import { AgentKeyWatch, RelayError, SessionError, type AgentKeyWatchHost, type Request, type Response, type Session } from "../src/index.js";
import { now, random } from "./customer-fixture.js";

const master = IdentityKeys.generate(random);
const masterCard = issueCard(master, "owner", "master", now());
const policy = { org: "acme", master: masterCard } as unknown as Policy;

function agent(): { keys: IdentityKeys; card: IdentityCard } {
  const keys = IdentityKeys.generate(random);
  return { keys, card: issueCard(keys, "alice", "agent", now()) };
}

function certify(card: IdentityCard): AgentCertificate {
  const unsigned = { org: "acme", agent: card, issuedAt: now() - 10, expiresAt: now() + 86_400 };
  return { ...unsigned, signature: master.sign(agentCertificateSignedBytes(unsigned)) };
}

/** A session answering `get_certificate` with `answer()` (a response, or an error thrown). */
function session(answer: () => Promise<Response> | Response): { s: Session; asked: () => number } {
  let asked = 0;
  const s = {
    call: async (r: Request): Promise<Response> => {
      if (r.kind !== "get_certificate") throw new Error(`unexpected ${r.kind}`);
      asked += 1;
      return answer();
    },
  } as unknown as Session;
  return { s, asked: () => asked };
}

interface Told {
  changed: string[];
  unconfirmed: { code: string; reason: string; pushed: boolean }[];
  errors: unknown[];
}

function watch(pinned: IdentityCard, s: () => Session | null): { w: AgentKeyWatch; told: Told } {
  const told: Told = { changed: [], unconfirmed: [], errors: [] };
  let blocked = false;
  const host: AgentKeyWatchHost = {
    org: "acme",
    policy: () => Promise.resolve(policy),
    now,
    pinned: () => pinned,
    session: s,
    blocked: () => blocked,
    changed: (detail) => {
      blocked = true;
      told.changed.push(detail);
    },
    unconfirmed: (_agent, code, reason, pushed) => told.unconfirmed.push({ code, reason, pushed }),
    fail: (e) => told.errors.push(e),
  };
  return { w: new AgentKeyWatch(host), told };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("AgentKeyWatch", () => {
  it("tells a certified other key once as a change, then checks nothing more", async () => {
    const pinned = agent().card;
    const { s, asked } = session(() => ({ kind: "certificate", certificate: certify(agent().card) }));
    const { w, told } = watch(pinned, () => s);
    await w.check(null);
    expect(told.changed).toHaveLength(1);
    expect(told.changed[0]).toContain("alice's key changed");
    await w.check(null);
    expect(asked()).toBe(1);
    expect(told.changed).toHaveLength(1);
    expect(told.unconfirmed).toEqual([]);
  });

  it("tells nothing when the certificate names the pinned key", async () => {
    const pinned = agent().card;
    const { s } = session(() => ({ kind: "certificate", certificate: certify(pinned) }));
    const { w, told } = watch(pinned, () => s);
    await w.check(null);
    await w.check(null);
    expect(told).toEqual({ changed: [], unconfirmed: [], errors: [] });
  });

  it("tells an unconfirmed reason once, and another reason again", async () => {
    const pinned = agent().card;
    let forge = true;
    const { s } = session(() => {
      if (!forge) throw new RelayError("not_found", "no such agent");
      const c = certify(pinned);
      const signature = c.signature.slice();
      signature[0] = (signature[0] ?? 0) ^ 1;
      return { kind: "certificate", certificate: { ...c, signature } };
    });
    const { w, told } = watch(pinned, () => s);
    for (let i = 0; i < 3; i++) await w.check(null);
    expect(told.unconfirmed).toHaveLength(1);
    expect(told.unconfirmed[0]?.reason).toMatch(/signature/);
    expect(told.unconfirmed[0]?.code).toBe("bad_signature");
    expect(told.unconfirmed[0]?.pushed).toBe(false);
    forge = false;
    await w.check(null);
    await w.check(null);
    expect(told.unconfirmed).toHaveLength(2);
    expect(told.unconfirmed[1]?.reason).toContain("not_found");
    expect(told.unconfirmed[1]?.code).toBe("relay_refused");
    expect(told.changed).toEqual([]);
  });

  it("checks on the timer until stopped", async () => {
    vi.useFakeTimers();
    const pinned = agent().card;
    const { s, asked } = session(() => ({ kind: "certificate", certificate: certify(pinned) }));
    const { w } = watch(pinned, () => s);
    w.start(1000);
    await vi.advanceTimersByTimeAsync(3500);
    expect(asked()).toBe(3);
    w.stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(asked()).toBe(3);
  });

  it("skips a tick during a check, and checks a push after it", async () => {
    vi.useFakeTimers();
    const pinned = agent().card;
    let release = (): void => undefined;
    const { s, asked } = session(
      () =>
        new Promise<Response>((resolve) => {
          release = () => resolve({ kind: "certificate", certificate: certify(pinned) });
        }),
    );
    const { w, told } = watch(pinned, () => s);
    w.start(1000);
    await vi.advanceTimersByTimeAsync(1000);
    expect(asked()).toBe(1);
    // The check hangs: ticks pass without a second one.
    await vi.advanceTimersByTimeAsync(3000);
    expect(asked()).toBe(1);
    // A push waits for it, then is checked.
    const pushed = w.check(agent().card);
    await vi.advanceTimersByTimeAsync(0);
    expect(asked()).toBe(1);
    w.stop();
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(asked()).toBe(2);
    release();
    await vi.advanceTimersByTimeAsync(0);
    // The second check was the push's (none of the ticks piled up before it): it named a key
    // the certificate does not, so it is unconfirmed, from a push.
    expect(told.unconfirmed).toEqual([{ code: "not_rekeyed", reason: "the org's certificate still names the key pinned for alice", pushed: true }]);
    await pushed;
  });

  it("does not tell a lost session on the timer, and checks nothing offline", async () => {
    vi.useFakeTimers();
    const pinned = agent().card;
    let online = true;
    const { s, asked } = session(() => {
      throw new SessionError("closed", "offline");
    });
    const { w, told } = watch(pinned, () => (online ? s : null));
    w.start(1000);
    await vi.advanceTimersByTimeAsync(2000);
    expect(asked()).toBe(2);
    online = false;
    await vi.advanceTimersByTimeAsync(2000);
    expect(asked()).toBe(2);
    w.stop();
    expect(told).toEqual({ changed: [], unconfirmed: [], errors: [] });
    await expect(w.check(null)).resolves.toBeUndefined();
  });
});
