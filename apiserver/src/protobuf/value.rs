//! Leaf conversions: the wire encodings of the apimachinery "special" types, and bytes,
//! into the JSON upstream would produce for them.
//!
//! - `metav1.Time {1: seconds, 2: nanos}` → `"2026-01-02T03:04:05Z"` (upstream drops the
//!   nanoseconds). The zero time (an empty message) becomes `None`: upstream marshals it as
//!   JSON `null`, and this decoder leaves it out.
//! - `intstr.IntOrString {1: type, 2: intVal, 3: strVal}` → number (type 0) or string (type 1).
//! - `resource.Quantity {1: string}` → that string.
//! - `metav1.FieldsV1 {1: Raw}` → the JSON value in `Raw`.
//! - `bytes` → standard base64 with padding.

use serde_json::Value;

use super::wire::{Reader, WireError, WireValue};

/// Why a leaf value could not be converted (the caller adds the field path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LeafError {
    Wire(WireError),
    /// The value is well-formed protobuf but not a valid value of its type.
    Invalid(String),
}

impl From<WireError> for LeafError {
    fn from(e: WireError) -> Self {
        LeafError::Wire(e)
    }
}

/// Reads the fields of a small message into `(number, value)` pairs, last occurrence winning.
fn fields<const N: usize>(buf: &[u8]) -> Result<[Option<WireValue<'_>>; N], WireError> {
    let mut out = [None; N];
    let mut reader = Reader::new(buf);
    while let Some((number, value)) = reader.next_field()? {
        if let Some(slot) = usize::try_from(number).ok().and_then(|n| n.checked_sub(1)).and_then(|i| out.get_mut(i)) {
            *slot = Some(value);
        }
    }
    Ok(out)
}

fn varint(value: Option<WireValue<'_>>, what: &str) -> Result<u64, LeafError> {
    match value {
        None => Ok(0),
        Some(WireValue::Varint(v)) => Ok(v),
        Some(_) => Err(LeafError::Invalid(format!("{what} is not a varint"))),
    }
}

fn string(value: Option<WireValue<'_>>, what: &str) -> Result<String, LeafError> {
    match value {
        None => Ok(String::new()),
        Some(WireValue::Len(bytes)) => utf8(bytes, what),
        Some(_) => Err(LeafError::Invalid(format!("{what} is not length-delimited"))),
    }
}

/// Checks a protobuf `string` is UTF-8, as protobuf requires and JSON needs.
pub(super) fn utf8(bytes: &[u8], what: &str) -> Result<String, LeafError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| LeafError::Invalid(format!("{what} is not valid UTF-8")))
}

/// `metav1.Time`; `None` for the zero time.
///
/// Upstream's marshaller writes the zero Go time as an empty message and any other time as
/// `{seconds}` (nanos are never written), and its unmarshaller reads an empty message as the
/// zero time and anything else as `time.Unix(seconds, 0)`, the epoch included.
pub(super) fn time(buf: &[u8]) -> Result<Option<Value>, LeafError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let [seconds, _nanos] = fields::<2>(buf)?;
    // int64 on the wire is two's complement.
    let seconds = varint(seconds, "Time.seconds")? as i64;
    rfc3339(seconds).map(|s| Some(Value::String(s)))
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`; years outside 0..=9999 are rejected, as
/// Go's `Time.MarshalJSON` does.
pub(super) fn rfc3339(unix_seconds: i64) -> Result<String, LeafError> {
    let days = unix_seconds.div_euclid(86_400);
    let secs_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return Err(LeafError::Invalid(format!("Time {unix_seconds} is outside years 0-9999")));
    }
    let (h, m, s) = (secs_of_day / 3600, secs_of_day % 3600 / 60, secs_of_day % 60);
    Ok(format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"))
}

/// Proleptic Gregorian date of a day count since 1970-01-01, by 400-year eras (each era has
/// exactly 146 097 days, so the arithmetic is exact for any `i64` input within range).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so the leap day is the last day of a "year".
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era.saturating_add(era.saturating_mul(400)) + i64::from(month <= 2);
    (year, month, day)
}

/// `intstr.IntOrString` as a JSON number or string.
pub(super) fn int_or_string(buf: &[u8]) -> Result<Value, LeafError> {
    let [kind, int_val, str_val] = fields::<3>(buf)?;
    match varint(kind, "IntOrString.type")? {
        // int32 on the wire: sign-extended to 64 bits, so `as i64` then `as i32` recovers it.
        0 => Ok(Value::from(varint(int_val, "IntOrString.intVal")? as i64 as i32)),
        1 => Ok(Value::String(string(str_val, "IntOrString.strVal")?)),
        other => Err(LeafError::Invalid(format!("IntOrString.type {other} is neither 0 (int) nor 1 (string)"))),
    }
}

/// `resource.Quantity` as its string form.
pub(super) fn quantity(buf: &[u8]) -> Result<Value, LeafError> {
    let [text] = fields::<1>(buf)?;
    Ok(Value::String(string(text, "Quantity.string")?))
}

/// `metav1.FieldsV1`: `Raw` holds JSON.
pub(super) fn raw_json(buf: &[u8]) -> Result<Value, LeafError> {
    let [raw] = fields::<1>(buf)?;
    match raw {
        None => Ok(Value::Object(Default::default())),
        Some(WireValue::Len(bytes)) => {
            serde_json::from_slice(bytes).map_err(|e| LeafError::Invalid(format!("FieldsV1.Raw is not JSON: {e}")))
        }
        Some(_) => Err(LeafError::Invalid("FieldsV1.Raw is not length-delimited".into())),
    }
}

/// Standard base64 with `=` padding (RFC 4648 §4), as Go's `encoding/json` writes `[]byte`.
pub(super) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in vectors {
            assert_eq!(base64(input.as_bytes()), want);
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn rfc3339_across_the_calendar() {
        let vectors = [
            (0, "1970-01-01T00:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (-2_203_848_000, "1900-03-01T12:00:00Z"),
            (1_767_323_045, "2026-01-02T03:04:05Z"),
            (-62_135_596_800, "0001-01-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ];
        for (secs, want) in vectors {
            assert_eq!(rfc3339(secs).as_deref(), Ok(want), "{secs}");
        }
        for out_of_range in [253_402_300_800, -62_167_219_201, i64::MIN, i64::MAX] {
            assert!(matches!(rfc3339(out_of_range), Err(LeafError::Invalid(_))), "{out_of_range}");
        }
    }

    #[test]
    fn empty_time_is_unset_and_nanos_are_dropped() {
        assert_eq!(time(&[]), Ok(None));
        // seconds 1, nanos 5
        assert_eq!(time(&[0x08, 0x01, 0x10, 0x05]), Ok(Some(Value::from("1970-01-01T00:00:01Z"))));
    }

    #[test]
    fn int_or_string_forms() {
        // type 0, intVal -1 (ten-byte varint)
        let minus_one = [0x08, 0x00, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(int_or_string(&minus_one), Ok(Value::from(-1)));
        assert_eq!(int_or_string(&[0x08, 0x01, 0x1a, 0x03, b'5', b'0', b'%']), Ok(Value::from("50%")));
        assert_eq!(int_or_string(&[]), Ok(Value::from(0)));
        assert!(matches!(int_or_string(&[0x08, 0x02]), Err(LeafError::Invalid(_))));
        assert!(matches!(int_or_string(&[0x08]), Err(LeafError::Wire(WireError::Truncated))));
    }

    #[test]
    fn quantity_and_raw_json() {
        assert_eq!(quantity(&[0x0a, 0x04, b'5', b'0', b'0', b'm']), Ok(Value::from("500m")));
        assert!(matches!(quantity(&[0x0a, 0x01, 0xff]), Err(LeafError::Invalid(_))));
        assert_eq!(raw_json(&[0x0a, 0x02, b'{', b'}']), Ok(Value::Object(Default::default())));
        assert!(matches!(raw_json(&[0x0a, 0x01, b'{']), Err(LeafError::Invalid(_))));
    }
}
