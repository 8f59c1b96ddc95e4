//! **Test-only** (the `test-hooks` feature): a gate that holds the periodic re-check of agent
//! keys (`Service::recheck_some_agent_keys`, run by the node's chores), so a cluster test can
//! fix the order of "the node drops a forwarded close" and "its re-check closes the old key's
//! session" by construction, not within a time window.
//!
//! With `SEALDESK_TEST_RECHECK_GATE=<file>`, a periodic re-check that starts while `<file>`
//! exists waits until it is gone, logging "an agent key re-check held at its gate" when held.
//! It waits in the chores round that runs it: that round's other work (the byte counts' fold,
//! the blocks' reload) waits with it; wake-up rounds, the catch-up and the sessions go on, and
//! so does the re-check a listener's reconnect runs (`Service::recheck_agent_keys`). The
//! variable is read once per process.
//!
//! A build without the feature never holds a re-check: the variable is ignored, and the
//! relay's log says so at start (`crate::test_hooks`, which lists it).

use std::path::PathBuf;

/// The variable naming the gate's file.
pub const RECHECK_GATE_ENV: &str = "SEALDESK_TEST_RECHECK_GATE";

/// The gate's file, if this process has one (read once, through `test_hooks::var_os`).
fn gate() -> Option<&'static PathBuf> {
    static GATE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    GATE.get_or_init(|| crate::test_hooks::var_os(RECHECK_GATE_ENV).map(PathBuf::from))
        .as_ref()
}

/// Blocks while the gate is closed (test-hooks builds only).
pub(super) fn hold_periodic_recheck() {
    if let Some(gate) = gate() {
        crate::test_hooks::hold_while_exists(gate, "an agent key re-check held at its gate");
    }
}
