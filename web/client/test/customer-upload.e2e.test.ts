/**
 * The customer's uploads against the real relay: an upload cut off mid-way (the connection lost,
 * then the page reloaded) is kept in the store and goes on from the chunks the relay already
 * holds, and the CLI agent saves identical bytes; the relay's warning ahead of the stored-bytes
 * quota (from 80%, §9.8) reaches the view, and the upload past the quota is refused with the
 * typed `quota_exceeded` (the upload dropped, not retried).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CHUNK_SIZE, MemoryStore, RelayError, UPLOAD_PREFIX } from "../src/index.js";
import { onlineCustomer, orgOnRelay, random } from "./customer-fixture.js";
import { eventually } from "./relay.js";
import { tampering, type Frame } from "./tamper.js";

/** Stored-bytes quota of one account in this suite's relay. */
const QUOTA = 8 * CHUNK_SIZE;

/** Whether `f` is an `attachment_put` request. */
const isPut = (f: Frame): boolean => ((f.request as Frame | undefined)?.body as Frame | undefined)?.attachment_put !== undefined;

describe("the customer's uploads", () => {
  const fx = orgOnRelay("web-upload", ["--limit", `stored_bytes_per_account=${QUOTA}`]);

  it("goes on after a lost connection and a reload from the chunks the relay has", async () => {
    const store = new MemoryStore();
    const CUT_AFTER = 3;
    let firstPuts = 0;
    let cut = false;
    // The first page: the connection is lost as the fourth chunk goes out, and stays down.
    const cutting = tampering(
      () => true,
      (f) => {
        if (cut) return false;
        if (isPut(f) && ++firstPuts > CUT_AFTER) {
          cut = true;
          return false;
        }
        return true;
      },
    );
    const { customer: first } = await onlineCustomer(fx.options(store, { socket: cutting }));
    await first.send("the photos of the damage");
    const id = first.conversationId() ?? "";
    const file = random(5 * CHUNK_SIZE + 777);
    await expect(first.sendFile(file, "damage.jpg", "image/jpeg", "all six")).rejects.toBeInstanceOf(Error);
    expect(cut).toBe(true);
    expect(await store.keys(UPLOAD_PREFIX)).toHaveLength(1);
    expect((await first.pendingUploads()).map((u) => [u.name, u.state])).toEqual([["damage.jpg", "interrupted"]]);
    first.stop();

    // The page is reloaded (the same store): the upload goes on by itself once online.
    let secondPuts = 0;
    const counting = tampering(
      () => true,
      (f) => {
        if (isPut(f)) secondPuts += 1;
      },
    );
    const { customer: again, events } = await onlineCustomer(fx.options(store, { socket: counting }));
    const done = await eventually("the upload finished", () => events.find((e) => e.kind === "upload" && e.upload.state === "sent"));
    const line = await eventually("the file's line", () => again.history().find((l) => l.attachment !== undefined));
    expect(line.text).toBe("damage.jpg, 160.8 KiB: all six");
    expect(await store.keys(UPLOAD_PREFIX)).toEqual([]);
    const chunks = 6;
    // Chunk 0 again (the relay answers where to go on from), then only those it lacked.
    expect(secondPuts).toBe(1 + chunks - CUT_AFTER);
    expect(secondPuts).toBeLessThan(chunks);
    expect(done.kind === "upload" && done.upload.sent).toBe(secondPuts);

    const history = await fx.org.agent(["history", "--conversation", id]);
    const n = /\[?#?(\d+)\]?[^\n]*damage\.jpg/.exec(history)?.[1];
    expect(n).toBeDefined();
    const out = join(fx.root, "saved.jpg");
    await fx.org.agent(["attachment", "save", "--conversation", id, "--message", n ?? "", "--out", out]);
    expect(new Uint8Array(readFileSync(out))).toEqual(file);
    // Sent once: no second message for the same file.
    expect(again.history().filter((l) => l.attachment !== undefined)).toHaveLength(1);
    again.stop();
  });

  it("a cancelled upload is forgotten and never sent", async () => {
    const store = new MemoryStore();
    let cut = false;
    const cutting = tampering(
      () => true,
      (f) => {
        if (cut || isPut(f)) cut = true;
        return !cut;
      },
    );
    const { customer: first } = await onlineCustomer(fx.options(store, { socket: cutting }));
    await first.send("one moment");
    await expect(first.sendFile(random(100), "wrong.txt", "text/plain")).rejects.toBeInstanceOf(Error);
    const [pending] = await first.pendingUploads();
    expect(pending?.name).toBe("wrong.txt");
    await first.cancelUpload(pending?.id ?? "");
    expect(await first.pendingUploads()).toEqual([]);
    first.stop();
    const { customer: again } = await onlineCustomer(fx.options(store));
    await again.send("never mind the file");
    expect(again.history().map((l) => l.text)).toEqual(["one moment", "never mind the file"]);
    again.stop();
  });

  it("warns ahead of the stored-bytes quota and refuses past it with quota_exceeded", async () => {
    const store = new MemoryStore();
    const { customer: carol, events } = await onlineCustomer(fx.options(store));
    // Seven chunks of ciphertext: past 80% of the eight-chunk quota.
    await carol.sendFile(random(7 * CHUNK_SIZE - 7 * 16), "scan.pdf", "application/pdf");
    const warning = await eventually("the warning", () => events.find((e) => e.kind === "bytes_quota"));
    expect(warning).toEqual({ kind: "bytes_quota", quota: { scope: "account", used: 7 * CHUNK_SIZE, most: QUOTA } });
    const refused = await carol.sendFile(random(2 * CHUNK_SIZE), "more.pdf", "application/pdf").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RelayError);
    expect((refused as RelayError).code).toBe("quota_exceeded");
    expect(events.find((e) => e.kind === "upload" && e.upload.name === "more.pdf" && e.upload.state === "refused")).toBeDefined();
    expect(await carol.pendingUploads()).toEqual([]);
    carol.stop();
  });
});
