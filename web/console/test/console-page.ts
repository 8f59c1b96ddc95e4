/**
 * What the console's Chromium suites share beyond `chromiumSuite` (the relay serving web/dist,
 * the CLI org, one browser profile): a console page unlocked as the CLI's agent `alice` and
 * watched for problems, a CLI customer's conversation selected in its list, and the texts of
 * the log's lines.
 */
import type { Page } from "playwright-core";
import { expect } from "vitest";
import { cliCustomer, unlockConsole, watchPage, type ChromiumSuite } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";

/** The texts of the message lines of the console's log, in order. */
export const texts = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();

/**
 * A new page of the suite's browser, its problems collected into `s.problems` (a failed
 * WebSocket connection counted too unless `reconnects`), with the console unlocked from
 * alice's vault; `before` runs on the page before it opens (routes, `relayInTheMiddle`).
 */
export async function consolePage(s: ChromiumSuite, reconnects = true, before?: (page: Page) => Promise<unknown>): Promise<Page> {
  const page = await s.browser.newPage();
  watchPage(page, s.problems, reconnects);
  await before?.(page);
  await unlockConsole(page, s.relay.origin, s.org.agentHome);
  return page;
}

/** Clicks conversation `id` in the console's list, once the list shows it. */
export async function selectConversation(page: Page, id: string): Promise<void> {
  const entry = page.locator(`#list button[data-conversation="${id}"]`);
  await expect.poll(() => entry.count(), { timeout: 30_000 }).toBe(1);
  await entry.click();
}

/**
 * A CLI customer `name` who opens a conversation with the suite's org and writes `first` in
 * it; the console selects the conversation and shows that one line. Returns the customer's
 * home and the conversation id.
 */
export async function customerWrites(s: ChromiumSuite, page: Page, name: string, first: string): Promise<{ home: string; id: string }> {
  const customer = await cliCustomer(s.root, s.relay.url, s.org, name);
  await cli(customer.home, s.relay.url, ["send", "--conversation", customer.id, first]);
  await selectConversation(page, customer.id);
  await expect.poll(() => texts(page)).toEqual([first]);
  return customer;
}
