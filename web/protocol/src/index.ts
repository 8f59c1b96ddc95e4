/**
 * `@sealdesk/protocol`: the sans-IO protocol core of Sealdesk in TypeScript (no DOM, no global
 * state; randomness and time are passed in). Mirrors the Rust crate `protocol/` module by module
 * and is held to it by the vectors in `protocol/vectors/`.
 */
export * from "./bytes.js";
export * as labels from "./labels.js";
export * from "./codec.js";
export * from "./errors.js";
export * from "./ed25519.js";
export * from "./keys.js";
export * from "./recovery.js";
export * from "./recovery_record.js";
export * from "./card.js";
export * from "./seal.js";
export * from "./secret.js";
export * from "./policy.js";
export * from "./release.js";
export * from "./shamir.js";
export * from "./epoch.js";
export * from "./handoff_chain.js";
export * from "./message.js";
export * from "./wire.js";
export * from "./merkle.js";
export * from "./audit.js";
export * from "./transcript.js";
export * from "./open_token.js";
