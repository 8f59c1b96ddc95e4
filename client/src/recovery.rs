//! Account recovery. Customers: the identity keys derived from a recovery code
//! ([`sealdesk_protocol::recovery`]), shown once at `init`, restored on a new machine. Agents:
//! the org's master re-certifies the name for the agent's new keys
//! ([`Client::recertify_agent`]; the relay's side is `server/src/relay/service/recovery.rs`).
//!
//! ```text
//!   init     fresh code → keys, card (created_at from the code) → vault; the code is shown once
//!   recover  code → keys, card ─ handshake: does the relay know this card? ─ no → refused,
//!            nothing created │ yes → new vault, `recovery` record, sync every conversation
//! ```
//!
//! With an `init` code the relay is asked for nothing but whether the code was replaced
//! ([`crate::recovery_code`]): a recovered client authenticates with the same card as before,
//! so neither the relay nor a peer can tell it from the old one (the peers see no key change,
//! because there is none). A replaceable code (`sealdesk recovery-code`) opens the record the
//! relay keeps instead, fetched on a session of throwaway keys; the keys in it must be the
//! record's card's, so a relay cannot substitute others.
//!
//! **Counters after recovery.** The old device may have sealed messages the relay never stored
//! (or a relay may hide some), so the recovered client cannot know its highest counter in an
//! epoch that existed before. It therefore sends only in epochs it opened itself after the
//! recovery, and in later ones: the `recovery` record keeps, per conversation, the first epoch
//! this account created since it was recovered (its fence). [`crate::Client`]'s sending epoch
//! rotates first when the current epoch is below the fence, and [`Account::reserve_counter`]
//! refuses a counter below it, so no (conversation, epoch, sender, counter) is ever used twice.
//! Accounts that were never recovered have no record and are not affected.

use std::collections::BTreeMap;
use std::path::Path;

use sealdesk_protocol::{
    card::{IdentityCard, Role},
    ids::ConversationId,
    keys::IdentityKeys,
    policy::AgentCertificate,
    recovery::{CodeKind, RecoveryCode},
    wire::{Request, from_cbor, to_cbor},
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::account::{Account, PeerPin};
use crate::client::Event;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::reply::expect_ok;
use crate::session::Session;
use crate::store::name;
use crate::tls::TlsOptions;
use crate::vault::KdfParams;
use crate::{Client, now, rng};

/// What a recovered account remembers about its recovery (record `recovery`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RecoveryRecord {
    /// When this home was recovered (local clock).
    pub recovered_at: u64,
    /// Per conversation, the first epoch this account opened after the recovery: it sends in
    /// that epoch and later ones only.
    pub fences: BTreeMap<ConversationId, u32>,
}

/// A customer account created with a recovery code, and the code (show it once).
#[derive(Debug)]
pub struct NewAccount {
    /// The account.
    pub account: Account,
    /// The code that restores it.
    pub code: RecoveryCode,
}

/// What recovering an account did.
#[derive(Debug)]
pub struct Recovered {
    /// The connected client of the restored account.
    pub client: Client,
    /// Conversations restored from the relay.
    pub conversations: usize,
    /// Events of the first sync (warnings among them).
    pub events: Vec<Event>,
}

impl Account {
    /// Creates a new customer account whose identity keys come from a fresh recovery code.
    ///
    /// # Errors
    /// As [`Account::create`]; [`ClientError::Protocol`] for a time that does not fit a code.
    pub fn create_with_code(
        home: &Path,
        passphrase: &str,
        params: KdfParams,
        name: &str,
    ) -> Result<NewAccount> {
        sealdesk_protocol::ids::check_name(name)?;
        let code =
            RecoveryCode::generate(&mut rng()?, now()).map_err(sealdesk_protocol::Error::from)?;
        let keys = code.identity_keys();
        let card = IdentityCard::issue(&keys, name, Role::Customer, code.created_at())?;
        let account = Account::create_from(home, passphrase, params, keys, card)?;
        Ok(NewAccount { account, code })
    }

    /// Whether this account may send in `epoch` of `id`: always, unless it was recovered, and
    /// then only from the first epoch it opened since (see the module documentation).
    ///
    /// # Errors
    /// [`ClientError::Vault`], [`ClientError::Protocol`] for an undecodable record.
    pub fn may_send_in(&self, id: &ConversationId, epoch: u32) -> Result<bool> {
        Ok(match self.recovery()? {
            None => true,
            Some(r) => r.fences.get(id).is_some_and(|first| epoch >= *first),
        })
    }

    /// Notes that this account opened `epoch` of `id` (the relay stored it): for a recovered
    /// account the first such epoch of a conversation becomes its fence.
    ///
    /// # Errors
    /// [`ClientError::Vault`], [`ClientError::Protocol`].
    pub fn note_own_epoch(&self, id: &ConversationId, epoch: u32) -> Result<()> {
        let lock = self.vault().lock()?;
        let Some(bytes) = self.vault().get(name::RECOVERY)? else {
            return Ok(());
        };
        let mut record: RecoveryRecord = from_cbor(&bytes, "recovery record")?;
        if record.fences.contains_key(id) {
            return Ok(());
        }
        record.fences.insert(*id, epoch);
        lock.put(name::RECOVERY, &Zeroizing::new(to_cbor(&record)?))?;
        Ok(())
    }

    /// The recovery record, if this home was recovered.
    ///
    /// # Errors
    /// [`ClientError::Vault`], [`ClientError::Protocol`].
    pub fn recovery(&self) -> Result<Option<RecoveryRecord>> {
        self.get_cbor(name::RECOVERY)
    }
}

impl Client {
    /// Master: re-certifies the agent name of `card` in `org` for `card`'s new keys (the agent
    /// lost the old ones) and asks the relay to bind the name to them (`RebindAgent`). With
    /// `expected`, the card's fingerprint must match it (read out of band from the agent's new
    /// `sealdesk whoami`). The master's own pin for the agent moves to the new card.
    ///
    /// # Errors
    /// [`ClientError::WrongRole`], [`ClientError::NotMaster`],
    /// [`ClientError::CardFingerprintMismatch`], verification and relay errors (the relay's
    /// `forbidden` when the name is not this org's agent).
    pub async fn recertify_agent(
        &mut self,
        org: &str,
        card: IdentityCard,
        expected: Option<&str>,
    ) -> Result<AgentCertificate> {
        self.account.require(Role::Master, "org recertify")?;
        let policy = self.latest_policy(org).await?;
        if policy.master_key() != self.account.keys().signing_public() {
            return Err(ClientError::NotMaster {
                org: org.to_owned(),
            });
        }
        if let Some(fp) = expected {
            crate::error::check_fingerprint_format(fp)?;
        }
        let card = card.verify_as(Role::Agent)?;
        if let Some(fp) = expected
            && !card.fingerprint().matches(fp)
        {
            return Err(ClientError::CardFingerprintMismatch {
                name: card.name.clone(),
                given: fp.to_owned(),
                actual: card.fingerprint().to_string(),
            });
        }
        let cert = AgentCertificate::issue(
            self.account.keys(),
            &policy,
            &card,
            now(),
            crate::client::AGENT_CERT_VALIDITY_SECS,
        )?;
        expect_ok(
            self.session
                .request(Request::RebindAgent(cert.clone()))
                .await?,
        )?;
        let mut pins = self.account.pins()?;
        pins.peers.insert(
            card.name.clone(),
            PeerPin {
                card: card.card().clone(),
                pending: None,
            },
        );
        self.account.save_pins(&pins)?;
        Ok(cert)
    }
}

/// Restores the customer account `name` from its recovery `code` into a new home: takes the
/// keys from the code (an `init` code) or from the record the relay keeps for it (a code made
/// by [`crate::recovery_code`]), checks with the relay at `url` that it knows exactly this
/// card (else nothing is created), creates the vault under `passphrase`, marks it recovered,
/// pins the relay and syncs every conversation.
///
/// # Errors
/// [`ClientError::NotRecovered`] when the relay knows no account `name` with the code's keys,
/// or holds no record for `name` that this code opens (a wrong code, a wrong name, another
/// relay, a replaced code); [`ClientError::RecoveryCodeReplaced`] for an `init` code the
/// account has replaced; [`ClientError::Vault`] when `home` holds an account already;
/// transport and relay errors.
pub async fn recover(
    home: &Path,
    passphrase: &str,
    params: KdfParams,
    name: &str,
    code: &RecoveryCode,
    url: &str,
    tls: &TlsOptions,
) -> Result<Recovered> {
    sealdesk_protocol::ids::check_name(name)?;
    let (keys, card) = match code.kind() {
        CodeKind::DerivedKeys => {
            let keys = code.identity_keys();
            let card = IdentityCard::issue(&keys, name, Role::Customer, code.created_at())?;
            (keys, card)
        }
        CodeKind::Record => {
            // A replaceable code opens the record the relay keeps; the session that fetches
            // it authenticates with throwaway keys (the account's are what it is after).
            let throwaway = IdentityKeys::generate(&mut rng()?);
            let card = IdentityCard::issue(&throwaway, name, Role::Customer, now())?;
            let conn = Connection::connect_with(url, tls).await?;
            let session = Session::establish(conn, &throwaway, card.card()).await?;
            let fetched = crate::recovery_code::fetch_record_keys(&session, name, code).await;
            session.close().await;
            fetched?
        }
    };
    // The handshake alone answers whether the relay has this very card registered; nothing
    // is written on either side before it says yes.
    let conn = Connection::connect_with(url, tls).await?;
    let session = Session::establish(conn, &keys, card.card()).await?;
    let known = session.welcome().registered;
    let replaced = known
        && code.kind() == CodeKind::DerivedKeys
        && crate::recovery_code::init_code_replaced(&session, name).await;
    session.close().await;
    if !known {
        return Err(ClientError::NotRecovered {
            name: name.to_owned(),
        });
    }
    if replaced {
        return Err(ClientError::RecoveryCodeReplaced {
            name: name.to_owned(),
        });
    }
    let account = Account::create_from(home, passphrase, params, keys, card)?;
    account.put_cbor(
        name::RECOVERY,
        &RecoveryRecord {
            recovered_at: now(),
            fences: BTreeMap::new(),
        },
    )?;
    let mut client = Client::connect_with(account, url, tls).await?;
    let events = client.sync_all().await?;
    let conversations = client.account().conversations()?.len();
    Ok(Recovered {
        client,
        conversations,
        events,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn an_account_made_with_a_code_has_the_code_s_keys_and_card() {
        let dir = tempfile::tempdir().unwrap();
        let made =
            Account::create_with_code(dir.path(), "a long passphrase", KdfParams::TESTING, "carol")
                .unwrap();
        let again = RecoveryCode::parse(&made.code.reveal()).unwrap();
        let keys = again.identity_keys();
        assert_eq!(made.account.card().signing_key, keys.signing_public());
        assert_eq!(made.account.card().agreement_key, keys.agreement_public());
        let card = IdentityCard::issue(&keys, "carol", Role::Customer, again.created_at()).unwrap();
        // Byte for byte the same card: the relay recognises it.
        assert_eq!(card.card(), made.account.card().card());
        // A new account is not a recovered one: it may send anywhere.
        let id = ConversationId::from_bytes(&[1; 16]).unwrap();
        assert!(made.account.may_send_in(&id, 0).unwrap());
        made.account.note_own_epoch(&id, 0).unwrap();
        assert!(made.account.recovery().unwrap().is_none());
    }

    #[test]
    fn a_recovered_account_sends_only_from_its_own_first_epoch_on() {
        let dir = tempfile::tempdir().unwrap();
        let made =
            Account::create_with_code(dir.path(), "a long passphrase", KdfParams::TESTING, "carol")
                .unwrap();
        let a = made.account;
        a.put_cbor(name::RECOVERY, &RecoveryRecord::default())
            .unwrap();
        let id = ConversationId::from_bytes(&[1; 16]).unwrap();
        let other = ConversationId::from_bytes(&[2; 16]).unwrap();
        assert!(!a.may_send_in(&id, 0).unwrap());
        assert!(!a.may_send_in(&id, 4).unwrap());
        a.note_own_epoch(&id, 5).unwrap();
        a.note_own_epoch(&id, 7).unwrap();
        assert!(!a.may_send_in(&id, 4).unwrap());
        assert!(a.may_send_in(&id, 5).unwrap());
        assert!(a.may_send_in(&id, 6).unwrap());
        assert!(!a.may_send_in(&other, 6).unwrap());
        assert_eq!(a.recovery().unwrap().unwrap().fences.get(&id), Some(&5));
    }
}
