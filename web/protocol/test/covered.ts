/** Vector files with a conformance test in this directory. */
export const COVERED: readonly string[] = ["identities.json", "ed25519_strict.json", "hpke.json", "policy.json", "consent.json", "dispute.json", "epoch.json", "messages.json", "release.json", "wire.json", "audit.json", "export.json", "signals.json", "open_token.json", "recovery.json", "attachments.json", "recovery_record.json"];
