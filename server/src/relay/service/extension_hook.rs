//! **Test-only** (the `test-hooks` feature): one audit entry of a kind this version cannot
//! read, so that the readers' "update sealdesk" line (PROTOCOL.md §12.1 "Kinds a later version
//! adds", §12.3) can be shown from a real relay. This relay never appends such an entry
//! otherwise (`append_audit` refuses the extension form: it does not know who may make one,
//! nor who may read it).
//!
//! With `SEALDESK_TEST_EXTENSION_ENTRY=<code>@<index>` (a code of 6–255, an index), the relay
//! appends one entry `{ extension: { code, body } }` signed by its log key at index `index`:
//! at start if the log holds `index` entries then, or else right after the append that makes
//! it `index` entries long (an index the log is already past is never filled). Every
//! registered account is served it (`Service::may_read`), so a customer and an agent alike
//! read it and pass over it. Its body is [`EXTENSION_BODY`].
//!
//! A build without the feature has no way to make such a hook ([`ExtensionHook`] has no
//! constructor there): the variable is ignored, and the relay's log says so at start
//! ([`crate::test_hooks::warn_ignored`]).

#[cfg(feature = "test-hooks")]
use tracing::warn;

#[cfg(feature = "test-hooks")]
use sealdesk_protocol::audit::{AuditEntry, AuditEvent, ExtensionEvent};

#[cfg(feature = "test-hooks")]
use super::{Reject, Service};

/// The variable that asks for the entry: `<code>@<index>`.
pub const EXTENSION_ENTRY_ENV: &str = "SEALDESK_TEST_EXTENSION_ENTRY";

/// The body of the entry the hook appends (the rest of its canonical layout, §12.1).
#[cfg(feature = "test-hooks")]
pub const EXTENSION_BODY: &[u8] = b"sealdesk test extension entry";

/// One extension entry to append: its event code and the index it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExtensionHook {
    code: u8,
    at: u64,
}

impl ExtensionHook {
    /// The hook [`EXTENSION_ENTRY_ENV`] asks for, in a build with the test hooks; `None` when
    /// it is unset, and in a build without them (whose start says it ignores the variable).
    ///
    /// # Errors
    /// [`crate::Error::Config`] for a value that is not `<code>@<index>` with a code of
    /// 6–255 (test-hooks builds only).
    pub(crate) fn from_env() -> crate::Result<Option<Self>> {
        let var = crate::test_hooks::var_os(EXTENSION_ENTRY_ENV)
            .map(|v| v.to_string_lossy().into_owned());
        Self::decide(var.as_deref(), crate::test_hooks::ENABLED)
    }

    /// The hook for the variable's value `var` (`None` if unset), in a build with
    /// (`test_hooks`) or without the test hooks.
    fn decide(var: Option<&str>, test_hooks: bool) -> crate::Result<Option<Self>> {
        let Some(var) = var else {
            return Ok(None);
        };
        if !test_hooks {
            return Ok(None);
        }
        Self::parse(var).map(Some)
    }

    #[cfg(feature = "test-hooks")]
    fn parse(var: &str) -> crate::Result<Self> {
        let bad = |why: String| {
            crate::Error::Config(format!(
                "{EXTENSION_ENTRY_ENV}={var:?}: {why} (expected <code>@<index>, a code of 6 to 255)"
            ))
        };
        let (code, at) = var
            .split_once('@')
            .ok_or_else(|| bad("no `@`".to_owned()))?;
        let code: u8 = code
            .parse()
            .map_err(|_| bad(format!("{code:?} is not a code")))?;
        ExtensionEvent::new(code, Vec::new()).map_err(|e| bad(e.to_string()))?;
        let at = at
            .parse()
            .map_err(|_| bad(format!("{at:?} is not an index")))?;
        Ok(Self { code, at })
    }

    /// A build without the test hooks never makes a hook.
    #[cfg(not(feature = "test-hooks"))]
    fn parse(_var: &str) -> crate::Result<Self> {
        Err(crate::Error::Config(format!(
            "{EXTENSION_ENTRY_ENV} needs a build with the test hooks"
        )))
    }
}

#[cfg(feature = "test-hooks")]
impl Service {
    /// Appends the hook's entry if the log is `size` entries long now (at start, and after
    /// each append): signed by the relay's log key, at the relay's time.
    pub(super) fn fill_extension_slot(&self, size: u64) -> Result<(), Reject> {
        let Some(hook) = self.extension_hook.filter(|h| h.at == size) else {
            return Ok(());
        };
        let event = ExtensionEvent::new(hook.code, EXTENSION_BODY.to_vec())?;
        let entry = AuditEntry::sign(&self.keys, AuditEvent::Extension(event), self.clock.now());
        if let Some((index, ..)) = self.log_append(&entry, None, None)? {
            warn!(
                index,
                code = hook.code,
                "an audit entry of a kind this version cannot read appended (test only)"
            );
        }
        Ok(())
    }
}

#[cfg(not(feature = "test-hooks"))]
impl super::Service {
    /// No hook in a build without the test hooks.
    #[allow(clippy::unused_self, clippy::unnecessary_wraps)]
    pub(super) fn fill_extension_slot(&self, _size: u64) -> Result<(), super::Reject> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_test_hooks_ignores_the_variable() {
        assert_eq!(ExtensionHook::decide(None, false).ok(), Some(None));
        assert_eq!(ExtensionHook::decide(Some("7@1"), false).ok(), Some(None));
        assert_eq!(
            ExtensionHook::decide(Some("nonsense"), false).ok(),
            Some(None)
        );
        assert_eq!(ExtensionHook::decide(None, true).ok(), Some(None));
    }

    #[cfg(feature = "test-hooks")]
    #[test]
    fn a_test_build_takes_a_code_and_an_index() {
        assert_eq!(
            ExtensionHook::decide(Some("7@1"), true).ok(),
            Some(Some(ExtensionHook { code: 7, at: 1 }))
        );
        for bad in ["7", "5@1", "0@1", "256@1", "x@1", "7@", "7@-1"] {
            let e = ExtensionHook::decide(Some(bad), true);
            assert!(
                matches!(&e, Err(crate::Error::Config(m)) if m.contains(EXTENSION_ENTRY_ENV)),
                "{bad}: {e:?}"
            );
        }
    }
}
