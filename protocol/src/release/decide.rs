//! The trustee's decision: [`decide`] checks a release request against what the trustee knows
//! (a [`TrusteeView`]) and, if every check passes, re-seals its shares to the policy's master
//! as an [`ApprovedRelease`]. Each failed check is its own [`Refusal`].

use rand_core::CryptoRng;

use super::{CLOCK_SKEW_SECS, Justification, Refusal, ReleaseRequest, ReleasedShare, approvers};
use crate::{
    Error, Result,
    epoch::VerifiedEpoch,
    ids::TokenId,
    keys::{IdentityKeys, Signature, SigningPublicKey},
    policy::VerifiedPolicy,
    seal::{Purpose, SealContext, seal},
    signed::Signed,
};

/// What a trustee knows when it decides: the pinned policy, its keys, the time, the verified
/// epoch records of the conversation, and which tokens are spent or revoked.
pub struct TrusteeView<'a> {
    /// The org policy the trustee pinned.
    pub policy: &'a VerifiedPolicy,
    /// The trustee's keys.
    pub me: &'a IdentityKeys,
    /// Now.
    pub now: u64,
    /// Verified epoch records (at least those requested).
    pub epochs: &'a [VerifiedEpoch],
    /// Whether a consent/ticket id was already used.
    pub is_spent: &'a dyn Fn(&TokenId) -> bool,
    /// Whether a consent id was revoked.
    pub is_revoked: &'a dyn Fn(&TokenId) -> bool,
}

/// An approved release: the trustee's shares for each requested epoch, sealed to the policy's
/// master. Send them only after the release entry is in the audit log.
#[derive(Clone, Debug)]
pub struct ApprovedRelease {
    /// The request hash.
    pub request_hash: [u8; 32],
    /// The consent or ticket id, to mark spent.
    pub justification: TokenId,
    /// Approving arbiters (empty for consent).
    pub approvers: Vec<SigningPublicKey>,
    /// One share per epoch.
    pub shares: Vec<ReleasedShare>,
}

/// Checks a release request as a trustee and, if every check passes, re-seals this trustee's
/// shares to the master key *named in the policy* (never one from the request), with the request
/// hash in the HPKE `info`.
///
/// # Errors
/// A [`Refusal`] naming the first failed check, or another [`crate::Error`] if opening a share fails.
pub fn decide(
    rng: &mut impl CryptoRng,
    view: &TrusteeView<'_>,
    request: &ReleaseRequest,
) -> Result<ApprovedRelease> {
    let policy = view.policy;
    let refuse = |r: Refusal| Err(Error::Refused(r));
    let my_index = policy.trustee_index(&view.me.signing_public());
    let Some(my_index) = my_index else {
        return refuse(Refusal::NotATrustee);
    };
    if request.check_signed_by(&policy.master_key()).is_err() {
        return refuse(Refusal::NotFromMaster);
    }
    if request.org != policy.org || request.policy_version != policy.version {
        return refuse(Refusal::WrongPolicy);
    }
    if request.epochs.check().is_err() {
        return refuse(Refusal::EpochsNotCovered);
    }
    let approvers = check_justification(view, request)?;

    let hash = request.hash();
    let mut shares = Vec::new();
    for epoch in request.epochs.iter() {
        let rec = view
            .epochs
            .iter()
            .find(|r| r.epoch == epoch && r.conversation == request.conversation)
            .ok_or(Error::Refused(Refusal::UnknownEpoch(epoch)))?;
        if rec.policy_version != policy.version || rec.policy_hash != policy.hash() {
            // Share positions follow the trustee list of the policy the epoch was made under;
            // releasing under another one would hand out the wrong share.
            return refuse(Refusal::EpochUnderOtherPolicy(epoch));
        }
        // A ticket that names its records releases only those: the arbiters approved them.
        if let Justification::Dispute { ticket, .. } = &request.justification
            && ticket.binds_records()
            && ticket.record_hash(epoch) != Some(rec.hash())
        {
            return refuse(Refusal::RecordNotBound(epoch));
        }
        if let Justification::Consent(c) = &request.justification {
            // The consenting key must be this epoch's customer, as recorded in the signed epoch
            // record — never a key looked up at release time.
            if rec.customer().map(|m| m.signing_key) != Some(c.customer) {
                return refuse(Refusal::NotTheCustomer);
            }
        }
        let share = rec.open_trustee_share(view.me, my_index)?;
        let master = &policy.master;
        let ctx = SealContext {
            purpose: Purpose::ReleasedShare,
            conversation: &request.conversation,
            epoch,
            recipient: &master.signing_key,
            extra: &hash,
        };
        let sealed = seal(
            rng,
            &master.agreement_key,
            &ctx,
            share.to_bytes().as_slice(),
        )?;
        let mut rs = ReleasedShare {
            request_hash: hash,
            conversation: request.conversation,
            epoch,
            trustee: view.me.signing_public(),
            sealed,
            signature: Signature::placeholder(),
        };
        rs.signature = view.me.sign(&rs.signed_bytes());
        shares.push(rs);
    }
    Ok(ApprovedRelease {
        request_hash: hash,
        justification: request.justification.id(),
        approvers,
        shares,
    })
}

fn check_validity(
    policy: &VerifiedPolicy,
    now: u64,
    issued: u64,
    expires: u64,
) -> core::result::Result<(), Refusal> {
    if issued > now.saturating_add(CLOCK_SKEW_SECS)
        || expires <= issued
        || expires - issued > policy.max_release_validity_secs
    {
        return Err(Refusal::BadValidity);
    }
    if now >= expires {
        return Err(Refusal::Expired);
    }
    Ok(())
}

fn check_justification(
    view: &TrusteeView<'_>,
    request: &ReleaseRequest,
) -> Result<Vec<SigningPublicKey>> {
    let policy = view.policy;
    let refuse = |r: Refusal| Err(Error::Refused(r));
    let id = request.justification.id();
    match &request.justification {
        Justification::Consent(c) => {
            if !policy.allow_consent {
                return refuse(Refusal::NotAllowed("consent".into()));
            }
            if c.org != policy.org {
                return refuse(Refusal::WrongPolicy);
            }
            if c.conversation != request.conversation {
                return refuse(Refusal::WrongConversation);
            }
            if !c.epochs.covers(&request.epochs) {
                return refuse(Refusal::EpochsNotCovered);
            }
            if c.grantee != policy.master_key() {
                return refuse(Refusal::WrongGrantee);
            }
            if c.check_signature().is_err() {
                return refuse(Refusal::BadJustification);
            }
            check_validity(policy, view.now, c.issued_at, c.expires_at)?;
            if (view.is_revoked)(&id) {
                return refuse(Refusal::Revoked);
            }
            if (view.is_spent)(&id) {
                return refuse(Refusal::AlreadyUsed);
            }
            Ok(Vec::new())
        }
        Justification::Dispute { ticket, decisions } => {
            if !policy.allow_dispute {
                return refuse(Refusal::NotAllowed("dispute".into()));
            }
            if ticket.conversation != request.conversation {
                return refuse(Refusal::WrongConversation);
            }
            if !ticket.epochs.covers(&request.epochs) {
                return refuse(Refusal::EpochsNotCovered);
            }
            if ticket.verify(policy).is_err() {
                return refuse(Refusal::BadJustification);
            }
            check_validity(policy, view.now, ticket.opened_at, ticket.expires_at)?;
            if (view.is_spent)(&id) {
                return refuse(Refusal::AlreadyUsed);
            }
            let ok = approvers(policy, ticket, decisions);
            let need = usize::from(policy.arbiter_threshold);
            if ok.len() < need {
                return refuse(Refusal::NotEnoughApprovals {
                    have: ok.len(),
                    need,
                });
            }
            Ok(ok)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{
        epoch::tests::first_epoch,
        escrow::reconstruct,
        ids::{ConversationId, EpochRange},
        policy::tests::Org,
        policy::tests::org,
        release::{
            ArbiterDecision, DisputeParams, DisputeTicket, Verdict,
            tests::{NOW, consent, request},
        },
        test_rng,
    };

    fn view<'a>(
        o: &'a Org,
        t: usize,
        epochs: &'a [VerifiedEpoch],
        spent: &'a dyn Fn(&TokenId) -> bool,
        revoked: &'a dyn Fn(&TokenId) -> bool,
    ) -> TrusteeView<'a> {
        TrusteeView {
            policy: &o.policy,
            me: &o.trustees[t],
            now: NOW + 10,
            epochs,
            is_spent: spent,
            is_revoked: revoked,
        }
    }

    fn no(_: &TokenId) -> bool {
        false
    }
    fn yes(_: &TokenId) -> bool {
        true
    }

    fn refusal(r: Result<ApprovedRelease>) -> Refusal {
        match r {
            Err(Error::Refused(r)) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn consent_release_end_to_end() {
        let o = org(90);
        let (rec, k) = first_epoch(&o, 91);
        let epochs = [rec.clone()];
        let req = request(
            &o,
            Justification::Consent(consent(&o, rec.conversation, 92)),
            93,
        );
        let mut rng = test_rng(94);
        let mut shares = Vec::new();
        for t in [0, 1] {
            let a = decide(&mut rng, &view(&o, t, &epochs, &no, &no), &req).unwrap();
            assert_eq!(a.shares.len(), 1);
            shares.push(a.shares[0].open(&o.master, &o.policy, &req).unwrap());
        }
        let s_m = rec.open_master_share(&o.master).unwrap();
        let k2 = reconstruct(&s_m, &shares, 2, &rec.conversation, 0, &rec.commitment).unwrap();
        assert_eq!(*k2.to_bytes(), *k.to_bytes());
    }

    #[test]
    fn released_share_opens_only_for_its_request_and_master() {
        let o = org(95);
        let (rec, _) = first_epoch(&o, 96);
        let epochs = [rec.clone()];
        let req = request(
            &o,
            Justification::Consent(consent(&o, rec.conversation, 97)),
            98,
        );
        let a = decide(&mut test_rng(99), &view(&o, 0, &epochs, &no, &no), &req).unwrap();
        let other = request(
            &o,
            Justification::Consent(consent(&o, rec.conversation, 100)),
            101,
        );
        assert!(a.shares[0].open(&o.master, &o.policy, &other).is_err());
        assert!(a.shares[0].open(&o.customer, &o.policy, &req).is_err());
        let mut forged = a.shares[0].clone();
        forged.epoch = 1;
        assert!(forged.open(&o.master, &o.policy, &req).is_err());
    }

    #[test]
    fn consent_refusals() {
        let o = org(102);
        let (rec, _) = first_epoch(&o, 103);
        let epochs = [rec.clone()];
        let conv = rec.conversation;
        let mut rng = test_rng(104);
        let good = consent(&o, conv, 105);
        let v = view(&o, 0, &epochs, &no, &no);
        // Spent, revoked.
        let req = request(&o, Justification::Consent(good.clone()), 106);
        assert_eq!(
            refusal(decide(&mut rng, &view(&o, 0, &epochs, &yes, &no), &req)),
            Refusal::AlreadyUsed
        );
        assert_eq!(
            refusal(decide(&mut rng, &view(&o, 0, &epochs, &no, &yes), &req)),
            Refusal::Revoked
        );
        // Expired.
        let mut late = view(&o, 0, &epochs, &no, &no);
        late.now = NOW + 3600;
        assert_eq!(refusal(decide(&mut rng, &late, &req)), Refusal::Expired);
        // Another conversation.
        let other = consent(&o, ConversationId::random(&mut rng), 107);
        let req2 = request(&o, Justification::Consent(other), 108);
        assert_eq!(
            refusal(decide(&mut rng, &v, &req2)),
            Refusal::UnknownEpoch(0)
        );
        // Granted to another key.
        let mut c = good.clone();
        c.grantee = o.agent.signing_public();
        c.signature = o.customer.sign(&c.signed_bytes());
        let req3 = request(&o, Justification::Consent(c), 109);
        assert_eq!(refusal(decide(&mut rng, &v, &req3)), Refusal::WrongGrantee);
        // Signed by someone other than the epoch's customer (the agent forging consent).
        let mut c = good.clone();
        c.customer = o.agent.signing_public();
        c.signature = o.agent.sign(&c.signed_bytes());
        let req4 = request(&o, Justification::Consent(c), 110);
        assert_eq!(
            refusal(decide(&mut rng, &v, &req4)),
            Refusal::NotTheCustomer
        );
        // Tampered consent (scope widened after signing).
        let mut c = good.clone();
        c.epochs = EpochRange::new(0, 5).unwrap();
        let req5 = request(&o, Justification::Consent(c), 111);
        assert_eq!(
            refusal(decide(&mut rng, &v, &req5)),
            Refusal::BadJustification
        );
        // Request not from the master.
        let mut r = req.clone();
        r.signature = o.agent.sign(&r.signed_bytes());
        assert_eq!(refusal(decide(&mut rng, &v, &r)), Refusal::NotFromMaster);
        // Epochs outside the consent.
        let r = ReleaseRequest::sign(
            &mut rng,
            &o.master,
            &o.policy,
            EpochRange::new(0, 1).unwrap(),
            Justification::Consent(good),
            NOW,
        )
        .unwrap();
        assert_eq!(refusal(decide(&mut rng, &v, &r)), Refusal::EpochsNotCovered);
        // Not a trustee.
        let mut nt = view(&o, 0, &epochs, &no, &no);
        nt.me = &o.agent;
        assert_eq!(refusal(decide(&mut rng, &nt, &req)), Refusal::NotATrustee);
    }

    #[test]
    fn dispute_threshold_and_master_never_counts() {
        let o = org(112);
        let (rec, _) = first_epoch(&o, 113);
        let epochs = [rec.clone()];
        let mut rng = test_rng(114);
        let ticket = DisputeTicket::issue(
            &mut rng,
            &o.master,
            &o.policy,
            DisputeParams {
                conversation: rec.conversation,
                epochs: EpochRange::single(0),
                reason: "chargeback".into(),
                valid_secs: 3600,
            },
            NOW,
        )
        .unwrap();
        let approve =
            |k: &IdentityKeys| ArbiterDecision::sign(k, &ticket, Verdict::Approve, NOW).unwrap();
        let v = view(&o, 0, &epochs, &no, &no);
        let with = |decisions: Vec<ArbiterDecision>, seed| {
            request(
                &o,
                Justification::Dispute {
                    ticket: ticket.clone(),
                    decisions,
                },
                seed,
            )
        };
        // t_a - 1 approvals, duplicated: still one.
        let a0 = approve(&o.arbiters[0]);
        let r = with(vec![a0.clone(), a0.clone()], 115);
        assert_eq!(
            refusal(decide(&mut rng, &v, &r)),
            Refusal::NotEnoughApprovals { have: 1, need: 2 }
        );
        // The master's approval does not count; nor a rejection.
        let r = with(
            vec![
                a0.clone(),
                approve(&o.master),
                ArbiterDecision::sign(&o.arbiters[1], &ticket, Verdict::Reject("no".into()), NOW)
                    .unwrap(),
            ],
            116,
        );
        assert_eq!(
            refusal(decide(&mut rng, &v, &r)),
            Refusal::NotEnoughApprovals { have: 1, need: 2 }
        );
        // A forged approval (signature by another key) does not count.
        let mut forged = approve(&o.arbiters[1]);
        forged.signature = o.agent.sign(&forged.signed_bytes());
        let r = with(vec![a0.clone(), forged], 117);
        assert!(matches!(
            refusal(decide(&mut rng, &v, &r)),
            Refusal::NotEnoughApprovals { .. }
        ));
        // t_a approvals: released.
        let r = with(vec![a0, approve(&o.arbiters[2])], 118);
        let ok = decide(&mut rng, &v, &r).unwrap();
        assert_eq!(ok.approvers.len(), 2);
        // Approvals of another ticket do not count.
        let other = DisputeTicket::issue(
            &mut rng,
            &o.master,
            &o.policy,
            DisputeParams {
                conversation: rec.conversation,
                epochs: EpochRange::single(0),
                reason: "other".into(),
                valid_secs: 3600,
            },
            NOW,
        )
        .unwrap();
        let foreign = ArbiterDecision::sign(&o.arbiters[1], &other, Verdict::Approve, NOW).unwrap();
        let r = with(vec![approve(&o.arbiters[0]), foreign], 119);
        assert!(matches!(
            refusal(decide(&mut rng, &v, &r)),
            Refusal::NotEnoughApprovals { .. }
        ));
    }

    #[test]
    fn a_ticket_naming_its_records_releases_only_those() {
        let o = org(120);
        let (rec, _) = first_epoch(&o, 121);
        let epochs = [rec.clone()];
        let mut rng = test_rng(122);
        let bound = |rng: &mut rand::rngs::ChaCha20Rng, hash: [u8; 32]| {
            DisputeTicket::issue_bound(
                rng,
                &o.master,
                &o.policy,
                DisputeParams {
                    conversation: rec.conversation,
                    epochs: EpochRange::single(0),
                    reason: "chargeback".into(),
                    valid_secs: 3600,
                },
                vec![crate::release::BoundRecord { epoch: 0, hash }],
                NOW,
            )
            .unwrap()
        };
        let v = view(&o, 0, &epochs, &no, &no);
        let release = |rng: &mut rand::rngs::ChaCha20Rng, ticket: DisputeTicket, seed| {
            let decisions = o.arbiters[..2]
                .iter()
                .map(|k| ArbiterDecision::sign(k, &ticket, Verdict::Approve, NOW).unwrap())
                .collect();
            let r = request(&o, Justification::Dispute { ticket, decisions }, seed);
            decide(rng, &v, &r)
        };
        let genuine = bound(&mut rng, rec.hash());
        assert!(genuine.binds_records());
        // The bound records are signed: the bytes differ from an unbound ticket's.
        let mut unbound = genuine.clone();
        unbound.records.clear();
        assert_ne!(unbound.signed_bytes(), genuine.signed_bytes());
        assert!(unbound.check_signature().is_err());
        release(&mut rng, genuine, 123).unwrap();
        let mut other = rec.hash();
        other[0] ^= 1;
        let wrong = bound(&mut rng, other);
        assert_eq!(
            refusal(release(&mut rng, wrong, 124)),
            Refusal::RecordNotBound(0)
        );
        // Records that do not match the range are refused when the ticket is made.
        assert!(
            DisputeTicket::issue_bound(
                &mut rng,
                &o.master,
                &o.policy,
                DisputeParams {
                    conversation: rec.conversation,
                    epochs: EpochRange::new(0, 1).unwrap(),
                    reason: "x".into(),
                    valid_secs: 3600,
                },
                vec![crate::release::BoundRecord {
                    epoch: 0,
                    hash: rec.hash()
                }],
                NOW,
            )
            .is_err()
        );
    }
}
