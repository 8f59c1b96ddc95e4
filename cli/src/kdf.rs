//! Which passphrase hashing (Argon2id cost) a new vault gets.
//!
//! Always [`KdfParams::INTERACTIVE`], except in a build with the `test-hooks` feature (what
//! `cargo test` builds for the CLI's tests) when `SEALDESK_INSECURE_FAST_KDF=1`: then the cheap
//! test setting, and the output warns. A build without test hooks — any `cargo build` or
//! `cargo install`, release or not — has no cheap setting at all; if the variable is set there,
//! it is **ignored, and the output says so**: someone who sets it by mistake still gets a vault
//! that is as hard to guess as any other, and learns that the variable did nothing. (Refusing to
//! run would protect no better, and would break scripts that export it for their test suites.)

use sealdesk_client::vault::KdfParams;

/// The variable that asks for the cheap test setting (the library's
/// `vault::INSECURE_FAST_KDF_ENV`, which exists only with test hooks; named here too so that a
/// build without them can say it ignores it).
pub const FAST_KDF_VAR: &str = "SEALDESK_INSECURE_FAST_KDF";

/// What to do about the variable, given its value and whether this build has test hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The real setting; the variable is not set to `1`.
    Real,
    /// The real setting although the variable asks for the cheap one: this build has no test
    /// hooks.
    RealIgnoringVar,
    /// The cheap test setting (test builds only).
    Fast,
}

impl Choice {
    /// Decides from the variable's value (`None` if unset) and whether test hooks are built in.
    pub fn decide(var: Option<&str>, test_hooks: bool) -> Self {
        match (var == Some("1"), test_hooks) {
            (false, _) => Self::Real,
            (true, false) => Self::RealIgnoringVar,
            (true, true) => Self::Fast,
        }
    }

    /// The warning to show for this choice, if any.
    pub fn warning(self) -> Option<&'static str> {
        match self {
            Self::Real => None,
            Self::RealIgnoringVar => Some(
                "SEALDESK_INSECURE_FAST_KDF=1 is ignored: this build has no test hooks, so the \
                 vault uses the full passphrase hashing",
            ),
            Self::Fast => Some(
                "SEALDESK_INSECURE_FAST_KDF=1: this vault's passphrase is cheap to guess; use it \
                 for tests only",
            ),
        }
    }
}

/// Whether this build has the test hooks (the `test-hooks` feature).
pub const TEST_HOOKS: bool = cfg!(feature = "test-hooks");

/// The parameters for a new vault, and the warning to show with it.
pub fn for_new_vault() -> (KdfParams, Option<&'static str>) {
    let var = std::env::var(FAST_KDF_VAR).ok();
    let choice = Choice::decide(var.as_deref(), TEST_HOOKS);
    (params(choice), choice.warning())
}

#[cfg(feature = "test-hooks")]
fn params(choice: Choice) -> KdfParams {
    match choice {
        Choice::Fast => KdfParams::TESTING,
        Choice::Real | Choice::RealIgnoringVar => KdfParams::INTERACTIVE,
    }
}

#[cfg(not(feature = "test-hooks"))]
fn params(_choice: Choice) -> KdfParams {
    KdfParams::INTERACTIVE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_test_build_with_the_variable_at_1_is_fast() {
        assert_eq!(Choice::decide(None, true), Choice::Real);
        assert_eq!(Choice::decide(Some("0"), true), Choice::Real);
        assert_eq!(Choice::decide(Some("1"), true), Choice::Fast);
        assert_eq!(Choice::decide(None, false), Choice::Real);
        assert_eq!(Choice::decide(Some("yes"), false), Choice::Real);
        assert_eq!(Choice::decide(Some("1"), false), Choice::RealIgnoringVar);
        assert_eq!(Choice::Real.warning(), None);
        assert!(
            Choice::RealIgnoringVar
                .warning()
                .is_some_and(|w| w.contains("ignored"))
        );
    }

    #[test]
    fn a_build_without_test_hooks_never_picks_the_cheap_setting() {
        for choice in [Choice::Real, Choice::RealIgnoringVar, Choice::Fast] {
            if !TEST_HOOKS || choice != Choice::Fast {
                assert_eq!(params(choice), KdfParams::INTERACTIVE, "{choice:?}");
            }
        }
    }

    #[cfg(feature = "test-hooks")]
    #[test]
    fn the_variable_is_the_one_the_library_names() {
        assert_eq!(FAST_KDF_VAR, sealdesk_client::vault::INSECURE_FAST_KDF_ENV);
        assert_eq!(params(Choice::Fast), KdfParams::TESTING);
    }
}
