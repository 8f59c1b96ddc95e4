/**
 * Release notices end to end: a TypeScript customer chats with the CLI agent; the master opens a
 * dispute, the arbiter approves, the trustee's daemon releases and the master unlocks (all with
 * the Rust CLI). The customer is shown exactly one release notice, verified: signed by the org's
 * trustee, about this conversation, and proven in the audit log under a head signed by the pinned
 * relay key; then the ticket's close (the relay closes it once the master collected the shares),
 * verified too: signed by the relay's log key and proven. A notice whose entry is altered is
 * shown NOT GENUINE (`checkNotice` on a tampered copy).
 */
import type { ChildProcess } from "node:child_process";
import { describe, expect, it } from "vitest";
import { fromCbor } from "@sealdesk/protocol";
import { Customer, MemoryStore, auditEntryFromCbor, checkNotice, type CustomerEvent } from "../src/index.js";
import { orgOnRelay } from "./customer-fixture.js";
import { eventually } from "./relay.js";

describe("a release notice in the TypeScript customer", () => {
  const fx = orgOnRelay("web-notice", [], () => {
    trustee?.kill("SIGTERM");
  });
  let trustee: ChildProcess | null = null;

  it("shows one verified notice when the master unlocks under an approved dispute", async () => {
    const store = new MemoryStore();
    const carol = await Customer.load(fx.options(store, { recheckNoticesMs: 300 }));
    const events: CustomerEvent[] = [];
    carol.on((e) => events.push(e));
    carol.start();
    await eventually("online", () => events.find((e) => e.kind === "state" && e.state === "online"));
    await carol.send("please keep this between us");
    const id = carol.conversationId() ?? "";
    await fx.org.agent(["history", "--conversation", id]);

    await fx.org.as("owner", ["dispute", "open", "--conversation", id, "--reason", "chargeback"]);
    const tickets = JSON.parse(await fx.org.as("a1", ["dispute", "list", "--json"])) as { tickets: { ticket: string }[] };
    const ticket = tickets.tickets[0]?.ticket ?? "";
    await fx.org.as("a1", ["dispute", "approve", "--ticket", ticket]);
    trustee = fx.org.background("t1", ["trustee", "serve"]);
    await fx.org.as("owner", ["transcript", "unlock", "--conversation", id, "--ticket", ticket]);

    // The ticket's close is logged after the trustee last cosigned: the trustee witnesses again.
    const exited = new Promise((r) => trustee?.once("exit", r));
    trustee.kill("SIGTERM");
    await exited;
    trustee = null;
    await fx.org.as("t1", ["trustee", "serve", "--once"]);
    const shown = await eventually("the notice", () => {
      const n = events.find((e) => e.kind === "notice" && e.notice.text.includes("released its share") && e.notice.verified);
      return n?.kind === "notice" ? n.notice : undefined;
    });
    expect(shown.verified).toBe(true);
    expect(shown.signer).toBe("t1");
    expect(shown.text).toContain("the trustee t1 released its share to acme for epoch 0 of this chat under dispute ticket");
    expect(shown.provenIn).toBeGreaterThan(shown.index);
    const closed = await eventually("the ticket's close", () => {
      const n = events.find((e) => e.kind === "notice" && e.notice.text.includes("is closed") && e.notice.verified);
      return n?.kind === "notice" ? n.notice : undefined;
    });
    expect(closed.verified).toBe(true);
    expect(closed.kind).toBe("closed");
    expect(closed.by).toBe("the relay");
    expect(shown.kind).toBe("release");
    expect(shown.by).toBe("trustee t1");
    expect(closed.text).toContain(`dispute ticket ${ticket} about this chat is closed (its release is complete)`);
    expect(closed.provenIn).toBeGreaterThan(closed.index);
    const notices = carol.releaseNotices();
    expect(notices).toHaveLength(2);
    expect(notices.filter((n) => n.text.includes("released its share"))).toHaveLength(1);

    // The same entry with one byte of its signature changed: shown, but NOT GENUINE.
    const kept = await store.keys("item/");
    let raw: Uint8Array | undefined;
    for (const k of kept) {
      const b = await store.get(k);
      if (b === undefined) continue;
      const kept = fromCbor(b) as { item: { notice?: { entry: Parameters<typeof auditEntryFromCbor>[0] } } };
      if (kept.item.notice !== undefined && "release" in auditEntryFromCbor(kept.item.notice.entry).event) raw = b;
    }
    expect(raw).toBeDefined();
    const item = fromCbor(raw ?? new Uint8Array()) as { item: { notice: { entry: Parameters<typeof auditEntryFromCbor>[0]; index: number } } };
    const entry = auditEntryFromCbor(item.item.notice.entry);
    const forged = { ...entry, signature: entry.signature.slice() };
    forged.signature[0] = (forged.signature[0] ?? 0) ^ 1;
    const relayKey = Uint8Array.from(Buffer.from(fx.relay.logKey, "hex"));
    const ctx = {
      org: fx.org.org,
      conversation: Uint8Array.from(Buffer.from(id, "hex")),
      me: carol.card.signingKey,
      relayKey,
      policy: carol.policy,
      seen: new Set<string>(),
      treeHead: () => Promise.reject(new Error("not reached")),
      inclusion: () => Promise.reject(new Error("not reached")),
    };
    const refused = await checkNotice(99, item.item.notice.index, forged, ctx);
    expect(refused.verified).toBe(false);
    expect(refused.failure).toBe("signature");
    expect(refused.text).toContain("NOT GENUINE");
    // Genuine entry, but the log cannot prove it: NOT GENUINE too.
    const unproven = await checkNotice(99, item.item.notice.index, entry, ctx);
    expect(unproven.failure).toBe("inclusion");
    // Genuine and proven, but signed by no trustee of the policy the customer holds: NOT GENUINE.
    const policy = carol.policy;
    expect(policy).not.toBeNull();
    if (policy !== null) {
      const noTrustee = await checkNotice(99, item.item.notice.index, entry, { ...ctx, policy: { ...policy, trustees: [] } });
      expect(noTrustee.failure).toBe("signer");
    }
    // The ticket's close counts only when the relay's log key signed it, for this fx.org.
    let closeEntry: ReturnType<typeof auditEntryFromCbor> | undefined;
    for (const k of kept) {
      const b = await store.get(k);
      if (b === undefined) continue;
      const kept = fromCbor(b) as { item: { notice?: { entry: Parameters<typeof auditEntryFromCbor>[0] } } };
      if (kept.item.notice === undefined) continue;
      const e = auditEntryFromCbor(kept.item.notice.entry);
      if ("dispute_closed" in e.event) closeEntry = e;
    }
    expect(closeEntry).toBeDefined();
    if (closeEntry !== undefined) {
      const otherKey = await checkNotice(99, 0, closeEntry, { ...ctx, relayKey: carol.card.signingKey });
      expect(otherKey.failure).toBe("signer");
      const otherOrg = await checkNotice(99, 0, closeEntry, { ...ctx, org: "globex" });
      expect(otherOrg.failure).toBe("signer");
    }
    carol.stop();
  });
});
