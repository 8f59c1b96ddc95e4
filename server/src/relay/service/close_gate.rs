//! **Test-only** (the `test-hooks` feature): a gate that holds the closes other nodes forward
//! (`Service::forwarded_close`), so a cluster test can make one arrive *late* — after the
//! node's own re-check closed the old key's session and the key signed in again, or
//! registered under a new name — by construction, not within a time window.
//!
//! With `SEALDESK_TEST_FORWARDED_CLOSE_GATE=<file>`, a forwarded close that arrives while
//! `<file>` exists waits until it is gone, logging "a forwarded close held at its gate" when
//! held and "a held forwarded close released" with how many sessions it closed once it ran.
//! It waits in the wake-up round that brought it, as the catch-up gate does in the catch-up:
//! that round's later pushes wait with it; the node's periodic chores (the re-check of agent
//! keys) and its sessions go on. The variable is read once per process.
//!
//! A build without the feature never holds a close: the variable is ignored, and the relay's
//! log says so at the first forwarded close.

use std::path::PathBuf;

use tracing::warn;

/// The variable naming the gate's file.
pub const FORWARDED_CLOSE_GATE_ENV: &str = "SEALDESK_TEST_FORWARDED_CLOSE_GATE";

/// How often a held close looks at the gate.
#[cfg(feature = "test-hooks")]
const GATE_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// The gate's file for the variable's value `var` (`None` if unset), in a build with
/// (`test_hooks`) or without the test hooks (which says it ignores the variable).
fn decide(var: Option<PathBuf>, test_hooks: bool) -> Option<PathBuf> {
    let var = var?;
    if !test_hooks {
        warn!(
            variable = FORWARDED_CLOSE_GATE_ENV,
            "ignored: this build has no test hooks, so no forwarded close is held"
        );
        return None;
    }
    Some(var)
}

/// The gate's file, if this process has one (read once).
fn gate() -> Option<&'static PathBuf> {
    static GATE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    GATE.get_or_init(|| {
        decide(
            std::env::var_os(FORWARDED_CLOSE_GATE_ENV).map(PathBuf::from),
            cfg!(feature = "test-hooks"),
        )
    })
    .as_ref()
}

/// Blocks while the gate is closed (test-hooks builds only); whether it held the close.
pub(super) fn hold_forwarded_close() -> bool {
    let Some(gate) = gate() else {
        return false;
    };
    if !gate.exists() {
        return false;
    }
    warn!("a forwarded close held at its gate (test only)");
    wait_open(gate);
    true
}

#[cfg(feature = "test-hooks")]
fn wait_open(gate: &std::path::Path) {
    while gate.exists() {
        std::thread::sleep(GATE_POLL);
    }
}

/// A build without the test hooks has no gate ([`decide`]), so never comes here.
#[cfg(not(feature = "test-hooks"))]
fn wait_open(_gate: &std::path::Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_test_hooks_ignores_the_variable() {
        let file = Some(PathBuf::from("/tmp/gate"));
        assert_eq!(decide(file.clone(), false), None);
        assert_eq!(decide(None, false), None);
        assert_eq!(decide(None, true), None);
        assert_eq!(decide(file.clone(), true), file);
    }
}
