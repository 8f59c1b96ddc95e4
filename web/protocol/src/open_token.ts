/**
 * Open tokens (PROTOCOL §13.14): the master's certificate of a web server key, and the token
 * that key signs for a visitor and a customer key. Mirrors `protocol/src/open_token.rs`
 * (signed bytes, signature checks, the visitor key); the relay does the full check.
 */
import { Writer } from "./codec.js";
import { verifySignature } from "./keys.js";
import { OPEN_TOKEN, OPEN_TOKEN_VISITOR, WEB_KEY_CERT, WEB_KEY_REVOKE } from "./labels.js";

/** Longest visitor id, bytes. */
export const MAX_VISITOR_ID = 64;
/** Longest validity of an open token, seconds (24 h). */
export const MAX_OPEN_TOKEN_VALIDITY_SECS = 86_400;

/** The master's certificate of a web server key. */
export interface WebKeyCertificate {
  org: string;
  name: string;
  key: Uint8Array;
  issuedAt: number;
  expiresAt: number;
  signature: Uint8Array;
}

/** A web server's open token for one visitor and customer key. */
export interface OpenToken {
  org: string;
  visitor: Uint8Array;
  customer: Uint8Array;
  issuedAt: number;
  expiresAt: number;
  webKey: Uint8Array;
  signature: Uint8Array;
}

/** The bytes the master signs. */
export function webKeyCertificateSignedBytes(c: Omit<WebKeyCertificate, "signature">): Uint8Array {
  return Writer.withLabel(WEB_KEY_CERT).str(c.org).str(c.name).fixed(c.key).u64(c.issuedAt).u64(c.expiresAt).toBytes();
}

/** The master's revocation of a web server key: its certificates issued at or before `revokedAt` end. */
export interface WebKeyRevocation {
  org: string;
  key: Uint8Array;
  revokedAt: number;
  signer: Uint8Array;
  signature: Uint8Array;
}

/** The bytes the master signs to revoke a web key. */
export function webKeyRevocationSignedBytes(r: Omit<WebKeyRevocation, "signature">): Uint8Array {
  return Writer.withLabel(WEB_KEY_REVOKE).str(r.org).fixed(r.key).u64(r.revokedAt).fixed(r.signer).toBytes();
}

/** Checks a revocation's signature under the org master's key; throws `bad_signature`. */
export function checkWebKeyRevocation(r: WebKeyRevocation, masterKey: Uint8Array): void {
  verifySignature(masterKey, webKeyRevocationSignedBytes(r), r.signature, "web key revocation");
}

/** The bytes the web key signs. */
export function openTokenSignedBytes(t: Omit<OpenToken, "signature">): Uint8Array {
  return Writer.withLabel(OPEN_TOKEN).str(t.org).bytes(t.visitor).fixed(t.customer).u64(t.issuedAt).u64(t.expiresAt).fixed(t.webKey).toBytes();
}

/** Checks the certificate's signature under the org master's key; throws `bad_signature`. */
export function checkWebKeyCertificate(c: WebKeyCertificate, masterKey: Uint8Array): void {
  verifySignature(masterKey, webKeyCertificateSignedBytes(c), c.signature, "web key certificate");
}

/** Checks the token's signature under the web key it names; throws `bad_signature`. */
export function checkOpenTokenSignature(t: OpenToken): void {
  verifySignature(t.webKey, openTokenSignedBytes(t), t.signature, "open token");
}

/** The key the relay counts the visitor's opens under. */
export function visitorKey(t: Pick<OpenToken, "org" | "visitor">): Uint8Array {
  return Writer.withLabel(OPEN_TOKEN_VISITOR).str(t.org).bytes(t.visitor).sha256();
}
