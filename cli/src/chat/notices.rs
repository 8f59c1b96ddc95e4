//! Notices not yet confirmed by the org's trustees ("NOT YET CONFIRMED"), across the chat's
//! conversations: which conversations hold one ([`Session::unconfirmed`], the list's mark),
//! and the periodic check that judges them again ([`recheck_notices`]). No push tells the chat
//! that a trustee cosigned, so every conversation holding such a notice is checked on the
//! timer, not only the one on screen; the others cost nothing. A check that fails is warned
//! of once per conversation and failure ([`RecheckFailures`]), not at every check.

use std::collections::{BTreeSet, HashMap};

use sealdesk_client::account::LogEntry;
use sealdesk_client::client::Client;
use sealdesk_client::error::ClientError;
use sealdesk_protocol::ids::ConversationId;

use super::Result;
use super::commands::conversations;
use super::engine::{Session, io, is_connection_lost, is_fatal, show_events};
use super::event::{Shown, Sink};
use crate::error::CliError;

/// Judges again the notices not yet witnessed ("NOT YET CONFIRMED") of every conversation
/// holding one ([`Session::unconfirmed`]; the others cost nothing), as every sync does: the
/// trustees cosign the log within a minute of a release, and no push tells the chat, so
/// without this a chat left open would keep the unconfirmed wording. A notice confirmed since
/// (or found not genuine) is shown updated — replaced in place in the conversation on
/// screen, its conversation's mark changed in the list, printed as an update by the line
/// displays — and the list follows. Only a lost connection (or a fatal error) is returned;
/// any other error is shown — once per conversation and failure ([`checked`]) — and the next
/// check tries again. The list's mark stays while a conversation's check fails.
pub(crate) async fn recheck_notices<S: Sink>(
    client: &mut Client,
    out: &mut S,
    s: &mut Session,
) -> Result<()> {
    let before = s.unconfirmed.clone();
    for id in before.iter().copied() {
        match client
            .recheck_unwitnessed(&id)
            .await
            .map_err(CliError::from)
        {
            Ok(events) => {
                checked(out, s, id, Ok(())).map_err(io)?;
                show_events(client, out, &events, s).map_err(io)?;
            }
            Err(e) if is_connection_lost(&e) || is_fatal(&e) => return Err(e),
            Err(e) => checked(out, s, id, Err(&e)).map_err(io)?,
        }
    }
    // A conversation no longer marked has nothing left to check: its next failure, if it is
    // marked again, is news.
    s.notice_failures.keep_only(&s.unconfirmed);
    if s.unconfirmed != before {
        conversations(client, out, s, false).map_err(io)?;
    }
    Ok(())
}

/// The outcome of one check of conversation `id`'s notices (`Err`: a failure other than a lost
/// connection): a failure is warned of unless it is the one last warned of for `id` with no
/// success since; a success makes the next failure news.
fn checked<S: Sink>(
    out: &mut S,
    s: &mut Session,
    id: ConversationId,
    outcome: std::result::Result<(), &CliError>,
) -> std::io::Result<()> {
    let e = match outcome {
        Ok(()) => {
            s.notice_failures.succeeded(id);
            return Ok(());
        }
        Err(e) => e,
    };
    if !s.notice_failures.failed(id, failure_of(e)) {
        return Ok(());
    }
    out.show(Shown::Warning {
        conversation: Some(id),
        here: Some(id) == s.current,
        text: format!(
            "the notices not yet confirmed could not be checked again now ({e}); they are \
             checked again every minute, and this is said again only if the failure changes"
        ),
    })
}

/// What makes two failed checks the same failure: the error's text, but for a relay's refusal
/// its code and message only (the wait it asks for changes from one refusal to the next).
fn failure_of(e: &CliError) -> String {
    match e {
        CliError::Client(ClientError::Relay { code, message, .. }) => {
            format!("{code:?}: {message}")
        }
        other => other.to_string(),
    }
}

/// For each conversation whose last check of its notices failed, the failure warned of
/// ([`failure_of`]): the periodic check warns of a failure once, not every minute, and again
/// when it changes or after a success.
#[derive(Debug, Default)]
pub(crate) struct RecheckFailures(HashMap<ConversationId, String>);

impl RecheckFailures {
    /// The check of `id` failed with `failure`: whether that is news (not the failure last
    /// warned of for `id`), now remembered.
    fn failed(&mut self, id: ConversationId, failure: String) -> bool {
        if self.0.get(&id) == Some(&failure) {
            return false;
        }
        self.0.insert(id, failure);
        true
    }

    /// The check of `id` succeeded: its next failure is news.
    fn succeeded(&mut self, id: ConversationId) {
        self.0.remove(&id);
    }

    /// Forgets the conversations not in `marked`.
    fn keep_only(&mut self, marked: &BTreeSet<ConversationId>) {
        self.0.retain(|id, _| marked.contains(id));
    }
}

/// Reads conversation `id`'s log (local: no request) for a notice not yet witnessed, and
/// keeps [`Session::unconfirmed`] true to it. A log that cannot be read counts as none: its
/// notices keep the unconfirmed wording, and the next sync judges them again.
pub(crate) fn note_unconfirmed(client: &Client, s: &mut Session, id: ConversationId) {
    let holds = client.account().log(&id).is_ok_and(|log| {
        log.iter().any(|e| {
            matches!(
                e,
                LogEntry::Notice {
                    unwitnessed: Some(_),
                    ..
                }
            )
        })
    });
    if holds {
        s.unconfirmed.insert(id);
    } else {
        s.unconfirmed.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use sealdesk_protocol::wire::ErrorCode;

    use super::*;

    /// The warnings shown, by conversation.
    #[derive(Default)]
    struct Warnings(Vec<(Option<ConversationId>, String)>);

    impl Sink for Warnings {
        fn show(&mut self, shown: Shown) -> std::io::Result<()> {
            if let Shown::Warning {
                conversation, text, ..
            } = shown
            {
                self.0.push((conversation, text));
            }
            Ok(())
        }
    }

    fn refused(code: ErrorCode, message: &str, wait: u64) -> CliError {
        CliError::Client(ClientError::Relay {
            code,
            message: message.to_owned(),
            retry_after: Some(Duration::from_secs(wait)),
        })
    }

    fn conversation(byte: u8) -> ConversationId {
        ConversationId::from_bytes(&[byte; 16]).unwrap()
    }

    #[test]
    fn a_failure_is_warned_of_once_per_conversation_until_it_changes_or_a_check_succeeds() {
        let (one, two) = (conversation(1), conversation(2));
        let mut s = Session::default();
        s.unconfirmed.extend([one, two]);
        let mut out = Warnings::default();
        let busy = |wait| refused(ErrorCode::RateLimited, "too many requests", wait);
        let unreadable = CliError::Client(ClientError::UnexpectedResponse("a page".into()));

        // The same failure, minute after minute (a refusal asking for another wait is the same):
        // one warning.
        for wait in [3, 3, 7] {
            checked(&mut out, &mut s, one, Err(&busy(wait))).unwrap();
        }
        assert_eq!(out.0.len(), 1, "{:?}", out.0);
        assert_eq!(out.0[0].0, Some(one));
        assert!(out.0[0].1.contains("too many requests"), "{}", out.0[0].1);
        // Another conversation's failure is its own.
        checked(&mut out, &mut s, two, Err(&busy(3))).unwrap();
        assert_eq!(out.0.len(), 2);
        assert_eq!(out.0[1].0, Some(two));
        // A changed failure is warned of, and then not again.
        checked(&mut out, &mut s, one, Err(&unreadable)).unwrap();
        checked(&mut out, &mut s, one, Err(&unreadable)).unwrap();
        assert_eq!(out.0.len(), 3);
        assert!(out.0[2].1.contains("a page"), "{}", out.0[2].1);
        // Back to the first failure: it changed again.
        checked(&mut out, &mut s, one, Err(&busy(3))).unwrap();
        assert_eq!(out.0.len(), 4);
        // A success, then the same failure again: warned of again.
        checked(&mut out, &mut s, one, Ok(())).unwrap();
        checked(&mut out, &mut s, one, Err(&busy(3))).unwrap();
        assert_eq!(out.0.len(), 5);
        assert_eq!(out.0[4].0, Some(one));
        // The other conversation's failure is still the one warned of.
        checked(&mut out, &mut s, two, Err(&busy(9))).unwrap();
        assert_eq!(out.0.len(), 5, "{:?}", out.0);
        // Nor does a warning take a conversation's mark away.
        assert_eq!(s.unconfirmed, BTreeSet::from([one, two]));
    }

    #[test]
    fn a_conversation_marked_again_has_its_failure_warned_of_again() {
        let one = conversation(1);
        let mut s = Session::default();
        let mut out = Warnings::default();
        let e = refused(ErrorCode::Internal, "the store cannot answer", 1);
        checked(&mut out, &mut s, one, Err(&e)).unwrap();
        // Its notices were confirmed by a sync meanwhile: no longer marked.
        s.notice_failures.keep_only(&BTreeSet::new());
        checked(&mut out, &mut s, one, Err(&e)).unwrap();
        assert_eq!(out.0.len(), 2);
    }
}
