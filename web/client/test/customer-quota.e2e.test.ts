/**
 * The relay's warning ahead of the stored-bytes quota for plain messages (§13.12), against the
 * real relay: a message that brings the customer's stored bytes to 80% of the quota or more
 * gives the same `bytes_quota` event as an upload's warning (the widget shows either the same
 * way), one below it gives none, and the message past the quota is refused `quota_exceeded`.
 */
import { describe, expect, it } from "vitest";
import { MemoryStore, RelayError } from "../src/index.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";

/** A message's text: its ciphertext is 1,000 bytes (the text and the 16-byte AEAD tag). */
const body = (n: number): string => `${String(n).padStart(3, "0")}${"x".repeat(981)}`;
const CIPHERTEXT = 1000;
/** Stored-bytes quota of one account in this suite's relay: ten and a half messages. */
const QUOTA = 10_500;

describe("the customer's messages and the stored-bytes quota", () => {
  const fx = orgOnRelay("web-quota", ["--limit", `stored_bytes_per_account=${QUOTA}`]);

  it("warns from 80% of the quota on with a plain message, and refuses past it", async () => {
    const { customer: carol, events } = await onlineCustomer(fx.options(new MemoryStore()));
    const warnings = () => events.filter((e) => e.kind === "bytes_quota");
    // Eight messages: 76%, no warning.
    for (let n = 0; n < 8; n++) await carol.send(body(n));
    expect(warnings()).toEqual([]);
    // The ninth: 86%, warned, naming the account's quota.
    await carol.send(body(8));
    expect(warnings()).toEqual([{ kind: "bytes_quota", quota: { scope: "account", used: 9 * CIPHERTEXT, most: QUOTA } }]);
    await carol.send(body(9));
    expect(warnings().at(-1)).toEqual({ kind: "bytes_quota", quota: { scope: "account", used: 10 * CIPHERTEXT, most: QUOTA } });
    // The eleventh would pass it: refused, typed, nothing stored.
    const refused = await carol.send(body(10)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RelayError);
    expect((refused as RelayError).code).toBe("quota_exceeded");
    expect(carol.history().map((l) => l.text.slice(0, 3))).toEqual(["000", "001", "002", "003", "004", "005", "006", "007", "008", "009"]);
    carol.stop();
  });
});
