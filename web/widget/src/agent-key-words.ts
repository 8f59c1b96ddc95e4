/**
 * Why the agent's key could not be checked, in plain words for the widget's alert: one short
 * reason per `UnconfirmedCode` that `checkAgentKey` reports. The code and the library's detail
 * are kept out of the sentence, in the alert's `title` and `data-code`, for a support request.
 */
import type { UnconfirmedCode } from "@sealdesk/client";

const WORDS: Record<UnconfirmedCode, string> = {
  bad_signature: "its signature does not verify",
  expired: "it has expired",
  invalid_validity: "its dates are not valid",
  wrong_org: "it is for another business",
  malformed: "it is damaged",
  relay_refused: "the relay did not give it",
  unexpected_answer: "the relay answered something else",
  other_name: "it names another agent",
  not_rekeyed: "it still names the key you started with",
};

/** The reason a check of the agent's certificate failed, as the alert says it. */
export function agentKeyReason(code: UnconfirmedCode): string {
  return WORDS[code];
}
