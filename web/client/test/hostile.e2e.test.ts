/**
 * A hostile relay (or network) against the TypeScript customer, with the real relay behind it:
 * frames are altered between the socket and the session (`TamperSocket`, the seam a proxy would
 * sit on). A message whose ciphertext was changed is refused with a visible `refused` event and
 * not shown; a policy signed by another master (a relay impersonating the org) blocks sending
 * with `key_changed`; a relay presenting another key after the first contact is refused
 * (`relay_key_changed`) and the customer stops.
 */
import { describe, expect, it } from "vitest";
import { IdentityKeys, issueCard, policySignedBytes, policyToCbor, type Policy } from "@sealdesk/protocol";
import { Customer, MemoryStore, SessionError, type CustomerEvent, type SocketFactory } from "../src/index.js";
import { now, orgOnRelay, random } from "./customer-fixture.js";
import { eventually, startRelay } from "./relay.js";
import { tampering, type Frame } from "./tamper.js";

const honest: SocketFactory = tampering(() => {});

/** A self-consistent policy for `org` signed by a master the relay made up. */
function impostorPolicy(org: string): Policy {
  const mk = (name: string, role: "master" | "trustee") => issueCard(IdentityKeys.generate(random), name, role, now());
  const master = IdentityKeys.generate(random);
  const unsigned = {
    org,
    version: 7,
    master: issueCard(master, "owner", "master", now()),
    trustees: [mk("t1", "trustee")],
    trusteeThreshold: 1,
    arbiters: [],
    arbiterThreshold: 0,
    allowConsent: true,
    allowDispute: false,
    maxReleaseValiditySecs: 86_400,
    rotateAfterMessages: 1000,
    rotateAfterSecs: 86_400,
    retentionSecs: 86_400,
    historyHandoff: true,
    createdAt: now(),
  };
  return { ...unsigned, signature: master.sign(policySignedBytes(unsigned)) };
}

describe("the TypeScript customer behind a hostile relay", () => {
  const fx = orgOnRelay("web-hostile");

  it("refuses a tampered message, blocks sending on a changed master key, refuses another relay key", async () => {
    const store = new MemoryStore();
    // Every pushed message gets one ciphertext bit flipped.
    const flipMessages = tampering((f) => {
      const item = ((f.push as Frame | undefined)?.item as Frame | undefined)?.item as Frame | undefined;
      const ct = (item?.message as Frame | undefined)?.ciphertext;
      if (ct instanceof Uint8Array) ct[0] = (ct[0] ?? 0) ^ 1;
    });
    const opts = fx.options(store);
    const carol = await Customer.load({ ...opts, socket: flipMessages });
    const events: CustomerEvent[] = [];
    carol.on((e) => events.push(e));
    carol.start();
    await eventually("online", () => events.find((e) => e.kind === "state" && e.state === "online"));
    await carol.send("hello");
    const id = carol.conversationId() ?? "";
    await fx.org.agent(["send", "--conversation", id, "this reply is altered on the way"]);
    const refused = await eventually("the refusal", () => events.find((e) => e.kind === "refused"));
    expect(refused.kind === "refused" && refused.reason).toContain("bad_signature");
    expect(carol.history().map((l) => l.text)).toEqual(["hello"]);
    carol.stop();

    // The relay serves a policy of another master: the pinned key changed, sending is blocked.
    const forged = policyToCbor(impostorPolicy(fx.org.org));
    const swapPolicy = tampering((f) => {
      const body = (f.response as Frame | undefined)?.body as Frame | undefined;
      if (body !== undefined && body.policy !== undefined) body.policy = forged;
    });
    const again = await Customer.load({ ...opts, socket: swapPolicy });
    const seen: CustomerEvent[] = [];
    again.on((e) => seen.push(e));
    again.start();
    const changed = await eventually("the key change", () => seen.find((e) => e.kind === "key_changed"));
    expect(changed.kind === "key_changed" && changed.detail).toContain("master key changed");
    expect(again.blockedBecause()).not.toBeNull();
    await expect(again.send("is this still private?")).rejects.toMatchObject({ failure: "key_changed" });
    expect(await fx.org.agent(["history", "--conversation", id])).not.toContain("is this still private?");
    again.stop();

    // Another relay (another key) at the same address: refused, the customer stops.
    await fx.relay.stop();
    fx.relay = await startRelay(`${fx.root}/other-relay-data`, [], fx.relay.addr);
    const third = await Customer.load({ ...opts, socket: honest });
    const errors: Error[] = [];
    third.on((e) => {
      if (e.kind === "error") errors.push(e.error);
    });
    third.start();
    const err = await eventually("the refusal of the other relay", () => errors[0]);
    expect(err).toBeInstanceOf(SessionError);
    expect((err as SessionError).failure).toBe("relay_key_changed");
    await expect(third.send("anyone there?")).rejects.toBeInstanceOf(Error);
    third.stop();
  });
});
