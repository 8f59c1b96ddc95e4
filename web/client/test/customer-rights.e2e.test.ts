/**
 * The customer's rights under Node against the real relay, with the CLI org (master, trustee):
 * two consents granted and listed active; the master unlocks under the first (it is then used,
 * and revoking it logs nothing); the second is revoked — said revoked only once proven in the
 * log, not yet witnessed until the trustee cosigns, and a second revoke logs nothing new; the
 * master's unlock under it is refused by the trustee. A relay answering "appended" with an index
 * that does not hold the entry gets `not_proven`, never "revoked". The export has the shape of
 * the CLI's `history --export`. Erasing keeps the local copy readable and stops sending; a
 * reload still shows it.
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Customer, MemoryStore, type CustomerEvent } from "../src/index.js";
import { orgOnRelay } from "./customer-fixture.js";
import { eventually } from "./relay.js";
import { tampering, type Frame } from "./tamper.js";

describe("a TypeScript customer's consents, export and erasure", () => {
  const fx = orgOnRelay("web-rights", [], () => {
    trustee?.kill("SIGTERM");
  });
  let trustee: ChildProcess | null = null;

  const stopTrustee = async (): Promise<void> => {
    const t = trustee;
    trustee = null;
    if (t === null || t.exitCode !== null) return;
    const exited = new Promise((r) => t.once("exit", r));
    t.kill("SIGTERM");
    await exited;
  };

  it("lists, revokes (proven first), exports and erases", async () => {
    let lieAboutAppended = false;
    const socket = tampering((frame) => {
      const body = (frame.response as Frame | undefined)?.body as Frame | undefined;
      const appended = body?.appended as Frame | undefined;
      // The relay says "appended" at an index that holds another entry.
      if (lieAboutAppended && appended !== undefined) appended.index = 0;
    });
    const store = new MemoryStore();
    const carol = await Customer.load(fx.options(store, { socket, recheckNoticesMs: 300 }));
    const events: CustomerEvent[] = [];
    carol.on((e) => events.push(e));
    carol.start();
    await eventually("online", () => events.find((e) => e.kind === "state" && e.state === "online"));
    await carol.send("my card was charged twice");
    const id = carol.conversationId() ?? "";
    await fx.org.agent(["send", "--conversation", id, "let me check"]);
    await eventually("the agent's line", () => carol.history().find((l) => l.text === "let me check"));

    const first = await carol.grantConsent("refund check");
    const second = await carol.grantConsent("quality review");
    const states = await carol.consentStates();
    expect(states.map((c) => [c.id, c.state]).sort()).toEqual([[first, "active"], [second, "active"]].sort());
    expect(states.find((c) => c.id === first)?.purpose).toBe("refund check");

    // The master opens the conversation under the first consent: it is used.
    trustee = fx.org.background("t1", ["trustee", "serve"]);
    await fx.org.as("owner", ["transcript", "unlock", "--conversation", id, "--consent", first]);
    await stopTrustee();
    await eventually("the first consent used", async () => ((await carol.consentStates()).find((c) => c.id === first)?.state === "used" ? true : undefined));
    const used = await carol.revokeConsent(first);
    expect(used.state).toBe("used");

    // A relay claiming the revocation is at an index that holds something else: not revoked.
    lieAboutAppended = true;
    await expect(carol.revokeConsent(second)).rejects.toMatchObject({ failure: "not_proven" });
    lieAboutAppended = false;
    expect(await store.get(`revoked/${second}`)).toBeUndefined();

    // Honestly appended: revoked, proven; not yet witnessed (no trustee cosigned since).
    const revoked = await carol.revokeConsent(second);
    expect(revoked).toMatchObject({ state: "revoked", witnessed: false });
    await fx.org.as("t1", ["trustee", "serve", "--once"]);
    const again = await carol.revokeConsent(second);
    expect(again).toMatchObject({ state: "revoked", already: true, witnessed: true });
    expect((await carol.consentStates()).find((c) => c.id === second)?.state).toBe("revoked");
    // The trustee refuses a release under the revoked consent: the master cannot unlock.
    trustee = fx.org.background("t1", ["trustee", "serve"]);
    await expect(fx.org.as("owner", ["transcript", "unlock", "--conversation", id, "--consent", second, "--wait", "10"])).rejects.toThrow();
    await stopTrustee();

    // The export: the CLI's `history --export` shape.
    const exported = carol.exportHistory();
    expect(exported.format).toBe("sealdesk-history/1");
    expect(exported.conversation).toBe(id);
    const cliFile = join(fx.root, "agent-export.json");
    await fx.org.agent(["history", "--conversation", id, "--export", cliFile]);
    const cli = JSON.parse(readFileSync(cliFile, "utf8")) as { lines: { line: string; entry: { type: string } }[] };
    const cliMessage = cli.lines.find((l) => l.entry.type === "message");
    const ours = exported.lines.find((l) => l.entry.type === "message" && l.entry.text === "my card was charged twice");
    expect(ours?.entry.mine).toBe(true);
    expect(Object.keys(ours?.entry ?? {}).sort()).toEqual(Object.keys(cliMessage?.entry ?? {}).sort());
    expect(Object.keys(exported).filter((k) => k !== "format" && k !== "exported_at").sort()).toEqual(Object.keys(cli).sort());
    expect(exported.lines.filter((l) => l.entry.type === "notice").length).toBeGreaterThanOrEqual(1);

    // Erasure: refused nothing here (no dispute open); the local copy stays, sending stops.
    await carol.erase();
    expect(carol.isErased()).toBe(true);
    expect(carol.history().map((l) => l.text)).toEqual(["my card was charged twice", "let me check"]);
    await expect(carol.send("still there?")).rejects.toMatchObject({ failure: "not_open" });
    carol.stop();
    const reloaded = await Customer.load(fx.options(store, { socket }));
    const later: CustomerEvent[] = [];
    reloaded.on((e) => later.push(e));
    reloaded.start();
    await eventually("online again", () => later.find((e) => e.kind === "state" && e.state === "online"));
    expect(reloaded.isErased()).toBe(true);
    expect(reloaded.blockedBecause()).toContain("erased");
    expect(reloaded.history().map((l) => l.text)).toEqual(["my card was charged twice", "let me check"]);
    expect(later.filter((e) => e.kind === "error")).toEqual([]);
    reloaded.stop();
  });
});
