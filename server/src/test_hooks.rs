//! **Test-only** switches, read only in a build with the `test-hooks` feature.
//!
//! The end-to-end tests hold a node's commits, drop its wake-ups or fail its reads at the
//! moment they choose, through environment variables ([`VARIABLES`]; each one's doc is with
//! the gate it opens or closes). In production any of them would do harm: a gate left closed
//! holds every acknowledgement or sign-in, a "drop" variable silently loses wake-ups. So a
//! relay reads them only through `var_os`, which in a build without the feature reads
//! nothing: such a build (every normal `cargo build` of the relay) behaves as if none were
//! set, and `warn_ignored` says once, at start, which of them it ignores.
//!
//! The workspace's tests get the feature through the tests crate's dev-dependency on this one
//! (cargo's resolver 2 unifies a dev-dependency's features for `cargo test`, and for the
//! relay binary that same command builds); the web suites' binaries through `--features
//! test-hooks`.
//!
//! **Architecture Invariant:** a test-only variable of the relay is read through `var_os`
//! and listed in [`VARIABLES`].

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use tracing::warn;

use crate::commit::COMMIT_GATE_ENV;
use crate::relay::{
    CATCH_UP_GATE_ENV, DROP_AUDIT_WAKEUPS_ENV, DROP_CLOSES_ENV, DROP_CONSENTS_ENV,
    EXTENSION_ENTRY_ENV, FAIL_CARD_REREADS_ENV, FAIL_PRESENCE_READS_ENV, FAILPOINT_ENV,
    FORWARDED_CLOSE_GATE_ENV, RECHECK_GATE_ENV, SIGN_IN_GATE_ENV,
};

/// Whether this build has the test hooks (the `test-hooks` feature).
pub const ENABLED: bool = cfg!(feature = "test-hooks");

/// Every test-only variable the relay reads (in a build with the test hooks only).
pub const VARIABLES: &[&str] = &[
    COMMIT_GATE_ENV,
    CATCH_UP_GATE_ENV,
    SIGN_IN_GATE_ENV,
    DROP_AUDIT_WAKEUPS_ENV,
    DROP_CLOSES_ENV,
    FORWARDED_CLOSE_GATE_ENV,
    RECHECK_GATE_ENV,
    DROP_CONSENTS_ENV,
    FAIL_PRESENCE_READS_ENV,
    FAIL_CARD_REREADS_ENV,
    EXTENSION_ENTRY_ENV,
    FAILPOINT_ENV,
];

/// The value of test-only variable `name` (one of [`VARIABLES`]) in a build with the test
/// hooks; `None` in a build without them, whatever the environment holds.
pub(crate) fn var_os(name: &str) -> Option<OsString> {
    debug_assert!(
        VARIABLES.contains(&name),
        "{name} is not listed in VARIABLES"
    );
    read(name, ENABLED, |n| std::env::var_os(n))
}

/// How often a node held at one of the test gates (a file that holds it while it exists) looks
/// at the gate's file.
pub(crate) const GATE_POLL: Duration = Duration::from_millis(5);

/// Blocks the calling thread while the test gate's file `gate` exists, logging `held` (with
/// "(test only)") once when it does; whether it held. For a gate on a blocking thread (an
/// async task polls with a tokio sleep instead).
pub(crate) fn hold_while_exists(gate: &Path, held: &str) -> bool {
    if !gate.exists() {
        return false;
    }
    warn!("{held} (test only)");
    while gate.exists() {
        std::thread::sleep(GATE_POLL);
    }
    true
}

/// At the relay's start, in a build without the test hooks: one warning naming the test-only
/// variables that are set, which this build ignores. Nothing in a build with them (each gate
/// logs as it acts), nor when none is set.
pub(crate) fn warn_ignored() {
    let ignored = ignored(ENABLED, |n| std::env::var_os(n).is_some());
    if !ignored.is_empty() {
        warn!(
            variables = %ignored.join(", "),
            "ignored: this build has no test hooks (the `test-hooks` feature), so these \
             test-only variables have no effect"
        );
    }
}

/// [`var_os`] for a build with (`enabled`) or without the hooks, reading `env`.
fn read(name: &str, enabled: bool, env: impl Fn(&str) -> Option<OsString>) -> Option<OsString> {
    if enabled { env(name) } else { None }
}

/// The [`VARIABLES`] that `is_set` says are set, in a build without the hooks (`enabled`
/// false); none in a build with them.
fn ignored(enabled: bool, is_set: impl Fn(&str) -> bool) -> Vec<&'static str> {
    if enabled {
        return Vec::new();
    }
    VARIABLES.iter().copied().filter(|n| is_set(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_test_hooks_reads_no_variable() {
        let env = |_: &str| Some(OsString::from("/tmp/gate"));
        for name in VARIABLES {
            assert_eq!(read(name, false, env), None, "{name}");
            assert_eq!(read(name, true, env), Some(OsString::from("/tmp/gate")));
        }
    }

    #[test]
    fn a_build_without_test_hooks_names_the_variables_it_ignores() {
        let set = |n: &str| n == COMMIT_GATE_ENV || n == DROP_CLOSES_ENV;
        assert_eq!(ignored(false, set), [COMMIT_GATE_ENV, DROP_CLOSES_ENV]);
        assert!(ignored(false, |_| false).is_empty());
        assert!(ignored(true, set).is_empty(), "a test build ignores none");
    }

    #[test]
    fn every_variable_is_a_test_one_and_listed_once() {
        for (i, name) in VARIABLES.iter().enumerate() {
            assert!(name.starts_with("SEALDESK_TEST_"), "{name}");
            assert!(!VARIABLES[i + 1..].contains(name), "{name} twice");
        }
    }
}
