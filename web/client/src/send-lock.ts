/**
 * The send lock a member takes when its host passes none (`MemberOptions.withSendLock`): one per
 * `Store` object in this JavaScript realm, so every `Customer`, `Agent` and `recoverAccount` on
 * one store — two instances in one Node process, or two sends of one instance started at once —
 * runs its sends one at a time, in the order they asked.
 *
 * Why a lock at all: a counter is read and written back as two store operations
 * (`takeCounter`), so two sends interleaved there would seal two messages under one counter —
 * one key and nonce for two plaintexts, seen by the relay before it refuses the second
 * (`counter_reused`). And since the lock is held from the counter's reservation to the relay's
 * answer, no send of the store can be overtaken at the relay by a later counter of the same
 * store (ARCHITECTURE.md, the send lock invariant under "Browser").
 *
 * It cannot reach beyond this realm: the tabs of a browser pass a Web Lock instead (the widget
 * and the console do), and two processes sharing one persistent store need a lock of their own.
 */
import type { Store } from "./store.js";

/** Runs `f` holding a send lock. */
export type SendLock = <T>(f: () => Promise<T>) => Promise<T>;

/** The locks of the stores seen: a store no longer used is collected with its lock. */
const LOCKS = new WeakMap<Store, SendLock>();

/**
 * The send lock of `store` in this realm (the same function for every caller with this store):
 * callers run one at a time, in the order they asked; one that fails lets the next go on.
 * Not reentrant, like a Web Lock: `f` must not take it again.
 */
export function storeSendLock(store: Store): SendLock {
  const known = LOCKS.get(store);
  if (known !== undefined) return known;
  const lock = oneAtATime();
  LOCKS.set(store, lock);
  return lock;
}

/**
 * A new lock of this realm: callers run one at a time, in the order they asked; one that fails
 * lets the next go on. Not reentrant. The store's send lock is one; `SequenceHoles` keeps one
 * for its refetches.
 */
export function oneAtATime(): SendLock {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(f: () => Promise<T>): Promise<T> => {
    const run = tail.then(f);
    tail = run.catch(() => undefined);
    return run;
  };
}
