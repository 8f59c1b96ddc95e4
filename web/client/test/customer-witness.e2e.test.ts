/**
 * The witness quorum in the TypeScript customer (PROTOCOL §12.4), against the real relay: the
 * master opens a dispute ticket and closes it (CLI). The close is logged while no trustee has
 * cosigned a log holding it, so its notice is first shown "not yet witnessed" (never as
 * genuine); once the trustee cosigns (`trustee serve --once`), the customer's next check shows
 * it verified. Then the same history judged afresh behind a relay
 * that alters the witnessed head: cosignatures that do not verify leave every notice "not yet
 * witnessed"; a genuine trustee's cosignature on a head the served log does not extend (a split
 * view) makes them NOT GENUINE.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cosignatureSignedBytes } from "@sealdesk/protocol";
import { Customer, MemoryStore, importCliVault, type CustomerEvent, type ShownNotice } from "../src/index.js";
import { now, orgOnRelay, random } from "./customer-fixture.js";
import { eventually } from "./relay.js";
import { tampering, type Frame } from "./tamper.js";

/** The `witnessed_head` body of a response frame, if it is one. */
function witnessedHead(frame: Frame): { head: Frame; cosignatures: Frame[] } | null {
  const body = (frame.response as Frame | undefined)?.body as Frame | undefined;
  const w = body?.witnessed_head as { head: Frame; cosignatures: Frame[] } | undefined;
  return w ?? null;
}

const noticeOf = (events: CustomerEvent[], seq: number): ShownNotice | undefined => {
  const all = events.filter((e) => e.kind === "notice" && e.notice.seq === seq);
  const last = all[all.length - 1];
  return last?.kind === "notice" ? last.notice : undefined;
};

describe("the witness quorum in the TypeScript customer", () => {
  const fx = orgOnRelay("web-witness");

  it("shows a notice not yet witnessed until the trustees cosign, and refuses a forged or split witnessed head", async () => {
    const store = new MemoryStore();
    const socket = tampering(() => {});
    const carol = await Customer.load(fx.options(store, { socket, recheckNoticesMs: 300 }));
    const events: CustomerEvent[] = [];
    carol.on((e) => events.push(e));
    carol.start();
    await eventually("online", () => events.find((e) => e.kind === "state" && e.state === "online"));
    await carol.send("please keep this between us");
    const id = carol.conversationId() ?? "";

    // The master opens a dispute ticket and closes it at once: the relay logs the close, and no
    // trustee has cosigned a log holding it.
    await fx.org.as("owner", ["dispute", "open", "--conversation", id, "--reason", "chargeback"]);
    const tickets = JSON.parse(await fx.org.as("owner", ["dispute", "list", "--json"])) as { tickets: { ticket: string }[] };
    const ticket = tickets.tickets[0]?.ticket ?? "";
    await fx.org.as("owner", ["dispute", "close", "--ticket", ticket, "--reason", "opened by mistake"]);
    const closeSeq = await eventually("the close notice", () => {
      const n = events.find((e) => e.kind === "notice" && e.notice.kind === "closed");
      return n?.kind === "notice" ? n.notice.seq : undefined;
    });
    const pending = noticeOf(events, closeSeq);
    expect(pending?.verified).toBe(false);
    expect(pending?.unwitnessed).toContain("witnessed by 0 of the 1 trustees needed");
    expect(pending?.text).toContain("NOT YET CONFIRMED by the business's independent trustees");
    // Checked again and again: still not witnessed while no trustee cosigns.
    await carol.recheckNotices();
    expect(noticeOf(events, closeSeq)?.verified).toBe(false);

    await fx.org.as("t1", ["trustee", "serve", "--once"]);
    const witnessed = await eventually("the close notice, witnessed", () => {
      const n = noticeOf(events, closeSeq);
      return n?.verified === true ? n : undefined;
    });
    expect(witnessed.unwitnessed).toBeNull();
    expect(witnessed.text).not.toContain("NOT YET CONFIRMED");
    expect(carol.releaseNotices().filter((n) => n.seq === closeSeq)).toHaveLength(1);
    carol.stop();

    // The same history, judged afresh (its verdicts and pinned head left out) behind a relay
    // that alters the witnessed head.
    const fresh = async (tamper: (frame: Frame) => void): Promise<ShownNotice[]> => {
      const copy = new MemoryStore();
      for (const k of await store.keys("")) {
        const v = await store.get(k);
        if (v !== undefined && !k.startsWith("notice/") && k !== "log/head") await copy.put(k, v);
      }
      const again = await Customer.load(fx.options(copy, { socket: tampering(tamper), recheckNoticesMs: 60_000 }));
      const seen: CustomerEvent[] = [];
      again.on((e) => seen.push(e));
      again.start();
      await eventually("the notice judged", () => (again.releaseNotices().length === 1 ? true : undefined));
      again.stop();
      return [...again.releaseNotices()];
    };

    // Cosignatures whose signatures do not verify: nobody vouches, nothing is genuine.
    const forged = await fresh((frame) => {
      for (const c of witnessedHead(frame)?.cosignatures ?? []) {
        const sig = c.signature as Uint8Array;
        sig[0] = (sig[0] ?? 0) ^ 1;
      }
    });
    for (const n of forged) {
      expect(n.verified).toBe(false);
      expect(n.unwitnessed).toContain("witnessed by 0 of the 1");
    }

    // The trustee's real key on a head of the served size with another root: the trustees
    // would have seen another log (a split view). NOT GENUINE.
    const home = join(fx.root, "t1");
    const t1 = await importCliVault(
      {
        header: readFileSync(join(home, "vault.json"), "utf8"),
        identity: new Uint8Array(readFileSync(join(home, "records", "identity.rec"))),
        profile: new Uint8Array(readFileSync(join(home, "records", "profile.rec"))),
      },
      "web tests only",
    );
    const split = await fresh((frame) => {
      const w = witnessedHead(frame);
      if (w === null) return;
      const unsigned = { witness: t1.keys.signingPublic, logKey: w.head.log_key as Uint8Array, size: w.head.size as number, root: random(32), timestamp: now() };
      const signature = t1.keys.sign(cosignatureSignedBytes(unsigned));
      w.cosignatures = [{ witness: unsigned.witness, log_key: unsigned.logKey, size: unsigned.size, root: unsigned.root, timestamp: unsigned.timestamp, signature }];
    });
    for (const n of split) {
      expect(n.verified).toBe(false);
      expect(n.unwitnessed).toBeNull();
      expect(n.text).toContain("NOT GENUINE: the org's trustees cosigned a log that the one served here does not extend");
    }
  });
});
