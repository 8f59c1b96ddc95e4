/**
 * Typed errors of the protocol library. Callers match on `code`, never on the message text,
 * as the Rust crate's callers match on `ProtocolError` variants.
 */

/** Every way a protocol operation can fail. */
export type ErrorCode =
  | "bad_length"
  | "bad_hex"
  | "bad_signature"
  | "weak_key"
  | "invalid_name"
  | "wrong_role"
  | "seal"
  | "open"
  | "decrypt"
  | "malformed"
  | "frame_too_large"
  | "unknown_version"
  | "trailing_bytes"
  | "out_of_range"
  | "recovery_code_checksum"
  | "recovery_code_character"
  | "recovery_code_length"
  | "recovery_code_kind"
  | "wrong_name"
  | "card_mismatch";

/** An error raised by the protocol library; `code` says which check failed. */
export class ProtocolError extends Error {
  /** Which check failed. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, detail?: string) {
    super(detail === undefined ? code : `${code}: ${detail}`);
    this.name = "ProtocolError";
    this.code = code;
  }
}
