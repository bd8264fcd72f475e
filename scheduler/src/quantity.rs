//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `2e3`) as the integers the
//! scheduler compares: CPU in millicores, everything else in whole units, rounded up as
//! upstream's `MilliValue()`/`Value()` do. Parsing is the API server's (one parser for the
//! whole project): `flotilla_apiserver::validation::quantity`.

use flotilla_apiserver::validation::quantity::Quantity;

use crate::error::QuantityError;

/// The value of `text` in thousandths (millicores for CPU), rounded away from zero.
pub fn parse_milli(text: &str) -> Result<i64, QuantityError> {
    parse(text).map(|q| q.milli_value())
}

/// The value of `text` in whole units (bytes for memory), rounded away from zero.
pub fn parse_units(text: &str) -> Result<i64, QuantityError> {
    parse(text).map(|q| q.value())
}

fn parse(text: &str) -> Result<Quantity, QuantityError> {
    // Upstream does not trim: " 1" is not a quantity.
    if text.trim() != text {
        return Err(QuantityError::Invalid(text.to_string()));
    }
    Quantity::parse(text).map_err(|_| QuantityError::Invalid(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_forms_in_millicores() {
        assert_eq!(parse_milli("100m"), Ok(100));
        assert_eq!(parse_milli("1"), Ok(1000));
        assert_eq!(parse_milli("1.5"), Ok(1500));
        assert_eq!(parse_milli("0.25"), Ok(250));
        assert_eq!(parse_milli(".5"), Ok(500));
        assert_eq!(parse_milli("2e3"), Ok(2_000_000));
        assert_eq!(parse_milli("1E-3"), Ok(1));
        assert_eq!(parse_milli("500u"), Ok(1), "a fraction of a millicore rounds up");
        assert_eq!(parse_milli("0"), Ok(0));
        assert_eq!(parse_milli("+3"), Ok(3000));
        assert_eq!(parse_milli("-1"), Ok(-1000));
    }

    #[test]
    fn memory_forms_in_bytes() {
        assert_eq!(parse_units("128Mi"), Ok(128 * 1024 * 1024));
        assert_eq!(parse_units("1Gi"), Ok(1 << 30));
        assert_eq!(parse_units("1G"), Ok(1_000_000_000));
        assert_eq!(parse_units("1.5Ki"), Ok(1536));
        assert_eq!(parse_units("64k"), Ok(64_000));
        assert_eq!(parse_units("1e6"), Ok(1_000_000));
        assert_eq!(parse_units("1.5"), Ok(2), "rounds up");
        assert_eq!(parse_units("100m"), Ok(1));
        assert_eq!(parse_units("2Ei"), Ok(2 << 60));
    }

    #[test]
    fn huge_values_saturate_instead_of_wrapping() {
        assert_eq!(parse_units("100Ei"), Ok(i64::MAX));
        assert_eq!(parse_units("1e300"), Ok(i64::MAX));
        assert_eq!(parse_milli("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_units("1e-300"), Ok(1));
    }

    #[test]
    fn malformed_quantities_are_errors() {
        for bad in ["", "m", "1.2.3", "1x", "1Kb", "e3", "1e", "1e+", "--1", "1 Gi", "1ki", "1e99999"] {
            assert_eq!(parse_units(bad), Err(QuantityError::Invalid(bad.to_string())), "{bad:?}");
        }
    }
}
