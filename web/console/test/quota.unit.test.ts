/** The stored-bytes quota warning as the console words it for an agent (§13.12). */
import { describe, expect, it } from "vitest";
import { agentQuotaText } from "../src/quota.js";

describe("the stored-bytes quota warning for an agent", () => {
  it("names the org's quota, how much of how much, and what to do", () => {
    const t = agentQuotaText({ scope: "org", used: 9000, most: 10_500 }, "acme");
    expect(t).toContain("The messages and files of acme's conversations now take 8.8 KiB of the 10.3 KiB this relay keeps for acme (85%).");
    expect(t).toContain("refused in all of acme's conversations (quota_exceeded)");
    expect(t).toContain("stored_bytes_per_org");
  });
  it("names the agent's own quota apart", () => {
    const t = agentQuotaText({ scope: "account", used: 80, most: 100 }, "acme");
    expect(t).toContain("you sent through this relay now take 80 B of the 100 B it keeps for your account (80%)");
    expect(t).toContain("stored_bytes_per_account");
  });
});
