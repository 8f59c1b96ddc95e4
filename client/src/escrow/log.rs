//! The audit log as this account checks it: tree heads (signature, consistency with the head
//! pinned before), inclusion proofs, witnesses and their cosignatures, the allowed signers,
//! and paging entries (those this account may not read come withheld: [`LogSlot`]).

use sealdesk_protocol::{
    audit::{
        AllowedSigners, AuditEntry, ConsistencyProof, Cosignature, LogError, SignedTreeHead,
        WITNESS_FRESHNESS_SECS, WithheldEntry, witnesses_needed,
    },
    card::Role,
    ids::ConversationId,
    keys::SigningPublicKey,
    wire::{Request, Response},
};

use super::ENTRIES_PAGE;
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::now;
use crate::reply::{expect_ok, is_transient, unexpected};

impl Client {
    /// Fetches the relay's tree head, checks its signature against the pinned log key and its
    /// consistency with the head pinned last time, and pins it. A rewritten, truncated or
    /// forked log fails here.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] (`Merkle`, `BadSignature`) on a bad log; relay errors.
    pub async fn checked_tree_head(&mut self) -> Result<(SignedTreeHead, Option<bool>)> {
        let head = match self.session.request(Request::GetTreeHead).await? {
            Response::TreeHead(h) => h,
            other => return Err(unexpected("GetTreeHead", &other)),
        };
        let consistent = self.pin_head(&head).await?;
        Ok((head, consistent))
    }

    /// Checks `head`'s signature against the pinned log key and its consistency with the head
    /// pinned before (kept durably in the vault), then pins it. Returns whether there was an
    /// earlier head to compare with.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] (`Merkle`, `BadSignature`) on a bad log; relay errors.
    pub(super) async fn pin_head(&mut self, head: &SignedTreeHead) -> Result<Option<bool>> {
        head.verify(&self.session.welcome().log_key)?;
        let pinned: Option<SignedTreeHead> = self.account.store().audit_head()?;
        let mut consistent = None;
        if let Some(old) = &pinned {
            if head.size < old.size {
                return Err(sealdesk_protocol::Error::Merkle(format!(
                    "the audit log shrank from {} to {} entries since you last looked: the relay \
                     rewrote or truncated it",
                    old.size, head.size
                ))
                .into());
            }
            if head.size == old.size {
                if head.root != old.root {
                    return Err(sealdesk_protocol::Error::Merkle(
                        "the audit log has a different root at the same size: the relay forked it"
                            .into(),
                    )
                    .into());
                }
            } else if old.size > 0 {
                let proof = match self
                    .session
                    .request(Request::GetConsistency {
                        old: old.size,
                        new: head.size,
                    })
                    .await?
                {
                    Response::Consistency(p) => p,
                    other => return Err(unexpected("GetConsistency", &other)),
                };
                check_consistency(&proof, old, head)?;
            }
            consistent = Some(true);
        }
        self.account.store().put_audit_head(head)?;
        Ok(consistent)
    }

    /// The appender's check (DESIGN.md §4 "Witnesses"): the relay answered an append of
    /// `entry` with `Appended { index, head }`. Before the caller acts on it (a trustee sending
    /// its share, a customer being told "revoked"), prove that `head` is signed by the log key,
    /// extends the last head this account saw, and includes `entry` at `index`. A relay that
    /// answers with an older genuine head without appending fails here, whatever key it holds.
    ///
    /// # Errors
    /// [`LogError::NotAppended`] if the head cannot hold the entry, [`LogError::NotIncluded`]
    /// if the log does not prove it; transport errors as they are.
    pub async fn confirm_appended(
        &mut self,
        entry: &AuditEntry,
        index: u64,
        head: &SignedTreeHead,
    ) -> Result<()> {
        if index >= head.size {
            return Err(log_error(LogError::NotAppended {
                index,
                size: head.size,
            }));
        }
        let checked = match self.pin_head(head).await {
            Ok(_) => self.check_inclusion(entry, index, head).await,
            Err(e) => Err(e),
        };
        match checked {
            Ok(()) => Ok(()),
            Err(e) if is_transient(&e) => Err(e),
            Err(e) => Err(log_error(LogError::NotIncluded {
                index,
                reason: e.to_string(),
            })),
        }
    }

    /// Checks that the tree `head` describes extends the tree of `old_size` entries with root
    /// `old_root` (a proof from the relay when the sizes differ).
    ///
    /// # Errors
    /// [`ClientError::Protocol`] (`Merkle`) if it does not; relay errors.
    pub(super) async fn check_extends(
        &self,
        old_size: u64,
        old_root: &[u8; 32],
        head: &SignedTreeHead,
    ) -> Result<()> {
        let merkle_error = |m: String| ClientError::Protocol(sealdesk_protocol::Error::Merkle(m));
        if head.size < old_size {
            return Err(merkle_error(format!(
                "the log shrank from {old_size} to {} entries",
                head.size
            )));
        }
        if head.size == old_size {
            return if head.root == *old_root {
                Ok(())
            } else {
                Err(merkle_error(format!(
                    "another root at the same size ({old_size}): a forked log"
                )))
            };
        }
        if old_size == 0 {
            return Ok(());
        }
        let proof = match self
            .session
            .request(Request::GetConsistency {
                old: old_size,
                new: head.size,
            })
            .await?
        {
            Response::Consistency(p) => p,
            other => return Err(unexpected("GetConsistency", &other)),
        };
        if proof.old != old_size || proof.new != head.size {
            return Err(merkle_error("consistency proof for other sizes".into()));
        }
        let path: Vec<[u8; 32]> = proof.path.iter().map(|h| **h).collect();
        sealdesk_protocol::merkle::verify_consistency(
            old_size, head.size, old_root, &head.root, &path,
        )
        .map_err(|e| merkle_error(e.to_string()))
    }

    /// The log's head as the witnesses of `org` vouch for it (DESIGN.md §4 "Witnesses"): the
    /// relay's head, signed by the pinned log key and consistent with the pinned head, carrying
    /// cosignatures of at least `n_e − t_e + 1` trustees of the org's current policy, each dated
    /// within [`WITNESS_FRESHNESS_SECS`] and each on a head that this one extends. Any `t_e`
    /// trustees that released share one of those witnesses, who cosigned only a log holding its
    /// own entry; so a head accepted here cannot hide a release older than the bound. Pins the
    /// head; returns it with the number of witnesses that vouched.
    ///
    /// # Errors
    /// [`LogError::TooFewCosignatures`] (also for cosignatures too old: a frozen view),
    /// [`LogError::SplitView`] if a trustee cosigned a log this head does not extend; a bad
    /// log and relay errors as [`Client::checked_tree_head`].
    pub async fn witnessed_head(&mut self, org: &str) -> Result<(SignedTreeHead, usize)> {
        self.witnessed_head_covering(org, 0).await
    }

    /// [`Client::witnessed_head`], counting only the cosignatures on heads of at least
    /// `covering` entries: those whose witnesses saw the first `covering` entries of the log
    /// (`witnessed_entry` asks for a quorum that saw one entry). Every fresh cosignature, on
    /// any size, must still be on a head the served one extends.
    ///
    /// # Errors
    /// As [`Client::witnessed_head`].
    pub(crate) async fn witnessed_head_covering(
        &mut self,
        org: &str,
        covering: u64,
    ) -> Result<(SignedTreeHead, usize)> {
        let wh = match self
            .session
            .request(Request::GetWitnessedHead {
                org: org.to_owned(),
            })
            .await?
        {
            Response::WitnessedHead(w) => w,
            other => return Err(unexpected("GetWitnessedHead", &other)),
        };
        self.pin_head(&wh.head).await?;
        let policy = self.latest_policy(org).await?;
        let trustees: Vec<SigningPublicKey> =
            policy.trustees.iter().map(|c| c.signing_key).collect();
        let need = witnesses_needed(trustees.len(), usize::from(policy.trustee_threshold));
        let count = wh.fresh_cosignatures(&trustees, now(), WITNESS_FRESHNESS_SECS);
        for c in &count.fresh {
            match self.check_extends(c.size, &c.root, &wh.head).await {
                Ok(()) => {}
                Err(e) if is_transient(&e) => return Err(e),
                Err(_) => {
                    return Err(log_error(LogError::SplitView {
                        cosigned: c.size,
                        served: wh.head.size,
                    }));
                }
            }
        }
        let have = count.fresh.iter().filter(|c| c.size >= covering).count();
        if have < need {
            return Err(log_error(LogError::TooFewCosignatures {
                org: org.to_owned(),
                have,
                stale: count.stale,
                need,
                bound_secs: WITNESS_FRESHNESS_SECS,
            }));
        }
        Ok((wh.head, have))
    }

    /// Trustee: witnesses the log once (DESIGN.md §4 "Witnesses"). Fetches the relay's head,
    /// checks it like any head (signature, consistency with the last head seen) and that it
    /// extends the last head this trustee cosigned (kept durably in the vault), records it as
    /// cosigned, then cosigns it and hands the cosignature to the relay. A trustee that never
    /// cosigns two heads of which one does not extend the other cannot be part of two quorums
    /// for two histories.
    ///
    /// # Errors
    /// [`LogError::NotAnExtension`] for a rolled-back or forked log; relay errors.
    pub async fn witness_cosign(&mut self) -> Result<Cosignature> {
        self.account.require(Role::Trustee, "trustee cosign")?;
        let last: Option<SignedTreeHead> = self.account.store().witness_head()?;
        let head = match self.checked_tree_head().await {
            Ok((head, _)) => match &last {
                Some(old) => self
                    .check_extends(old.size, &old.root, &head)
                    .await
                    .map(|()| head),
                None => Ok(head),
            },
            Err(e) => Err(e),
        };
        let head = match head {
            Ok(h) => h,
            Err(e) if is_transient(&e) => return Err(e),
            Err(e) => {
                return Err(log_error(LogError::NotAnExtension {
                    old: last.as_ref().map_or(0, |h| h.size),
                    reason: e.to_string(),
                }));
            }
        };
        // Recorded before it leaves: a crash after sending must not let an older head be
        // cosigned next.
        self.account.store().put_witness_head(&head)?;
        let c = Cosignature::sign(self.account.keys(), &head, now());
        expect_ok(self.session.request(Request::Cosign(c.clone())).await?)?;
        Ok(c)
    }

    /// Who may sign entries about `conversation` in `org`, as this account knows them: the
    /// trustees and master of the org's latest policy, the conversation's customer (this
    /// account if it is the customer, else its pinned card), and the relay's pinned log key.
    ///
    /// # Errors
    /// Policy lookups (relay errors, a policy that fails its checks), storage errors.
    pub async fn allowed_signers(
        &mut self,
        org: Option<&str>,
        conversation: Option<ConversationId>,
    ) -> Result<AllowedSigners> {
        let mut allowed = AllowedSigners {
            log_key: Some(self.session.welcome().log_key),
            ..AllowedSigners::default()
        };
        let meta = match conversation {
            Some(c) => self.account.conversation(&c)?,
            None => None,
        };
        let org = org
            .map(str::to_owned)
            .or(meta.as_ref().map(|m| m.org.clone()));
        if let Some(org) = org {
            let policy = self.latest_policy(&org).await?;
            allowed.trustees = policy.trustees.iter().map(|c| c.signing_key).collect();
            allowed.master = Some(policy.master_key());
        }
        if let Some(m) = meta {
            allowed.customer = if self.account.role() == Role::Customer {
                Some(self.account.keys().signing_public())
            } else {
                self.account
                    .pins()?
                    .peers
                    .get(&m.customer)
                    .map(|p| p.card.signing_key)
            };
        }
        Ok(allowed)
    }

    /// Proves that `entry` is at `index` in the log described by `head`.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] (`Merkle`) if not; relay errors.
    pub async fn check_inclusion(
        &self,
        entry: &AuditEntry,
        index: u64,
        head: &SignedTreeHead,
    ) -> Result<()> {
        self.check_leaf_inclusion(&entry.leaf_hash(), index, head)
            .await
    }

    /// Proves that the entry with leaf hash `leaf` is at `index` in the log described by
    /// `head`.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] (`Merkle`) if not; relay errors.
    pub async fn check_leaf_inclusion(
        &self,
        leaf: &[u8; 32],
        index: u64,
        head: &SignedTreeHead,
    ) -> Result<()> {
        let proof = match self
            .session
            .request(Request::GetInclusion {
                index,
                size: head.size,
            })
            .await?
        {
            Response::Inclusion(p) => p,
            other => return Err(unexpected("GetInclusion", &other)),
        };
        if proof.index != index || proof.size != head.size {
            return Err(sealdesk_protocol::Error::Merkle(
                "inclusion proof for another index or tree size".into(),
            )
            .into());
        }
        let path: Vec<[u8; 32]> = proof.path.iter().map(|h| **h).collect();
        sealdesk_protocol::merkle::verify_inclusion(leaf, index, head.size, &path, &head.root)
            .map_err(|e| sealdesk_protocol::Error::Merkle(e.to_string()).into())
    }

    /// Every slot `from..size` of the log, in index order: the entries this account may read,
    /// and the others as the relay withheld them (their leaf hash only; PROTOCOL.md §12 "Who
    /// reads the log"). Each page must fill its range exactly, withheld slots included.
    ///
    /// # Errors
    /// [`ClientError::UnexpectedResponse`] for a page that does not fill the range asked for;
    /// [`ClientError::ImpossibleNumber`] for counts or indexes out of it; relay errors.
    pub(crate) async fn entries(&self, from: u64, size: u64) -> Result<Vec<LogSlot>> {
        let mut out = Vec::new();
        let mut at = from;
        while at < size {
            let limit =
                u32::try_from((size - at).min(u64::from(ENTRIES_PAGE))).unwrap_or(ENTRIES_PAGE);
            let (first, entries, withheld) = match self
                .session
                .request(Request::GetEntries { from: at, limit })
                .await?
            {
                Response::Entries {
                    from,
                    entries,
                    withheld,
                } => (from, entries, withheld),
                other => return Err(unexpected("GetEntries", &other)),
            };
            let page = slots(at, limit, first, entries, withheld)?;
            at =
                at.checked_add(page.len() as u64)
                    .ok_or_else(|| ClientError::ImpossibleNumber {
                        what: "audit log size",
                        detail: format!("entries from {at} run past the largest index"),
                    })?;
            out.extend(page);
        }
        Ok(out)
    }
}

/// One index of the log as this account was served it.
// Slots live in one vector per audit, most of them entries: boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogSlot {
    /// An entry this account may read.
    Entry(AuditEntry),
    /// An entry this account may not read: its leaf hash only.
    Withheld([u8; 32]),
}

impl LogSlot {
    /// The entry, if this account may read it.
    pub fn entry(&self) -> Option<&AuditEntry> {
        match self {
            LogSlot::Entry(e) => Some(e),
            LogSlot::Withheld(_) => None,
        }
    }

    /// The leaf hash (RFC 9162) of the entry in this slot.
    pub fn leaf_hash(&self) -> [u8; 32] {
        match self {
            LogSlot::Entry(e) => e.leaf_hash(),
            LogSlot::Withheld(h) => *h,
        }
    }
}

/// Merges a page of `Entries` asked from `at` with `limit` into slots: `entries` fill, in
/// order, the indexes that `withheld` does not name; together they must start at `at`, be at
/// least one and at most `limit`, with the withheld indexes strictly increasing inside the
/// page.
fn slots(
    at: u64,
    limit: u32,
    first: u64,
    entries: Vec<AuditEntry>,
    withheld: Vec<WithheldEntry>,
) -> Result<Vec<LogSlot>> {
    let n = entries.len().saturating_add(withheld.len());
    if first != at || n == 0 {
        return Err(ClientError::UnexpectedResponse(format!(
            "asked for audit entries from {at}, got {n} from {first}"
        )));
    }
    if n > limit as usize {
        return Err(ClientError::ImpossibleNumber {
            what: "number of audit entries",
            detail: format!("asked for at most {limit}, got {n}"),
        });
    }
    let mut out = Vec::with_capacity(n);
    let mut entries = entries.into_iter();
    let mut withheld = withheld.into_iter().peekable();
    for offset in 0..n as u64 {
        let index = at.saturating_add(offset);
        match withheld.peek() {
            Some(w) if w.index == index => {
                out.push(LogSlot::Withheld(*w.leaf));
                withheld.next();
            }
            _ => match entries.next() {
                Some(e) => out.push(LogSlot::Entry(e)),
                None => break,
            },
        }
    }
    if out.len() != n || withheld.next().is_some() {
        return Err(ClientError::ImpossibleNumber {
            what: "withheld audit entry index",
            detail: format!(
                "the withheld entries of the page of {n} from {at} are not inside it in order"
            ),
        });
    }
    Ok(out)
}

/// Whether `slots` (every slot of the log from 0, as [`Client::entries`] returns them) are
/// the leaves of the tree `head` describes: the served listing, withheld entries included, is
/// the whole log and nothing else.
pub(crate) fn slots_make_head(slots: &[LogSlot], head: &SignedTreeHead) -> bool {
    let leaves: Vec<[u8; 32]> = slots.iter().map(LogSlot::leaf_hash).collect();
    leaves.len() as u64 == head.size && sealdesk_protocol::merkle::root(&leaves) == head.root
}

/// A [`LogError`] as a client error.
pub(super) fn log_error(e: LogError) -> ClientError {
    ClientError::Protocol(sealdesk_protocol::Error::Audit(e))
}

/// Whether `e` is a relay's lie about the audit log (see [`LogError`]).
pub fn is_log_fault(e: &ClientError) -> bool {
    matches!(e, ClientError::Protocol(sealdesk_protocol::Error::Audit(_)))
}

pub(super) fn check_consistency(
    proof: &ConsistencyProof,
    old: &SignedTreeHead,
    new: &SignedTreeHead,
) -> Result<()> {
    proof.verify(old, new).map_err(|e| {
        ClientError::Protocol(sealdesk_protocol::Error::Merkle(format!(
            "the audit log is not an extension of the one you saw before (size {} → {}): {e}. \
             The relay rewrote or forked it; report this",
            old.size, new.size
        )))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use rand::SeedableRng;
    use sealdesk_protocol::{audit::AuditEvent, keys::IdentityKeys};

    use super::*;

    fn entry(n: u32) -> AuditEntry {
        let keys = IdentityKeys::generate(&mut rand::rngs::ChaCha20Rng::from_seed([9; 32]));
        AuditEntry::sign(
            &keys,
            AuditEvent::PolicyChange {
                org: "acme".into(),
                version: n,
                policy_hash: [0; 32],
            },
            100,
        )
    }

    #[test]
    fn a_page_merges_withheld_slots_in_place_and_refuses_them_outside_it() {
        let (a, b, hidden) = (entry(1), entry(2), entry(3));
        let page = slots(
            10,
            5,
            10,
            vec![a.clone(), b.clone()],
            vec![WithheldEntry::of(11, &hidden)],
        )
        .unwrap();
        assert_eq!(
            page,
            vec![
                LogSlot::Entry(a.clone()),
                LogSlot::Withheld(hidden.leaf_hash()),
                LogSlot::Entry(b.clone()),
            ]
        );
        // A withheld index outside the page, or out of order: refused, never mis-placed.
        for withheld in [
            vec![WithheldEntry::of(13, &hidden)],
            vec![WithheldEntry::of(9, &hidden)],
            vec![
                WithheldEntry::of(11, &hidden),
                WithheldEntry::of(10, &hidden),
            ],
        ] {
            assert!(matches!(
                slots(10, 5, 10, vec![a.clone()], withheld),
                Err(ClientError::ImpossibleNumber { .. })
            ));
        }
        // More slots than asked for, or none.
        assert!(matches!(
            slots(
                10,
                1,
                10,
                vec![a.clone()],
                vec![WithheldEntry::of(11, &hidden)]
            ),
            Err(ClientError::ImpossibleNumber { .. })
        ));
        assert!(matches!(
            slots(10, 5, 10, Vec::new(), Vec::new()),
            Err(ClientError::UnexpectedResponse(_))
        ));
    }
}
