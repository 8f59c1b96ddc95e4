/**
 * Test support: a relay in the middle of `get_entries` (PROTOCOL §12.3 "Who reads the log"),
 * altering the listing of one page as a lying relay would — each alteration keeps the page
 * well formed (the frame decoder's checks pass), so only the reader's proof that the listing
 * makes up the signed tree head can refuse it. Used with `audit-log.fixture.ts`'s `session`
 * (`listing`).
 */
import { randomBytes } from "node:crypto";
import type { CborValue } from "@sealdesk/protocol";
import type { EntriesAnswer } from "./audit-log.fixture.js";

type Slot = { raw: CborValue } | { leaf: Uint8Array };

function slotsOf(a: EntriesAnswer): Slot[] {
  const readable = [...a.entries];
  const out: Slot[] = [];
  for (let i = a.from, w = 0; i < a.from + a.entries.length + a.withheld.length; i++) {
    const held = a.withheld[w];
    if (held !== undefined && held.index === i) {
      out.push({ leaf: held.leaf });
      w += 1;
    } else out.push({ raw: readable.shift() as CborValue });
  }
  return out;
}

function answerOf(from: number, slots: Slot[]): EntriesAnswer {
  return {
    kind: "entries",
    from,
    entries: slots.flatMap((s) => ("raw" in s ? [s.raw] : [])),
    withheld: slots.flatMap((s, i) => ("leaf" in s ? [{ index: from + i, leaf: s.leaf }] : [])),
  };
}

const invented = (): Uint8Array => new Uint8Array(randomBytes(32));
const isReadable = (s: Slot | undefined): boolean => s !== undefined && "raw" in s;
const isWithheld = (s: Slot | undefined): boolean => s !== undefined && "leaf" in s;

/** One way of lying about a listing, applied to the page that holds slot `at`. */
export interface Tamper {
  name: string;
  /** What slot `at` must be for this lie (a readable entry, or a withheld one). */
  needs: "readable" | "withheld";
  alter: (slots: Slot[], k: number) => Slot[];
}

export const TAMPERS: readonly Tamper[] = [
  {
    // The readable entry at `at` dropped, the rest shifted down, a withheld leaf invented at the end.
    name: "an entry dropped (slots shifted, a withheld leaf invented)",
    needs: "readable",
    alter: (slots, k) => [...slots.slice(0, k), ...slots.slice(k + 1), { leaf: invented() }],
  },
  {
    // The readable entry at `at` and the next readable one change places: both genuine, signed.
    name: "an entry swapped for another genuine entry",
    needs: "readable",
    alter: (slots, k) => {
      const j = slots.findIndex((s, i) => i > k && isReadable(s));
      if (j < 0) throw new Error("no second readable entry in the page to swap with");
      const out = [...slots];
      [out[k], out[j]] = [out[j] as Slot, out[k] as Slot];
      return out;
    },
  },
  {
    name: "a withheld leaf altered",
    needs: "withheld",
    alter: (slots, k) => slots.map((s, i) => (i === k && "leaf" in s ? { leaf: Uint8Array.from(s.leaf, (b, n) => (n === 0 ? b ^ 1 : b)) } : s)),
  },
  {
    name: "a readable entry reported withheld with a wrong leaf",
    needs: "readable",
    alter: (slots, k) => slots.map((s, i) => (i === k ? { leaf: invented() } : s)),
  },
  {
    // A withheld slot inserted at `at`, the last slot of the page dropped to keep its length.
    name: "an extra slot inserted (the last one dropped)",
    needs: "readable",
    alter: (slots, k) => [...slots.slice(0, k), { leaf: invented() }, ...slots.slice(k, -1)],
  },
  {
    // One slot more than asked for, past the page's end.
    name: "an extra slot past the page",
    needs: "readable",
    alter: (slots) => [...slots, { leaf: invented() }],
  },
];

/** `tamper` applied to the `entries` answer holding slot `at` (others pass unchanged). */
export function lie(tamper: Tamper, at: number): (a: EntriesAnswer) => EntriesAnswer {
  return (a) => {
    const slots = slotsOf(a);
    const k = at - a.from;
    if (k < 0 || k >= slots.length) return a;
    if (!(tamper.needs === "readable" ? isReadable : isWithheld)(slots[k])) throw new Error(`slot ${at} is not ${tamper.needs}`);
    return answerOf(a.from, tamper.alter(slots, k));
  };
}
