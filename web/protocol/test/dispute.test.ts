/** `dispute.json`: ticket, its hash, arbiter decisions and the approvers. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { approvers, decisionSignedBytes, ticketHash, ticketSignedBytes, verifyDecision, verifyTicket } from "../src/release.js";
import { decisionsOf, flip, keysOf, signingKeyOf, ticketOf, vectorPolicy } from "./fixtures.js";
import type { Json } from "./vectors.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("dispute.json");



describe("dispute.json", () => {
  const policy = vectorPolicy();
  const ticket = ticketOf(v.ticket);
  const decisions = decisionsOf(v.decisions, ticket);
  it("ticket signed bytes, signature and hash", () => {
    expect(toHex(ticketSignedBytes(ticket))).toBe(v.ticket.signed_bytes);
    expect(toHex(keysOf(v.ticket.master).sign(ticketSignedBytes(ticket)))).toBe(v.ticket.signature);
    expect(toHex(ticketHash(ticket))).toBe(v.ticket.hash);
    expect(verifyTicket(ticket, policy)).toBe(ticket);
    expect(() => verifyTicket({ ...ticket, reason: "x" }, policy)).toThrowError(/bad_signature/);
    expect(() => verifyTicket({ ...ticket, org: "other" }, policy)).toThrowError(/wrong_org/);
  });
  it("a ticket bound to its epoch records: the records are signed", () => {
    const bound = ticketOf(v.bound_ticket);
    expect(bound.records?.length).toBe(1);
    expect(toHex(ticketSignedBytes(bound))).toBe(v.bound_ticket.signed_bytes);
    expect(toHex(ticketHash(bound))).toBe(v.bound_ticket.hash);
    expect(verifyTicket(bound, policy)).toBe(bound);
    const other = (bound.records ?? []).map((r) => ({ epoch: r.epoch, hash: flip(r.hash) }));
    expect(() => verifyTicket({ ...bound, records: other }, policy)).toThrowError(/bad_signature/);
    expect(() => verifyTicket({ ...bound, records: [] }, policy)).toThrowError(/bad_signature/);
  });
  it("decisions signed bytes and signatures", () => {
    v.decisions.forEach((d: Json, i: number) => {
      const dec = decisions[i];
      if (dec === undefined) throw new Error("decision");
      expect(toHex(decisionSignedBytes(dec))).toBe(d.signed_bytes);
      expect(toHex(keysOf(d.arbiter).sign(decisionSignedBytes(dec)))).toBe(d.signature);
      expect(verifyDecision(dec, ticket, policy)).toBe(dec);
    });
  });
  it("approvers are exactly the vector's; forged and non-arbiter decisions do not count", () => {
    expect(approvers(ticket, decisions, policy).map(toHex)).toEqual((v.approvers as string[]).map((n) => toHex(signingKeyOf(n))));
    const [first] = decisions;
    if (first === undefined) throw new Error("decision");
    const forged = { ...first, signature: flip(first.signature) };
    const byMaster = { ...first, arbiter: policy.master.signingKey, signature: keysOf("acme-master").sign(decisionSignedBytes({ ...first, arbiter: policy.master.signingKey })) };
    const dup = [first, first, forged, byMaster];
    expect(approvers(ticket, dup, policy).length).toBe(1);
    expect(() => verifyDecision(byMaster, ticket, policy)).toThrowError(/not_an_arbiter/);
  });
});
