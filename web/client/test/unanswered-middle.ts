/**
 * Test support for the Chromium suites of a send the relay does not answer (issue 22's last case,
 * `web/widget/test/send-unanswered.e2e.test.ts`, `web/console/test/send-unanswered.e2e.test.ts`):
 * the page's relay connections pass through the test (`relayInTheMiddle`), which can drop the
 * relay's answer to the page's next `send` (the relay stores the message; the page, after its
 * request timeout, closes that session and reconnects), or drop the page's next `send` itself
 * (never stored), and hold every connection the page opens from now on until released — so the
 * "not confirmed yet" state stands still to be looked at, and ends when the test says, with no
 * race left to timing; it can also cut the page's connection (`latest().close`). As `restore-wire.ts`'s `dropNextSendAnswer` does for the Node suites.
 * Only a text message is dropped (its header's kind, in the clear): a read receipt the page
 * sends meanwhile (`markRead`, a `send` too, under the same lock) goes and is answered.
 */
import type { Page } from "playwright-core";
import { relayInTheMiddle, type Frame, type Link } from "./chromium.js";
import { KINDS } from "@sealdesk/protocol";
import { requestKind } from "./tamper.js";

/** The page's connections as this suite's tests steer them (see the module docs). */
export interface UnansweredMiddle {
  /** Drops the relay's answer to the page's next text `send` (the relay still stores it). */
  dropNextAnswer(): void;
  /** Drops the page's next text `send` before the relay sees it (never stored, never answered). */
  dropNextSend(): void;
  /** Whether what was armed last happened (the answer or the send dropped). */
  readonly dropped: boolean;
  /** Holds the frames of every connection the page opens from now on, until `release`. */
  holdReconnect(): void;
  /** How many frames the held connections sent so far (the page is trying to reconnect). */
  readonly held: number;
  /** Lets the held frames go on, in order, and holds nothing more. */
  release(): void;
  /** The page's newest connection (`Link.close` cuts it, as a dropped network would). */
  latest(): Link;
}

/** Routes `page`'s relay connections through a `UnansweredMiddle`; call before the page opens the socket. */
export async function unansweredMiddle(page: Page): Promise<UnansweredMiddle> {
  let mode: "answer" | "send" | null = null;
  let dropId: { link: Link; id: unknown } | null = null;
  let holdFrom: number | null = null;
  let held: { frame: Frame; link: Link }[] = [];
  const m = {
    dropped: false,
    held: 0,
    // Armed again, `dropped` waits for this drop (not an earlier one of the suite's page).
    dropNextAnswer: () => void ((mode = "answer"), (m.dropped = false)),
    dropNextSend: () => void ((mode = "send"), (m.dropped = false)),
    holdReconnect: () => void (holdFrom = middle.links.length + 1),
    latest: () => middle.latest(),
    release: () => {
      const frames = held;
      holdFrom = null;
      held = [];
      for (const h of frames) h.link.toRelay(h.frame);
    },
  };
  const middle = await relayInTheMiddle(page, {
    toRelay: (frame, link) => {
      if (holdFrom !== null && link.n >= holdFrom) {
        held.push({ frame, link });
        m.held++;
        return [];
      }
      if (requestKind(frame) !== "send" || mode === null) return frame;
      const header = ((((frame.request as Frame).body as Frame).send as Frame).header as Frame | undefined) ?? {};
      // The header's kind as the wire carries it: its name (`envelopeToCbor`), or its code.
      if (header.kind !== "text" && header.kind !== KINDS.text) return frame;
      const was = mode;
      mode = null;
      if (was === "send") {
        m.dropped = true;
        return [];
      }
      dropId = { link, id: (frame.request as Frame).id };
      return frame;
    },
    toPage: (frame, link) => {
      const response = frame.response as Frame | undefined;
      if (dropId === null || response === undefined || dropId.link !== link || response.id !== dropId.id) return frame;
      dropId = null;
      m.dropped = true;
      return [];
    },
  });
  return m;
}

/**
 * The names of the records of `page`'s IndexedDB database `name` (the client's `IdbStore`), and
 * each record's bytes read as text, as they are at rest: to show that a text kept there is not
 * in the clear.
 */
export function storeRecords(page: Page, name: string): Promise<{ keys: string[]; values: string[] }> {
  return page.evaluate(async (db) => {
    const open = await new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open(db);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(new Error(`no database ${db}`));
    });
    const all = <T,>(r: IDBRequest<T>): Promise<T> => new Promise((resolve) => (r.onsuccess = () => resolve(r.result)));
    const records = open.transaction("records").objectStore("records");
    const keys = (await all(records.getAllKeys())).map(String);
    const values = (await all(records.getAll())).map((v: ArrayBuffer) => new TextDecoder().decode(v));
    open.close();
    return { keys, values };
  }, name);
}
