//! Kubernetes resource quantities (`500m`, `1.5`, `128Mi`, `1G`, `2e3`) as the agent needs
//! them: container limits for the runtime, `resourceFieldRef` values, `emptyDir.sizeLimit`.
//!
//! Invariant: a value is held exactly, in nano-units in an `i128` (a valid quantity is at
//! most about 9.2e18 units, so 9.2e27 nanos, far below `i128::MAX`); conversions to whole
//! units or thousandths round up, as upstream's `Value()` and `MilliValue()` do.

/// A parsed quantity. See the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;

impl Quantity {
    /// `value` whole units.
    pub fn from_units(value: i64) -> Self {
        Self { nanos: i128::from(value) * NANOS_PER_UNIT }
    }

    /// Parse the string form; `Err` names the bad text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("invalid quantity {text:?}");
        let (negative, rest) = match text.trim().as_bytes().first() {
            Some(b'-') => (true, &text.trim()[1..]),
            Some(b'+') => (false, &text.trim()[1..]),
            _ => (false, text.trim()),
        };
        let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        let (number, suffix) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(bad());
        }
        let (pow10, pow2) = suffix_exponents(suffix).ok_or_else(bad)?;
        let mut mantissa: i128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            mantissa =
                mantissa.checked_mul(10).and_then(|m| m.checked_add(i128::from(digit - b'0'))).ok_or_else(bad)?;
        }
        // nanos = mantissa * 10^(pow10 - fraction digits + 9) * 2^pow2, rounded up.
        let shift = pow10 - fraction.len() as i32 + 9;
        let mut nanos = if shift >= 0 {
            10i128.checked_pow(shift as u32).and_then(|p| mantissa.checked_mul(p)).ok_or_else(bad)?
        } else {
            let divisor = 10i128.checked_pow(shift.unsigned_abs()).ok_or_else(bad)?;
            (mantissa + divisor - 1) / divisor
        };
        nanos = nanos.checked_mul(1i128.checked_shl(pow2).ok_or_else(bad)?).ok_or_else(bad)?;
        Ok(Self { nanos: if negative { -nanos } else { nanos } })
    }

    /// Whole units, rounded up (upstream `Value()`).
    pub fn value(&self) -> i128 {
        div_ceil(self.nanos, NANOS_PER_UNIT)
    }

    /// Thousandths of a unit, rounded up (upstream `MilliValue()`): millicores for CPU.
    pub fn milli_value(&self) -> i128 {
        div_ceil(self.nanos, NANOS_PER_UNIT / 1000)
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b > 0 {
        q + 1
    } else {
        q
    }
}

/// The power of ten and the power of two a suffix multiplies by.
fn suffix_exponents(suffix: &str) -> Option<(i32, u32)> {
    let binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if let Some(i) = binary.iter().position(|s| *s == suffix) {
        return Some((0, 10 * (i as u32 + 1)));
    }
    let decimal = match suffix {
        "n" => -9,
        "u" => -6,
        "m" => -3,
        "" => 0,
        "k" => 3,
        "M" => 6,
        "G" => 9,
        "T" => 12,
        "P" => 15,
        "E" => 18,
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            return exponent.parse::<i32>().ok().filter(|e| e.abs() <= 30).map(|e| (e, 0));
        }
    };
    Some((decimal, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn suffixes_scale_and_conversions_round_up() {
        assert_eq!(q("500m").milli_value(), 500);
        assert_eq!(q("500m").value(), 1, "half a core rounds up to one");
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("2").milli_value(), 2000);
        assert_eq!(q("128Mi").value(), 128 << 20);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("2k").value(), 2000);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1E-3").milli_value(), 1);
        assert_eq!(q("0.1m").milli_value(), 1, "below a thousandth rounds up");
        assert_eq!(q("100n").milli_value(), 1);
        assert_eq!(q("1.5Ki").value(), 1536);
        assert_eq!(q("-1").value(), -1);
        assert!(q("0").is_zero());
        assert_eq!(Quantity::from_units(7), q("7"));
    }

    #[test]
    fn malformed_text_is_refused() {
        for bad in ["", "m", "1.2.3", "1x", "1Kb", "1e", "1e+", "ten", "1.5.Mi", "1e99"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?}");
        }
    }
}
