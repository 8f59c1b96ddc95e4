//! What every signed statement has in common, and the checked form of one.
//!
//! A [`Signed`] value names its signer, carries a signature, and has the canonical bytes the
//! signature covers (built with [`crate::codec::Writer`], never CBOR). [`Signed::check_signature`]
//! is the one place those three meet, so no caller assembles `verify(&x.signed_bytes(), …)` by
//! hand.
//!
//! A statement whose checks passed is a different type from one that has not been checked
//! (`ConsentToken` / [`crate::release::VerifiedConsent`], `HandOff` /
//! [`crate::epoch::VerifiedHandOff`], …), made only by the type's own `verify`. The checked types
//! of this crate's newer statements are declared with `verified_type!`.

use crate::{
    Result,
    keys::{Signature, SigningPublicKey},
};

/// A statement signed by the key it names.
pub trait Signed {
    /// What the statement is called in [`crate::Error::BadSignature`] and
    /// [`crate::Error::WrongSigner`].
    const WHAT: &'static str;

    /// The canonical bytes the signature covers.
    fn signed_bytes(&self) -> Vec<u8>;

    /// The signature.
    fn signature(&self) -> &Signature;

    /// The key the statement names as its signer.
    fn signer(&self) -> &SigningPublicKey;

    /// Checks the signature against the signer the statement names (Ed25519 `verify_strict`).
    /// Says nothing about whether that signer may make the statement: that is what the
    /// statement's own `verify` adds.
    ///
    /// # Errors
    /// [`crate::Error::BadSignature`] naming [`Self::WHAT`].
    fn check_signature(&self) -> Result<()> {
        self.signer()
            .verify(&Signed::signed_bytes(self), self.signature(), Self::WHAT)
    }

    /// Checks that the statement names `expected` as its signer, and its signature.
    ///
    /// # Errors
    /// [`crate::Error::WrongSigner`] if it names another key, else as [`Self::check_signature`].
    fn check_signed_by(&self, expected: &SigningPublicKey) -> Result<()> {
        if self.signer() != expected {
            return Err(crate::Error::WrongSigner(Self::WHAT));
        }
        self.check_signature()
    }
}

/// Declares `$verified`, the checked form of `$inner`: a newtype whose field is private to the
/// module that expands the macro (so only that module's `verify` makes one), which derefs to
/// `$inner`, lends it with `$get`, gives it back with `$into`, and serializes as `$inner`.
macro_rules! verified_type {
    ($(#[$doc:meta])* $verified:ident($inner:ty), $get:ident, $into:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Debug)]
        pub struct $verified($inner);

        impl $verified {
            /// The statement as it travels.
            pub fn $get(&self) -> &$inner {
                &self.0
            }

            /// Gives back the wire form.
            pub fn $into(self) -> $inner {
                self.0
            }
        }

        impl core::ops::Deref for $verified {
            type Target = $inner;
            fn deref(&self) -> &$inner {
                &self.0
            }
        }

        impl AsRef<$inner> for $verified {
            fn as_ref(&self) -> &$inner {
                &self.0
            }
        }

        impl serde::Serialize for $verified {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> core::result::Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }
    };
}
pub(crate) use verified_type;

/// Implements [`Signed`] for `$ty` from its inherent `signed_bytes`, its signature field and its
/// signer field.
macro_rules! impl_signed {
    ($ty:ty, $what:literal, $signer:ident) => {
        impl $crate::signed::Signed for $ty {
            const WHAT: &'static str = $what;
            fn signed_bytes(&self) -> Vec<u8> {
                <$ty>::signed_bytes(self)
            }
            fn signature(&self) -> &$crate::keys::Signature {
                &self.signature
            }
            fn signer(&self) -> &$crate::keys::SigningPublicKey {
                &self.$signer
            }
        }
    };
}
pub(crate) use impl_signed;
