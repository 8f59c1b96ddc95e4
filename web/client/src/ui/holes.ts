/**
 * What a page draws of the runs of items the relay withheld (PROTOCOL §13.10, issue 20). The
 * requests for them are bounded (`REFETCH_LIMIT`, `REFETCH_PAGES`), but a relay that invents
 * thousands of holes would, drawn one line each, bury the conversation under thousands of
 * "withheld" lines and make the page slow. So at most `HOLES_DRAWN` items of a log say what was
 * withheld: every run when there are that few; else the first `HOLES_DRAWN - 1` in their places
 * and, in the place of the next, one line summing up the rest — how many runs and items, between
 * which numbers, how many given up and how many still asked for, and the relay's false claims
 * among them, so that nothing it lied about goes unsaid — with the first `HOLES_LISTED` of them
 * listed behind a disclosure, and how many more past the list.
 *
 * `holesDrawn` and `moreHolesText` are pure (tested under Node in
 * `web/console/test/holes.unit.test.ts`); `moreHolesItem` draws the summary with `textContent`.
 * The console and the widget draw by this one rule, each in its audience's words.
 */
import { REFETCH_LIMIT, missingCount, withheldText, type Hole } from "../customer-holes.js";

/** Items of a log that say what was withheld, at most: lines of their own and the summary line. */
export const HOLES_DRAWN = 5;

/** Runs the summary lists behind its disclosure, at most. */
export const HOLES_LISTED = 50;

/** Whose words: an agent's (the console) or the customer's of `org` (the widget). */
export type HolesAudience = { kind: "agent" } | { kind: "customer"; org: string };

/** The runs summed up in one line. */
export interface MoreHoles {
  /** The first run summed up: the summary line stands in its place. */
  first: Hole;
  /** Runs summed up. */
  runs: number;
  /** Items in them, in all. */
  items: number;
  /** The first number of the first run and the last of the last. */
  from: number;
  to: number;
  /** Runs given up (asked for `REFETCH_LIMIT` times and not delivered). */
  givenUp: number;
  /** Runs the relay made a false claim about (`Hole.claimed`). */
  claimed: number;
  /** The first `HOLES_LISTED` runs, listed behind the disclosure. */
  listed: Hole[];
  /** Runs past the list. */
  unlisted: number;
}

/** What a log draws of its open holes: these lines in their places, then the summary (if any). */
export interface HolesDrawn {
  lines: Hole[];
  more: MoreHoles | null;
}

/**
 * Which of `holes` (sorted, disjoint) a log draws on lines of their own, and the rest summed up:
 * all when there are `drawn` or fewer; else the first `drawn - 1`, and one summary for the
 * others (always two or more runs), so the log never holds more than `drawn` such items.
 */
export function holesDrawn(holes: readonly Hole[], drawn = HOLES_DRAWN, listed = HOLES_LISTED): HolesDrawn {
  if (holes.length <= drawn) return { lines: [...holes], more: null };
  const keep = Math.max(0, drawn - 1);
  const rest = holes.slice(keep);
  const first = rest[0];
  const last = rest[rest.length - 1];
  if (first === undefined || last === undefined) return { lines: [...holes], more: null };
  let items = 0;
  let givenUp = 0;
  let claimed = 0;
  for (const h of rest) {
    items += missingCount(h);
    if (h.tries >= REFETCH_LIMIT) givenUp += 1;
    if (h.claimed !== undefined) claimed += 1;
  }
  return {
    lines: holes.slice(0, keep),
    more: { first, runs: rest.length, items, from: first.from, to: last.to, givenUp, claimed, listed: rest.slice(0, listed), unlisted: Math.max(0, rest.length - listed) },
  };
}

/**
 * The summary line in words. An agent is told, as `withheldText` tells one run, what was given
 * up and what is still asked for, and every false claim the relay made about the runs summed up
 * ("which is false"); the customer, as the widget tells one run, that something may be missing
 * and whom to ask.
 */
export function moreHolesText(m: MoreHoles, audience: HolesAudience): string {
  const runs = m.runs === 1 ? "1 more run of items" : `${m.runs} more runs of items`;
  const where = `${m.items === 1 ? "1 item" : `${m.items} items`} in all, #${m.from} to #${m.to}`;
  if (audience.kind === "customer") {
    const said = `The relay withheld ${runs} (${where}) in this conversation — it may be hiding parts of it.`;
    if (m.claimed === 0) return `${said} Something may be missing here; ask ${audience.org} if in doubt.`;
    const which = m.claimed === 1 ? (m.runs === 1 ? "it" : "1 of these runs") : m.claimed === m.runs ? "all of these runs" : `${m.claimed} of these runs`;
    return `${said} It claims ${which} ${m.claimed === 1 ? "holds" : "hold"} only items you may not read, which is false: everything in your own conversation is yours to read. Tell ${audience.org}.`;
  }
  const asked = m.runs - m.givenUp;
  const them = m.runs === 1 ? "it" : "them";
  let said: string;
  if (asked === 0) said = `The relay withheld ${runs} (${where}) in this conversation — it may be hiding parts of it: not delivered after ${REFETCH_LIMIT} requests.`;
  else if (m.givenUp === 0) said = `${runs.charAt(0).toUpperCase()}${runs.slice(1)} (${where}) never arrived in this conversation — the relay may be hiding parts of it: asking the relay again for ${them}.`;
  else {
    said =
      `${runs.charAt(0).toUpperCase()}${runs.slice(1)} (${where}) never arrived in this conversation — the relay may be hiding parts of it: ` +
      `${m.givenUp} not delivered after ${REFETCH_LIMIT} requests, ${asked} still asked for again.`;
  }
  if (m.claimed > 0) {
    const which = m.claimed === 1 ? (m.runs === 1 ? "it" : "1 of these runs") : m.claimed === m.runs ? "all of these runs" : `${m.claimed} of these runs`;
    said += ` The relay claims ${which} ${m.claimed === 1 ? "holds" : "hold"} only items you may not read, which is false — you are allowed to read them.`;
  }
  return `${said} Tell your security contact.`;
}

/**
 * One run on a line of its own, in the customer's words (the widget), with the requests made for
 * it: "Item #7 has not arrived: asking the relay again (asked 1 of 3 times)." while it is asked
 * for; once given up, "Item #7 was not delivered: the relay withheld it for good (asked 3
 * times). Something may be missing here; ask ORG if in doubt." When the relay made a false claim
 * about the run (`Hole.claimed`: a history page named it as items this customer may not read,
 * and a customer may read every item of her conversation), the line says so in place of "if in
 * doubt" — what the relay claimed, that it is false, and whom to tell (`customerClaimText`). The
 * agent's words are `withheldText`.
 */
export function customerHoleText(h: Hole, org: string): string {
  if (h.missing !== undefined) {
    // A summary run (more holes than are kept one by one): its span also holds items that came.
    const what = h.missing === 1 ? "At least 1 item" : `At least ${h.missing} items`;
    const said = `${what} somewhere in #${h.from} to #${h.to} ${h.missing === 1 ? "was" : "were"} not delivered: the relay withheld so many that they are no longer listed one by one or asked for again.`;
    return h.claimed === undefined ? `${said} Something is missing here; ask ${org} if in doubt.` : `${said} ${customerClaimText(h, org)}`;
  }
  const one = h.from === h.to;
  if (h.tries < REFETCH_LIMIT) {
    const what = one ? `Item #${h.from} has` : `Items #${h.from} to #${h.to} have`;
    const said = `${what} not arrived: asking the relay again (asked ${h.tries} of ${REFETCH_LIMIT} times).`;
    return h.claimed === undefined ? said : `${said} ${customerClaimText(h, org)}`;
  }
  const what = one ? `Item #${h.from} was` : `Items #${h.from} to #${h.to} were`;
  const said = `${what} not delivered: the relay withheld ${one ? "it" : "them"} for good (asked ${h.tries} times).`;
  return h.claimed === undefined ? `${said} Something may be missing here; ask ${org} if in doubt.` : `${said} ${customerClaimText(h, org)}`;
}

/**
 * The relay's false claim about run `h` (`Hole.claimed`), in the customer's words: items of a
 * part of the chat she was not in (an epoch, `claimed` its number), or a consent or notice
 * meant for someone else (conversation-level, `claimed` null) — false either way, since the
 * customer is in every epoch of her conversation and its consents and notices are hers. Empty
 * when the relay claimed nothing.
 */
export function customerClaimText(h: Hole, org: string): string {
  if (h.claimed === undefined) return "";
  const one = h.from === h.to;
  const what =
    h.claimed === null
      ? `${one ? "is a consent or a notice" : "are consents or notices"} meant for someone else`
      : `${one ? "belongs" : "belong"} to a part of this chat you were not in`;
  return `The relay claims ${one ? "it" : "they"} ${what}, which is false: you may read everything in your own conversation. Tell ${org}.`;
}

/** A run in the summary's list, in `audience`'s words. */
export function listedHoleText(h: Hole, audience: HolesAudience): string {
  if (audience.kind === "agent") return withheldText(h);
  const run = h.from === h.to ? `Item #${h.from}` : h.missing !== undefined ? `Items #${h.from} to #${h.to} (at least ${h.missing} missing)` : `Items #${h.from} to #${h.to} (${h.to - h.from + 1} items)`;
  return h.claimed === undefined ? run : `${run}: the relay's claim about ${h.from === h.to ? "it" : "them"} is false`;
}

/**
 * The summary as a list item (`li.withheld.more`, `data-runs`, `data-items`): its words, and a
 * disclosure listing the first runs ("and N more runs, up to #z" past the list). Nothing from the
 * relay is HTML: its numbers are written with `textContent`.
 */
export function moreHolesItem(m: MoreHoles, audience: HolesAudience): HTMLLIElement {
  const li = document.createElement("li");
  li.className = "withheld more";
  const p = document.createElement("p");
  p.className = "said";
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  const ul = document.createElement("ul");
  const past = document.createElement("p");
  past.className = "unlisted";
  details.append(summary, ul, past);
  li.append(p, details);
  updateMoreHolesItem(li, m, audience);
  return li;
}

/**
 * Brings a summary item made by `moreHolesItem` up to `m` in place: the same element, its
 * disclosure (open or not, focused or not) kept; only the texts and numbers that changed are
 * written, and the listed runs only when they changed.
 */
export function updateMoreHolesItem(li: HTMLLIElement, m: MoreHoles, audience: HolesAudience): void {
  setData(li, { from: String(m.from), to: String(m.to), runs: String(m.runs), items: String(m.items), claimed: String(m.claimed), givenUp: String(m.givenUp) });
  const p = li.querySelector<HTMLParagraphElement>(":scope > p.said");
  const summary = li.querySelector("summary");
  const ul = li.querySelector<HTMLUListElement>("details > ul");
  const past = li.querySelector<HTMLParagraphElement>("details > p.unlisted");
  if (p === null || summary === null || ul === null || past === null) throw new Error("not a summary of withheld runs");
  setText(p, moreHolesText(m, audience));
  setText(summary, m.unlisted === 0 ? `The ${m.runs} runs` : `The first ${m.listed.length} of the ${m.runs} runs`);
  const listed = m.listed.map((h) => listedHoleText(h, audience));
  const shown = Array.from(ul.children, (c) => c.textContent ?? "");
  if (listed.length !== shown.length || listed.some((t, i) => t !== shown[i])) {
    ul.replaceChildren(
      ...listed.map((t) => {
        const it = document.createElement("li");
        it.textContent = t;
        return it;
      }),
    );
  }
  past.hidden = m.unlisted === 0;
  setText(past, m.unlisted === 0 ? "" : `… and ${m.unlisted === 1 ? "1 more run" : `${m.unlisted} more runs`}, up to #${m.to}.`);
}

/** Writes `text` into `e` only when it differs (an unchanged text is not a mutation). */
export function setText(e: HTMLElement, text: string): void {
  if (e.textContent !== text) e.textContent = text;
}

/** Sets `e`'s `data-*` attributes that differ from `data`. */
function setData(e: HTMLElement, data: Record<string, string>): void {
  for (const [k, v] of Object.entries(data)) if (e.dataset[k] !== v) e.dataset[k] = v;
}
