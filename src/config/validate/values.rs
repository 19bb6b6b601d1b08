//! Value syntaxes shared by several keys, as pure functions of the text.

use std::ops::RangeInclusive;
use std::time::Duration;

/// What is wrong with a value and how to fix it: a problem's message and
/// hint before it is given a place in the file.
pub(crate) type Complaint = (String, String);

/// `500ms`, `2s`, `1m`, `1h`; a bare number is seconds.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        // A bare number is refused: `5` could mean seconds or
        // milliseconds, and the hint asks for a unit.
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        _ => return None,
    };
    (seconds.is_finite() && (0.0..1e9).contains(&seconds)).then(|| Duration::from_secs_f64(seconds))
}

/// 32 hexadecimal characters as 16 bytes.
pub(crate) fn parse_hex16(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// `200` or `200-399`, within the HTTP status codes.
pub(super) fn parse_status_range(text: &str) -> Option<RangeInclusive<u16>> {
    let text = text.trim();
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (lo.trim().parse().ok()?, hi.trim().parse().ok()?),
        None => {
            let code: u16 = text.parse().ok()?;
            (code, code)
        }
    };
    ((100..=599).contains(&lo) && (100..=599).contains(&hi) && lo <= hi).then_some(lo..=hi)
}
