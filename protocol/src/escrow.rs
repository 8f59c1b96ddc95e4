//! Escrow: split `K` into the master's share and a Shamir-shared escrow share, sealed
//! deterministically so every member can recompute the section byte for byte (docs/design.md §4).
//!
//! ```text
//!   s_M = HKDF(K, "escrow/master-share")          sealed to the master
//!   s_E = K ⊕ s_M                                 split t_e-of-n_e, coefficients HKDF(K, i)
//!   share_i (x = i+1)                             sealed to trustee i
//! ```
//! Neither share alone reveals anything about `K`; the master needs `t_e` trustee shares.
//!
//! Every escrow seal binds the epoch's customer (their signing key is the HPKE `info`'s extra
//! field). Without that, a master colluding with the relay could copy the real escrow blobs into
//! a forged epoch record naming the master's own key as "customer", sign a "consent" with it, and
//! have the trustees release; with it, the copied blobs no longer open.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{
    Error, Result,
    codec::Writer,
    ids::ConversationId,
    keys::{IdentityKeys, SigningPublicKey},
    labels,
    policy::VerifiedPolicy,
    seal::{Purpose, SealContext, Sealed, open, seal_deterministic},
    secret::EpochSecret,
    shamir,
};

/// The escrow part of an epoch record: `s_M` sealed to the master, one Shamir share of `s_E`
/// sealed to each trustee (in policy order).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct EscrowSection {
    /// `s_M` sealed to the policy's master.
    pub master: Sealed,
    /// Share `i` sealed to trustee `i`.
    pub trustees: Vec<Sealed>,
}

impl EscrowSection {
    /// Computes the section from `K`. Deterministic: the same inputs give the same bytes.
    ///
    /// # Errors
    /// [`Error::Shamir`] or [`Error::Seal`] (neither happens for a verified policy).
    pub fn compute(
        k: &EpochSecret,
        conversation: &ConversationId,
        epoch: u32,
        customer: &SigningPublicKey,
        policy: &VerifiedPolicy,
    ) -> Result<Self> {
        let ks = k.schedule(conversation, epoch);
        let s_m: Zeroizing<[u8; 32]> = ks.labelled(labels::ESCROW_MASTER_SHARE, |_| {});
        let k_bytes = k.to_bytes();
        let mut s_e = Zeroizing::new([0u8; 32]);
        for i in 0..32 {
            s_e[i] = k_bytes[i] ^ s_m[i];
        }
        let t = policy.trustee_threshold;
        let coefficients: Vec<Zeroizing<[u8; 32]>> = (1..t)
            .map(|i| {
                ks.labelled(labels::ESCROW_COEFFICIENT, |w| {
                    w.u8(i);
                })
            })
            .collect();
        let coeff_arrays: Zeroizing<Vec<[u8; 32]>> =
            Zeroizing::new(coefficients.iter().map(|c| **c).collect());
        let n = u8::try_from(policy.trustees.len())
            .map_err(|_| Error::Shamir("too many trustees".into()))?;
        let shares =
            shamir::split(&s_e, t, n, &coeff_arrays).map_err(|e| Error::Shamir(e.to_string()))?;

        let ikm_for = |r: &SigningPublicKey| -> Zeroizing<[u8; 32]> {
            ks.labelled(labels::ESCROW_IKM, |w| {
                w.fixed(r.as_bytes());
            })
        };
        let master_key = &policy.master;
        let ctx = SealContext {
            purpose: Purpose::MasterShare,
            conversation,
            epoch,
            recipient: &master_key.signing_key,
            extra: customer.as_bytes(),
        };
        let master = seal_deterministic(
            &ikm_for(&master_key.signing_key),
            &master_key.agreement_key,
            &ctx,
            s_m.as_slice(),
        )?;
        let mut trustees = Vec::with_capacity(shares.len());
        for (share, card) in shares.iter().zip(&policy.trustees) {
            let ctx = SealContext {
                purpose: Purpose::TrusteeShare,
                conversation,
                epoch,
                recipient: &card.signing_key,
                extra: customer.as_bytes(),
            };
            let bytes = share.to_bytes();
            trustees.push(seal_deterministic(
                &ikm_for(&card.signing_key),
                &card.agreement_key,
                &ctx,
                bytes.as_slice(),
            )?);
        }
        Ok(Self { master, trustees })
    }

    /// Recomputes the section from `K` and compares it with this one, byte for byte.
    ///
    /// # Errors
    /// [`Error::EscrowMismatch`] naming the first part that differs.
    pub fn check(
        &self,
        k: &EpochSecret,
        conversation: &ConversationId,
        epoch: u32,
        customer: &SigningPublicKey,
        policy: &VerifiedPolicy,
    ) -> Result<()> {
        let expected = Self::compute(k, conversation, epoch, customer, policy)?;
        let mismatch = |part: String| Err(Error::EscrowMismatch { epoch, part });
        if self.trustees.len() != expected.trustees.len() {
            return mismatch(format!(
                "{} trustee shares, the policy has {} trustees",
                self.trustees.len(),
                expected.trustees.len()
            ));
        }
        if self.master != expected.master {
            return mismatch("master share".into());
        }
        for (i, (got, want)) in self.trustees.iter().zip(&expected.trustees).enumerate() {
            if got != want {
                return mismatch(format!("share of trustee {}", policy.trustees[i].name));
            }
        }
        Ok(())
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        self.master.write(w);
        w.count(self.trustees.len());
        for t in &self.trustees {
            t.write(w);
        }
    }

    /// Opens the master's share `s_M` (master only).
    ///
    /// # Errors
    /// [`Error::SealOpen`] if `master` is not the policy's master or the blob was tampered.
    pub fn open_master_share(
        &self,
        master: &IdentityKeys,
        conversation: &ConversationId,
        epoch: u32,
        customer: &SigningPublicKey,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let me = master.signing_public();
        let ctx = SealContext {
            purpose: Purpose::MasterShare,
            conversation,
            epoch,
            recipient: &me,
            extra: customer.as_bytes(),
        };
        let bytes = open(master, &self.master, &ctx, "master escrow share")?;
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::BadLength {
            what: "master escrow share",
            expected: 32,
            got: bytes.len(),
        })?;
        Ok(Zeroizing::new(arr))
    }

    /// Opens trustee `index`'s Shamir share (that trustee only).
    ///
    /// # Errors
    /// [`Error::SealOpen`] for the wrong trustee or tampering; [`Error::Shamir`] if malformed.
    pub fn open_trustee_share(
        &self,
        trustee: &IdentityKeys,
        index: usize,
        conversation: &ConversationId,
        epoch: u32,
        customer: &SigningPublicKey,
    ) -> Result<shamir::Share> {
        let sealed = self
            .trustees
            .get(index)
            .ok_or_else(|| Error::EscrowMismatch {
                epoch,
                part: "no share for this trustee".into(),
            })?;
        let me = trustee.signing_public();
        let ctx = SealContext {
            purpose: Purpose::TrusteeShare,
            conversation,
            epoch,
            recipient: &me,
            extra: customer.as_bytes(),
        };
        let bytes = open(trustee, sealed, &ctx, "trustee escrow share")?;
        shamir::Share::from_bytes(&bytes).map_err(|e| Error::Shamir(e.to_string()))
    }
}

/// Rebuilds `K` from the master's share and at least `t_e` trustee shares, and checks it
/// against the epoch's commitment.
///
/// # Errors
/// [`Error::Shamir`] for too few or duplicate shares; [`Error::CommitmentMismatch`] if the result
/// is not the committed `K` (a wrong or forged share).
pub fn reconstruct(
    s_m: &[u8; 32],
    shares: &[shamir::Share],
    threshold: u8,
    conversation: &ConversationId,
    epoch: u32,
    commitment: &[u8; 32],
) -> Result<EpochSecret> {
    let s_e = shamir::combine(shares, threshold).map_err(|e| Error::Shamir(e.to_string()))?;
    let mut k = Zeroizing::new([0u8; 32]);
    for i in 0..32 {
        k[i] = s_e[i] ^ s_m[i];
    }
    let k = EpochSecret::from_bytes(&k);
    if !k.matches(conversation, epoch, commitment) {
        return Err(Error::CommitmentMismatch(epoch));
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{policy::tests::org, test_rng};

    #[test]
    fn split_seal_open_reconstruct() {
        let o = org(50);
        let mut rng = test_rng(51);
        let k = EpochSecret::random(&mut rng);
        let conv = ConversationId::random(&mut rng);
        let cust = o.customer.signing_public();
        let sec = EscrowSection::compute(&k, &conv, 0, &cust, &o.policy).unwrap();
        assert_eq!(
            sec,
            EscrowSection::compute(&k, &conv, 0, &cust, &o.policy).unwrap()
        );
        sec.check(&k, &conv, 0, &cust, &o.policy).unwrap();
        let com = k.commitment(&conv, 0);

        let s_m = sec.open_master_share(&o.master, &conv, 0, &cust).unwrap();
        let shares: Vec<_> = [0usize, 2]
            .iter()
            .map(|&i| {
                sec.open_trustee_share(&o.trustees[i], i, &conv, 0, &cust)
                    .unwrap()
            })
            .collect();
        let k2 = reconstruct(&s_m, &shares, 2, &conv, 0, &com).unwrap();
        assert_eq!(*k2.to_bytes(), *k.to_bytes());

        // One share is not enough.
        assert!(matches!(
            reconstruct(&s_m, &shares[..1], 2, &conv, 0, &com),
            Err(Error::Shamir(_))
        ));
        // Without s_M the shares give s_E, not K.
        assert_eq!(
            reconstruct(&[0; 32], &shares, 2, &conv, 0, &com).err(),
            Some(Error::CommitmentMismatch(0))
        );
        // A trustee cannot open another trustee's share, nor the master's.
        assert!(
            sec.open_trustee_share(&o.trustees[1], 0, &conv, 0, &cust)
                .is_err()
        );
        assert!(
            sec.open_master_share(&o.trustees[0], &conv, 0, &cust)
                .is_err()
        );
        // Shares are bound to the epoch's customer: copied into a record naming another
        // customer (the master colluding with the relay), they do not open.
        let impostor = o.master.signing_public();
        assert!(
            sec.open_trustee_share(&o.trustees[0], 0, &conv, 0, &impostor)
                .is_err()
        );
        assert!(
            sec.open_master_share(&o.master, &conv, 0, &impostor)
                .is_err()
        );
        // Shares do not open in another epoch.
        assert!(
            sec.open_trustee_share(&o.trustees[0], 0, &conv, 1, &cust)
                .is_err()
        );
    }

    #[test]
    fn tampered_or_foreign_escrow_is_detected() {
        let o = org(52);
        let mut rng = test_rng(53);
        let k = EpochSecret::random(&mut rng);
        let conv = ConversationId::random(&mut rng);
        let cust = o.customer.signing_public();
        let good = EscrowSection::compute(&k, &conv, 0, &cust, &o.policy).unwrap();

        let mut bad = good.clone();
        bad.trustees[1].ciphertext[3] ^= 1;
        assert!(matches!(
            bad.check(&k, &conv, 0, &cust, &o.policy),
            Err(Error::EscrowMismatch { .. })
        ));
        let mut bad = good.clone();
        bad.trustees.swap(0, 1);
        assert!(bad.check(&k, &conv, 0, &cust, &o.policy).is_err());
        let mut bad = good.clone();
        bad.trustees.pop();
        assert!(bad.check(&k, &conv, 0, &cust, &o.policy).is_err());
        // Escrow made for garbage K (or another epoch) does not match.
        let garbage =
            EscrowSection::compute(&EpochSecret::random(&mut rng), &conv, 0, &cust, &o.policy);
        assert!(
            garbage
                .unwrap()
                .check(&k, &conv, 0, &cust, &o.policy)
                .is_err()
        );
        let other_epoch = EscrowSection::compute(&k, &conv, 1, &cust, &o.policy).unwrap();
        assert!(other_epoch.check(&k, &conv, 0, &cust, &o.policy).is_err());
    }
}
