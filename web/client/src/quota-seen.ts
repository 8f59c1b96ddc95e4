/**
 * The relay's stored-bytes quota warnings (§13.12) as a member tells its view: once per
 * warning. The same crossing can come twice — in the `stored` (or `attachment_progress`)
 * answer to the sender and in the `quota_warning` push to every account it concerns, the
 * sender included, in either order — so a warning equal to the last one told for the same
 * quota (scope, and org for an org's) is dropped; a new figure is told.
 */
import type { ByteQuota } from "./frames.js";

/** The last warning told per quota, to tell each one once. */
export class QuotaSeen {
  private readonly last = new Map<string, string>();

  /** Whether `quota` (of `org`, for an org's quota) is new to this member's view; records it. */
  fresh(org: string | null, quota: ByteQuota): boolean {
    const key = quota.scope === "org" ? `org/${org ?? ""}` : "account";
    const figure = `${quota.used}/${quota.most}`;
    if (this.last.get(key) === figure) return false;
    this.last.set(key, figure);
    return true;
  }
}
