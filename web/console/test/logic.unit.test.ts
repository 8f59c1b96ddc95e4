/** The console's page-free logic: which files an unlock reads, what a failure says, the policy in words, the marks. */
import { VaultImportError } from "@sealdesk/client";
import { describe, expect, it } from "vitest";
import type { AgentLine } from "@sealdesk/client";
import { conversationTitle, findVaultFiles, lineMark, shortId, statusWords, unlockFailureText, unreadWords } from "../src/logic.js";

const file = (name: string, text: string): { name: string; arrayBuffer: () => Promise<ArrayBuffer> } => ({
  name,
  arrayBuffer: () => Promise.resolve(new TextEncoder().encode(text).buffer),
});

describe("the unlock form", () => {
  it("picks the three vault files by name, in any order, from paths too", async () => {
    const files = await findVaultFiles([file("records/profile.rec", "p"), file("vault.json", "{}"), file("identity.rec", "i"), file("other.rec", "x")]);
    expect(files.header).toBe("{}");
    expect(new TextDecoder().decode(files.identity)).toBe("i");
    expect(new TextDecoder().decode(files.profile)).toBe("p");
  });

  it("names the missing file", async () => {
    await expect(findVaultFiles([file("vault.json", "{}"), file("identity.rec", "i")])).rejects.toMatchObject({ failure: "missing_file", message: "missing_file: profile.rec" });
  });

  it("tells a wrong passphrase from damaged files", () => {
    expect(unlockFailureText(new VaultImportError("wrong_passphrase"))).toContain("Wrong passphrase");
    expect(unlockFailureText(new VaultImportError("card_mismatch"))).toContain("do not belong together");
  });
});

describe("a conversation's title", () => {
  it("tells apart two customers of the same name by the short id the CLI takes", () => {
    const a = "9a0b12cd00000000000000000000000a";
    const b = "3c1f7e2200000000000000000000000b";
    expect(shortId(a)).toBe("9a0b12cd");
    expect(conversationTitle("visitor-3c1f", a)).toBe("visitor-3c1f · 9a0b12cd");
    expect(conversationTitle("visitor-3c1f", a)).not.toBe(conversationTitle("visitor-3c1f", b));
  });
});

describe("the mark on an agent's own line", () => {
  const line = (kind: AgentLine["kind"], mine = true, seq = 5): AgentLine => ({ seq, mine, sender: "alice", text: "x", kind, sentAt: 0 });
  const marks = (l: AgentLine): (string | null)[] =>
    [
      { readByCustomer: 0, deliveredToCustomer: 0 },
      { readByCustomer: 0, deliveredToCustomer: 5 },
      { readByCustomer: 5, deliveredToCustomer: 5 },
    ].map((v) => lineMark(l, v));

  it("goes sent, delivered, read for a text and for a file alike", () => {
    expect(marks(line("text"))).toEqual(["sent", "delivered", "read"]);
    expect(marks(line("attachment"))).toEqual(["sent", "delivered", "read"]);
  });

  it("is read when a receipt covers the line even if the relay's delivery mark lags", () => {
    expect(lineMark(line("attachment"), { readByCustomer: 6, deliveredToCustomer: 4 })).toBe("read");
    expect(lineMark(line("attachment"), { readByCustomer: 4, deliveredToCustomer: 4 })).toBe("sent");
  });

  it("is none on the customer's lines, status changes and events", () => {
    for (const l of [line("text", false), line("attachment", false), line("status"), line("event")]) expect(marks(l)).toEqual([null, null, null]);
  });
});

describe("a conversation's status in the list", () => {
  it("is said in the status menu's words", () => {
    expect(statusWords("open")).toBe("open");
    expect(statusWords("waiting")).toBe("waiting for the customer");
    expect(statusWords("resolved")).toBe("resolved");
  });
});

describe("the list's unread count", () => {
  it("adds the unread count to an entry's accessible name, nothing when none", () => {
    expect(unreadWords(0)).toBe("");
    expect(unreadWords(1)).toBe(", 1 unread message");
    expect(unreadWords(12)).toBe(", 12 unread messages");
  });
});
