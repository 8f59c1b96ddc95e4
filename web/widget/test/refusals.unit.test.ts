/**
 * The refusals a customer meets, in plain words (`src/refusals.ts`): a send lost to a race for
 * the chat's next keys says nothing was sent and the text is kept — whoever won it — instead
 * of the client's code and detail; the relay's refusals keep their code in brackets.
 */
import { CustomerError, EPOCH_KEPT_MOVING, OWN_EPOCH_LOST, RelayError } from "@sealdesk/client";
import { describe, expect, it } from "vitest";
import { plainRefusal } from "../src/refusals.js";

describe("plainRefusal", () => {
  it("says a race lost to this account's other devices kept the text", () => {
    const shown = plainRefusal(new CustomerError("no_epoch", OWN_EPOCH_LOST));
    expect(shown).toMatch(/^Another tab or device signed in to this account .* nothing was sent\. What you wrote is kept: try again\. \(no_epoch\)$/);
  });

  it("says a race lost to the agent renewing the keys kept the text", () => {
    const shown = plainRefusal(new CustomerError("no_epoch", EPOCH_KEPT_MOVING));
    expect(shown).toMatch(/^The chat's encryption keys were being renewed by the other side .* nothing was sent\. What you wrote is kept: try again\. \(no_epoch\)$/);
    expect(shown).not.toContain(EPOCH_KEPT_MOVING);
  });

  it("shows any other no_epoch refusal as the client says it", () => {
    const e = new CustomerError("no_epoch", "message in unknown epoch 7");
    expect(plainRefusal(e)).toBe(e.message);
  });

  it("keeps the relay's words and code for a limit, with what to do", () => {
    const shown = plainRefusal(new RelayError("quota_exceeded", "org stored bytes 10/10"));
    expect(shown).toBe("A limit of this relay is reached: org stored bytes 10/10. For messages and files: erase a conversation you no longer need (Your data), then send again. (quota_exceeded)");
  });
});
