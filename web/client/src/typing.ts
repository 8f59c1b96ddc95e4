/**
 * Typing indicators for the customer (PROTOCOL §9.7; the signals themselves are `signal.ts`):
 * when to send "typing" and "stopped" as the customer types (throttled: at most one "typing"
 * every `TYPING_RESEND_SECS` while typing goes on, one "stopped" after the last "typing"), and
 * how long the other side's "typing" shows without another one (`TYPING_SHOW_SECS`, as the
 * console shows it). Pure logic over a clock, so it is tested without a relay.
 */
import type { SignalKind } from "./signal.js";

/** How often "typing" is sent again while the customer keeps typing, in seconds. */
export const TYPING_RESEND_SECS = 3;
/** How long a "typing" received shows without another one, in seconds. */
export const TYPING_SHOW_SECS = 8;

/** Decides which signals the customer's keystrokes send. */
export class TypingThrottle {
  private lastTyping: number | null = null;

  /**
   * The customer typed at `now` (seconds); `empty`: the box is empty now. Returns the signal to
   * send, or null: "typing" at most once per `TYPING_RESEND_SECS`, "stopped" once when the box
   * is emptied after a "typing".
   */
  input(now: number, empty: boolean): SignalKind | null {
    if (empty) return this.stop();
    if (this.lastTyping !== null && now - this.lastTyping < TYPING_RESEND_SECS) return null;
    this.lastTyping = now;
    return "typing";
  }

  /** The customer sent or left the box: "stopped" if a "typing" is still showing, else null. */
  stop(): SignalKind | null {
    if (this.lastTyping === null) return null;
    this.lastTyping = null;
    return "stopped";
  }
}
