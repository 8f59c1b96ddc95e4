/**
 * What a policy means, in plain words, for a customer about to write the first message: the
 * same words as the Rust `VerifiedPolicy::summary` (`protocol/src/policy.rs`), so the widget and
 * the CLI tell a customer the same thing.
 */
import type { Policy } from "@sealdesk/protocol";

/** The policy in plain words. */
export function policySummary(p: Policy): string {
  const ways: string[] = [];
  if (p.allowConsent) ways.push("with your signed consent");
  if (p.allowDispute) {
    ways.push(`with a dispute ticket approved by ${p.arbiterThreshold} of these ${p.arbiters.length} independent arbiters: ${p.arbiters.map((a) => a.name).join(", ")}`);
  }
  const handoff = p.historyHandoff
    ? "If your chat is transferred, the new agent can read the earlier messages."
    : "If your chat is transferred, the new agent cannot read the earlier messages.";
  return (
    `Your chat with ${p.org} is end-to-end encrypted: the relay cannot read it. ${p.org}'s ` +
    `owner account (${p.master.name}) can open it only ${ways.join(", or ")}, and only if ${p.trusteeThreshold} of the ${p.trustees.length} ` +
    `independent key trustees (${p.trustees.map((t) => t.name).join(", ")}) agree. You will be told of every opening, and ` +
    `each one is recorded in a public audit log your app checks. ${handoff} Messages are ` +
    `deleted ${Math.floor(p.retentionSecs / 86_400)} days after the conversation ends. (Policy version ${p.version}.)`
  );
}
