/**
 * Test support: a WebSocket factory whose incoming frames pass through a function that may
 * change them in place or drop them — the hostile relay of the TypeScript client's tests.
 */
import { decodeFrame, encodeFrame, type CborValue } from "@sealdesk/protocol";
import type { SocketFactory, SocketLike } from "../src/index.js";

/** A decoded frame, as the tamper function sees it. */
export type Frame = { [k: string]: CborValue };

/** The variant name of an enum as CBOR carries it (`"watch_audit"`, `{ get_card: {…} }` → "get_card"), or undefined. */
export function variantOf(v: CborValue | undefined): string | undefined {
  if (typeof v === "string") return v;
  return v !== null && typeof v === "object" && !(v instanceof Uint8Array) && !Array.isArray(v) ? Object.keys(v)[0] : undefined;
}

/** The variant of a frame's request body (`watch_audit`, `get_card`…), or undefined if the frame is no request. */
export function requestKind(f: Frame): string | undefined {
  return variantOf((f.request as Frame | undefined)?.body);
}

/** The header of a `send` request's envelope (its sender, epoch, counter and kind in the clear), or undefined if the frame is no `send`. */
export function sendHeader(f: Frame): Frame | undefined {
  if (requestKind(f) !== "send") return undefined;
  return ((((f.request as Frame).body as Frame).send as Frame | undefined)?.header as Frame | undefined) ?? undefined;
}

/**
 * How a relay ends a connection, as the page is told it: the code and reason of the close
 * event, whatever the real connection's close said.
 */
export interface FakeClose {
  code: number;
  reason: string;
}

/**
 * A WebSocket whose incoming frames pass through `tamper`, which may change them in place, or
 * return `false` to drop the frame (a relay withholding a push). Outgoing frames pass through
 * `outgoing` (to count them): `false` closes the socket instead of sending (the connection lost);
 * a {@link FakeClose} closes it too, and the page's close event then carries that code and
 * reason (a relay refusing the frame, as an older relay closes on a request it does not know);
 * a promise holds the frame until it resolves (something else happens on the relay first: another
 * tab wins a race), and the frames sent after it wait behind it, in order (a rejected one closes
 * the socket instead).
 */
export function tampering(tamper: (frame: Frame) => boolean | void, outgoing?: (frame: Frame) => boolean | void | FakeClose | Promise<void>): SocketFactory {
  return (url) => {
    const ws = new WebSocket(url);
    let faked: FakeClose | undefined;
    /** Frame `d` sent as `outgoing` says; a promise when it is held. */
    const pass = (d: Uint8Array): Promise<void> | undefined => {
      const verdict = outgoing?.(decodeFrame(d) as Frame);
      if (verdict instanceof Promise) {
        return verdict.then(
          () => {
            if (ws.readyState === WebSocket.OPEN) ws.send(d);
          },
          () => ws.close(),
        );
      }
      if (verdict === false) ws.close();
      else if (typeof verdict === "object") {
        faked = verdict;
        ws.close();
      } else ws.send(d);
      return undefined;
    };
    /** Once a frame was held, every frame after it goes out behind it. */
    let held: Promise<void> | undefined;
    const s: SocketLike = {
      get binaryType() {
        return ws.binaryType;
      },
      set binaryType(v: string) {
        ws.binaryType = v as BinaryType;
      },
      get readyState() {
        return ws.readyState;
      },
      send: (d) => {
        held = held === undefined ? pass(d) : held.then(() => pass(d));
      },
      close: (c, r) => ws.close(c, r),
      onopen: null,
      onmessage: null,
      onclose: null,
      onerror: null,
    };
    ws.onopen = (e) => s.onopen?.(e);
    ws.onclose = (e) => s.onclose?.(faked ?? e);
    ws.onerror = (e) => s.onerror?.(e);
    ws.onmessage = (e) => {
      const frame = decodeFrame(new Uint8Array(e.data as ArrayBuffer)) as Frame;
      if (tamper(frame) === false) return;
      s.onmessage?.({ data: encodeFrame(frame).buffer });
    };
    return s;
  };
}
