/** The stored-bytes quota warnings as the console words them for an agent, one line per quota (§13.12). */
import { describe, expect, it } from "vitest";
import { agentQuotaSummary, agentQuotaText, quotaLines, type QuotaLine } from "../src/quota.js";

describe("the stored-bytes quota warning for an agent", () => {
  it("names the org's quota, how much of how much, and what to do", () => {
    const t = agentQuotaText({ scope: "org", used: 9000, most: 10_500 }, "acme");
    expect(t).toContain("The messages and files of acme's conversations now take 8.8 KiB of the 10.3 KiB this relay keeps for acme (85%).");
    expect(t).toContain("refused in all of acme's conversations (quota_exceeded)");
    expect(t).toContain("tell acme's owner, who can ask the relay's operator to raise stored_bytes_per_org");
  });

  it("says an org's quota without a name made up when the relay named none", () => {
    const t = agentQuotaText({ scope: "org", used: 9000, most: 10_500 }, null);
    expect(t).toContain("of an org you answer for (the relay did not say which) now take 8.8 KiB of the 10.3 KiB this relay keeps for that org (85%)");
    expect(t).toContain("tell that org's owner");
    expect(t).not.toContain("the org's");
  });

  it("words the agent's own quota without an org: what the agent can do, and who sets the quota", () => {
    // The push for the account's quota names no org; the stored answer names the conversation's,
    // but the account's bytes are those of every org the agent answers for: no org is said.
    for (const org of [null, "acme"]) {
      const t = agentQuotaText({ scope: "account", used: 80, most: 100 }, org);
      expect(t).toBe(
        "The messages and files you sent through this relay, in every org you answer for, now take 80 B of the 100 B it keeps for your account (80%). " +
          "When it is full, your new messages and files are refused in every conversation (quota_exceeded) until conversations are erased or expire: " +
          "send files only when needed. The relay's operator sets this quota (stored_bytes_per_account).",
      );
      expect(t).not.toContain("acme");
      expect(t).not.toContain("owner");
    }
  });
});

describe("the warning's one short line", () => {
  it("says how full, the percentage first, what follows, and whose quota last (a long org name is what gets cut)", () => {
    expect(agentQuotaSummary({ scope: "org", used: 9000, most: 10_500 }, "acme")).toBe("85% of the storage quota used: when full, new messages are refused — acme's quota.");
    expect(agentQuotaSummary({ scope: "org", used: 9000, most: 10_500 }, null)).toBe("85% of the storage quota used: when full, new messages are refused — an org's quota.");
    // The account's: no org named, whatever came with it.
    expect(agentQuotaSummary({ scope: "account", used: 80, most: 100 }, "acme")).toBe("80% of the storage quota used: when full, new messages are refused — your account's quota.");
  });

  it("is kept with the full words in the quota's line, and replaced with them", () => {
    const [first] = quotaLines([], { scope: "org", used: 80, most: 100 }, "acme");
    const [next] = quotaLines(first === undefined ? [] : [first], { scope: "org", used: 93, most: 100 }, "acme");
    expect(first?.summary).toMatch(/^80% /);
    expect(next?.summary).toMatch(/^93% /);
    expect(next?.text).toContain("(93%)");
  });
});

describe("one warning line per quota", () => {
  const org = (used: number, name: string | null = "acme"): [{ scope: "org"; used: number; most: number }, string | null] => [{ scope: "org", used, most: 100 }, name];
  const account = (used: number): [{ scope: "account"; used: number; most: number }, null] => [{ scope: "account", used, most: 100 }, null];
  const keys = (lines: readonly QuotaLine[]): string[] => lines.map((l) => `${l.key} ${l.text.match(/\((\d+)%\)/)?.[1] ?? "?"}%`);

  it("replaces an org's line with a newer warning of that org, in its place", () => {
    let lines = quotaLines([], ...org(80));
    lines = quotaLines(lines, ...account(85));
    lines = quotaLines(lines, ...org(92));
    expect(keys(lines)).toEqual(["org/acme 92%", "account 85%"]);
    expect(lines.map((l) => l.scope)).toEqual(["org", "account"]);
  });

  it("replaces the account's line with a newer account warning, whatever org came with it", () => {
    let lines = quotaLines([], ...account(80));
    lines = quotaLines(lines, { scope: "account", used: 95, most: 100 }, "acme");
    expect(keys(lines)).toEqual(["account 95%"]);
  });

  it("keeps the warnings of other quotas: the account's and each org's", () => {
    let lines = quotaLines([], ...org(81, "acme"));
    lines = quotaLines(lines, ...org(82, "globex"));
    lines = quotaLines(lines, ...account(83));
    expect(keys(lines)).toEqual(["org/acme 81%", "org/globex 82%", "account 83%"]);
    // The same warning again changes nothing.
    expect(quotaLines(lines, ...org(82, "globex"))).toEqual(lines);
  });
});
