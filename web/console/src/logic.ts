/**
 * The console's logic that needs no page: the vault files picked out of what the agent chose,
 * what a failed unlock says, the org's policy in plain words for an agent, and the mark on an
 * agent's own line. Tested under Node (`test/logic.unit.test.ts`).
 */
import { VaultImportError, type AgentError, type AgentLine, type ConversationStatus, type ConversationView, type VaultFiles } from "@sealdesk/client";
import { cardFingerprint, formatFingerprint, type Policy } from "@sealdesk/protocol";

/** A chosen file, as much of the DOM `File` as this module reads. */
export interface PickedFile {
  readonly name: string;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/**
 * The three files the import reads, by name, from what the agent picked (in any order; a
 * directory upload gives paths, only the last segment counts). A missing one is
 * `missing_file`, naming it.
 */
export async function findVaultFiles(files: readonly PickedFile[]): Promise<VaultFiles> {
  const by = (name: string): PickedFile => {
    const f = files.find((x) => x.name.split("/").pop() === name);
    if (f === undefined) throw new VaultImportError("missing_file", name);
    return f;
  };
  const header = new TextDecoder().decode(await by("vault.json").arrayBuffer());
  return { header, identity: new Uint8Array(await by("identity.rec").arrayBuffer()), profile: new Uint8Array(await by("profile.rec").arrayBuffer()) };
}

/** What the unlock form says when the import fails. */
export function unlockFailureText(e: VaultImportError | AgentError): string {
  if (e instanceof VaultImportError) {
    switch (e.failure) {
      case "wrong_passphrase":
        return "Wrong passphrase: it is the one you type for sealdesk on the command line.";
      case "missing_file":
        return `Missing file: choose vault.json, records/identity.rec and records/profile.rec together (${e.message}).`;
      case "not_a_vault":
      case "unsupported_version":
        return `That is not a sealdesk vault this console reads (${e.message}).`;
      case "too_costly":
        return "The vault asks for more key-derivation work than a browser tab can do.";
      case "card_mismatch":
      case "corrupt":
        return `The vault's files do not belong together or are damaged (${e.message}).`;
    }
  }
  return `Not unlocked: ${e.message}`;
}

/** The org's escrow policy in plain words, for the agent answering under it. */
export function agentPolicySummary(p: Policy): string {
  const ways: string[] = [];
  if (p.allowConsent) ways.push("with the customer's signed consent");
  if (p.allowDispute) ways.push(`with a dispute ticket approved by ${p.arbiterThreshold} of ${p.arbiters.length} arbiters (${p.arbiters.map((a) => a.name).join(", ")})`);
  const opening = ways.length === 0 ? "never" : `only ${ways.join(", or ")}, and only if ${p.trusteeThreshold} of ${p.trustees.length} key trustees (${p.trustees.map((t) => t.name).join(", ")}) agree`;
  return (
    `Conversations are end-to-end encrypted: the relay cannot read them. The org's owner (${p.master.name}, ` +
    `fingerprint ${formatFingerprint(cardFingerprint(p.master))}) can open one ${opening}; the customer is told of every opening. ` +
    `${p.historyHandoff ? "An agent you transfer a conversation to reads its earlier messages." : "An agent you transfer a conversation to does not read its earlier messages."} ` +
    `Messages are deleted ${Math.floor(p.retentionSecs / 86_400)} days after a conversation ends.`
  );
}

/**
 * The 8-digit short id of a conversation (hex id), as the CLI shows it and takes it
 * (`--conversation`): what tells apart two conversations of customers with the same name.
 */
export function shortId(id: string): string {
  return id.slice(0, 8);
}

/** A conversation's title: its customer's name and short id, "visitor-3c1f · 9a0b12cd". */
export function conversationTitle(customer: string, id: string): string {
  return `${customer} · ${shortId(id)}`;
}

/** What a conversation's entry in the list adds to its accessible name: ", 2 unread messages", or nothing. */
export function unreadWords(unread: number): string {
  return unread === 0 ? "" : `, ${unread} unread ${unread === 1 ? "message" : "messages"}`;
}

/**
 * A conversation's status as the list says it, in the status menu's words: a bare "waiting"
 * read as a customer waiting for an answer, the opposite of what the agent set.
 */
export function statusWords(status: ConversationStatus): string {
  switch (status) {
    case "open":
      return "open";
    case "waiting":
      return "waiting for the customer";
    case "resolved":
      return "resolved";
  }
}

/** Where an agent's own message stands with the customer (PROTOCOL §9.5). */
export type LineMark = "sent" | "delivered" | "read";

/**
 * The mark on line `l` of conversation `v`: for a message this agent sent that the customer
 * reads — a text or a file —, "read" once the customer's end-to-end read receipt covers it,
 * "delivered" once the relay says the customer's device received it, else "sent" (stored by the
 * relay: it is a line only once stored). Null for the customer's lines, status changes and events.
 */
export function lineMark(l: AgentLine, v: Pick<ConversationView, "readByCustomer" | "deliveredToCustomer">): LineMark | null {
  if (!l.mine || (l.kind !== "text" && l.kind !== "attachment")) return null;
  if (l.seq <= v.readByCustomer) return "read";
  if (l.seq <= v.deliveredToCustomer) return "delivered";
  return "sent";
}
