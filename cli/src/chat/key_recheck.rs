//! How often a running chat checks the agent's key and the notices not yet witnessed: every
//! [`super::KEY_RECHECK`], or, in a build with the test hooks (the `test-hooks` feature), the
//! period a test asks for in [`KEY_RECHECK_MS_VAR`]. A build without them ignores the variable
//! and says so when a chat starts.

/// **Test-only**: the period [`period`] returns, in milliseconds, read only by a build with the
/// test hooks (the `test-hooks` feature); a build without them ignores it and says so when a
/// chat starts ([`ignored`]).
const KEY_RECHECK_MS_VAR: &str = "SEALDESK_TEST_KEY_RECHECK_MS";

/// How often a customer's chat asks the relay whether the current conversation's agent still
/// has the pinned key, and every chat judges again the notices not yet witnessed in every
/// conversation holding one
/// ([`super::KEY_RECHECK`]; a build with the test hooks reads [`KEY_RECHECK_MS_VAR`]).
pub(super) fn period() -> std::time::Duration {
    #[cfg(feature = "test-hooks")]
    if let Some(ms) = std::env::var(KEY_RECHECK_MS_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return std::time::Duration::from_millis(ms);
    }
    super::KEY_RECHECK
}

/// The warning for a chat started with [`KEY_RECHECK_MS_VAR`] set in a build without the
/// test hooks, which ignores it (as it ignores `SEALDESK_INSECURE_FAST_KDF`, `crate::kdf`).
pub(super) fn ignored() -> Option<String> {
    recheck_warning(
        std::env::var_os(KEY_RECHECK_MS_VAR).is_some(),
        cfg!(feature = "test-hooks"),
    )
}

/// [`ignored`] for the variable set or not (`set`), in a build with
/// (`test_hooks`) or without the test hooks.
fn recheck_warning(set: bool, test_hooks: bool) -> Option<String> {
    (set && !test_hooks).then(|| {
        format!(
            "{KEY_RECHECK_MS_VAR} is ignored: this build has no test hooks, so the agent's key \
             is checked every {} seconds",
            super::KEY_RECHECK.as_secs()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_test_hooks_says_it_ignores_the_variable() {
        let w = recheck_warning(true, false).expect("a warning");
        assert!(
            w.contains(KEY_RECHECK_MS_VAR) && w.contains("ignored"),
            "{w}"
        );
        assert_eq!(recheck_warning(false, false), None);
        assert_eq!(recheck_warning(true, true), None, "a test build reads it");
        assert_eq!(recheck_warning(false, true), None);
    }
}
