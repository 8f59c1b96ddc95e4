//! Hand-offs along a conversation transferred more than once (PROTOCOL.md §7.6, "Chains").
//!
//! An agent holds an epoch's secret if it was a member of that epoch, or if a hand-off of that
//! epoch reached it from an agent that held it then. [`Holders::follow`] walks a
//! conversation's hand-offs in sequence order and keeps who holds what by hand-off, so that a
//! later hand-off by such a holder ([`crate::epoch::HandOff::open_held`]) opens for its
//! recipient: the chain leads back, hand-off by hand-off, to a member of the epoch, and that
//! epoch's record to the customer's epoch 0 (§7.5 level 2, checked by the reader).

use std::collections::BTreeSet;

use crate::{
    epoch::{HandOff, VerifiedEpoch},
    keys::SigningPublicKey,
    signed::Signed,
};

/// Who holds which epoch's secret by a hand-off (not by membership).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holders(BTreeSet<(u32, SigningPublicKey)>);

impl Holders {
    /// Whether `key` holds `epoch` by a hand-off this set followed.
    #[must_use]
    pub fn holds(&self, epoch: u32, key: &SigningPublicKey) -> bool {
        self.0.contains(&(epoch, *key))
    }

    /// Follows `handoffs` (a conversation's, in sequence order) over its verified epoch
    /// `records`. A hand-off counts for an epoch `e` only if its signature verifies, it is of
    /// this conversation, its `from` was a member of `e` or already holds `e` by an earlier
    /// hand-off, and its `to` is a member of a record later than `e` (the epoch it was
    /// transferred into: its certificate was checked with that record). Any other hand-off,
    /// or epoch of one, is ignored: it makes no one a holder.
    #[must_use]
    pub fn follow<'a>(
        records: &[VerifiedEpoch],
        handoffs: impl IntoIterator<Item = &'a HandOff>,
    ) -> Self {
        let mut held = Self::default();
        for h in handoffs {
            held.follow_one(records, h);
        }
        held
    }

    /// [`Self::follow`] one hand-off further: `h`, the next of the conversation's hand-offs
    /// after those this set followed. For a reader that judges each hand-off by the ones
    /// before it, without following them all again each time.
    pub fn follow_one(&mut self, records: &[VerifiedEpoch], h: &HandOff) {
        if h.check_signature().is_err() {
            return;
        }
        for (e, _) in &h.epochs {
            let Some(rec) = records
                .iter()
                .find(|r| r.epoch == *e && r.conversation == h.conversation)
            else {
                continue;
            };
            let from_held = rec.member(&h.from).is_some() || self.holds(*e, &h.from);
            let to_joined_later = records.iter().any(|r| {
                r.epoch > *e && r.conversation == h.conversation && r.member(&h.to).is_some()
            });
            if from_held && to_joined_later {
                self.0.insert((*e, h.to));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{
        card::{IdentityCard, Role, VerifiedCard},
        epoch::{EpochRecord, NewEpoch, tests::cards, tests::first_epoch},
        keys::IdentityKeys,
        policy::tests::{Org, org},
        secret::EpochSecret,
        test_rng,
    };

    /// carol's conversation held by bob (epoch 0), transferred by bob to dave (epoch 1), and by
    /// dave to erin (epoch 2); erin's keys and card.
    struct Chain {
        o: Org,
        erin: IdentityKeys,
        erin_card: VerifiedCard,
        records: Vec<VerifiedEpoch>,
        keys: Vec<EpochSecret>,
    }

    fn chain(seed: u64) -> Chain {
        let o = org(seed);
        let mut rng = test_rng(seed + 1);
        let erin = IdentityKeys::generate(&mut rng);
        let erin_card = IdentityCard::issue(&erin, "erin", Role::Agent, 100).unwrap();
        let (c, _, d) = cards(&o);
        let (e0, k0) = first_epoch(&o, seed + 2);
        let next = |rng: &mut _, by: &IdentityKeys, prev: &VerifiedEpoch, to: &VerifiedCard| {
            let members = [c.clone(), to.clone()];
            let new = NewEpoch {
                conversation: prev.conversation,
                epoch: prev.epoch + 1,
                members: &members,
                previous: Some(prev.record()),
                now: 300,
            };
            EpochRecord::create(rng, by, &o.policy, new).unwrap()
        };
        let (e1, k1) = next(&mut rng, &o.agent, &e0, &d);
        let (e2, k2) = next(&mut rng, &o.agent2, &e1, &erin_card);
        e1.check_follows(Some(&e0)).unwrap();
        e2.check_follows(Some(&e1)).unwrap();
        Chain {
            o,
            erin,
            erin_card,
            records: vec![e0, e1, e2],
            keys: vec![k0, k1, k2],
        }
    }

    fn hand(c: &Chain, by: &IdentityKeys, to: &VerifiedCard, epochs: &[u32]) -> HandOff {
        let mut rng = test_rng(99);
        let ks: Vec<(u32, &EpochSecret)> =
            epochs.iter().map(|e| (*e, &c.keys[*e as usize])).collect();
        HandOff::create(&mut rng, by, to, c.records[0].conversation, &ks, 300).unwrap()
    }

    /// bob → dave (epoch 0), then dave → erin (epochs 0 and 1): erin opens both, through the
    /// chain; without the first hand-off dave held nothing of epoch 0 to pass on.
    #[test]
    fn a_second_hop_opens_through_the_chain() {
        let c = chain(200);
        let (_, _, dave) = cards(&c.o);
        let first = hand(&c, &c.o.agent, &dave, &[0]);
        let second = hand(&c, &c.o.agent2, &c.erin_card, &[0, 1]);
        let held = Holders::follow(&c.records, [&first]);
        assert!(held.holds(0, &c.o.agent2.signing_public()));
        let got = second.open_held(&c.erin, &c.records, &held).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(*got[0].1.to_bytes(), *c.keys[0].to_bytes());
        assert_eq!(
            second
                .open_held(&c.erin, &c.records, &Holders::default())
                .err(),
            Some(crate::Error::NotAMember)
        );
    }

    /// A hand-off signed by an agent who never held epoch 0 (not its member, handed nothing)
    /// makes no holder: what it passes on does not open.
    #[test]
    fn a_hand_off_by_an_agent_who_did_not_hold_the_epoch_counts_for_nothing() {
        let c = chain(210);
        let (_, _, dave) = cards(&c.o);
        // erin (member of epoch 2 only) "hands" epoch 0 to dave, then dave to erin.
        let forged = hand(&c, &c.erin, &dave, &[0]);
        let held = Holders::follow(&c.records, [&forged]);
        assert!(!held.holds(0, &c.o.agent2.signing_public()));
        let second = hand(&c, &c.o.agent2, &c.erin_card, &[0]);
        assert_eq!(
            second.open_held(&c.erin, &c.records, &held).err(),
            Some(crate::Error::NotAMember)
        );
    }

    /// A chain that does not lead back to a member of the epoch: dave "holds" epoch 0 only by
    /// a hand-off from erin, who held it only by one from dave. Neither was ever its member.
    #[test]
    fn a_chain_that_does_not_lead_back_to_a_member_counts_for_nothing() {
        let c = chain(220);
        let (_, _, dave) = cards(&c.o);
        let loop_a = hand(&c, &c.o.agent2, &c.erin_card, &[0]);
        let loop_b = hand(&c, &c.erin, &dave, &[0]);
        let held = Holders::follow(&c.records, [&loop_a, &loop_b, &loop_a]);
        assert_eq!(held, Holders::default());
    }

    /// A hand-off to a key no later record names (the policy never certified it for this
    /// conversation) makes no holder, even from a member.
    #[test]
    fn a_hand_off_to_a_key_no_later_record_certifies_counts_for_nothing() {
        let c = chain(230);
        let mut rng = test_rng(239);
        let stranger = IdentityKeys::generate(&mut rng);
        let stranger_card = IdentityCard::issue(&stranger, "mallory", Role::Agent, 100).unwrap();
        let to_stranger = hand(&c, &c.o.agent, &stranger_card, &[0]);
        let held = Holders::follow(&c.records, [&to_stranger]);
        assert!(!held.holds(0, &stranger.signing_public()));
        // Nor does a member of only an earlier epoch count as joining later: bob (epoch 0)
        // handed epoch 1 by dave.
        let (_, bob, _) = cards(&c.o);
        let back = hand(&c, &c.o.agent2, &bob, &[1]);
        assert!(!Holders::follow(&c.records, [&back]).holds(1, &c.o.agent.signing_public()));
        // A tampered hand-off (signature broken) makes no holder either.
        let (_, _, dave) = cards(&c.o);
        let mut bad = hand(&c, &c.o.agent, &dave, &[0]);
        bad.created_at += 1;
        assert_eq!(Holders::follow(&c.records, [&bad]), Holders::default());
    }
}
