//! Connecting again to the same relay after the connection was lost (the relay restarted, the
//! network dropped): a new session replaces the old one in place, with the same checks as the
//! first connection (the relay's keys must be the ones pinned). The account's state — cursors,
//! counters, epochs — is in the vault, so a sync after reconnecting resumes from each
//! conversation's cursor.

use super::Client;
use crate::error::Result;

impl Client {
    /// Whether the session is still open (the relay has not closed it, and the I/O task runs).
    pub fn is_connected(&self) -> bool {
        self.session.closed().is_none()
    }

    /// Connects again to the relay this client connected to, with the same TLS trust, and
    /// replaces the session (the old one is closed). Pushes of the old session that were not
    /// read are gone: sync afterwards ([`Self::sync_all`]) to catch up from the cursors.
    ///
    /// # Errors
    /// As [`Self::connect`]: transport and handshake errors, [`crate::ClientError::RelayKeyChanged`]
    /// (the session is then not replaced).
    pub async fn reconnect(&mut self) -> Result<()> {
        let url = self.session.url().to_owned();
        let session = Self::handshake(&self.account, &url, &self.tls).await?;
        if let Err(e) =
            self.account
                .check_relay(&url, session.relay_key(), session.welcome().log_key)
        {
            session.close().await;
            return Err(e);
        }
        let old = std::mem::replace(&mut self.session, session);
        old.close().await;
        Ok(())
    }
}
