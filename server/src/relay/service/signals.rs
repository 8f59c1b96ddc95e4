//! Ephemeral signals (typing): checked as far as the relay can without keys, forwarded to the
//! other members of the conversation's current epoch who are online, and never stored — not in
//! the conversation, not in a log, not in a queue for members who are offline.

use sealdesk_protocol::{
    signal::{SIGNAL_CIPHERTEXT_LEN, SignalEnvelope},
    signed::Signed as _,
    wire::{ErrorCode, Push, Response},
};
use tracing::debug;

use super::{Caller, Reply, Service, reject};

impl Service {
    /// Forwards `env` to the other current members of its conversation. Refused unless the
    /// caller is its sender (signature checked), a member of the conversation's current epoch,
    /// and the signal is sealed for that epoch. The members' clients check it again and open it.
    pub(super) fn signal(&self, caller: &Caller, env: SignalEnvelope) -> Reply {
        let h = &env.header;
        let s = self.conv_for(caller, &h.conversation)?;
        if h.sender != caller.key() {
            return reject(
                ErrorCode::Forbidden,
                "a signal must name the account that sends it",
            );
        }
        if env.ciphertext.len() != SIGNAL_CIPHERTEXT_LEN {
            return reject(
                ErrorCode::BadRequest,
                format!("a signal's ciphertext is {SIGNAL_CIPHERTEXT_LEN} bytes"),
            );
        }
        if s.current_epoch != Some(h.epoch) {
            return reject(
                ErrorCode::StaleEpoch,
                "signals are sealed for the conversation's current epoch",
            );
        }
        if !s.may_read(&caller.key(), Some(h.epoch)) {
            return reject(
                ErrorCode::Forbidden,
                "only a member of the current epoch may signal",
            );
        }
        env.check_signed_by(&caller.key())?;
        let conversation = h.conversation;
        let mut forwarded = 0usize;
        for m in s.current_members() {
            if m != caller.key() {
                self.push(&m, Push::Signal(env.clone()));
                forwarded += 1;
            }
        }
        debug!(%conversation, forwarded, "signal forwarded");
        Ok(Response::Ok)
    }
}
