/**
 * Attachments end to end under Node against the real relay (PROTOCOL §9.8): the Rust CLI agent
 * sends a file (`sealdesk send --attach`) to a TypeScript customer, whose history still reads
 * (text before and after, nothing refused) and shows the attachment line; the customer downloads
 * the file (every chunk checked, size and hash against the signed reference) and a reload shows
 * the line again; a chunk tampered on its way is refused and yields no file. Then the customer
 * sends a file and the CLI agent saves it. The console's agent (the CLI agent's vault imported)
 * shows and downloads a CLI customer's file and a TypeScript customer's, counts a customer's file
 * as unread, and reading it sends the read receipt that covers it.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Agent, AttachmentError, Customer, MemoryStore, downloadAttachment, importCliVault, type CustomerEvent, type Request, type Response } from "../src/index.js";
import { now, orgOnRelay, random, socket } from "./customer-fixture.js";
import { cli, eventually } from "./relay.js";

describe("attachments between the Rust CLI agent and a TypeScript customer", () => {
  const fx = orgOnRelay("web-attach");

  it("the customer reads its history with the agent's file in it, downloads it, and sends one back", async () => {
    const store = new MemoryStore();
    const carol = await Customer.load(fx.options(store));
    const events: CustomerEvent[] = [];
    carol.on((e) => events.push(e));
    carol.start();
    await eventually("online", () => events.find((e) => e.kind === "state" && e.state === "online"));
    await carol.send("can you send me the invoice?");
    const id = carol.conversationId() ?? "";

    // Three chunks (two full and a short one), sent by the CLI with a caption, then a text.
    const file = new Uint8Array(randomBytes(2 * 32 * 1024 + 1234));
    const path = join(fx.root, "invoice 2026.pdf");
    writeFileSync(path, file);
    await fx.org.agent(["send", "--conversation", id, "--attach", path, "here it is"]);
    await fx.org.agent(["send", "--conversation", id, "anything else?"]);

    await eventually("the text after the file", () => carol.history().find((l) => l.text === "anything else?"));
    const line = carol.history().find((l) => l.attachment !== undefined);
    expect(line).toBeDefined();
    expect(line?.text).toBe("invoice 2026.pdf, 65.2 KiB: here it is");
    expect(line?.sender).toBe("alice");
    expect(line?.attachment?.size).toBe(file.length);
    expect(carol.history().map((l) => l.text)).toEqual(["can you send me the invoice?", line?.text, "anything else?"]);
    expect(events.filter((e) => e.kind === "refused" || e.kind === "error")).toEqual([]);

    const ref = line?.attachment;
    if (ref === undefined) throw new Error("no attachment");
    expect(await carol.download(ref)).toEqual(file);

    // A chunk tampered on its way (a hostile relay): refused, no file.
    const s = (carol as unknown as { session(): { call(b: Request): Promise<Response> } }).session();
    const tampering = {
      call: async (b: Request): Promise<Response> => {
        const r = await s.call(b);
        if (r.kind === "attachment_chunk" && r.index === 1) {
          const data = r.data.slice();
          data[10] = (data[10] ?? 0) ^ 1;
          return { ...r, data };
        }
        return r;
      },
    };
    const conv = Uint8Array.from(Buffer.from(id, "hex"));
    const err = await downloadAttachment(tampering, conv, ref).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AttachmentError);
    expect((err as AttachmentError).failure).toBe("chunk");
    // A relay that answers with another attachment's chunk size is refused before opening.
    const resized = { call: async (b: Request): Promise<Response> => {
      const r = await s.call(b);
      return r.kind === "attachment_chunk" ? { ...r, size: r.size + 1 } : r;
    } };
    expect(((await downloadAttachment(resized, conv, ref).catch((e: unknown) => e)) as AttachmentError).failure).toBe("size");

    // The customer sends a file; the CLI agent sees it and saves it byte for byte.
    const mine = new Uint8Array(randomBytes(5000));
    const sent = await carol.sendFile(mine, "../photo.png", "image/png", "the broken part");
    expect(sent.attachment?.name).toBe("../photo.png");
    expect(sent.text).toBe("photo.png, 4.9 KiB: the broken part");
    const agentView = await fx.org.agent(["history", "--conversation", id]);
    expect(agentView).toContain("photo.png");
    const n = /\[?#?(\d+)\]?[^\n]*photo\.png/.exec(agentView)?.[1];
    expect(n).toBeDefined();
    const out = join(fx.root, "saved.png");
    await fx.org.agent(["attachment", "save", "--conversation", id, "--message", n ?? "", "--out", out]);
    expect(new Uint8Array(readFileSync(out))).toEqual(mine);
    carol.stop();

    // A reload from the same store shows the attachment lines again, and still downloads.
    const again = await Customer.load(fx.options(store));
    expect(again.history().map((l) => l.text)).toEqual(["can you send me the invoice?", line?.text, "anything else?", sent.text]);
    const seen: CustomerEvent[] = [];
    again.on((e) => seen.push(e));
    again.start();
    await eventually("online again", () => seen.find((e) => e.kind === "state" && e.state === "online"));
    expect(await again.download(ref)).toEqual(file);
    again.stop();
  });

  it("the TypeScript agent shows and downloads a CLI customer's file and a TypeScript customer's", async () => {
    const home = fx.org.agentHome;
    const files = {
      header: readFileSync(join(home, "vault.json"), "utf8"),
      identity: new Uint8Array(readFileSync(join(home, "records", "identity.rec"))),
      profile: new Uint8Array(readFileSync(join(home, "records", "profile.rec"))),
    };
    const { keys, card } = await importCliVault(files, "web tests only");
    const store = new MemoryStore();
    await Agent.keep(store, keys, card);
    const agent = await Agent.load({ url: fx.relay.url, store, socket, random, now });
    agent.start();

    const dave = join(fx.root, "dave");
    await cli(dave, fx.relay.url, ["init", "--name", "dave", "--role", "customer"]);
    await cli(dave, fx.relay.url, ["register"]);
    await cli(dave, fx.relay.url, ["open", "--org", fx.org.org, "--org-fingerprint", fx.org.fingerprint]);
    const id = (JSON.parse(await cli(dave, fx.relay.url, ["conversations", "--json"])) as { conversations: { conversation: string }[] }).conversations[0]?.conversation ?? "";
    const file = new Uint8Array(randomBytes(33_000));
    const path = join(fx.root, "screenshot.png");
    writeFileSync(path, file);
    await cli(dave, fx.relay.url, ["send", "--conversation", id, "--attach", path]);
    await cli(dave, fx.relay.url, ["send", "--conversation", id, "see above"]);
    await eventually("the text after the file", () => agent.conversation(id)?.lines.find((l) => l.text === "see above"));
    const line = agent.conversation(id)?.lines.find((l) => l.kind === "attachment");
    expect(line?.text).toBe("screenshot.png, 32.2 KiB");
    expect(line?.sender).toBe("dave");
    const ref = line?.attachment;
    if (ref === undefined) throw new Error("no attachment");
    expect(await agent.download(id, ref)).toEqual(file);

    const erin = await Customer.load(fx.options(new MemoryStore()));
    erin.start();
    await eventually("the customer online", () => (erin.policy !== null ? true : undefined));
    const empty = await erin.sendFile(new Uint8Array(), "empty.txt", "", "nothing in it");
    const erinId = erin.conversationId() ?? "";
    const seen = await eventually("the empty file at the agent", () => agent.conversation(erinId)?.lines.find((l) => l.seq === empty.seq));
    expect(seen.kind).toBe("attachment");
    expect(seen.text).toBe("empty.txt, 0 B: nothing in it");
    expect(seen.attachment?.mediaType).toBe("application/octet-stream");
    expect(await agent.download(erinId, seen.attachment ?? ref)).toEqual(new Uint8Array());
    // A file is a line to read like a text: it counts as unread, and reading it sends the
    // customer a read receipt that covers it.
    expect(agent.conversation(erinId)?.unread).toBe(1);
    await agent.markRead(erinId);
    expect(agent.conversation(erinId)?.unread).toBe(0);
    await eventually("the customer sees its file read", () => (erin.readUpTo() >= empty.seq ? true : undefined));
    erin.stop();
    agent.stop();
  });
});
