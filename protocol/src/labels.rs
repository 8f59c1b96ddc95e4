//! Every domain-separation string of the protocol, in one place.
//!
//! Each label begins with `sealdesk/v1/`, so the protocol version is inside everything that is
//! signed, sealed, hashed or derived, and no two message types can be confused: a signature made
//! over one kind of object never verifies as another, because the first bytes differ.
//! PROTOCOL.md lists the same strings; the known-answer vectors catch any drift.

/// Signed bytes of an identity card.
pub const CARD: &str = "sealdesk/v1/card";
/// Hash input of a key fingerprint.
pub const FINGERPRINT: &str = "sealdesk/v1/fingerprint";
/// Signed bytes of an org policy.
pub const POLICY: &str = "sealdesk/v1/policy";
/// Signed bytes of an agent certificate.
pub const AGENT_CERT: &str = "sealdesk/v1/agent-cert";
/// Signed bytes of the relay authentication response.
pub const AUTH: &str = "sealdesk/v1/auth";

/// Prefix of every HPKE `info` string.
pub const HPKE_INFO: &str = "sealdesk/v1/hpke";
/// HPKE purpose: an epoch secret sealed to a member.
pub const SEAL_EPOCH_SECRET: &str = "epoch-secret";
/// HPKE purpose: the master's escrow share.
pub const SEAL_MASTER_SHARE: &str = "master-share";
/// HPKE purpose: a trustee's Shamir share of the escrow share.
pub const SEAL_TRUSTEE_SHARE: &str = "trustee-share";
/// HPKE purpose: a trustee's share re-sealed to the master for one release request.
pub const SEAL_RELEASED_SHARE: &str = "released-share";
/// HPKE purpose: an earlier epoch's secret handed over to a newly assigned agent.
pub const SEAL_HANDOFF: &str = "handoff";

/// Signed bytes of an epoch record.
pub const EPOCH_RECORD: &str = "sealdesk/v1/epoch-record";
/// Hash input of the commitment to an epoch secret `K`.
pub const EPOCH_COMMITMENT: &str = "sealdesk/v1/epoch-commitment";
/// Hash input of an epoch record's id (used to chain epochs).
pub const EPOCH_RECORD_HASH: &str = "sealdesk/v1/epoch-record-hash";
/// Signed bytes of a history hand-off record.
pub const HANDOFF: &str = "sealdesk/v1/handoff";

/// HKDF salt prefix for everything derived from an epoch secret.
pub const EPOCH_SALT: &str = "sealdesk/v1/epoch-salt";
/// HKDF info: the master's escrow share `s_M`.
pub const ESCROW_MASTER_SHARE: &str = "sealdesk/v1/escrow/master-share";
/// HKDF info: Shamir polynomial coefficient `i`.
pub const ESCROW_COEFFICIENT: &str = "sealdesk/v1/escrow/coefficient";
/// HKDF info: the HPKE `DeriveKeyPair` input for one escrow recipient.
pub const ESCROW_IKM: &str = "sealdesk/v1/escrow/ikm";

/// HKDF info: a member's sending chain key.
pub const MESSAGE_CHAIN: &str = "sealdesk/v1/msg/chain";
/// HKDF info: one message's key and nonce (44 bytes).
pub const MESSAGE_KEYS: &str = "sealdesk/v1/msg/keys";
/// Hash input of a message's key-commitment tag.
pub const MESSAGE_COMMITMENT: &str = "sealdesk/v1/msg/commitment";
/// Associated-data prefix of a message body (the header follows).
pub const MESSAGE_AAD: &str = "sealdesk/v1/msg/aad";
/// Signed bytes of a message (header and ciphertext follow).
pub const MESSAGE_SIGNATURE: &str = "sealdesk/v1/msg/signature";

/// Signed bytes of a consent token.
pub const CONSENT: &str = "sealdesk/v1/consent";
/// Signed bytes of a consent revocation.
pub const CONSENT_REVOCATION: &str = "sealdesk/v1/consent-revocation";
/// Signed bytes of a dispute ticket.
pub const DISPUTE_TICKET: &str = "sealdesk/v1/dispute-ticket";
/// Hash input of a dispute ticket's hash (what arbiters sign).
pub const DISPUTE_TICKET_HASH: &str = "sealdesk/v1/dispute-ticket-hash";
/// Signed bytes of an arbiter's decision on a ticket.
pub const ARBITER_DECISION: &str = "sealdesk/v1/arbiter-decision";
/// Signed bytes of the master's closing of a dispute ticket.
pub const DISPUTE_CLOSE: &str = "sealdesk/v1/dispute-close";
/// Signed bytes of a release request.
pub const RELEASE_REQUEST: &str = "sealdesk/v1/release-request";
/// Hash input of a release request's hash (bound into the released share's HPKE `info`).
pub const RELEASE_REQUEST_HASH: &str = "sealdesk/v1/release-request-hash";
/// Signed bytes of a trustee's released share.
pub const RELEASED_SHARE: &str = "sealdesk/v1/released-share";
/// Signed bytes of an erasure request.
pub const ERASURE_REQUEST: &str = "sealdesk/v1/erasure-request";

/// Signed bytes of an audit-log entry.
pub const AUDIT_ENTRY: &str = "sealdesk/v1/audit-entry";
/// Signed bytes of a signed tree head.
pub const TREE_HEAD: &str = "sealdesk/v1/tree-head";
/// Signed bytes of a witness's cosignature on a tree head.
pub const COSIGNATURE: &str = "sealdesk/v1/cosignature";

/// Signed bytes of the master's end marker over an exported transcript.
pub const TRANSCRIPT_END: &str = "sealdesk/v1/transcript-end";
/// Hash input of a hand-off record in the master's end marker over an exported transcript.
pub const TRANSCRIPT_HANDOFF: &str = "sealdesk/v1/transcript-handoff";

/// HKDF info: a member's key for ephemeral signals (typing) in an epoch.
pub const SIGNAL_KEY: &str = "sealdesk/v1/signal/key";
/// Associated-data prefix of an ephemeral signal's body (the header follows).
pub const SIGNAL_AAD: &str = "sealdesk/v1/signal/aad";
/// Signed bytes of an ephemeral signal (header and ciphertext follow).
pub const SIGNAL_SIGNATURE: &str = "sealdesk/v1/signal/signature";

/// Signed bytes of an agent's or the master's block of a customer for an org.
pub const BLOCK: &str = "sealdesk/v1/block";
/// Signed bytes of the master's unblock of a customer for an org.
pub const UNBLOCK: &str = "sealdesk/v1/unblock";
/// Signed bytes of the master's certificate of a web server key.
pub const WEB_KEY_CERT: &str = "sealdesk/v1/web-key-cert";
/// Signed bytes of the master's revocation of a web server key.
pub const WEB_KEY_REVOKE: &str = "sealdesk/v1/web-key-revoke";
/// Signed bytes of an open token (signed by a certified web server key).
pub const OPEN_TOKEN: &str = "sealdesk/v1/open-token";
/// Hash input of the key an open token's visitor's limits are counted under.
pub const OPEN_TOKEN_VISITOR: &str = "sealdesk/v1/open-token-visitor";
/// Hash input of a recovery code's checksum (the code's payload follows).
pub const RECOVERY_CODE_CHECKSUM: &str = "sealdesk/v1/recovery-code/checksum";
/// HKDF salt of the identity keys derived from a recovery code.
pub const RECOVERY_CODE_SALT: &str = "sealdesk/v1/recovery-code/salt";
/// HKDF info of the identity keys derived from a recovery code.
pub const RECOVERY_CODE_IDENTITY: &str = "sealdesk/v1/recovery-code/identity";
/// HKDF info of the AES-256-GCM key that seals the identity keys in a recovery record
/// (from a replaceable recovery code).
pub const RECOVERY_RECORD_KEY: &str = "sealdesk/v1/recovery-record/key";
/// HKDF info of the proof a replaceable recovery code shows the relay to fetch its record.
pub const RECOVERY_RECORD_PROOF: &str = "sealdesk/v1/recovery-record/proof";
/// Hash input of the verifier the relay keeps for a recovery record's proof.
pub const RECOVERY_RECORD_VERIFIER: &str = "sealdesk/v1/recovery-record/verifier";
/// Associated-data prefix of a recovery record's sealed keys (the name and verifier follow).
pub const RECOVERY_RECORD_AAD: &str = "sealdesk/v1/recovery-record/aad";
/// HKDF info: the AES-256-GCM key of an attachment's chunks, from its random key (the
/// attachment id follows).
pub const ATTACHMENT_KEY: &str = "sealdesk/v1/attachment/key";
/// Associated-data prefix of an attachment chunk (attachment id, chunk index and the final
/// flag follow).
pub const ATTACHMENT_AAD: &str = "sealdesk/v1/attachment/aad";
