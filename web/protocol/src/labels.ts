/**
 * Every domain-separation label of the protocol (PROTOCOL §2), mirroring `protocol/src/labels.rs`.
 * Each full label starts with `sealdesk/v1/`; HPKE purposes are the short strings.
 */

/** Signed bytes of an identity card. */
export const CARD = "sealdesk/v1/card";

/** Hash input of a key fingerprint. */
export const FINGERPRINT = "sealdesk/v1/fingerprint";

/** Signed bytes of an org policy. */
export const POLICY = "sealdesk/v1/policy";

/** Signed bytes of an agent certificate. */
export const AGENT_CERT = "sealdesk/v1/agent-cert";

/** Signed bytes of the relay authentication response. */
export const AUTH = "sealdesk/v1/auth";

/** Prefix of every HPKE `info` string. */
export const HPKE_INFO = "sealdesk/v1/hpke";

/** HPKE purpose: an epoch secret sealed to a member. */
export const SEAL_EPOCH_SECRET = "epoch-secret";

/** HPKE purpose: the master's escrow share. */
export const SEAL_MASTER_SHARE = "master-share";

/** HPKE purpose: a trustee's Shamir share of the escrow share. */
export const SEAL_TRUSTEE_SHARE = "trustee-share";

/** HPKE purpose: a trustee's share re-sealed to the master for one release request. */
export const SEAL_RELEASED_SHARE = "released-share";

/** HPKE purpose: an earlier epoch's secret handed over to a newly assigned agent. */
export const SEAL_HANDOFF = "handoff";

/** Signed bytes of an epoch record. */
export const EPOCH_RECORD = "sealdesk/v1/epoch-record";

/** Hash input of the commitment to an epoch secret `K`. */
export const EPOCH_COMMITMENT = "sealdesk/v1/epoch-commitment";

/** Hash input of an epoch record's id (used to chain epochs). */
export const EPOCH_RECORD_HASH = "sealdesk/v1/epoch-record-hash";

/** Signed bytes of a history hand-off record. */
export const HANDOFF = "sealdesk/v1/handoff";

/** HKDF salt prefix for everything derived from an epoch secret. */
export const EPOCH_SALT = "sealdesk/v1/epoch-salt";

/** HKDF info: the master's escrow share `s_M`. */
export const ESCROW_MASTER_SHARE = "sealdesk/v1/escrow/master-share";

/** HKDF info: Shamir polynomial coefficient `i`. */
export const ESCROW_COEFFICIENT = "sealdesk/v1/escrow/coefficient";

/** HKDF info: the HPKE `DeriveKeyPair` input for one escrow recipient. */
export const ESCROW_IKM = "sealdesk/v1/escrow/ikm";

/** HKDF info: a member's sending chain key. */
export const MESSAGE_CHAIN = "sealdesk/v1/msg/chain";

/** HKDF info: one message's key and nonce (44 bytes). */
export const MESSAGE_KEYS = "sealdesk/v1/msg/keys";

/** Hash input of a message's key-commitment tag. */
export const MESSAGE_COMMITMENT = "sealdesk/v1/msg/commitment";

/** Associated-data prefix of a message body (the header follows). */
export const MESSAGE_AAD = "sealdesk/v1/msg/aad";

/** Signed bytes of a message (header and ciphertext follow). */
export const MESSAGE_SIGNATURE = "sealdesk/v1/msg/signature";

/** Signed bytes of a consent token. */
export const CONSENT = "sealdesk/v1/consent";

/** Signed bytes of a consent revocation. */
export const CONSENT_REVOCATION = "sealdesk/v1/consent-revocation";

/** Signed bytes of a dispute ticket. */
export const DISPUTE_TICKET = "sealdesk/v1/dispute-ticket";

/** Hash input of a dispute ticket's hash (what arbiters sign). */
export const DISPUTE_TICKET_HASH = "sealdesk/v1/dispute-ticket-hash";

/** Signed bytes of an arbiter's decision on a ticket. */
export const ARBITER_DECISION = "sealdesk/v1/arbiter-decision";

/** Signed bytes of the master's closing of a dispute ticket. */
export const DISPUTE_CLOSE = "sealdesk/v1/dispute-close";

/** Signed bytes of a release request. */
export const RELEASE_REQUEST = "sealdesk/v1/release-request";

/** Hash input of a release request's hash (bound into the released share's HPKE `info`). */
export const RELEASE_REQUEST_HASH = "sealdesk/v1/release-request-hash";

/** Signed bytes of a trustee's released share. */
export const RELEASED_SHARE = "sealdesk/v1/released-share";

/** Signed bytes of an erasure request. */
export const ERASURE_REQUEST = "sealdesk/v1/erasure-request";

/** Signed bytes of an audit-log entry. */
export const AUDIT_ENTRY = "sealdesk/v1/audit-entry";

/** Signed bytes of a signed tree head. */
export const TREE_HEAD = "sealdesk/v1/tree-head";

/** Signed bytes of a witness's cosignature on a tree head. */
export const COSIGNATURE = "sealdesk/v1/cosignature";

/** Signed bytes of the master's end marker over an exported transcript. */
export const TRANSCRIPT_END = "sealdesk/v1/transcript-end";

/** Hash input of a hand-off record in the master's end marker over an exported transcript. */
export const TRANSCRIPT_HANDOFF = "sealdesk/v1/transcript-handoff";

/** HKDF info: a member's key for ephemeral signals (typing) in an epoch. */
export const SIGNAL_KEY = "sealdesk/v1/signal/key";

/** Associated-data prefix of an ephemeral signal's body (the header follows). */
export const SIGNAL_AAD = "sealdesk/v1/signal/aad";

/** Signed bytes of an ephemeral signal (header and ciphertext follow). */
export const SIGNAL_SIGNATURE = "sealdesk/v1/signal/signature";

/** Signed bytes of an agent's or the master's block of a customer for an org. */
export const BLOCK = "sealdesk/v1/block";

/** Signed bytes of the master's unblock of a customer for an org. */
export const UNBLOCK = "sealdesk/v1/unblock";

/** Signed bytes of the master's certificate of a web server key. */
export const WEB_KEY_CERT = "sealdesk/v1/web-key-cert";

/** Signed bytes of the master's revocation of a web server key. */
export const WEB_KEY_REVOKE = "sealdesk/v1/web-key-revoke";

/** Signed bytes of an open token (signed by a certified web server key). */
export const OPEN_TOKEN = "sealdesk/v1/open-token";

/** Hash input of the key an open token's visitor's limits are counted under. */
export const OPEN_TOKEN_VISITOR = "sealdesk/v1/open-token-visitor";

/** Hash input of a recovery code's checksum (the code's payload follows). */
export const RECOVERY_CODE_CHECKSUM = "sealdesk/v1/recovery-code/checksum";

/** HKDF salt of the identity keys derived from a recovery code. */
export const RECOVERY_CODE_SALT = "sealdesk/v1/recovery-code/salt";

/** HKDF info of the identity keys derived from a recovery code. */
export const RECOVERY_CODE_IDENTITY = "sealdesk/v1/recovery-code/identity";

/** HKDF info of the AES-256-GCM key of a recovery record, from a replaceable code. */
export const RECOVERY_RECORD_KEY = "sealdesk/v1/recovery-record/key";

/** HKDF info of the proof a replaceable code shows the relay to fetch its record. */
export const RECOVERY_RECORD_PROOF = "sealdesk/v1/recovery-record/proof";

/** Hash input of a recovery record's verifier (the proof follows). */
export const RECOVERY_RECORD_VERIFIER = "sealdesk/v1/recovery-record/verifier";

/** Associated data of a recovery record's sealed keys (the name and the verifier follow). */
export const RECOVERY_RECORD_AAD = "sealdesk/v1/recovery-record/aad";

/** HKDF info: the AES-256-GCM key of an attachment's chunks, from its random key (the attachment id follows). */
export const ATTACHMENT_KEY = "sealdesk/v1/attachment/key";

/** Associated-data prefix of an attachment chunk (attachment id, chunk index and the final flag follow). */
export const ATTACHMENT_AAD = "sealdesk/v1/attachment/aad";
