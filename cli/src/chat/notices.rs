//! Notices not yet confirmed by the org's trustees ("NOT YET CONFIRMED"), across the chat's
//! conversations: which conversations hold one ([`Session::unconfirmed`], the list's mark),
//! and the periodic check that judges them again ([`recheck_notices`]). No push tells the chat
//! that a trustee cosigned, so every conversation holding such a notice is checked on the
//! timer, not only the one on screen; the others cost nothing.

use sealdesk_client::account::LogEntry;
use sealdesk_client::client::Client;
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
/// any other error is shown, and the next check tries again.
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
            Ok(events) => show_events(client, out, &events, s).map_err(io)?,
            Err(e) if is_connection_lost(&e) || is_fatal(&e) => return Err(e),
            Err(e) => out
                .show(Shown::Warning {
                    conversation: Some(id),
                    here: Some(id) == s.current,
                    text: format!(
                        "the notices not yet confirmed could not be checked again now ({e}); \
                         they are checked again at the next sync"
                    ),
                })
                .map_err(io)?,
        }
    }
    if s.unconfirmed != before {
        conversations(client, out, s, false).map_err(io)?;
    }
    Ok(())
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
