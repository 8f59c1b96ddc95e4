//! Replaceable recovery codes: a customer makes a new code for the account it is signed in to
//! (an account made before recovery codes had none; an `init` code that leaked can be
//! retired), and the relay keeps the identity keys sealed under it
//! ([`sealdesk_protocol::recovery_record`]).
//!
//! ```text
//!   prepare   a pending code in the vault (record `recovery/pending`), made once and kept
//!             until the relay confirms it, so an interrupted run sends the same code again
//!   install   seal keys + card under it → PutRecovery → ok: the relay's record is this
//!             code's; the pending code is dropped
//!   settle    on a later run with a pending code: GetRecovery with its proof answers whether
//!             the relay stored it before the interruption
//! ```
//!
//! **Never neither.** The relay answers `PutRecovery` only once the record is durable, and
//! the pending code stays in the vault until then, so at any moment the code in force on the
//! relay is either the one before (old record, or an `init` code while no record exists) or the
//! pending one, which the caller has been shown before it was sent. Which one is known as soon
//! as the relay answers once.
//!
//! **What a replacement retires.** A replaced record code opens nothing: its proof no longer
//! fetches a record and the new record is sealed under another key. An `init` code is
//! different: it *is* the identity keys. Once a record exists, `recover` refuses an `init`
//! code ([`ClientError::RecoveryCodeReplaced`]), but whoever holds a leaked `init` code holds
//! the keys and could use them with other software; SECURITY.md, "Recovery", says so.

use sealdesk_protocol::{
    card::Role,
    recovery::RecoveryCode,
    recovery_record::{RecoveryProof, RecoveryRecord},
    wire::{ErrorCode, Request, Response},
};
use zeroize::Zeroizing;

use crate::account::Account;
use crate::error::{ClientError, Result};
use crate::reply::{expect_ok, unexpected};
use crate::session::Session;
use crate::store::name;
use crate::{Client, now, rng};

/// What the relay holds for an account, as far as recovery goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InForce {
    /// The code before this replacement (the last record, or the `init` code if any).
    Previous,
    /// The pending code: the relay stored its record.
    Pending,
}

impl Account {
    /// The pending replacement code: the one kept from an interrupted replacement, else a
    /// fresh one, kept in the vault before it is returned (show it to the user before
    /// installing it).
    ///
    /// # Errors
    /// [`ClientError::RecoveryCodeNotOffered`] for any role but a customer;
    /// [`ClientError::Vault`]; [`ClientError::Protocol`] for an unreadable pending code.
    pub fn pending_recovery_code(&self) -> Result<RecoveryCode> {
        refuse_role(self.role())?;
        if let Some(text) = self.vault().get(name::RECOVERY_PENDING)? {
            // Written by `reveal` below; anything else fails the parse with a typed error.
            let text = Zeroizing::new(String::from_utf8_lossy(&text).into_owned());
            return RecoveryCode::parse(&text)
                .map_err(|e| ClientError::Protocol(sealdesk_protocol::Error::from(e)));
        }
        let code = RecoveryCode::generate_for_record(&mut rng()?, now())
            .map_err(sealdesk_protocol::Error::from)?;
        let text = code.reveal();
        self.vault().put(
            name::RECOVERY_PENDING,
            Zeroizing::new(text.as_bytes().to_vec()).as_slice(),
        )?;
        Ok(code)
    }

    /// Whether a replacement was interrupted (a pending code is kept).
    ///
    /// # Errors
    /// [`ClientError::Vault`].
    pub fn has_pending_recovery_code(&self) -> Result<bool> {
        Ok(self.vault().get(name::RECOVERY_PENDING)?.is_some())
    }
}

impl Client {
    /// Which code the relay holds for this account: the pending one (then the pending code is
    /// dropped from the vault: the replacement is finished) or the one before.
    ///
    /// # Errors
    /// [`ClientError::RecoveryCodeNotOffered`], transport errors (nothing is known then), and
    /// relay errors other than the `forbidden`/`not_found` that mean "not the pending code".
    pub async fn recovery_code_in_force(&mut self, pending: &RecoveryCode) -> Result<InForce> {
        refuse_role(self.account.role())?;
        let proof = RecoveryProof::of(pending).map_err(sealdesk_protocol::Error::from)?;
        let asked = self
            .session
            .request(Request::GetRecovery {
                name: self.account.name().to_owned(),
                proof: proof.to_bytes().to_vec(),
            })
            .await;
        match asked {
            Ok(Response::Recovery(record)) if record.admits(&proof) => {
                self.account.vault().delete(name::RECOVERY_PENDING)?;
                Ok(InForce::Pending)
            }
            Ok(other) => Err(unexpected("GetRecovery", &other)),
            Err(ClientError::Relay {
                code: ErrorCode::Forbidden | ErrorCode::NotFound,
                ..
            }) => Ok(InForce::Previous),
            Err(e) => Err(e),
        }
    }

    /// Installs `code` (from [`Account::pending_recovery_code`]) as this account's recovery
    /// code: the relay's record is replaced, the code before stops working, and the pending
    /// code is dropped from the vault.
    ///
    /// # Errors
    /// [`ClientError::RecoveryCodeNotOffered`]; transport errors (the relay may or may not
    /// have stored the record: [`Self::recovery_code_in_force`] tells, and installing the
    /// same code again is harmless); the relay's refusals.
    pub async fn install_recovery_code(&mut self, code: &RecoveryCode) -> Result<()> {
        refuse_role(self.account.role())?;
        let record = RecoveryRecord::seal(
            &mut rng()?,
            code,
            self.account.card().card(),
            self.account.keys(),
        )
        .map_err(sealdesk_protocol::Error::from)?;
        expect_ok(self.session.request(Request::PutRecovery(record)).await?)?;
        self.account.vault().delete(name::RECOVERY_PENDING)?;
        Ok(())
    }
}

/// Whether a `recover` with an `init` code must be refused because the account's code was
/// replaced: asks the relay, on `session` (authenticated with the code's keys), whether a
/// record exists for `name` (an empty proof matches none: `forbidden` means one exists). Any
/// other answer counts as "not replaced": a relay older than the request has no records (and
/// closes the connection on a frame it cannot decode), and a relay that wanted to hide a
/// record could as well answer `not_found` — this check keeps an honest client from using a
/// retired code, it does not stop whoever holds that code (SECURITY.md, "Recovery").
pub(crate) async fn init_code_replaced(session: &Session, name: &str) -> bool {
    let asked = session
        .request(Request::GetRecovery {
            name: name.to_owned(),
            proof: Vec::new(),
        })
        .await;
    matches!(
        asked,
        Err(ClientError::Relay {
            code: ErrorCode::Forbidden,
            ..
        })
    )
}

/// Fetches and opens the record of `name` with the record `code`, on a session of any keys.
///
/// # Errors
/// [`ClientError::NotRecovered`] when the relay has no record for `name` or this is not its
/// current code; [`ClientError::Protocol`] for a record the code does not open (a relay
/// cannot hand out keys of its choosing: they must open under the code and be the card's).
pub(crate) async fn fetch_record_keys(
    session: &Session,
    name: &str,
    code: &RecoveryCode,
) -> Result<(
    sealdesk_protocol::keys::IdentityKeys,
    sealdesk_protocol::card::VerifiedCard,
)> {
    let proof = RecoveryProof::of(code).map_err(sealdesk_protocol::Error::from)?;
    let asked = session
        .request(Request::GetRecovery {
            name: name.to_owned(),
            proof: proof.to_bytes().to_vec(),
        })
        .await;
    let record = match asked {
        Ok(Response::Recovery(record)) => record,
        Ok(other) => return Err(unexpected("GetRecovery", &other)),
        Err(ClientError::Relay {
            code: ErrorCode::Forbidden | ErrorCode::NotFound,
            ..
        }) => {
            return Err(ClientError::NotRecovered {
                name: name.to_owned(),
            });
        }
        Err(e) => return Err(e),
    };
    let keys = record
        .open(code, name)
        .map_err(sealdesk_protocol::Error::from)?;
    let card = record.card.verify_as(Role::Customer)?;
    Ok((keys, card))
}

/// Refuses the roles recovery codes are not offered to, saying what to do instead.
fn refuse_role(role: Role) -> Result<()> {
    let advice = match role {
        Role::Customer => return Ok(()),
        Role::Agent => {
            "an agent that loses its keys is re-certified for new ones by its org's master \
             (`sealdesk org recertify`)"
        }
        _ => {
            "keep a copy of this account's home (its vault is encrypted under your \
             passphrase) somewhere safe and offline"
        }
    };
    Err(ClientError::RecoveryCodeNotOffered {
        role: role.name(),
        advice,
    })
}
