/**
 * What the widget's consent suites share (`consents-elsewhere`, `consents-pushed`): a CLI customer
 * whose `init` code the browser recovers, consents granted in the terminal, and the widget's list.
 * `send-epoch-lost` recovers such a customer too (`cliCustomer`, `recoverInto`).
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { expect } from "vitest";
import type { ChromiumSuite } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";

/** The consent helpers of suite `s` (used inside its tests, once the suite is set up). */
export function consentFixture(s: ChromiumSuite) {
  const url = (): string => `${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`;
  return {
    url,

    /** A CLI customer `name` made by `init` (its code kept) with a conversation and one line. */
    async cliCustomer(name: string): Promise<{ home: string; id: string; code: string }> {
      const home = join(s.root, name);
      const made = JSON.parse(await cli(home, s.relay.url, ["init", "--name", name, "--role", "customer", "--json"])) as { recovery_code: string };
      await cli(home, s.relay.url, ["register"]);
      await cli(home, s.relay.url, ["open", "--org", s.org.org, "--org-fingerprint", s.org.fingerprint]);
      const id = (JSON.parse(await cli(home, s.relay.url, ["conversations", "--json"])) as { conversations: { conversation: string }[] }).conversations[0]?.conversation ?? "";
      await cli(home, s.relay.url, ["send", "--conversation", id, "sent from my terminal"]);
      return { home, id, code: made.recovery_code };
    },

    /** A consent granted with the CLI for `purpose`; its id. */
    async grant(home: string, id: string, purpose: string): Promise<string> {
      const out = JSON.parse(await cli(home, s.relay.url, ["consent", "grant", "--conversation", id, "--purpose", purpose, "--expires", "1d", "--json"])) as { consent: string };
      return out.consent;
    },

    /** Recovers `name` with `code` in `p`, then opens the consents panel (which reads the conversation once). */
    async recoverThere(p: Page, name: string, code: string, id: string): Promise<void> {
      await recoverInto(p, name, code, id);
      await p.locator("#consent summary").click();
    },

    recoverInto,

    /** The consents listed: id → state. */
    listed: (p: Page): Promise<Record<string, string>> =>
      p.locator("#consents > li").evaluateAll((els) => Object.fromEntries(els.map((e) => [(e as HTMLElement).dataset.consent ?? "", (e as HTMLElement).dataset.state ?? ""]))),
  };

  /** Opens the widget in `p` and recovers `name` with `code`: the page reloads as the account, its conversation `id` read, online. */
  async function recoverInto(p: Page, name: string, code: string, id: string): Promise<void> {
    await p.goto(url());
    await expect.poll(() => p.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await p.locator("#recover summary").click();
    // Recovered, the page reloads as the account (no outcome is left to read: its conversation is).
    await p.locator("#recover-name").fill(name);
    await p.locator("#recover-code").fill(code);
    await p.locator("#recover-go").click();
    await expect.poll(() => p.locator("body").getAttribute("data-conversation"), { timeout: 20_000 }).toBe(id);
    await expect.poll(() => p.locator("#log li.line .text").allTextContents(), { timeout: 20_000 }).toEqual(["sent from my terminal"]);
    await expect.poll(() => p.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
  }
}
