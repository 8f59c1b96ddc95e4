//! The transparency log: [`AuditLog`] (the leaf hashes, its single-writer lock, tree heads and
//! proofs) and the requests over it — appending entries (with their release notices and
//! markers), reading entries (each only to who may read it: [`Service::may_read`]), inclusion
//! and consistency proofs, witnesses' cosignatures.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
};

use serde::{Deserialize, Serialize};
use tracing::warn;

use sealdesk_protocol::{
    audit::{
        AuditEntry, AuditEvent, ConsistencyProof, Cosignature, InclusionProof, SignedTreeHead,
        WithheldEntry, WitnessedHead, to_wire_path,
    },
    card::Role,
    ids::ConversationId,
    keys::{IdentityKeys, SigningPublicKey},
    merkle,
    wire::{ErrorCode, Item, Response},
};

use super::{
    Caller, Reject, Reply, Service,
    cluster::{MAX_AGAIN, until_stored},
    dec, enc,
    keys::{cosignature_key, erased_parties_key, release_marker_key},
    lock, reject, relay_fail_point,
    table::Appended,
};
use crate::relay::state::ConvState;
use crate::store::{Batch, Collection, Store, seq_from_key};

/// Most entries one `GetEntries` answers.
pub(super) const MAX_AUDIT_PAGE: usize = 256;

/// The audit log's leaf hashes, in memory (the entries are in `audit_leaves`). Its lock is
/// the log's single-writer rule: an entry's index is taken and its leaf stored under it.
///
/// Cluster mode: a leaf this node appended in a *staged* transaction (an entry with its notice
/// in a conversation, which the shared store commits with the next batch, or refuses then) is
/// *unsure* until its writer learns it was stored ([`Self::confirm`]). Only an unsure leaf can
/// differ from the store (every other leaf was committed when this node took it, or read
/// committed from the store), so [`Self::sync`] checks those, and [`Self::append`] settles them
/// (commits what is staged, then checks them) before it takes an index above them: a refused
/// leaf never has a leaf of this node stored on top of it, and the log is reloaded before
/// anything else uses it.
pub(super) struct AuditLog {
    /// A std Mutex: held for the synchronous store write of an append, never across an await.
    leaves: Mutex<Leaves>,
}

/// What [`AuditLog`]'s lock guards.
#[derive(Default)]
struct Leaves {
    /// The leaf hash of each entry, by index.
    hashes: Vec<merkle::Hash>,
    /// Cluster mode: the indices of this node's leaves the store may still refuse (see
    /// [`AuditLog`]). Empty on an engine only this node writes.
    unsure: BTreeSet<u64>,
}

impl Leaves {
    /// The first `size` leaf hashes, or the refusal of a size beyond the log.
    fn first(&self, size: u64, what: &str) -> Result<&[merkle::Hash], Reject> {
        usize::try_from(size)
            .ok()
            .and_then(|n| self.hashes.get(..n))
            .ok_or_else(|| Reject::new(ErrorCode::BadRequest, what.to_owned()))
    }

    /// Whether every unsure leaf is the one `store` holds at its index (staged or committed).
    /// One read per unsure leaf: none at all unless an entry with a notice is in flight.
    fn unsure_hold(&self, store: &dyn Store) -> crate::Result<bool> {
        for &at in &self.unsure {
            let stored = store.get(Collection::AuditLeaves, &at.to_be_bytes())?;
            let mine = usize::try_from(at).ok().and_then(|i| self.hashes.get(i));
            let same = stored
                .as_deref()
                .and_then(|v| {
                    sealdesk_protocol::wire::from_cbor::<AuditEntry>(v, "audit entry").ok()
                })
                .is_some_and(|e| Some(&e.leaf_hash()) == mine);
            if !same {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every leaf again from `store` (a leaf of this node was refused).
    fn reload(&mut self, store: &dyn Store) -> crate::Result<()> {
        warn!("this node's audit log differs from the shared store's; reloading it");
        *self = Leaves {
            hashes: AuditLog::load_hashes(store)?,
            unsure: BTreeSet::new(),
        };
        Ok(())
    }
}

/// The leaf hash of a stored entry, or [`crate::Error::Corrupt`] naming it.
fn stored_leaf(key: &[u8], value: &[u8]) -> crate::Result<merkle::Hash> {
    let entry: AuditEntry =
        sealdesk_protocol::wire::from_cbor(value, "audit entry").map_err(|_| {
            // Name the entry, so the operator knows which one (and that the log is at stake).
            let at = seq_from_key(key).map_or_else(|| "?".to_owned(), |i| i.to_string());
            crate::Error::Corrupt(format!("audit entry {at} (in the `audit_leaves` tree)"))
        })?;
    Ok(entry.leaf_hash())
}

impl AuditLog {
    /// Loads the leaf hashes of every stored entry.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] naming an entry that does not decode; storage errors.
    pub(super) fn load(store: &dyn Store) -> crate::Result<Self> {
        Ok(Self {
            leaves: Mutex::new(Leaves {
                hashes: Self::load_hashes(store)?,
                unsure: BTreeSet::new(),
            }),
        })
    }

    /// The leaf hash of every stored entry, in order.
    fn load_hashes(store: &dyn Store) -> crate::Result<Vec<merkle::Hash>> {
        store
            .scan_prefix(Collection::AuditLeaves, &[])?
            .iter()
            .map(|(k, v)| stored_leaf(k, v))
            .collect()
    }

    /// Cluster mode: brings the leaves up to what the shared store holds — the whole log again
    /// if one of this node's unsure leaves is not the stored one (the store refused it: another
    /// node took the index, or the notice's sequence number), then other nodes' entries after
    /// ours. Costs one range read, plus one read per unsure leaf (see [`AuditLog`]).
    ///
    /// # Errors
    /// As [`Self::load`].
    pub(super) fn sync(&self, store: &dyn Store) -> crate::Result<()> {
        let mut leaves = self
            .leaves
            .lock()
            .map_err(|_| crate::Error::Internal("the audit log's lock is poisoned".into()))?;
        if !leaves.unsure.is_empty() && !leaves.unsure_hold(store)? {
            return leaves.reload(store);
        }
        loop {
            let from = (leaves.hashes.len() as u64).to_be_bytes();
            let more = store.range_from(Collection::AuditLeaves, &from, MAX_AUDIT_PAGE)?;
            if more.is_empty() {
                return Ok(());
            }
            for (k, v) in more {
                leaves.hashes.push(stored_leaf(&k, &v)?);
            }
        }
    }

    /// How many entries the log holds.
    pub(super) fn len(&self) -> Result<u64, Reject> {
        Ok(lock(&self.leaves)?.hashes.len() as u64)
    }

    /// Appends `entry` under the single-writer lock: `store` writes it (and whatever goes
    /// with it) at the index it is given, then the leaf joins the log. Returns the index, the
    /// new tree head signed by `keys` at time `now`, and what `store` returned; `None`, the
    /// log unchanged, if `store` found the index taken (another relay node's entry: the
    /// caller syncs and appends again).
    ///
    /// In a cluster (`shared`: the shared store), unsure leaves are settled first (what is
    /// staged is committed, and a leaf refused reloads the log), so the index taken is above
    /// stored leaves only; a `staged` write (one the store decides when it commits the next
    /// batch) makes the new leaf unsure. Costs nothing more unless a leaf is unsure: then one
    /// commit of what is staged and one read per unsure leaf.
    pub(super) fn append<T>(
        &self,
        entry: &AuditEntry,
        keys: &IdentityKeys,
        now: u64,
        shared: Option<(&dyn Store, bool)>,
        store: impl FnOnce(u64) -> Result<Option<T>, Reject>,
    ) -> Result<Option<(u64, SignedTreeHead, T)>, Reject> {
        let mut leaves = lock(&self.leaves)?;
        if let Some((engine, _)) = shared
            && !leaves.unsure.is_empty()
        {
            engine.flush()?;
            if leaves.unsure_hold(engine)? {
                leaves.unsure.clear();
            } else {
                leaves.reload(engine)?;
            }
        }
        let index = leaves.hashes.len() as u64;
        let Some(stored) = store(index)? else {
            return Ok(None);
        };
        leaves.hashes.push(entry.leaf_hash());
        if shared.is_some_and(|(_, staged)| staged) {
            leaves.unsure.insert(index);
        }
        let head = SignedTreeHead::sign(
            keys,
            leaves.hashes.len() as u64,
            merkle::root(&leaves.hashes),
            now,
        );
        Ok(Some((index, head, stored)))
    }

    /// Leaf `index`, appended in a staged write, is stored (its writer's transaction
    /// committed): no longer unsure.
    pub(super) fn confirm(&self, index: u64) -> Result<(), Reject> {
        lock(&self.leaves)?.unsure.remove(&index);
        Ok(())
    }

    /// The current tree head, signed by `keys` at time `now`.
    pub(super) fn head(&self, keys: &IdentityKeys, now: u64) -> Result<SignedTreeHead, Reject> {
        let leaves = lock(&self.leaves)?;
        Ok(SignedTreeHead::sign(
            keys,
            leaves.hashes.len() as u64,
            merkle::root(&leaves.hashes),
            now,
        ))
    }

    /// Whether the log's first `size` leaves had root `root`.
    pub(super) fn had_root(&self, size: u64, root: &merkle::Hash) -> Result<bool, Reject> {
        let leaves = lock(&self.leaves)?;
        Ok(leaves
            .first(size, "")
            .is_ok_and(|first| merkle::root(first) == *root))
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub(super) fn inclusion(&self, index: u64, size: u64) -> Result<InclusionProof, Reject> {
        let leaves = lock(&self.leaves)?;
        let first = leaves.first(size, "index or size beyond the log")?;
        if index >= size {
            return reject(ErrorCode::BadRequest, "index or size beyond the log");
        }
        let path = merkle::inclusion_proof(first, index)
            .map_err(|e| Reject::new(ErrorCode::BadRequest, e.to_string()))?;
        Ok(InclusionProof {
            index,
            size,
            path: to_wire_path(path),
        })
    }

    /// The consistency proof from the tree of `old` leaves to the tree of `new`.
    pub(super) fn consistency(&self, old: u64, new: u64) -> Result<ConsistencyProof, Reject> {
        let leaves = lock(&self.leaves)?;
        let first = leaves.first(new, "sizes beyond the log")?;
        if old > new {
            return reject(ErrorCode::BadRequest, "sizes beyond the log");
        }
        let path = merkle::consistency_proof(first, old)
            .map_err(|e| Reject::new(ErrorCode::BadRequest, e.to_string()))?;
        Ok(ConsistencyProof {
            old,
            new,
            path: to_wire_path(path),
        })
    }
}

impl Service {
    pub(super) fn has_release_entry(
        &self,
        request_hash: &[u8; 32],
        signer: &SigningPublicKey,
    ) -> Result<bool, Reject> {
        Ok(self
            .store
            .get(Collection::Meta, &release_marker_key(request_hash, signer))?
            .is_some())
    }

    pub(super) async fn append_audit(&self, caller: &Caller, entry: AuditEntry) -> Reply {
        entry.verify()?;
        if entry.signer != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "entries must be signed by the account sending them",
            );
        }
        // A release notice another relay node's append refused is appended again (with the
        // leaf and marker of its transaction, none of which was stored): the trustee is
        // answered for the entry the log holds, and its release has its notice.
        until_stored(|| self.append_audit_once(caller, &entry)).await
    }

    /// One attempt of [`Self::append_audit`]: `None` if the store refused the entry's notice
    /// (nothing of the attempt was stored).
    async fn append_audit_once(
        &self,
        caller: &Caller,
        entry: &AuditEntry,
    ) -> Result<Option<Response>, Reject> {
        let mut marker = None;
        let notice_conv = match &entry.event {
            AuditEvent::Release {
                org,
                request_hash,
                conversation,
                ..
            } => {
                self.trustee_of(caller, org)?;
                if let Some(state) = self.convs.get(conversation)?
                    && state.org != *org
                {
                    return reject(
                        ErrorCode::Forbidden,
                        "the conversation is not in the org whose trustee you are",
                    );
                }
                marker = Some(release_marker_key(request_hash, &caller.key()));
                Some(*conversation)
            }
            AuditEvent::ConsentRevocation {
                conversation,
                consent,
            } => {
                self.check_revocation(caller, conversation, consent)?;
                None
            }
            AuditEvent::PolicyChange { org, .. } => {
                if self.policies.current(org)?.master_key() != caller.key() {
                    return reject(
                        ErrorCode::Forbidden,
                        "only the org's master logs policy changes",
                    );
                }
                None
            }
            AuditEvent::Erasure { .. } => {
                return reject(ErrorCode::Forbidden, "only the relay logs erasures");
            }
            AuditEvent::DisputeClosed { .. } => {
                return reject(
                    ErrorCode::Forbidden,
                    "only the relay logs dispute closes (`CloseTicket` asks for one)",
                );
            }
            // This relay does not know who may make it, nor who may read it.
            AuditEvent::Extension(_) => {
                return reject(
                    ErrorCode::Forbidden,
                    "an entry of a kind this relay does not define",
                );
            }
        };
        // The notice goes to the conversation in the same transaction as the leaf: a crash
        // can lose both, never the notice alone (a resuming trustee finds its entry and does
        // not append again, so a lost notice would be lost for good).
        // The same release entry sent again (its answer was lost): answered with the index
        // it holds, once durable, and not appended twice — one release, one entry, one notice
        // (stored with the entry in its transaction).
        if let Some(k) = &marker
            && let Some(index) = self.logged_already(k, entry)?
        {
            self.commit.durable().await?;
            let head = self.tree_head()?;
            return Ok(Some(Response::Appended { index, head }));
        }
        let notice_conv = match notice_conv {
            Some(c) => self
                .convs
                .get(&c)?
                .filter(|state| Some(&state.org) == entry_org(entry))
                .map(|_| c),
            None => None,
        };
        // Its index taken by another node's entry: synced, and appended again.
        let Some((index, head, notice)) = self.log_append(entry, marker, notice_conv)? else {
            return Ok(None);
        };
        self.commit.durable().await?;
        if let Some((item, _)) = &notice
            && self.item_refused(item, None)?
        {
            return Ok(None);
        }
        relay_fail_point("relay-after-audit-append");
        if let Some((item, audience)) = notice {
            self.push_item(&item, &audience, caller.origin());
        }
        Ok(Some(Response::Appended { index, head }))
    }

    /// The index of `entry` if the log holds it already, found by its release marker `marker`
    /// (the index its signer's release entry for the request was logged at).
    fn logged_already(&self, marker: &[u8], entry: &AuditEntry) -> Result<Option<u64>, Reject> {
        let Some(at) = self.store.get(Collection::Meta, marker)? else {
            return Ok(None);
        };
        let Ok(at) = <[u8; 8]>::try_from(at.as_slice()) else {
            return Ok(None);
        };
        let index = u64::from_be_bytes(at);
        let stored = self
            .store
            .get(Collection::AuditLeaves, &index.to_be_bytes())?
            .map(|b| dec::<AuditEntry>(&b, "audit entry"))
            .transpose()?;
        Ok((stored.as_ref() == Some(entry)).then_some(index))
    }

    /// Appends under the single-writer lock, with the entry's notice in conversation `notice`
    /// in the same transaction; returns the index, a fresh tree head and the stored notice
    /// with its audience.
    pub(super) fn log_append(
        &self,
        entry: &AuditEntry,
        marker: Option<Vec<u8>>,
        notice: Option<ConversationId>,
    ) -> Result<Option<(u64, SignedTreeHead, Option<Appended>)>, Reject> {
        self.log_append_with(entry, marker, |_| Ok(Batch::new()), notice)
    }

    /// Appends erasure entry `entry` of a conversation whose record was `erased` (if the
    /// relay had it), with its [`ErasedParties`] in the same transaction: the conversation's
    /// customer and org keep reading its entries once its record is gone.
    pub(super) fn log_erasure(
        &self,
        entry: &AuditEntry,
        erased: Option<&ConvState>,
    ) -> Result<(), Reject> {
        let extra = match erased {
            Some(s) => Batch::of_put(
                Collection::Meta,
                &erased_parties_key(&s.conversation),
                &enc(&ErasedParties {
                    org: s.org.clone(),
                    customer: s.customer,
                })?,
            ),
            None => Batch::new(),
        };
        // Its index taken by another node's entry: synced, and appended again.
        for _ in 0..MAX_AGAIN {
            if self
                .log_append_with(entry, None, |_| Ok(extra.clone()), None)?
                .is_some()
            {
                return Ok(());
            }
        }
        Err(log_index_taken())
    }

    /// [`Service::log_append`], with the records `extra` makes from the entry's index in the
    /// same transaction (conditional writes among them). `None`, nothing written, if the store
    /// refused the transaction at once: another relay node took the index (this node's log
    /// is synced at the next append) or changed a record `extra` writes conditionally; the
    /// caller reads again and appends again.
    pub(super) fn log_append_with(
        &self,
        entry: &AuditEntry,
        marker: Option<Vec<u8>>,
        extra: impl Fn(u64) -> Result<Batch, Reject>,
        notice: Option<ConversationId>,
    ) -> Result<Option<(u64, SignedTreeHead, Option<Appended>)>, Reject> {
        self.sync_log()?;
        // A notice's transaction is staged (decided when the batch commits): its leaf is
        // unsure until its writer learns it was stored (`Service::item_refused`).
        let shared = self
            .store_shared
            .then_some((self.store.as_ref(), notice.is_some()));
        let appended = self
            .log
            .append(entry, &self.keys, self.clock.now(), shared, |index| {
                let mut writes =
                    Batch::of_put(Collection::AuditLeaves, &index.to_be_bytes(), &enc(entry)?);
                if let Some(k) = &marker {
                    writes.put(Collection::Meta, k, &index.to_be_bytes());
                }
                writes.extend(extra(index)?);
                // A shared store refuses at once a leaf index another node took (synced,
                // the entry is appended again at the next index), or a record `extra`
                // writes conditionally that another node changed (`None` all the way up:
                // the caller reads it again). A notice's transaction is staged: refused
                // when it commits, its writer learns it from `Service::item_refused`.
                match notice {
                    Some(c) => Ok(self
                        .convs
                        .try_append_item_with(
                            &c,
                            None,
                            Item::Notice {
                                entry: entry.clone(),
                                index,
                            },
                            None,
                            writes,
                            |_| {},
                        )?
                        .map(Some)),
                    None => Ok(self.store.apply(writes)?.then_some(None)),
                }
            })?;
        if let Some(appended) = &appended {
            self.tell_audit_watchers(appended.1.size);
            // Test-only (`extension_hook`): nothing in a build without the test hooks.
            self.fill_extension_slot(appended.1.size)?;
        }
        Ok(appended)
    }

    /// Cluster mode: the audit log as the shared store holds it (see [`AuditLog::sync`]).
    pub(super) fn sync_log(&self) -> Result<(), Reject> {
        if self.store_shared {
            self.log.sync(self.store.as_ref())?;
        }
        Ok(())
    }

    pub(super) fn tree_head(&self) -> Result<SignedTreeHead, Reject> {
        self.sync_log()?;
        self.log.head(&self.keys, self.clock.now())
    }

    /// Entries `from..` (at most `limit`, at most [`MAX_AUDIT_PAGE`]): those `caller` may read
    /// ([`Service::may_read`]) in full, the others withheld as their leaf hash only.
    pub(super) fn entries(&self, caller: &Caller, from: u64, limit: u32) -> Reply {
        let limit = (limit as usize).clamp(1, MAX_AUDIT_PAGE);
        let mut entries = Vec::new();
        let mut withheld = Vec::new();
        let mut orgs = HashMap::new();
        for (k, v) in self
            .store
            .range_from(Collection::AuditLeaves, &from.to_be_bytes(), limit)?
        {
            let entry: AuditEntry = dec(&v, "audit entry")?;
            if self.may_read(caller, &entry, &mut orgs)? {
                entries.push(entry);
            } else {
                let index = seq_from_key(&k)
                    .ok_or_else(|| Reject::new(ErrorCode::Internal, "audit entry key".into()))?;
                withheld.push(WithheldEntry::of(index, &entry));
            }
        }
        Ok(Response::Entries {
            from,
            entries,
            withheld,
        })
    }

    /// Whether `caller` may read `entry` (PROTOCOL.md §12 "Who reads the log"): its signer;
    /// anyone for a policy change (it names only what the org publishes with its policy);
    /// for an entry about a conversation, the conversation's customer and the parties of its
    /// org ([`Service::org_party`]). The org and customer of a conversation come from its
    /// record, or once it is erased from the [`ErasedParties`] logged with its erasure; a
    /// release entry names its org itself. `orgs` caches [`Service::org_party`] per org.
    pub(super) fn may_read(
        &self,
        caller: &Caller,
        entry: &AuditEntry,
        orgs: &mut HashMap<String, bool>,
    ) -> Result<bool, Reject> {
        if entry.signer == caller.key() {
            return Ok(true);
        }
        let (org, conversation) = match &entry.event {
            AuditEvent::PolicyChange { .. } => return Ok(true),
            AuditEvent::Release {
                org, conversation, ..
            }
            | AuditEvent::DisputeClosed {
                org, conversation, ..
            } => (Some(org.clone()), *conversation),
            AuditEvent::ConsentRevocation { conversation, .. }
            | AuditEvent::Erasure { conversation, .. } => (None, *conversation),
            // This relay never appends one (`append_audit` refuses it): its signer alone —
            // but for the test hook's (`extension_hook`, test-hooks builds only), which every
            // registered account reads.
            AuditEvent::Extension(_) => return Ok(self.extension_hook.is_some()),
        };
        let parties = self.conversation_parties(&conversation)?;
        if parties.as_ref().is_some_and(|p| p.customer == caller.key()) {
            return Ok(true);
        }
        let Some(org) = org.or(parties.map(|p| p.org)) else {
            return Ok(false);
        };
        if let Some(known) = orgs.get(&org) {
            return Ok(*known);
        }
        let party = self.org_party(caller, &org)?;
        orgs.insert(org, party);
        Ok(party)
    }

    /// The org and customer of conversation `c`: from its record, or, once it is erased, from
    /// what its erasure logged.
    fn conversation_parties(&self, c: &ConversationId) -> Result<Option<ErasedParties>, Reject> {
        if let Some(s) = self.convs.get(c)? {
            return Ok(Some(ErasedParties {
                org: s.org,
                customer: s.customer,
            }));
        }
        self.store
            .get(Collection::Meta, &erased_parties_key(c))?
            .map(|b| dec(&b, "erased conversation"))
            .transpose()
    }

    /// Whether `caller` is a party of `org` under its current policy: its master, a trustee,
    /// an arbiter, or an agent it certified (a certificate that verifies now, for this card).
    fn org_party(&self, caller: &Caller, org: &str) -> Result<bool, Reject> {
        let Some(policy) = self.policies.get(org, None)? else {
            return Ok(false);
        };
        let me = caller.key();
        if policy.master_key() == me
            || policy.trustee_index(&me).is_some()
            || policy.arbiter(&me).is_some()
        {
            return Ok(true);
        }
        if caller.card.role != Role::Agent {
            return Ok(false);
        }
        Ok(self
            .certificate(org, &caller.card.name)?
            .and_then(|c| c.verify(&policy, self.clock.now()).ok())
            .is_some_and(|card| card.signing_key == me))
    }

    pub(super) fn inclusion(&self, index: u64, size: u64) -> Reply {
        self.sync_log()?;
        Ok(Response::Inclusion(self.log.inclusion(index, size)?))
    }

    pub(super) fn consistency(&self, old: u64, new: u64) -> Reply {
        self.sync_log()?;
        Ok(Response::Consistency(self.log.consistency(old, new)?))
    }

    /// Keeps a witness's cosignature, the latest per witness. The clients check everything
    /// that matters (the witness is a trustee of their org's policy, the head extends theirs);
    /// the relay checks, as defence in depth, that the caller signed it, is a trustee, and
    /// cosigned a head this log really had.
    pub(super) async fn cosign(&self, caller: &Caller, c: Cosignature) -> Reply {
        c.verify()?;
        if c.witness != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "cosignatures must be signed by the account sending them",
            );
        }
        if caller.card.role != Role::Trustee {
            return reject(ErrorCode::Forbidden, "only trustees witness the audit log");
        }
        if c.log_key != self.keys.signing_public() {
            return reject(ErrorCode::BadRequest, "the cosignature is for another log");
        }
        self.sync_log()?;
        if !self.log.had_root(c.size, &c.root)? {
            return reject(
                ErrorCode::Conflict,
                "the cosigned tree head is not one this log had",
            );
        }
        // The latest cosignature is a read-modify-write record (`Service::update_record`): a
        // witness cosigning through two relay nodes at once keeps the larger head, never the
        // one whose write came last.
        self.update_record(
            Collection::Meta,
            &cosignature_key(&c.witness),
            "this witness's cosignature",
            |before| {
                if let Some(b) = before {
                    // Only a smaller head is refused: witnesses never go back (a trustee whose
                    // clock went back only makes its own cosignature less fresh).
                    let old: Cosignature = dec(b, "cosignature")?;
                    if old.size > c.size {
                        return reject(
                            ErrorCode::Conflict,
                            "this witness already cosigned a larger head",
                        );
                    }
                }
                Ok((Some(enc(&c)?), ()))
            },
        )?;
        self.commit.durable().await?;
        Ok(Response::Ok)
    }

    /// The current head with the latest cosignature of each trustee of `org`'s current policy
    /// (those on this head or an earlier one).
    pub(super) fn witnessed_head(&self, org: &str) -> Reply {
        let policy = self.policies.current(org)?;
        let head = self.tree_head()?;
        let mut cosignatures = Vec::new();
        for t in &policy.trustees {
            if let Some(b) = self
                .store
                .get(Collection::Meta, &cosignature_key(&t.signing_key))?
            {
                let c: Cosignature = dec(&b, "cosignature")?;
                if c.size <= head.size {
                    cosignatures.push(c);
                }
            }
        }
        Ok(Response::WitnessedHead(WitnessedHead {
            head,
            cosignatures,
        }))
    }
}

/// The org and customer of a conversation, as far as reading its audit entries goes; kept
/// (under [`erased_parties_key`]) when the conversation is erased.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct ErasedParties {
    /// The conversation's org.
    pub org: String,
    /// The conversation's customer.
    pub customer: SigningPublicKey,
}

pub(super) fn entry_org(entry: &AuditEntry) -> Option<&String> {
    match &entry.event {
        AuditEvent::Release { org, .. }
        | AuditEvent::PolicyChange { org, .. }
        | AuditEvent::DisputeClosed { org, .. } => Some(org),
        _ => None,
    }
}

/// The refusal of an audit entry whose index other relay nodes took first, every time.
fn log_index_taken() -> Reject {
    Reject::new(
        ErrorCode::Conflict,
        "other relay nodes kept appending to the audit log at the same time; try again".into(),
    )
}
