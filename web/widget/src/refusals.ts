/**
 * The relay's refusals a customer can meet, in plain words (the code kept in brackets for a
 * support request): an org that requires an open token from its web site (PROTOCOL §13.14), a
 * blocked account, a rate limit, a quota reached (with the relay's words: which quota, how much is
 * used) and a file too large (each with what to do); and a send this account's other tabs or
 * devices, or the support agent, kept racing (nothing sent, the text kept: send it again).
 * Anything else is shown as the error says.
 */
import { CustomerError, EPOCH_KEPT_MOVING, OWN_EPOCH_LOST, RelayError } from "@sealdesk/client";

const PLAIN: Record<string, string> = {
  open_token_required: "this business only opens chats started from its own web site, and this page did not pass its token. Open the chat from the business's site (or reload it there) and try again",
  open_token_expired: "the token this page got from the business's web site has expired. Reload the business's page and try again",
  open_token_forged: "the token this page passed is not one the business's web site signed",
  open_token_wrong_org: "the token this page passed is for another business",
  open_token_wrong_customer: "the token this page passed was made for another browser. Reload the business's page and try again",
  open_token_uncertified: "the business's web site signs with a key its owner has not certified",
  open_token_bad_visitor: "the token this page passed names no valid visitor",
  open_token_revoked: "the business's web site signed this page's token with a key its owner has revoked. Reload the business's page and try again",
  blocked: "this business has blocked this browser's account",
  rate_limited: "too many attempts; wait a little and try again",
  quota_exceeded: "a limit of this relay is reached",
  too_large: "this file is larger than the relay accepts",
};

/** What to do past a limit, after the relay's own words (which say which limit, and how far). */
const NEXT: Record<string, string> = {
  quota_exceeded: "For messages and files: erase a conversation you no longer need (Your data), then send again",
  too_large: "Send a smaller file",
};

/**
 * A send lost to another tab or device of this account opening the chat's next keys first,
 * again and again (`OWN_EPOCH_LOST`): nothing was sent; the text stays in the box (the widget
 * clears it only once sent), so a retry is one key away.
 */
const OWN_EPOCH_LOST_PLAIN = "another tab or device signed in to this account kept starting the chat's next encryption keys at the same moment, so nothing was sent. What you wrote is kept: try again";

/**
 * The same race lost to another member — the agent renewing the chat's keys as this page did,
 * each time (`EPOCH_KEPT_MOVING`): nothing was sent, the text is kept.
 */
const EPOCH_KEPT_MOVING_PLAIN = "the chat's encryption keys were being renewed by the other side at the same moment, each time this page tried, so nothing was sent. What you wrote is kept: try again";

/** The plain words for a `no_epoch` refusal's detail, when it has some. */
const NO_EPOCH_PLAIN: Record<string, string> = {
  [OWN_EPOCH_LOST]: OWN_EPOCH_LOST_PLAIN,
  [EPOCH_KEPT_MOVING]: EPOCH_KEPT_MOVING_PLAIN,
};

/** What to tell the customer about error `e`. */
export function plainRefusal(e: unknown): string {
  const race = e instanceof CustomerError && e.failure === "no_epoch" && e.detail !== undefined ? NO_EPOCH_PLAIN[e.detail] : undefined;
  if (race !== undefined) return `${capital(race)}. (no_epoch)`;
  if (e instanceof RelayError) {
    const plain = PLAIN[e.code];
    const next = NEXT[e.code];
    if (plain !== undefined && next !== undefined) return `${capital(plain)}: ${e.detail}. ${next}. (${e.code})`;
    if (plain !== undefined) return `${capital(plain)}. (${e.code})`;
  }
  return e instanceof Error ? e.message : String(e);
}

function capital(s: string): string {
  return `${s.charAt(0).toUpperCase()}${s.slice(1)}`;
}
