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
//! log says so at start (`crate::test_hooks`, which lists it).

use std::path::PathBuf;

/// The variable naming the gate's file.
pub const FORWARDED_CLOSE_GATE_ENV: &str = "SEALDESK_TEST_FORWARDED_CLOSE_GATE";

/// The gate's file, if this process has one (read once, through `test_hooks::var_os`).
fn gate() -> Option<&'static PathBuf> {
    static GATE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    GATE.get_or_init(|| crate::test_hooks::var_os(FORWARDED_CLOSE_GATE_ENV).map(PathBuf::from))
        .as_ref()
}

/// Blocks while the gate is closed (test-hooks builds only); whether it held the close.
pub(super) fn hold_forwarded_close() -> bool {
    gate().is_some_and(|gate| {
        crate::test_hooks::hold_while_exists(gate, "a forwarded close held at its gate")
    })
}
