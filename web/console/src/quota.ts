/**
 * The relay's warning ahead of a stored-bytes quota (§13.12) as the console tells the agent:
 * given after a message or a file the agent sent, worded for whose bytes they are — the org's
 * (every conversation of the org counts: customers and agents alike) or the agent's own — with
 * how much is used, of how much, and what to do. Pure: the page writes it with `textContent`.
 */
import { formatSize, type ByteQuota } from "@sealdesk/client";

/** The warning in words, for an agent of `org`. */
export function agentQuotaText(q: ByteQuota, org: string): string {
  const pct = Math.floor((q.used * 100) / Math.max(1, q.most));
  const used = `${formatSize(q.used)} of the ${formatSize(q.most)}`;
  return q.scope === "org"
    ? `The messages and files of ${org}'s conversations now take ${used} this relay keeps for ${org} (${pct}%). ` +
        `When it is full, new messages and files are refused in all of ${org}'s conversations (quota_exceeded), for customers and agents alike, ` +
        `until conversations are erased or expire: tell ${org}'s owner, who can ask the relay's operator to raise stored_bytes_per_org.`
    : `The messages and files you sent through this relay now take ${used} it keeps for your account (${pct}%). ` +
        `When it is full, your new messages and files are refused (quota_exceeded) until conversations are erased or expire: ` +
        `send files only when needed, and tell ${org}'s owner, who can ask the relay's operator to raise stored_bytes_per_account.`;
}
