//! Increment and decrement arithmetic on JSON numbers (stream.md §4.5).
//!
//! Integers stay exact: a sum is kept as a signed integer when it fits, else as an unsigned one
//! when the current value is non-negative; only float operands give float results. Sums are
//! computed in `i128`, which holds every `i64 ± i64` and `u64 ± i64` exactly.

use serde_json::Number;

/// The signed amount an op adds: `by` for increment, `-by` for decrement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delta {
    by: i64,
    negate: bool,
}

impl Delta {
    pub(crate) fn increment(by: i64) -> Self {
        Self { by, negate: false }
    }

    pub(crate) fn decrement(by: i64) -> Self {
        Self { by, negate: true }
    }

    fn exact(self) -> i128 {
        let by = i128::from(self.by);
        if self.negate { -by } else { by }
    }

    /// The value a missing target takes. Decrementing by `i64::MIN` gives 2⁶³, which only an
    /// unsigned integer can hold.
    pub(crate) fn initial(self) -> Number {
        if !self.negate {
            return self.by.into();
        }
        match self.by.checked_neg() {
            Some(negated) => negated.into(),
            None => self.by.unsigned_abs().into(),
        }
    }

    /// `current + self`, or `None` when the result is not representable.
    pub(crate) fn add_to(self, current: &Number) -> Option<Number> {
        let delta = self.exact();
        let signed = current
            .as_i64()
            .and_then(|c| i64::try_from(i128::from(c) + delta).ok());
        if let Some(sum) = signed {
            return Some(sum.into());
        }
        if let Some(c) = current.as_u64() {
            return u64::try_from(i128::from(c) + delta).ok().map(Number::from);
        }
        if current.is_f64() {
            // `from_f64` refuses non-finite sums, which the spec declares unrepresentable.
            return current
                .as_f64()
                .and_then(|c| Number::from_f64(c + delta as f64));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_POW_63: u64 = 1 << 63;

    fn int(n: i64) -> Number {
        n.into()
    }

    fn uint(n: u64) -> Number {
        n.into()
    }

    fn float(f: f64) -> Number {
        Number::from_f64(f).expect("finite")
    }

    #[test]
    fn initial_is_by_or_its_negation() {
        assert_eq!(Delta::increment(5).initial(), int(5));
        assert_eq!(Delta::increment(i64::MIN).initial(), int(i64::MIN));
        assert_eq!(Delta::decrement(5).initial(), int(-5));
        assert_eq!(Delta::decrement(i64::MAX).initial(), int(-i64::MAX));
        assert_eq!(Delta::decrement(i64::MIN).initial(), uint(TWO_POW_63));
    }

    #[test]
    fn signed_sums_stay_signed() {
        assert_eq!(Delta::increment(2).add_to(&int(1)), Some(int(3)));
        assert_eq!(Delta::decrement(10).add_to(&int(3)), Some(int(-7)));
        assert_eq!(
            Delta::increment(1).add_to(&int(12_345_678_901_234_567)),
            Some(int(12_345_678_901_234_568))
        );
    }

    #[test]
    fn non_negative_overflow_becomes_unsigned() {
        assert_eq!(
            Delta::increment(1).add_to(&int(i64::MAX)),
            Some(uint(TWO_POW_63))
        );
        assert_eq!(
            Delta::decrement(i64::MIN).add_to(&int(0)),
            Some(uint(TWO_POW_63))
        );
        assert_eq!(
            Delta::decrement(i64::MIN).add_to(&int(-1)),
            Some(int(i64::MAX))
        );
    }

    #[test]
    fn unsigned_current_stays_exact() {
        assert_eq!(
            Delta::decrement(1).add_to(&uint(u64::MAX)),
            Some(uint(u64::MAX - 1))
        );
        assert_eq!(
            Delta::increment(-1).add_to(&uint(TWO_POW_63)),
            Some(int(i64::MAX))
        );
        assert_eq!(
            Delta::increment(i64::MIN).add_to(&uint(TWO_POW_63)),
            Some(int(0))
        );
    }

    #[test]
    fn integer_overflow_is_unrepresentable() {
        assert_eq!(Delta::increment(1).add_to(&uint(u64::MAX)), None);
        assert_eq!(Delta::decrement(1).add_to(&int(i64::MIN)), None);
        assert_eq!(Delta::increment(i64::MIN).add_to(&int(-1)), None);
        assert_eq!(Delta::increment(-1).add_to(&uint(0)), Some(int(-1)));
    }

    #[test]
    fn floats_stay_floats() {
        assert_eq!(Delta::increment(1).add_to(&float(1.5)), Some(float(2.5)));
        let sum = Delta::increment(1).add_to(&float(2.0)).expect("finite");
        assert!(sum.is_f64());
        assert_eq!(sum.as_f64(), Some(3.0));
        assert_eq!(Delta::decrement(3).add_to(&float(0.5)), Some(float(-2.5)));
        // A float near the top of the range absorbs the delta and stays finite.
        assert_eq!(
            Delta::increment(i64::MAX).add_to(&float(f64::MAX)),
            Some(float(f64::MAX))
        );
    }

    #[test]
    fn zero_changes_nothing() {
        assert_eq!(Delta::increment(0).add_to(&int(7)), Some(int(7)));
        assert_eq!(
            Delta::decrement(0).add_to(&uint(u64::MAX)),
            Some(uint(u64::MAX))
        );
    }
}
