//! Threshold (t-of-n) Shamir secret sharing of 32-byte secrets over GF(2^8), for splitting the
//! escrow share `s_E` among the trustees (docs/design.md §4, step 2).
//!
//! Each of the 32 secret bytes is shared with its own polynomial of degree `t - 1`, and share
//! `i` holds every polynomial's value at `x = i`:
//!
//! ```text
//! f_j(x) = secret[j] + c_1[j]·x + c_2[j]·x² + … + c_{t-1}[j]·x^{t-1}     (j = 0..32)
//! share i = (x = i, y = [f_0(i), f_1(i), …, f_31(i)])                    (i = 1..=n)
//! ```
//!
//! Arithmetic is in GF(2^8) with the AES polynomial x⁸ + x⁴ + x³ + x + 1 (0x11b), so an
//! independent implementation (the browser widget, an auditor's tool) computes the same shares.
//!
//! The coefficients `c_k` are passed in rather than drawn here: the epoch's creator derives them
//! from `K` with HKDF so that every other member can recompute the escrow byte for byte and
//! refuse an epoch whose escrow differs. Uniformly random coefficients, zero included, are what
//! make fewer than `t` shares reveal nothing; no coefficient is rejected for being zero.
//!
//! Share values are secret, so field multiplication and inversion are constant time: no table
//! lookups indexed by secret data and no branches on it. Share indices are public.

use core::fmt;

use subtle::{Choice, ConditionallySelectable};
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The length in bytes of a shared secret.
pub const SECRET_LEN: usize = 32;

/// The length in bytes of an encoded [`Share`]: the index, then the values.
pub const SHARE_LEN: usize = 1 + SECRET_LEN;

/// Why a secret could not be split or recombined.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ShamirError {
    /// The threshold is zero, or larger than the number of shares to make.
    #[error("the threshold must be at least 1 and at most the number of shares")]
    InvalidThreshold,
    /// The number of polynomial coefficients is not the threshold minus one.
    #[error("{actual} polynomial coefficients given where the threshold needs {expected}")]
    WrongCoefficientCount {
        /// The number the threshold calls for (`threshold - 1`).
        expected: usize,
        /// The number supplied.
        actual: usize,
    },
    /// Fewer shares were supplied than the threshold.
    #[error("{have} shares given where {need} are needed")]
    NotEnoughShares {
        /// The number of shares supplied.
        have: usize,
        /// The threshold.
        need: usize,
    },
    /// Two shares have the same index, so they cannot be two points of the polynomial.
    #[error("share index {0} appears more than once")]
    DuplicateShareIndex(u8),
    /// A share has index 0, where the polynomial's value is the secret itself.
    #[error("share index 0 is not allowed")]
    ZeroShareIndex,
    /// An encoded share is not [`SHARE_LEN`] bytes long.
    #[error("an encoded share is 33 bytes, not {0}")]
    BadShareLength(usize),
}

/// One trustee's share of a secret: the index `x` and the 32 polynomial values at `x`.
///
/// Encoded as [`SHARE_LEN`] bytes:
///
/// | offset | length | field                       |
/// |-------:|-------:|-----------------------------|
/// |      0 |      1 | index `x`, never 0          |
/// |      1 |     32 | values `y[j] = f_j(x)`      |
///
/// The values are secret: the type is wiped on drop, cannot be cloned or compared, and its
/// `Debug` shows only the index.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Share {
    /// The point at which the polynomials were evaluated; public, never 0.
    x: u8,
    /// The polynomials' values at `x`, one per secret byte; secret.
    y: [u8; SECRET_LEN],
}

impl Share {
    /// Makes a share from its index and values.
    ///
    /// # Errors
    ///
    /// [`ShamirError::ZeroShareIndex`] if `x` is 0: the value there is the secret itself.
    pub fn new(x: u8, y: [u8; SECRET_LEN]) -> Result<Self, ShamirError> {
        if x == 0 {
            return Err(ShamirError::ZeroShareIndex);
        }
        Ok(Self { x, y })
    }

    /// The share's index (its `x`), from 1 to 255.
    pub fn index(&self) -> u8 {
        self.x
    }

    /// Encodes the share as the index followed by the 32 values, in a buffer wiped on drop.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SHARE_LEN]> {
        let mut bytes = Zeroizing::new([0u8; SHARE_LEN]);
        let (x, y) = bytes.split_at_mut(1);
        x.copy_from_slice(&[self.x]);
        y.copy_from_slice(&self.y);
        bytes
    }

    /// Decodes a share encoded by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    ///
    /// [`ShamirError::BadShareLength`] if `bytes` is not exactly [`SHARE_LEN`] long;
    /// [`ShamirError::ZeroShareIndex`] if the index byte is 0.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ShamirError> {
        let Some((&x, values)) = bytes.split_first() else {
            return Err(ShamirError::BadShareLength(bytes.len()));
        };
        if values.len() != SECRET_LEN {
            return Err(ShamirError::BadShareLength(bytes.len()));
        }
        if x == 0 {
            return Err(ShamirError::ZeroShareIndex);
        }
        // Copy straight into the share rather than through a temporary array, which would be
        // one more unwiped copy of the values.
        let mut share = Self {
            x,
            y: [0; SECRET_LEN],
        };
        share.y.copy_from_slice(values);
        Ok(share)
    }
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be printed, or silently left out, without a
        // decision made here.
        let Self { x, y: _ } = self;
        f.debug_struct("Share")
            .field("index", x)
            .finish_non_exhaustive()
    }
}

/// Splits `secret` into `share_count` shares, any `threshold` of which recombine it.
///
/// `coefficients[k - 1]` holds the coefficients of `x^k` for every byte position
/// (`c_k` in the module docs), so exactly `threshold - 1` of them are needed. The shares have
/// indices `1..=share_count`, in order.
///
/// # Errors
///
/// - [`ShamirError::InvalidThreshold`] unless `1 <= threshold <= share_count`;
/// - [`ShamirError::WrongCoefficientCount`] if `coefficients.len() != threshold - 1`.
pub fn split(
    secret: &[u8; SECRET_LEN],
    threshold: u8,
    share_count: u8,
    coefficients: &[[u8; SECRET_LEN]],
) -> Result<Vec<Share>, ShamirError> {
    if threshold == 0 || share_count < threshold {
        return Err(ShamirError::InvalidThreshold);
    }
    let expected = usize::from(threshold) - 1;
    if coefficients.len() != expected {
        return Err(ShamirError::WrongCoefficientCount {
            expected,
            actual: coefficients.len(),
        });
    }
    // Reserved up front so that growing the vector never leaves a stale, unwiped copy of
    // earlier shares in a freed allocation.
    let mut shares = Vec::with_capacity(usize::from(share_count));
    for x in 1..=share_count {
        let mut share = Share {
            x,
            y: [0; SECRET_LEN],
        };
        // Horner's rule, highest coefficient first, computed in place in the share so the
        // values never sit in a temporary.
        for c in coefficients.iter().rev() {
            for (y, c) in share.y.iter_mut().zip(c) {
                *y = gf_mul(*y, x) ^ c;
            }
        }
        for (y, s) in share.y.iter_mut().zip(secret) {
            *y = gf_mul(*y, x) ^ s;
        }
        shares.push(share);
    }
    Ok(shares)
}

/// Recombines the secret from the first `threshold` of `shares` by Lagrange interpolation at 0.
///
/// Every share supplied must have a distinct, non-zero index; shares beyond the first
/// `threshold` are checked for that but otherwise unused. Recombination cannot tell a wrong or
/// tampered share from a right one (it yields a different secret), so the caller checks the
/// result against its commitment.
///
/// # Errors
///
/// - [`ShamirError::InvalidThreshold`] if `threshold` is 0;
/// - [`ShamirError::ZeroShareIndex`] or [`ShamirError::DuplicateShareIndex`] if an index is 0 or
///   repeated;
/// - [`ShamirError::NotEnoughShares`] if fewer than `threshold` shares are supplied.
pub fn combine(
    shares: &[Share],
    threshold: u8,
) -> Result<Zeroizing<[u8; SECRET_LEN]>, ShamirError> {
    if threshold == 0 {
        return Err(ShamirError::InvalidThreshold);
    }
    // Indices are public, so indexing a table by them leaks nothing.
    let mut seen = [false; 256];
    for share in shares {
        if share.x == 0 {
            return Err(ShamirError::ZeroShareIndex);
        }
        let slot = &mut seen[usize::from(share.x)];
        if *slot {
            return Err(ShamirError::DuplicateShareIndex(share.x));
        }
        *slot = true;
    }
    let need = usize::from(threshold);
    let Some(used) = shares.get(..need) else {
        return Err(ShamirError::NotEnoughShares {
            have: shares.len(),
            need,
        });
    };

    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    for share in used {
        // The Lagrange basis polynomial of this share, evaluated at 0:
        // ∏_{m ≠ share} x_m / (x_m - x_share); subtraction in GF(2^8) is XOR.
        let mut numerator = 1;
        let mut denominator = 1;
        for other in used.iter().filter(|other| other.x != share.x) {
            numerator = gf_mul(numerator, other.x);
            denominator = gf_mul(denominator, other.x ^ share.x);
        }
        let basis = gf_mul(numerator, gf_inv(denominator));
        for (s, y) in secret.iter_mut().zip(&share.y) {
            *s ^= gf_mul(basis, *y);
        }
    }
    Ok(secret)
}

/// The low byte of the AES reduction polynomial 0x11b: what x⁸ reduces to.
const REDUCTION: u8 = 0x1b;

/// Multiplication in GF(2^8) modulo x⁸ + x⁴ + x³ + x + 1, in constant time.
///
/// Shift-and-add over all eight bits of `b`, selecting with masks rather than branching, so
/// neither the running time nor the memory accessed depends on the operands. `subtle`'s
/// `Choice` hides the masks from the optimiser, which could otherwise turn them back into
/// branches.
fn gf_mul(a: u8, b: u8) -> u8 {
    let mut a = a;
    let mut b = b;
    let mut product = 0u8;
    for _ in 0..8 {
        product ^= u8::conditional_select(&0, &a, Choice::from(b & 1));
        let carry = Choice::from(a >> 7);
        a = (a << 1) ^ u8::conditional_select(&0, &REDUCTION, carry);
        b >>= 1;
    }
    product
}

/// The multiplicative inverse in GF(2^8), as a^254 (a^255 = 1 for a ≠ 0), in constant time.
///
/// The exponent is fixed, so the square-and-multiply chain is the same for every input. Zero
/// maps to zero; callers never invert zero, since share indices are distinct and non-zero.
fn gf_inv(a: u8) -> u8 {
    // a^(2^k - 1) for k = 1..=7, then one more squaring: a^127 squared is a^254.
    let mut power = a;
    for _ in 0..6 {
        power = gf_mul(gf_mul(power, power), a);
    }
    gf_mul(power, power)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Textbook multiplication: carry-less product, then reduction by long division.
    fn reference_mul(a: u8, b: u8) -> u8 {
        let mut product: u16 = 0;
        for bit in 0..8 {
            if b & (1 << bit) != 0 {
                product ^= u16::from(a) << bit;
            }
        }
        for bit in (8..16).rev() {
            if product & (1 << bit) != 0 {
                product ^= 0x11b << (bit - 8);
            }
        }
        u8::try_from(product).unwrap()
    }

    fn secret(seed: u8) -> [u8; SECRET_LEN] {
        core::array::from_fn(|j| seed.wrapping_mul(31).wrapping_add(j as u8))
    }

    /// Copies shares through their encoding, since `Share` deliberately has no `Clone`.
    fn copy(share: &Share) -> Share {
        Share::from_bytes(&share.to_bytes()[..]).unwrap()
    }

    #[test]
    fn multiplication_matches_the_reference_for_every_pair() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(gf_mul(a, b), reference_mul(a, b), "{a:#04x} * {b:#04x}");
            }
        }
    }

    #[test]
    fn multiplication_matches_fips_197() {
        // FIPS-197 §4.2 and §4.2.1 worked examples.
        assert_eq!(gf_mul(0x57, 0x83), 0xc1);
        assert_eq!(gf_mul(0x57, 0x02), 0xae);
        assert_eq!(gf_mul(0x57, 0x04), 0x47);
        assert_eq!(gf_mul(0x57, 0x08), 0x8e);
        assert_eq!(gf_mul(0x57, 0x10), 0x07);
        assert_eq!(gf_mul(0x57, 0x13), 0xfe);
        // The inverse the AES S-box is built from: 0x53 and 0xca are inverses.
        assert_eq!(gf_inv(0x53), 0xca);
        assert_eq!(gf_inv(0xca), 0x53);
        assert_eq!(gf_inv(1), 1);
        assert_eq!(gf_inv(0), 0);
    }

    #[test]
    fn every_nonzero_element_has_an_inverse() {
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "{a:#04x}");
            assert_eq!(gf_inv(gf_inv(a)), a);
        }
    }

    #[test]
    fn field_axioms_hold_on_samples() {
        let samples = [0u8, 1, 2, 3, 0x53, 0x57, 0x80, 0x83, 0xca, 0xff];
        for a in samples {
            assert_eq!(gf_mul(a, 1), a);
            assert_eq!(gf_mul(a, 0), 0);
            for b in samples {
                assert_eq!(gf_mul(a, b), gf_mul(b, a));
                for c in samples {
                    assert_eq!(gf_mul(gf_mul(a, b), c), gf_mul(a, gf_mul(b, c)));
                    assert_eq!(gf_mul(a, b ^ c), gf_mul(a, b) ^ gf_mul(a, c));
                }
            }
        }
    }

    /// Pins the share layout an independent implementation must reproduce: coefficients in
    /// order of increasing power, share `i` evaluated at `x = i`, bytes independent.
    #[test]
    fn known_answer_shares() {
        let mut secret = [0u8; SECRET_LEN];
        secret[1] = 0x42;
        // f_0(x) = x², f_1(x) = 0x42 + 0x57·x, other bytes f_j(x) = x.
        let mut c1 = [1u8; SECRET_LEN];
        let mut c2 = [0u8; SECRET_LEN];
        c1[0] = 0;
        c2[0] = 1;
        c1[1] = 0x57;
        let shares = split(&secret, 3, 255, &[c1, c2]).unwrap();
        assert_eq!(shares.len(), 255);
        for (i, share) in shares.iter().enumerate() {
            let x = u8::try_from(i + 1).unwrap();
            assert_eq!(share.index(), x);
            assert_eq!(share.y[0], reference_mul(x, x));
            assert_eq!(share.y[1], 0x42 ^ reference_mul(0x57, x));
            assert!(share.y[2..].iter().all(|&y| y == x));
        }
        assert_eq!(shares[1].y[0], 4);
        assert_eq!(shares[2].y[0], 5);
        assert_eq!(shares[0x82].y[1], 0x42 ^ 0xc1);
        assert_eq!(*combine(&shares[100..], 3).unwrap(), secret);
    }

    #[test]
    fn threshold_one_copies_the_secret() {
        let shares = split(&secret(7), 1, 3, &[]).unwrap();
        for share in &shares {
            assert_eq!(share.y, secret(7));
            assert_eq!(
                *combine(core::slice::from_ref(share), 1).unwrap(),
                secret(7)
            );
        }
    }

    /// Every subset of at least `t` shares recombines, for every `t <= n <= 6`; every subset of
    /// fewer than `t` (combined as if `t` were its size) gives a different secret.
    #[test]
    fn every_subset_of_small_splits() {
        for n in 1..=6u8 {
            for t in 1..=n {
                let coefficients: Vec<[u8; SECRET_LEN]> = (1..t)
                    .map(|k| core::array::from_fn(|j| (j as u8) ^ k.wrapping_mul(0x3b) | 1))
                    .collect();
                let shares = split(&secret(n ^ t), t, n, &coefficients).unwrap();
                for mask in 1u32..(1 << n) {
                    let subset: Vec<Share> = shares
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, share)| copy(share))
                        .collect();
                    let size = u8::try_from(subset.len()).unwrap();
                    if size >= t {
                        assert_eq!(*combine(&subset, t).unwrap(), secret(n ^ t));
                    } else {
                        let wrong = combine(&subset, size).unwrap();
                        assert_ne!(*wrong, secret(n ^ t));
                        if size == t - 1 {
                            // Every leading coefficient byte is odd, hence non-zero, so each
                            // polynomial has degree exactly t - 1 and t - 1 points get every
                            // byte wrong, not just the secret as a whole.
                            assert!(wrong.iter().zip(&secret(n ^ t)).all(|(a, b)| a != b));
                        }
                        assert_eq!(
                            combine(&subset, t).unwrap_err(),
                            ShamirError::NotEnoughShares {
                                have: subset.len(),
                                need: usize::from(t)
                            }
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        let s = secret(1);
        assert_eq!(
            split(&s, 0, 3, &[]).unwrap_err(),
            ShamirError::InvalidThreshold
        );
        assert_eq!(
            split(&s, 4, 3, &[[0; 32]; 3]).unwrap_err(),
            ShamirError::InvalidThreshold
        );
        assert_eq!(
            split(&s, 0, 0, &[]).unwrap_err(),
            ShamirError::InvalidThreshold
        );
        assert_eq!(
            split(&s, 3, 5, &[[0; 32]]).unwrap_err(),
            ShamirError::WrongCoefficientCount {
                expected: 2,
                actual: 1
            }
        );
        assert_eq!(
            split(&s, 1, 5, &[[0; 32]]).unwrap_err(),
            ShamirError::WrongCoefficientCount {
                expected: 0,
                actual: 1
            }
        );
        assert_eq!(split(&s, 255, 255, &[[9; 32]; 254]).unwrap().len(), 255);

        let shares = split(&s, 2, 3, &[[5; 32]]).unwrap();
        assert_eq!(
            combine(&shares, 0).unwrap_err(),
            ShamirError::InvalidThreshold
        );
        assert_eq!(
            combine(&[], 1).unwrap_err(),
            ShamirError::NotEnoughShares { have: 0, need: 1 }
        );
        let twice = [copy(&shares[0]), copy(&shares[1]), copy(&shares[0])];
        assert_eq!(
            combine(&twice, 2).unwrap_err(),
            ShamirError::DuplicateShareIndex(1)
        );
        let twice = [copy(&shares[2]), copy(&shares[2])];
        assert_eq!(
            combine(&twice, 2).unwrap_err(),
            ShamirError::DuplicateShareIndex(3)
        );
    }

    #[test]
    fn share_encoding_round_trips_and_rejects_bad_input() {
        let share = Share::new(9, [0x5a; SECRET_LEN]).unwrap();
        assert_eq!(share.index(), 9);
        let bytes = share.to_bytes();
        assert_eq!(bytes[0], 9);
        assert_eq!(&bytes[1..], &[0x5a; SECRET_LEN]);
        let back = Share::from_bytes(&bytes[..]).unwrap();
        assert_eq!((back.x, back.y), (share.x, share.y));

        assert_eq!(
            Share::new(0, [1; 32]).unwrap_err(),
            ShamirError::ZeroShareIndex
        );
        let mut zero = *bytes;
        zero[0] = 0;
        assert_eq!(
            Share::from_bytes(&zero).unwrap_err(),
            ShamirError::ZeroShareIndex
        );
        for len in [0, 1, 32, 34, 66] {
            assert_eq!(
                Share::from_bytes(&vec![1; len]).unwrap_err(),
                ShamirError::BadShareLength(len)
            );
        }
    }

    #[test]
    fn debug_shows_the_index_and_no_values() {
        let y: [u8; SECRET_LEN] = core::array::from_fn(|j| 0xd0 ^ (j as u8));
        let share = Share::new(7, y).unwrap();
        let shown = format!("{share:?}");
        assert_eq!(shown, "Share { index: 7, .. }");
        let pretty = format!("{share:#?}");
        let lower: String = y.iter().map(|b| format!("{b:02x}")).collect();
        let decimal = format!("{y:?}");
        for text in [&shown, &pretty] {
            assert!(!text.to_lowercase().contains(&lower[..4]));
            assert!(!text.contains(&decimal[1..8]));
            for b in y {
                assert!(!text.contains(&b.to_string()), "{text} shows {b}");
            }
        }
    }

    /// `min_threshold <= threshold <= share_count <= 10` with a random secret and coefficients.
    fn parameters(min_threshold: u8) -> impl Strategy<Value = (u8, u8, [u8; 32], Vec<[u8; 32]>)> {
        (min_threshold..=10)
            .prop_flat_map(move |n| (Just(n), min_threshold..=n))
            .prop_flat_map(|(n, t)| {
                (
                    Just(t),
                    Just(n),
                    any::<[u8; 32]>(),
                    prop::collection::vec(any::<[u8; 32]>(), usize::from(t) - 1),
                )
            })
    }

    proptest! {
        #[test]
        fn any_threshold_of_shares_recombines(
            (t, n, secret, coefficients) in parameters(1),
            order in Just(()).prop_perturb(|(), mut rng| {
                let mut order: Vec<usize> = (0..10).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.random_range(0..=i));
                }
                order
            }),
            extra in 0usize..10,
        ) {
            let shares = split(&secret, t, n, &coefficients).unwrap();
            prop_assert_eq!(shares.len(), usize::from(n));
            // A random selection of `t` or more shares, in a random order.
            let picked: Vec<Share> = order
                .iter()
                .filter(|&&i| i < shares.len())
                .take(usize::from(t) + extra)
                .map(|&i| copy(&shares[i]))
                .collect();
            prop_assert_eq!(*combine(&picked, t).unwrap(), secret);
        }

        #[test]
        fn too_few_or_tampered_shares_give_another_secret(
            (t, n, secret, mut coefficients) in parameters(2),
            position in 0usize..32,
            delta in 1u8..=255,
            victim in any::<prop::sample::Index>(),
        ) {
            // With a non-zero leading coefficient each polynomial has degree exactly t - 1, so
            // t - 1 points determine a different polynomial and every byte comes out wrong.
            // (Zero is a legitimate coefficient; it only makes this property weaker.)
            if let Some(leading) = coefficients.last_mut() {
                for c in leading.iter_mut().filter(|c| **c == 0) {
                    *c = 1;
                }
            }
            let shares = split(&secret, t, n, &coefficients).unwrap();
            let fewer = combine(&shares[..usize::from(t) - 1], t - 1).unwrap();
            prop_assert!(fewer.iter().zip(&secret).all(|(a, b)| a != b));

            // Changing one byte of one share changes that byte of the result, because every
            // Lagrange basis value is non-zero; the other bytes are untouched.
            let mut picked: Vec<Share> = shares[..usize::from(t)].iter().map(copy).collect();
            let v = victim.index(picked.len());
            picked[v].y[position] ^= delta;
            let tampered = combine(&picked, t).unwrap();
            for (j, (a, b)) in tampered.iter().zip(&secret).enumerate() {
                prop_assert_eq!(a != b, j == position);
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..70)) {
            match Share::from_bytes(&bytes) {
                Ok(share) => prop_assert_eq!(&share.to_bytes()[..], &bytes[..]),
                Err(e) => prop_assert!(bytes.len() != SHARE_LEN || (e == ShamirError::ZeroShareIndex && bytes[0] == 0)),
            }
        }
    }
}
