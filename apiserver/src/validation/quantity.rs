//! A small resource `Quantity` parser (`100m`, `1.5`, `128Mi`, `1G`, `1e3`), enough to
//! compare requests with limits and to spot negative or malformed values.
//!
//! Values are held exactly as nano-units in an `i128`: upstream caps quantities at
//! 2^63-1 (about 9.2e18) and the smallest suffix is `n`, so every valid quantity fits with
//! room to spare. Precision below a nano-unit rounds up, as upstream rounds up.

/// Upstream's parse error text.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A parsed quantity, in nano-units (`1` = 10^9, `1m` = 10^6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    /// Parses the canonical string forms (a JSON number is accepted as its decimal text).
    pub fn parse(s: &str) -> Result<Quantity, String> {
        let s = s.trim();
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let num_len = rest.bytes().take_while(|c| c.is_ascii_digit() || *c == b'.').count();
        let (number, suffix) = rest.split_at(num_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
            return Err(FORMAT_ERROR.to_string());
        }
        let (exp10, exp2) = parse_suffix(suffix).ok_or_else(|| FORMAT_ERROR.to_string())?;
        let mut mantissa: i128 = 0;
        for c in int_part.bytes().chain(frac_part.bytes()) {
            mantissa = mantissa.saturating_mul(10).saturating_add(i128::from(c - b'0'));
        }
        let scale = exp10 - i64::try_from(frac_part.len()).unwrap_or(i64::MAX) + 9;
        let mut nanos = scale_pow10(mantissa, scale);
        for _ in 0..exp2 {
            nanos = nanos.saturating_mul(2);
        }
        Ok(Quantity { nanos: if negative { -nanos } else { nanos } })
    }

    /// Parses a JSON quantity: a string, or a number as YAML manifests often write it.
    pub fn from_json(v: &serde_json::Value) -> Result<Quantity, String> {
        match v {
            serde_json::Value::String(s) => Quantity::parse(s),
            serde_json::Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => Err(FORMAT_ERROR.to_string()),
        }
    }

    /// The value in thousandths (millicores for CPU), rounded away from zero like upstream's
    /// `MilliValue` (`0.1m` of CPU is one millicore) and saturated to `i64`.
    pub fn milli_value(&self) -> i64 {
        scaled(self.nanos, 1_000_000)
    }

    /// The value in whole units (bytes for memory), rounded away from zero like upstream's
    /// `Value` (`1.5` bytes is 2) and saturated to `i64`.
    pub fn value(&self) -> i64 {
        scaled(self.nanos, 1_000_000_000)
    }

    /// Whether the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Whether the quantity is exactly zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }
}

/// `nanos / unit`, rounded away from zero, saturated to `i64`.
fn scaled(nanos: i128, unit: i128) -> i64 {
    let mut q = nanos / unit;
    if nanos % unit != 0 {
        q += nanos.signum();
    }
    i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
}

/// Multiplies by 10^exp, rounding a fractional result up (away from zero for positives).
fn scale_pow10(mantissa: i128, exp: i64) -> i128 {
    if exp >= 0 {
        let mut v = mantissa;
        for _ in 0..exp.min(60) {
            v = v.saturating_mul(10);
        }
        v
    } else {
        let mut v = mantissa;
        let mut lost = false;
        for _ in 0..(-exp).min(60) {
            lost |= v % 10 != 0;
            v /= 10;
        }
        if lost {
            v + 1
        } else {
            v
        }
    }
}

/// A suffix as (power of ten, power of two), or `None` when it is not a valid suffix.
fn parse_suffix(suffix: &str) -> Option<(i64, u32)> {
    let binary = |p: u32| Some((0, p * 10));
    match suffix {
        "" => Some((0, 0)),
        "n" => Some((-9, 0)),
        "u" => Some((-6, 0)),
        "m" => Some((-3, 0)),
        "k" => Some((3, 0)),
        "M" => Some((6, 0)),
        "G" => Some((9, 0)),
        "T" => Some((12, 0)),
        "P" => Some((15, 0)),
        "E" => Some((18, 0)),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) || digits.len() > 4 {
                return None;
            }
            exp.parse::<i64>().ok().map(|e| (e, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn milli(s: &str) -> Result<i64, String> {
        Quantity::parse(s).map(|q| q.milli_value())
    }

    fn units(s: &str) -> Result<i64, String> {
        Quantity::parse(s).map(|q| q.value())
    }

    #[test]
    fn cpu_forms_in_millicores() {
        assert_eq!(milli("100m"), Ok(100));
        assert_eq!(milli("1"), Ok(1000));
        assert_eq!(milli("1.5"), Ok(1500));
        assert_eq!(milli(".5"), Ok(500));
        assert_eq!(milli("2e3"), Ok(2_000_000));
        assert_eq!(milli("1E-3"), Ok(1));
        assert_eq!(milli("500u"), Ok(1), "a fraction of a millicore rounds up");
        assert_eq!(milli("+3"), Ok(3000));
        assert_eq!(milli("-1"), Ok(-1000));
    }

    #[test]
    fn memory_forms_in_bytes() {
        assert_eq!(units("128Mi"), Ok(128 * 1024 * 1024));
        assert_eq!(units("1G"), Ok(1_000_000_000));
        assert_eq!(units("1.5Ki"), Ok(1536));
        assert_eq!(units("1.5"), Ok(2), "rounds up");
        assert_eq!(units("100m"), Ok(1));
        assert_eq!(units("2Ei"), Ok(2 << 60));
    }

    #[test]
    fn huge_values_saturate_instead_of_wrapping() {
        assert_eq!(units("100Ei"), Ok(i64::MAX));
        assert_eq!(units("1e300"), Ok(i64::MAX));
        assert_eq!(milli("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(units("1e-300"), Ok(1));
    }

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn decimal_binary_and_exponent_forms() {
        assert_eq!(q("100m"), q("0.1"));
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1.5"), q("1500m"));
        assert_eq!(q("128Mi"), q("134217728"));
        assert_eq!(q("1G"), q("1e9"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("1E3"), q("1000"));
        assert_eq!(q("2E"), q("2e18"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q(".5"), q("500m"));
        assert_eq!(q("+3"), q("3"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("-1").is_negative());
        assert!(q("0").is_zero());
    }

    #[test]
    fn sub_nano_precision_rounds_up() {
        assert_eq!(q("0.1n"), q("1n"));
        assert_eq!(q("1500u"), q("1500000n"));
        assert!(q("1n") > q("0"));
    }

    #[test]
    fn malformed_quantities_are_rejected_with_upstream_text() {
        for bad in ["", "abc", "1.2.3", "1Qi", "1e", "m", "1 Gi", "1e+", "--1"] {
            assert_eq!(Quantity::parse(bad), Err(FORMAT_ERROR.to_string()), "{bad}");
        }
    }

    #[test]
    fn json_numbers_are_quantities() {
        assert_eq!(Quantity::from_json(&serde_json::json!(2)), Ok(q("2")));
        assert_eq!(Quantity::from_json(&serde_json::json!(0.5)), Ok(q("500m")));
        assert!(Quantity::from_json(&serde_json::json!(true)).is_err());
    }
}
