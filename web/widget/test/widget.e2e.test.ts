/**
 * The widget end to end in Chromium: the real relay binary on 127.0.0.1:0 serves web/dist
 * (`--web-root`), the org is made with the Rust CLI, and a browser customer chats with the CLI
 * agent; a reload resumes the same conversation with its history (nothing shown twice); a
 * release under an approved dispute (CLI master, arbiter, trustee) shows one verified notice; the
 * page runs under the relay's Content-Security-Policy with no violation; a screenshot is
 * written to web/screenshots/.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { dayMonth } from "@sealdesk/client";
import { DIST as dist, SHOTS as shots, launch, watchPage, chromiumSuite, visitorOnRelay, widgetVisitor } from "../../client/test/chromium.js";
import { idleClock, staysUnregistered } from "./idle-visitor.js";
import { startRelay } from "../../client/test/relay.js";

describe("the widget in Chromium", () => {
  const s = chromiumSuite("widget-e2e");

  // Reconnect attempts while the relay is down (the restart below) are expected.
  const watch = (page: Page): void => watchPage(page, s.problems);
  const lines = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();

  it("chats with the CLI agent, and a reload resumes the conversation", async () => {
    const page = await s.browser.newPage();
    // Its timers on Playwright's clock, for the idle time `staysUnregistered` runs.
    await idleClock(page);
    watch(page);
    const url = `${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`;
    const started = Date.now();
    const response = await page.goto(url);
    const csp = response?.headers()["content-security-policy"] ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");

    // The policy is shown at load, before the customer does anything (read on the unregistered
    // session: the account is registered by the first message, issue 22); no prompt to click.
    await expect.poll(() => page.locator("#summary").textContent()).toContain("end-to-end encrypted");
    const policyShownMs = Date.now() - started;
    expect(await page.locator("#summary").textContent()).not.toContain("Click in the message box");
    expect(await page.locator("#fingerprint").textContent()).toBe(s.org.fingerprint);
    expect(await page.locator("#fp-note").textContent()).toContain("matches");
    expect(await page.evaluate(() => document.activeElement?.id ?? "")).not.toBe("text");
    await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("online");
    expect(await page.locator("#send").isDisabled()).toBe(false);
    await page.screenshot({ path: join(shots, "widget-policy.png") });
    // The visitor has only read: the relay's directory (asked from here, not through the page)
    // holds no card of its account.
    const visitor = await widgetVisitor(page);
    expect(await visitorOnRelay(s.relay.url, visitor)).toBe(false);
    // Nor once the widget is done starting, nor while the visitor stays idle (`staysUnregistered`).
    await staysUnregistered(page, s.relay.url);

    await page.locator("#text").fill("my order 1234 never arrived");
    await page.locator("#text").press("Enter");
    await expect.poll(() => lines(page)).toEqual(["my order 1234 never arrived"]);
    // The first message registered it: its name, with its key.
    expect(await visitorOnRelay(s.relay.url, visitor)).toBe(true);
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";
    expect(id).toMatch(/^[0-9a-f]{32}$/);

    expect(await s.org.agent(["history", "--conversation", id])).toContain("my order 1234 never arrived");
    await s.org.agent(["send", "--conversation", id, "sorry about that: a new one ships today"]);
    await expect.poll(() => lines(page)).toEqual(["my order 1234 never arrived", "sorry about that: a new one ships today"]);
    await expect.poll(() => page.locator("#log li.mine .read").first().textContent()).toContain("read");
    await page.screenshot({ path: join(shots, "widget.png") });

    await page.reload();
    await expect.poll(() => lines(page)).toEqual(["my order 1234 never arrived", "sorry about that: a new one ships today"]);
    expect(await page.locator("body").getAttribute("data-conversation")).toBe(id);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("online");
    await page.locator("#text").fill("thanks, that was quick");
    await page.locator("#send").click();
    await expect.poll(() => lines(page)).toEqual(["my order 1234 never arrived", "sorry about that: a new one ships today", "thanks, that was quick"]);
    expect(await s.org.agent(["history", "--conversation", id])).toContain("thanks, that was quick");
    await page.screenshot({ path: join(shots, "widget-reloaded.png") });

    // The relay is killed and restarted: the page shows it offline, reconnects by itself, and
    // nothing acknowledged is lost or shown twice.
    await s.relay.stop();
    await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("offline");
    // The box stays usable: what is written waits for the session (send-unanswered.e2e.test.ts).
    expect(await page.locator("#send").isDisabled()).toBe(false);
    expect(await page.locator("#text").isDisabled()).toBe(false);
    await page.screenshot({ path: join(shots, "widget-offline.png") });
    s.relay = await startRelay(join(s.root, "relay-data"), ["--web-root", dist], s.relay.addr);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 30_000 }).toBe("online");
    await s.org.agent(["send", "--conversation", id, "back after the restart"]);
    await expect.poll(() => lines(page)).toEqual(["my order 1234 never arrived", "sorry about that: a new one ships today", "thanks, that was quick", "back after the restart"]);

    // The master opens the conversation under an approved dispute: one verified release notice,
    // then the ticket's close (the master collected the shares), verified too.
    await s.org.as("owner", ["dispute", "open", "--conversation", id, "--reason", "chargeback"]);
    const tickets = JSON.parse(await s.org.as("a1", ["dispute", "list", "--json"])) as { tickets: { ticket: string }[] };
    const ticket = tickets.tickets[0]?.ticket ?? "";
    await s.org.as("a1", ["dispute", "approve", "--ticket", ticket]);
    const trustee = s.org.background("t1", ["trustee", "serve"]);
    try {
      await s.org.as("owner", ["transcript", "unlock", "--conversation", id, "--ticket", ticket]);
    } finally {
      const exited = new Promise((r) => (trustee.exitCode !== null ? r(null) : trustee.once("exit", r)));
      trustee.kill("SIGTERM");
      await exited;
    }
    await expect.poll(() => page.locator("#log li.notice").count()).toBe(2);
    // One notice per opening (not one per trustee's share), saying how many trustees released it.
    const released = page.locator("#log li.notice", { hasText: "opened epoch 0" });
    expect(await released.count()).toBe(1);
    expect(await released.getAttribute("data-shares")).toBe("1");
    expect(await released.locator("p").textContent()).toBe(`acme opened epoch 0 of this chat under dispute ticket ${ticket}, approved by 1 arbiter: released by 1 of 1 trustee (t1; 1 needed).`);
    // The trustee cosigned a log holding its entry before it sent its share: witnessed.
    await expect.poll(() => released.getAttribute("data-verified"), { timeout: 30_000 }).toBe("true");
    expect(await released.locator(".meta").textContent()).toContain("Verified ✓: signed by trustee t1, proven in the public audit log");
    // The close may be logged after the trustee's last cosignature: once it cosigns the log as
    // it is now, the widget's next check shows it verified.
    const closed = page.locator("#log li.notice", { hasText: "is closed (its release is complete)" });
    await s.org.as("t1", ["trustee", "serve", "--once"]);
    await expect.poll(() => closed.getAttribute("data-verified"), { timeout: 30_000 }).toBe("true");
    expect(await closed.locator("strong").textContent()).toBe("Dispute closed");
    expect(await closed.locator(".meta").textContent()).toContain("Verified ✓: signed by the relay, proven in the public audit log");
    // Verified notices are calm (green rule), not the red of an error.
    const rule = (l: typeof closed): Promise<string> => l.evaluate((e) => getComputedStyle(e).borderLeftColor);
    expect(await rule(released)).toBe("rgb(20, 108, 46)");
    expect(await rule(closed)).toBe("rgb(20, 108, 46)");
    await page.screenshot({ path: join(shots, "widget-notice.png") });
    // Still the same two after a reload (kept with their verdicts, not shown twice).
    await page.reload();
    await expect.poll(() => lines(page)).toHaveLength(4);
    expect(await page.locator("#log li.notice").count()).toBe(2);

    // The customer consents in the widget; the master unlocks under it: a second verified notice.
    await page.locator("#consent summary").click();
    await page.locator("#purpose").fill("quality review");
    const before = dayMonth(Math.floor(Date.now() / 1000));
    await page.locator("#grant").click();
    await expect.poll(() => page.locator("#consent-result").getAttribute("data-consent")).toMatch(/^[0-9a-f]{32}$/);
    const consent = (await page.locator("#consent-result").getAttribute("data-consent")) ?? "";
    const days = new Set([before, dayMonth(Math.floor(Date.now() / 1000))]);
    await page.screenshot({ path: join(shots, "widget-consent.png") });
    const trustee2 = s.org.background("t1", ["trustee", "serve"]);
    try {
      await s.org.as("owner", ["transcript", "unlock", "--conversation", id, "--consent", consent]);
    } finally {
      trustee2.kill("SIGTERM");
    }
    await expect.poll(() => page.locator("#log li.notice[data-verified=true]").count(), { timeout: 30_000 }).toBe(3);
    // Granted from this browser: named by its day, as the CLI does, not by its id.
    const said = (await page.locator("#log li.notice").last().textContent()) ?? "";
    expect([...days].some((d) => said.includes(`under your consent of ${d}:`)), said).toBe(true);
    expect(said).not.toContain(consent.slice(0, 8));
    await page.screenshot({ path: join(shots, "widget-consent-notice.png") });

    // A ticket the master closes at once: the close is logged while no trustee has cosigned a
    // log holding it — shown "not yet confirmed", never as genuine, until the trustee cosigns.
    await s.org.as("owner", ["dispute", "open", "--conversation", id, "--reason", "a second look"]);
    const all = JSON.parse(await s.org.as("owner", ["dispute", "list", "--json"])) as { tickets: { ticket: string }[] };
    const second = all.tickets.map((t) => t.ticket).find((t) => t !== ticket) ?? "";
    await s.org.as("owner", ["dispute", "close", "--ticket", second, "--reason", "opened by mistake"]);
    const pending = page.locator("#log li.notice", { hasText: `dispute ticket ${second}` });
    await expect.poll(() => pending.count(), { timeout: 20_000 }).toBe(1);
    expect(await pending.getAttribute("data-witnessed")).toBe("false");
    expect(await pending.getAttribute("data-verified")).toBe("false");
    expect(await pending.locator("strong").textContent()).toBe("Dispute closed — not yet confirmed");
    expect(await rule(pending)).toBe("rgb(122, 89, 0)");
    // One plain sentence; what it says and why it is unconfirmed behind "Details", closed.
    expect(await pending.locator(".plain").textContent()).toBe(
      "Recorded, but the business's independent trustees have not confirmed it yet. They usually do within a minute; until then, do not rely on it. This notice updates by itself.",
    );
    // The customer's words, as the CLI's ("NOT YET CONFIRMED"): not the protocol's "witnessed".
    expect((await pending.textContent())?.toLowerCase()).not.toContain("witness");
    expect(await pending.locator("details").getAttribute("open")).toBeNull();
    expect(await pending.locator("details p").isVisible()).toBe(false);
    // A taller page for the notice's own pictures (the open panels leave the log little room).
    const size = page.viewportSize();
    await page.setViewportSize({ width: size?.width ?? 420, height: 1100 });
    await pending.evaluate((e) => e.scrollIntoView({ block: "end" }));
    await pending.screenshot({ path: join(shots, "widget-notice-unwitnessed-item.png") });
    await pending.locator("summary").click();
    expect(await pending.locator("details p").isVisible()).toBe(true);
    await pending.screenshot({ path: join(shots, "widget-notice-unwitnessed-details.png") });
    // On a narrow widget (a small phone, 320 px; an open panel takes the log's place there, so
    // back to the chat first) the title and the sentence wrap within the notice: nothing runs
    // off its side.
    await page.setViewportSize({ width: 320, height: 1100 });
    await page.locator("details[open] button.back").click();
    await pending.evaluate((e) => e.scrollIntoView({ block: "end" }));
    expect(await pending.isVisible()).toBe(true);
    expect(await pending.evaluate((e) => Array.from(e.querySelectorAll("*")).every((c) => c.getBoundingClientRect().right <= e.getBoundingClientRect().right + 0.5))).toBe(true);
    expect(await pending.evaluate((e) => e.scrollWidth <= e.clientWidth)).toBe(true);
    await pending.screenshot({ path: join(shots, "widget-notice-unwitnessed-narrow.png") });
    if (size !== null) await page.setViewportSize(size);
    await page.screenshot({ path: join(shots, "widget-notice-unwitnessed.png") });
    await s.org.as("t1", ["trustee", "serve", "--once"]);
    await expect.poll(() => pending.getAttribute("data-verified"), { timeout: 30_000 }).toBe("true");
    expect(await pending.locator("strong").textContent()).toBe("Dispute closed");

    expect(await page.locator("#alert").isHidden()).toBe(true);
    expect(s.problems).toEqual([]);
    console.log(`policy shown ${policyShownMs} ms after navigation`);
    await page.close();
  });

  it("a second tab follows the first, and the two never send with the same counter", async () => {
    const profile = await launch(join(s.root, "profile-tabs"));
    try {
      const url = `${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`;
      const a = await profile.newPage();
      watch(a);
      await a.goto(url);
      await expect.poll(() => a.locator("#conn").getAttribute("data-state")).toBe("online");
      await a.locator("#text").fill("from the first tab");
      await a.locator("#text").press("Enter");
      await expect.poll(() => lines(a)).toEqual(["from the first tab"]);
      const b = await profile.newPage();
      watch(b);
      await b.goto(url);
      await expect.poll(() => lines(b)).toEqual(["from the first tab"]);
      await expect.poll(() => b.locator("#conn").getAttribute("data-state")).toBe("online");
      // Alternating sends: each takes the shared counter under the Web Lock; a reused counter
      // would be refused by the relay (counter_reused) and shown as an alert.
      for (let i = 0; i < 3; i++) {
        for (const [tab, name] of [[b, "second"], [a, "first"]] as const) {
          const text = `${name} tab, round ${i}`;
          await tab.locator("#text").fill(text);
          await tab.locator("#send").click();
          await expect.poll(() => lines(tab)).toContain(text);
        }
      }
      const all = ["from the first tab", ...[0, 1, 2].flatMap((i) => [`second tab, round ${i}`, `first tab, round ${i}`])];
      await expect.poll(() => lines(a)).toEqual(all);
      await expect.poll(() => lines(b)).toEqual(all);
      const id = (await a.locator("body").getAttribute("data-conversation")) ?? "";
      const agentView = await s.org.agent(["history", "--conversation", id]);
      for (const t of all) expect(agentView).toContain(t);
      expect(await a.locator("#alert").isHidden()).toBe(true);
      expect(await b.locator("#alert").isHidden()).toBe(true);
      await b.screenshot({ path: join(shots, "widget-second-tab.png") });
    } finally {
      await profile.close();
    }
    expect(s.problems).toEqual([]);
  });

  it("refuses a page whose fingerprint does not match the org's master, and says so", async () => {
    const wrong = `${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent("11111 22222 33333 44444 55555 66666")}`;
    // This profile's account is known on the relay (the first test chatted): the policy is
    // checked at once, and refused.
    const page = await s.browser.newPage();
    const response = await page.goto(wrong);
    expect(response?.status()).toBe(200);
    await expect.poll(() => page.locator("#alert").textContent(), { timeout: 10_000 }).toContain("fingerprint_mismatch");
    expect(await page.locator("#send").isDisabled()).toBe(true);
    await page.screenshot({ path: join(shots, "widget-wrong-fingerprint.png") });
    await page.close();

    // A fresh profile (nothing registered) is refused the same way at load, with no click.
    const profile = await launch(join(s.root, "profile-wrong-fingerprint"));
    try {
      const fresh = await profile.newPage();
      await fresh.goto(wrong);
      await expect.poll(() => fresh.locator("#alert").textContent(), { timeout: 10_000 }).toContain("fingerprint_mismatch");
      expect(await fresh.locator("#send").isDisabled()).toBe(true);
      expect(await fresh.locator("#text").isDisabled()).toBe(true);
      expect(await fresh.locator("#summary").textContent()).not.toContain("end-to-end encrypted");
    } finally {
      await profile.close();
    }
  });
});
