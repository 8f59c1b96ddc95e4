/**
 * `@sealdesk/client`: Sealdesk's client side in TypeScript over `@sealdesk/protocol` — typed
 * frames, a WebSocket session that reconnects, stores behind an interface, and the members of a
 * conversation over one shared base (`member.ts`): the customer (what the widget runs) and the
 * agent (what the console runs). No DOM here but `idb.ts` (IndexedDB, WebCrypto), which a page
 * imports; a page passes its Web Lock as the send lock (`send-lock.ts` is the default within one
 * realm).
 */
export * from "./frames.js";
export * from "./session.js";
export * from "./store.js";
export * from "./customer.js";
export * from "./customer-notices.js";
export * from "./customer-rights.js";
export * from "./customer-revocations.js";
export * from "./customer-consents.js";
export * from "./customer-uploads.js";
export * from "./customer-holes.js";
export * from "./customer-agent-key.js";
export * from "./customer-recovery.js";
export * from "./dates.js";
export * from "./consent-names.js";
export * from "./typing.js";
export * from "./summary.js";
export * from "./notice.js";
export * from "./notices-witness.js";
export * from "./member.js";
export * from "./send-lock.js";
export * from "./paging.js";
export * from "./agent.js";
export * from "./agent-log.js";
export * from "./signal.js";
export * from "./vault-import.js";
export * from "./attachment.js";
export { unreadableNote, UNREADABLE_RECORD } from "./audit-listing.js";
