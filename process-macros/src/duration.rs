//! Durations written in `#[process(...)]`, parsed at compile time.
//!
//! Accepted forms:
//! - a string: a decimal number, optional spaces, and a unit, such as `"300s"`,
//!   `"1.5s"`, `"250ms"`, `"2m"`, `"1h"`, `"500us"`; the units are `ns`, `us` (or `µs`),
//!   `ms`, `s`, `m` (minutes) and `h`;
//! - a bare integer or float literal, meaning seconds: `30`, `0.5`.
//!
//! The result is a whole number of nanoseconds that fits in a `u64` (about 584 years),
//! so the generated code is a plain `Duration::from_nanos(N)`. Values that need more
//! precision than a nanosecond, and zero, are refused rather than silently rounded:
//! a zero timeout or `join_in` is never what was meant.

use std::fmt;

/// The units a duration string may end with, with their length in nanoseconds.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// How the accepted units are listed in error messages.
pub(crate) const UNITS_HINT: &str =
    "use a number with one of the units ns, us, ms, s, m (minutes) or h, \
     like \"300s\", \"1.5s\" or \"250ms\", or a bare number of seconds like `30`";

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Empty string.
    Empty,
    /// Starts with `-`.
    Negative,
    /// A number with no unit, in a string.
    MissingUnit,
    /// An unknown unit, such as `x` in `"30x"`.
    UnknownUnit(String),
    /// The number part is not a decimal number.
    BadNumber,
    /// Finer than a nanosecond.
    TooPrecise,
    /// Does not fit in a `u64` of nanoseconds.
    TooLong,
    /// Zero.
    Zero,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => write!(f, "empty duration; {UNITS_HINT}"),
            DurationError::Negative => write!(f, "a duration cannot be negative"),
            DurationError::MissingUnit => write!(
                f,
                "duration string has no unit; write it like \"30s\", or as a bare number of \
                 seconds like `30`"
            ),
            DurationError::UnknownUnit(unit) => {
                write!(f, "unknown duration unit `{unit}`; {UNITS_HINT}")
            }
            DurationError::BadNumber => write!(f, "not a duration; {UNITS_HINT}"),
            DurationError::TooPrecise => {
                write!(f, "duration is more precise than a nanosecond")
            }
            DurationError::TooLong => write!(
                f,
                "duration is too long (the maximum is about 584 years, u64::MAX nanoseconds)"
            ),
            DurationError::Zero => write!(f, "duration must be greater than zero"),
        }
    }
}

/// Parses a duration string such as `"1.5s"` into nanoseconds.
pub(crate) fn parse_str(s: &str) -> Result<u64, DurationError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_' || c == '+'))
        .unwrap_or(s.len());
    let (number, unit) = (s[..split].trim(), s[split..].trim());
    if number.is_empty() {
        return Err(DurationError::BadNumber);
    }
    if unit.is_empty() {
        // Check the number first, so that "1.2.3" is a bad number, not a missing unit.
        parse_decimal(number, 1)?;
        return Err(DurationError::MissingUnit);
    }
    let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(DurationError::UnknownUnit(unit.to_owned()));
    };
    parse_decimal(number, scale)
}

/// Parses the digits of a numeric literal (as syn gives them: no sign, no suffix,
/// possibly with an exponent) as a number of seconds, into nanoseconds.
pub(crate) fn parse_seconds(digits: &str) -> Result<u64, DurationError> {
    parse_decimal(digits, 1_000_000_000)
}

/// `number * scale` exactly, where `number` is `int[.frac][e[+-]exp]`.
fn parse_decimal(number: &str, scale: u128) -> Result<u64, DurationError> {
    let number = number.strip_prefix('+').unwrap_or(number).replace('_', "");
    let (mantissa, exponent) = match number.find(['e', 'E']) {
        Some(i) => {
            let exp: i32 = number[i + 1..]
                .parse()
                .map_err(|_| DurationError::BadNumber)?;
            (&number[..i], exp)
        }
        None => (number.as_str(), 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(DurationError::BadNumber);
    }
    // value = digits * 10^(exponent - frac.len()) * scale, computed exactly.
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    let mut value: u128 = 0;
    for b in digits.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(b - b'0')))
            .ok_or(DurationError::TooLong)?;
    }
    let mut value = value.checked_mul(scale).ok_or(DurationError::TooLong)?;
    let shift =
        i64::from(exponent) - i64::try_from(frac.len()).map_err(|_| DurationError::BadNumber)?;
    if value != 0 {
        if shift >= 0 {
            for _ in 0..shift {
                value = value.checked_mul(10).ok_or(DurationError::TooLong)?;
            }
        } else {
            for _ in 0..shift.unsigned_abs() {
                if value % 10 != 0 {
                    return Err(DurationError::TooPrecise);
                }
                value /= 10;
            }
        }
    }
    if value == 0 {
        return Err(DurationError::Zero);
    }
    u64::try_from(value).map_err(|_| DurationError::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn strings_with_units() {
        assert_eq!(parse_str("300s"), Ok(300 * S));
        assert_eq!(parse_str("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_str("250ms"), Ok(250_000_000));
        assert_eq!(parse_str("2m"), Ok(120 * S));
        assert_eq!(parse_str("1h"), Ok(3600 * S));
        assert_eq!(parse_str("500us"), Ok(500_000));
        assert_eq!(parse_str("500µs"), Ok(500_000));
        assert_eq!(parse_str("7ns"), Ok(7));
        assert_eq!(parse_str(" 30 s "), Ok(30 * S));
        assert_eq!(parse_str(".5s"), Ok(S / 2));
        assert_eq!(parse_str("5.s"), Ok(5 * S));
        assert_eq!(parse_str("1_000ms"), Ok(S));
        assert_eq!(parse_str("0.000000001s"), Ok(1));
        assert_eq!(parse_str("1.25m"), Ok(75 * S));
    }

    #[test]
    fn bad_strings() {
        assert_eq!(
            parse_str("30x"),
            Err(DurationError::UnknownUnit("x".into()))
        );
        assert_eq!(
            parse_str("30sec"),
            Err(DurationError::UnknownUnit("sec".into()))
        );
        assert_eq!(parse_str("30"), Err(DurationError::MissingUnit));
        assert_eq!(parse_str(""), Err(DurationError::Empty));
        assert_eq!(parse_str("  "), Err(DurationError::Empty));
        assert_eq!(parse_str("-5s"), Err(DurationError::Negative));
        assert_eq!(parse_str("s"), Err(DurationError::BadNumber));
        assert_eq!(parse_str("1.2.3s"), Err(DurationError::BadNumber));
        assert_eq!(parse_str("1.2.3"), Err(DurationError::BadNumber));
        assert_eq!(parse_str("."), Err(DurationError::BadNumber));
        assert_eq!(parse_str("0s"), Err(DurationError::Zero));
        assert_eq!(parse_str("0.0ms"), Err(DurationError::Zero));
        assert_eq!(parse_str("0.5ns"), Err(DurationError::TooPrecise));
        assert_eq!(parse_str("10000000h"), Err(DurationError::TooLong));
        assert_eq!(
            parse_str("99999999999999999999999999999999999999999s"),
            Err(DurationError::TooLong)
        );
        assert_eq!(parse_str("none"), Err(DurationError::BadNumber));
    }

    #[test]
    fn bare_seconds() {
        assert_eq!(parse_seconds("30"), Ok(30 * S));
        assert_eq!(parse_seconds("0.25"), Ok(S / 4));
        assert_eq!(parse_seconds("1e3"), Ok(1000 * S));
        assert_eq!(parse_seconds("1.5e-3"), Ok(1_500_000));
        assert_eq!(parse_seconds("0"), Err(DurationError::Zero));
        assert_eq!(parse_seconds("1e-10"), Err(DurationError::TooPrecise));
        assert_eq!(parse_seconds("18446744073"), Ok(18_446_744_073 * S));
        assert_eq!(parse_seconds("18446744074"), Err(DurationError::TooLong));
    }

    #[test]
    fn messages_name_the_units() {
        let msg = parse_str("30x").unwrap_err().to_string();
        assert!(msg.contains("`x`"), "{msg}");
        assert!(msg.contains("ms, s, m (minutes) or h"), "{msg}");
    }
}
