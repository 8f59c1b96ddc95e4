/**
 * The relay's warnings ahead of a stored-bytes quota (§13.12) as the console tells the agent,
 * worded for whose bytes they are:
 *
 * - an org's (`scope: "org"`, named by the push or by the conversation the agent wrote in):
 *   every conversation of the org counts, customers and agents alike; its owner can ask the
 *   relay's operator for more;
 * - the agent's own account's (`scope: "account"`): what the agent sent, in every org it answers
 *   for — no org is named (the push names none, and the bytes are not one org's), so it says
 *   what the agent can do (send files only when needed) and who sets the quota (the relay's
 *   operator, `stored_bytes_per_account`).
 *
 * One line per quota (`quotaLines`): a newer warning of the same quota (the account's, or one
 * org's) replaces the older one in its place; warnings of other quotas stay. Each line is short
 * (`agentQuotaSummary`: how full, what follows, whose; one line in an 800 px window) with the words above
 * behind a disclosure. Pure: the page writes the lines with `textContent`.
 */
import { formatSize, type ByteQuota } from "@sealdesk/client";

/** A warning shown: its quota's key (`account`, or `org/<name>`), scope, short line and words. */
export interface QuotaLine {
  readonly key: string;
  readonly scope: ByteQuota["scope"];
  /** The line the page shows (`agentQuotaSummary`). */
  readonly summary: string;
  /** The warning in full (`agentQuotaText`), behind the line's disclosure. */
  readonly text: string;
}

/**
 * The warning in one short line: how full the quota is, the percentage first (what a screen
 * reader says first, and what changes), what follows, and last whose quota it is. Whose comes
 * last because an org's name may be of any length and the page cuts the line with an ellipsis
 * (issue 23: a 61-character name at 600 px cut off "new messages are refused", which is what
 * the agent must see). `org` as for `agentQuotaText`.
 */
export function agentQuotaSummary(q: ByteQuota, org: string | null): string {
  const pct = Math.floor((q.used * 100) / Math.max(1, q.most));
  const whose = q.scope === "account" ? "your account's" : org === null ? "an org's" : `${org}'s`;
  return `${pct}% of the storage quota used: when full, new messages are refused — ${whose} quota.`;
}

/** The warning in words; `org` names an org's quota (`null`: the relay named none). */
export function agentQuotaText(q: ByteQuota, org: string | null): string {
  const pct = Math.floor((q.used * 100) / Math.max(1, q.most));
  const used = `${formatSize(q.used)} of the ${formatSize(q.most)}`;
  if (q.scope === "account") {
    return (
      `The messages and files you sent through this relay, in every org you answer for, now take ${used} it keeps for your account (${pct}%). ` +
      `When it is full, your new messages and files are refused in every conversation (quota_exceeded) until conversations are erased or expire: ` +
      `send files only when needed. The relay's operator sets this quota (stored_bytes_per_account).`
    );
  }
  if (org === null) {
    // An org's quota the relay sent without its name: said of "an org you answer for", never a made-up name.
    return (
      `The messages and files of the conversations of an org you answer for (the relay did not say which) now take ${used} this relay keeps for that org (${pct}%). ` +
      `When it is full, new messages and files are refused in all of that org's conversations (quota_exceeded), for customers and agents alike, ` +
      `until conversations are erased or expire: tell that org's owner, who can ask the relay's operator to raise stored_bytes_per_org.`
    );
  }
  return (
    `The messages and files of ${org}'s conversations now take ${used} this relay keeps for ${org} (${pct}%). ` +
    `When it is full, new messages and files are refused in all of ${org}'s conversations (quota_exceeded), for customers and agents alike, ` +
    `until conversations are erased or expire: tell ${org}'s owner, who can ask the relay's operator to raise stored_bytes_per_org.`
  );
}

/** The key of a warning's quota: the account's own, or one org's. */
export function quotaKey(q: ByteQuota, org: string | null): string {
  return q.scope === "account" ? "account" : `org/${org ?? ""}`;
}

/**
 * The lines shown after warning `q` (of `org`, for an org's quota) came: the line of the same
 * quota replaced in its place, or a new line after the others.
 */
export function quotaLines(shown: readonly QuotaLine[], q: ByteQuota, org: string | null): QuotaLine[] {
  const line: QuotaLine = { key: quotaKey(q, org), scope: q.scope, summary: agentQuotaSummary(q, org), text: agentQuotaText(q, org) };
  const at = shown.findIndex((l) => l.key === line.key);
  return at < 0 ? [...shown, line] : shown.map((l, i) => (i === at ? line : l));
}
