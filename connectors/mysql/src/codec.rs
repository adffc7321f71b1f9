//! Values between MySQL's wire format and Ferry's [`Value`]: decoding what the
//! binary protocol sends (source) and rendering values as text for `LOAD DATA` and
//! `INSERT` (sink). Every value that does not fit is a [`Bad`]: the problem and, where
//! there is one, the nearest value that fits (what `clamp` loads), so the caller's
//! bad-data policy decides.

use crate::types::To;
use bytes::Bytes;
use ferry_core::policy::ValueProblem;
use ferry_core::{Array, DataType, Decimal, Interval, Text, Value};
use mysql_async::Value as My;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;
/// The longest MySQL `TIME`: 838:59:59 (the fraction must be 0 at the bound).
pub(crate) const MAX_TIME_MICROS: i64 = (838 * 3600 + 59 * 60 + 59) * 1_000_000;

/// A value that does not fit: what is wrong, and the nearest value that fits.
#[derive(Debug, Clone, PartialEq)]
pub struct Bad {
    /// What is wrong.
    pub problem: ValueProblem,
    /// What `clamp` loads, when there is a nearest value.
    pub clamped: Option<Value>,
}

impl Bad {
    fn new(problem: ValueProblem, clamped: Option<Value>) -> Self {
        Bad { problem, clamped }
    }

    fn other(message: impl Into<String>) -> Self {
        Bad::new(ValueProblem::Other(message.into()), None)
    }
}

// ---------------------------------------------------------------------------------
// Calendar arithmetic (proleptic Gregorian, Howard Hinnant's algorithms)

/// Days from 2000-01-01 to `year-month-day`.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 - 10_957
}

/// `(year, month, day)` of a day count from 2000-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 10_957 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Earliest date MySQL stores and Ferry writes: 0001-01-01.
pub(crate) fn min_date() -> i64 {
    days_from_civil(1, 1, 1)
}

/// Latest date MySQL stores: 9999-12-31.
pub(crate) fn max_date() -> i64 {
    days_from_civil(9999, 12, 31)
}

// ---------------------------------------------------------------------------------
// Source: wire → Value

/// How one source column is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decode {
    /// `TINYINT(1)` → bool (0/1; anything else is out of range, clamps to true).
    Bool,
    /// `BIT(1)` → bool.
    BitBool,
    /// Integers.
    Int16,
    /// Integers.
    Int32,
    /// Integers.
    Int64,
    /// Unsigned 64-bit.
    UInt64,
    /// `FLOAT`.
    Float32,
    /// `DOUBLE`.
    Float64,
    /// `DECIMAL` text.
    Decimal,
    /// Text; `CHAR(n)` is padded back to `n` characters.
    Text {
        /// Characters to pad to.
        pad: Option<usize>,
    },
    /// Bytes (also `BIT(n)`).
    Bytes,
    /// `DATE`.
    Date,
    /// `DATETIME`.
    Timestamp,
    /// `TIMESTAMP` (UTC).
    TimestampTz,
    /// `TIME`.
    Interval,
    /// `ENUM`.
    Enum,
    /// `SET`.
    Set,
    /// `JSON`.
    Json,
    /// MariaDB `UUID`.
    Uuid,
    /// MariaDB `INET4`/`INET6`.
    Inet,
    /// Anything else, as the server's bytes.
    Other,
}

impl Decode {
    /// The decoder for a column of `data_type` mapped by `to`.
    pub(crate) fn for_column(data_type: &DataType, to: To) -> Decode {
        match (to, data_type) {
            (To::Bool, _) => Decode::Bool,
            (To::Bit, DataType::Bool) => Decode::BitBool,
            (To::Bit, _) | (To::Bytes, _) => Decode::Bytes,
            (To::Int16, _) => Decode::Int16,
            (To::Int32, _) => Decode::Int32,
            (To::Int64, _) => Decode::Int64,
            (To::UInt64, _) => Decode::UInt64,
            (To::Float32, _) => Decode::Float32,
            (To::Float64, _) => Decode::Float64,
            (To::Decimal, _) => Decode::Decimal,
            (To::Char, DataType::Text { max_len, .. }) => Decode::Text {
                pad: max_len.map(|n| n as usize),
            },
            (To::Char | To::VarChar | To::Text, _) => Decode::Text { pad: None },
            (To::Date, _) => Decode::Date,
            (To::Timestamp, _) => Decode::Timestamp,
            (To::TimestampTz, _) => Decode::TimestampTz,
            (To::Interval, _) => Decode::Interval,
            (To::Enum, _) => Decode::Enum,
            (To::Set, _) => Decode::Set,
            (To::Json, _) => Decode::Json,
            (To::Uuid, _) => Decode::Uuid,
            (To::Inet, _) => Decode::Inet,
            (To::Other, _) => Decode::Other,
        }
    }
}

fn int_of(v: &My) -> Option<i128> {
    match v {
        My::Int(n) => Some(i128::from(*n)),
        My::UInt(n) => Some(i128::from(*n)),
        My::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        My::Float(f) => Some(*f as i128),
        My::Double(f) => Some(*f as i128),
        _ => None,
    }
}

/// An integer of the driver's value as `T`; one outside `T`'s range is bad data whose
/// clamped value is the nearer of `bounds`.
fn integer<T: TryFrom<i128> + Copy>(
    v: &My,
    target: &str,
    wrap: fn(T) -> Value,
    (min, max): (T, T),
) -> Result<Value, Bad> {
    let n = int_of(v).ok_or_else(|| Bad::other(format!("unexpected integer {v:?}")))?;
    match T::try_from(n) {
        Ok(x) => Ok(wrap(x)),
        Err(_) => Err(out_of_range(n, target, wrap(if n < 0 { min } else { max }))),
    }
}

fn out_of_range(n: i128, target: &str, clamped: Value) -> Bad {
    Bad::new(
        ValueProblem::OutOfRange {
            value: n.to_string(),
            target_type: target.into(),
        },
        Some(clamped),
    )
}

fn text_value(bytes: Vec<u8>) -> Result<Text, Bad> {
    match Text::from_utf8(Bytes::from(bytes)) {
        Ok(t) => Ok(t),
        Err(_) => Err(Bad::new(ValueProblem::InvalidUtf8, None)),
    }
}

/// Like [`text_value`], with the lossy repair as the clamp.
fn text_or_repair(bytes: Vec<u8>) -> Result<Text, Bad> {
    match std::str::from_utf8(&bytes) {
        Ok(_) => text_value(bytes),
        Err(_) => {
            let repaired = String::from_utf8_lossy(&bytes).into_owned();
            Err(Bad::new(
                ValueProblem::InvalidUtf8,
                Some(Value::Text(Text::from(repaired))),
            ))
        }
    }
}

/// 255 spaces: `CHAR(n)` holds at most 255 characters.
const SPACES: &str = match std::str::from_utf8(&[b' '; 255]) {
    Ok(s) => s,
    Err(_) => "",
};

/// Pads `text` with spaces to `n` characters, as MySQL stores `CHAR(n)` (it strips
/// the padding when it returns the value). An empty value (the common case: a blank
/// `CHAR` column) borrows a static run of spaces instead of allocating.
fn pad_text(text: Text, n: usize) -> Text {
    let s = text.as_str();
    let have = if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    };
    if have >= n {
        return text;
    }
    let mut missing = n - have;
    if s.is_empty() && missing <= SPACES.len() {
        return Text::from_static(&SPACES[..missing]);
    }
    let mut padded = String::with_capacity(s.len() + missing);
    padded.push_str(s);
    while missing > 0 {
        let take = missing.min(SPACES.len());
        padded.push_str(&SPACES[..take]);
        missing -= take;
    }
    Text::from(padded)
}

fn show_date(y: u16, m: u8, d: u8) -> String {
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 2000-01-01 of a MySQL date, or the problem with it.
fn date_days(
    y: u16,
    m: u8,
    d: u8,
    shown: impl FnOnce() -> String,
    wrap: fn(i64) -> Value,
) -> Result<i64, Bad> {
    if y == 0 && m == 0 && d == 0 {
        return Err(Bad::new(ValueProblem::ZeroDate { value: shown() }, None));
    }
    let (year, month, day) = (i64::from(y), u32::from(m), u32::from(d));
    if y == 0 || month == 0 || month > 12 || day == 0 || day > days_in_month(year, month) {
        let month_c = month.clamp(1, 12);
        let year_c = year.max(1);
        let day_c = day.clamp(1, days_in_month(year_c, month_c));
        let clamped = days_from_civil(year_c, month_c, day_c);
        return Err(Bad::new(
            ValueProblem::InvalidDate { value: shown() },
            Some(wrap(clamped)),
        ));
    }
    Ok(days_from_civil(year, month, day))
}

/// Decodes one cell. `Value::Null` for SQL NULL.
pub(crate) fn decode(decode: &Decode, v: My) -> Result<Value, Bad> {
    if matches!(v, My::NULL) {
        return Ok(Value::Null);
    }
    Ok(match decode {
        Decode::Bool => match int_of(&v) {
            Some(0) => Value::Bool(false),
            Some(1) => Value::Bool(true),
            Some(n) => {
                return Err(out_of_range(
                    n,
                    "boolean (TINYINT(1) holding 0 or 1)",
                    Value::Bool(true),
                ));
            }
            None => return Err(Bad::other(format!("unexpected TINYINT(1) value {v:?}"))),
        },
        Decode::BitBool => match v {
            My::Bytes(b) => Value::Bool(b.iter().any(|&x| x != 0)),
            other => match int_of(&other) {
                Some(n) => Value::Bool(n != 0),
                None => return Err(Bad::other(format!("unexpected BIT(1) value {other:?}"))),
            },
        },
        Decode::Int16 => integer(&v, "int16", Value::Int16, (i16::MIN, i16::MAX))?,
        Decode::Int32 => integer(&v, "int32", Value::Int32, (i32::MIN, i32::MAX))?,
        Decode::Int64 => integer(&v, "int64", Value::Int64, (i64::MIN, i64::MAX))?,
        Decode::UInt64 => integer(&v, "uint64", Value::UInt64, (0, u64::MAX))?,
        Decode::Float32 => match v {
            My::Float(f) => Value::Float32(f),
            My::Double(f) => Value::Float32(f as f32),
            My::Bytes(b) => Value::Float32(
                std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| Bad::other("unparsable FLOAT"))?,
            ),
            other => return Err(Bad::other(format!("unexpected FLOAT value {other:?}"))),
        },
        Decode::Float64 => match v {
            My::Double(f) => Value::Float64(f),
            My::Float(f) => Value::Float64(f64::from(f)),
            My::Bytes(b) => Value::Float64(
                std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| Bad::other("unparsable DOUBLE"))?,
            ),
            other => return Err(Bad::other(format!("unexpected DOUBLE value {other:?}"))),
        },
        Decode::Decimal => match v {
            My::Bytes(b) => {
                let text = String::from_utf8(b).map_err(|_| Bad::other("DECIMAL is not ASCII"))?;
                Value::Decimal(
                    Decimal::parse_string(text)
                        .map_err(|text| Bad::other(format!("unparsable DECIMAL {text:?}")))?,
                )
            }
            My::Int(n) => Value::Decimal(Decimal::Finite(n.to_string().into())),
            My::UInt(n) => Value::Decimal(Decimal::Finite(n.to_string().into())),
            other => return Err(Bad::other(format!("unexpected DECIMAL value {other:?}"))),
        },
        Decode::Text { pad } => match v {
            My::Bytes(b) => {
                let text = text_or_repair(b)?;
                match pad {
                    Some(n) => Value::Text(pad_text(text, *n)),
                    None => Value::Text(text),
                }
            }
            other => Value::Text(Text::from(other.as_sql(true))),
        },
        Decode::Bytes | Decode::Other => {
            let bytes = match v {
                My::Bytes(b) => Bytes::from(b),
                other => return Err(Bad::other(format!("unexpected binary value {other:?}"))),
            };
            if *decode == Decode::Other {
                Value::Other(bytes)
            } else {
                Value::Bytes(bytes)
            }
        }
        Decode::Date => match v {
            My::Date(y, m, d, ..) => {
                Value::Date(date_days(y, m, d, || show_date(y, m, d), date_value)? as i32)
            }
            other => return Err(Bad::other(format!("unexpected DATE value {other:?}"))),
        },
        Decode::Timestamp | Decode::TimestampTz => match v {
            My::Date(y, m, d, hh, mi, ss, us) => {
                let tz = *decode == Decode::TimestampTz;
                let shown = || format!("{} {hh:02}:{mi:02}:{ss:02}.{us:06}", show_date(y, m, d));
                let wrap: fn(i64) -> Value = if tz { ts_tz_value } else { ts_value };
                let time = ((i64::from(hh) * 60 + i64::from(mi)) * 60 + i64::from(ss)) * 1_000_000
                    + i64::from(us);
                match date_days(y, m, d, shown, wrap) {
                    Ok(days) => wrap(days * DAY_MICROS + time),
                    Err(mut bad) => {
                        if let Some(Value::Timestamp(t) | Value::TimestampTz(t)) = bad.clamped {
                            bad.clamped = Some(wrap(t * DAY_MICROS + time));
                        }
                        return Err(bad);
                    }
                }
            }
            other => return Err(Bad::other(format!("unexpected DATETIME value {other:?}"))),
        },
        Decode::Interval => match v {
            My::Time(neg, days, h, m, s, us) => {
                let micros = (((i64::from(days) * 24 + i64::from(h)) * 60 + i64::from(m)) * 60
                    + i64::from(s))
                    * 1_000_000
                    + i64::from(us);
                Value::Interval(Interval {
                    months: 0,
                    days: 0,
                    micros: if neg { -micros } else { micros },
                })
            }
            other => return Err(Bad::other(format!("unexpected TIME value {other:?}"))),
        },
        Decode::Enum => match v {
            My::Bytes(b) if b.is_empty() => {
                return Err(Bad::other(
                    "ENUM holds the empty error value '' (an invalid value stored in non-strict mode)",
                ));
            }
            My::Bytes(b) => Value::Enum(text_value(b)?),
            other => return Err(Bad::other(format!("unexpected ENUM value {other:?}"))),
        },
        Decode::Set => match v {
            My::Bytes(b) => {
                let text = text_value(b)?;
                let values = if text.is_empty() {
                    Vec::new()
                } else {
                    text.as_str()
                        .split(',')
                        .map(|m| Value::Text(Text::from(m)))
                        .collect()
                };
                Value::Array(Box::new(Array::one_dimensional(values)))
            }
            other => return Err(Bad::other(format!("unexpected SET value {other:?}"))),
        },
        Decode::Json => match v {
            My::Bytes(b) => Value::Json(text_value(b)?),
            other => return Err(Bad::other(format!("unexpected JSON value {other:?}"))),
        },
        Decode::Uuid => match v {
            My::Bytes(b) => {
                let text = String::from_utf8_lossy(&b);
                Value::Uuid(
                    parse_uuid(&text)
                        .ok_or_else(|| Bad::other(format!("unparsable UUID {text:?}")))?,
                )
            }
            other => return Err(Bad::other(format!("unexpected UUID value {other:?}"))),
        },
        Decode::Inet => match v {
            My::Bytes(b) => {
                let text = String::from_utf8_lossy(&b);
                let addr: IpAddr = text
                    .trim()
                    .parse()
                    .map_err(|_| Bad::other(format!("unparsable INET value {text:?}")))?;
                let prefix = if addr.is_ipv4() { 32 } else { 128 };
                Value::Inet { addr, prefix }
            }
            other => return Err(Bad::other(format!("unexpected INET value {other:?}"))),
        },
    })
}

fn date_value(days: i64) -> Value {
    Value::Date(days as i32)
}

fn ts_value(days: i64) -> Value {
    Value::Timestamp(days)
}

fn ts_tz_value(days: i64) -> Value {
    Value::TimestampTz(days)
}

/// Parses `123e4567-e89b-12d3-a456-426614174000` (hyphens optional).
pub(crate) fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------
// Sink: Value → text

/// What the sink knows about a target column that changes how values are written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Encode {
    /// Longest text in characters (`VARCHAR(n)`, `CHAR(n)`).
    pub(crate) max_chars: Option<u32>,
    /// `ENUM` members a label must be one of.
    pub(crate) labels: Option<Vec<String>>,
    /// `DECIMAL(p,s)` limits.
    pub(crate) decimal: Option<(u32, u32)>,
    /// The column is `BIT(n)`: values are sent as hex and unhexed by the server.
    pub(crate) bit: bool,
    /// `cidr` semantics: always print the prefix.
    pub(crate) cidr: bool,
    /// The column is a `SET`: an array is written as its comma-separated members.
    pub(crate) set: bool,
}

/// A rendered cell: SQL NULL or the bytes of its text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cell {
    /// SQL NULL.
    Null,
    /// Text in `out`.
    Text,
    /// A number or other token that needs no quoting in SQL (also in `out`).
    Bare,
    /// Raw bytes in `out` (binary data: `X'..'` in SQL).
    Binary,
    /// Hex digits in `out` for a `BIT` column (unhexed by the server).
    Hex,
}

/// Renders `value` into `out` (cleared first). `Err` names the problem and the
/// nearest value that fits.
pub(crate) fn render(value: &Value, enc: &Encode, out: &mut Vec<u8>) -> Result<Cell, Bad> {
    out.clear();
    let push = |out: &mut Vec<u8>, s: &str| out.extend_from_slice(s.as_bytes());
    match value {
        Value::Null => return Ok(Cell::Null),
        Value::Unchanged => {
            return Err(Bad::other(
                "an unchanged-value marker reached a bulk load (a Ferry bug)",
            ));
        }
        Value::Bool(b) => {
            if enc.bit {
                push(out, if *b { "01" } else { "00" });
                return Ok(Cell::Hex);
            }
            push(out, if *b { "1" } else { "0" });
        }
        Value::Int16(n) => push(out, &n.to_string()),
        Value::Int32(n) => push(out, &n.to_string()),
        Value::Int64(n) => push(out, &n.to_string()),
        Value::UInt64(n) => push(out, &n.to_string()),
        Value::Float32(f) => {
            if f.is_nan() {
                return Err(Bad::other("NaN cannot be stored by MySQL"));
            }
            if f.is_infinite() {
                return Err(Bad::new(
                    ValueProblem::OutOfRange {
                        value: f.to_string(),
                        target_type: "FLOAT".into(),
                    },
                    Some(Value::Float32(if *f > 0.0 { f32::MAX } else { f32::MIN })),
                ));
            }
            // The exact double of the float: parsing it back and rounding to float is exact.
            let _ = write!(Vec8(out), "{:e}", f64::from(*f));
        }
        Value::Float64(f) => {
            if f.is_nan() {
                return Err(Bad::other("NaN cannot be stored by MySQL"));
            }
            if f.is_infinite() {
                return Err(Bad::new(
                    ValueProblem::OutOfRange {
                        value: f.to_string(),
                        target_type: "DOUBLE".into(),
                    },
                    Some(Value::Float64(if *f > 0.0 { f64::MAX } else { f64::MIN })),
                ));
            }
            let _ = write!(Vec8(out), "{f:e}");
        }
        Value::Decimal(d) => {
            let max = enc.decimal.map(|(p, s)| max_decimal(p, s));
            match d {
                Decimal::NaN => return Err(Bad::other("NaN cannot be stored by MySQL's DECIMAL")),
                Decimal::PosInfinity | Decimal::NegInfinity => {
                    let neg = matches!(d, Decimal::NegInfinity);
                    let clamped = max.map(|m| {
                        Value::Decimal(Decimal::Finite(
                            if neg { format!("-{m}") } else { m }.into(),
                        ))
                    });
                    return Err(Bad::new(
                        ValueProblem::OutOfRange {
                            value: d.to_string(),
                            target_type: decimal_name(enc.decimal),
                        },
                        clamped,
                    ));
                }
                Decimal::Finite(text) => {
                    if let Some((p, s)) = enc.decimal {
                        check_decimal(text, p, s)?;
                    }
                    push(out, text);
                }
            }
        }
        Value::Text(t) | Value::Enum(t) => {
            if let Some(n) = enc.max_chars {
                let len = t.as_str().chars().count();
                if len > n as usize {
                    let cut = ferry_core::policy::truncate_chars(t.as_str(), n as usize);
                    return Err(Bad::new(
                        ValueProblem::TooLong { len, max_len: n },
                        Some(Value::Text(Text::from(cut))),
                    ));
                }
            }
            if let Some(labels) = &enc.labels
                && !labels.iter().any(|l| l == t.as_str())
            {
                return Err(Bad::other(format!(
                    "{:?} is not one of the ENUM's values",
                    t.as_str()
                )));
            }
            out.extend_from_slice(t.as_bytes());
            return Ok(Cell::Text);
        }
        Value::Json(t) => {
            out.extend_from_slice(t.as_bytes());
            return Ok(Cell::Text);
        }
        Value::Bytes(b) | Value::Other(b) => {
            if enc.bit {
                for byte in b.iter() {
                    let _ = write!(Vec8(out), "{byte:02x}");
                }
                return Ok(Cell::Hex);
            }
            out.extend_from_slice(b);
            return Ok(Cell::Binary);
        }
        Value::Date(days) => {
            let days = i64::from(*days);
            if days < min_date() || days > max_date() {
                let clamped = Value::Date(if days < min_date() {
                    min_date()
                } else {
                    max_date()
                } as i32);
                return Err(Bad::new(
                    ValueProblem::OutOfRange {
                        value: show_days(days),
                        target_type: "DATE (0001-01-01 .. 9999-12-31)".into(),
                    },
                    Some(clamped),
                ));
            }
            write_date(out, days);
            return Ok(Cell::Text);
        }
        Value::Time(micros) => {
            write_duration(out, *micros);
            return Ok(Cell::Text);
        }
        Value::TimeTz {
            micros,
            offset_secs,
        } => {
            write_duration(out, *micros);
            let sign = if *offset_secs < 0 { '-' } else { '+' };
            let off = offset_secs.unsigned_abs();
            let _ = write!(Vec8(out), "{sign}{:02}:{:02}", off / 3600, off / 60 % 60);
            if off % 60 != 0 {
                let _ = write!(Vec8(out), ":{:02}", off % 60);
            }
            return Ok(Cell::Text);
        }
        Value::Timestamp(t) | Value::TimestampTz(t) => {
            let lo = min_date() * DAY_MICROS;
            let hi = (max_date() + 1) * DAY_MICROS - 1;
            if *t < lo || *t > hi {
                let bound = if *t < lo { lo } else { hi };
                let clamped = match value {
                    Value::Timestamp(_) => Value::Timestamp(bound),
                    _ => Value::TimestampTz(bound),
                };
                return Err(Bad::new(
                    ValueProblem::OutOfRange {
                        value: if *t == i64::MIN || *t == i64::MAX {
                            if *t < 0 { "-infinity" } else { "infinity" }.to_string()
                        } else {
                            show_days(t.div_euclid(DAY_MICROS))
                        },
                        target_type: "DATETIME (0001-01-01 .. 9999-12-31)".into(),
                    },
                    Some(clamped),
                ));
            }
            write_date(out, t.div_euclid(DAY_MICROS));
            out.push(b' ');
            write_duration(out, t.rem_euclid(DAY_MICROS));
            return Ok(Cell::Text);
        }
        Value::Interval(iv) => {
            if iv.months != 0 {
                return Err(Bad::other(format!(
                    "interval of {} month(s) cannot be stored as TIME (a month has no fixed length)",
                    iv.months
                )));
            }
            let micros = i128::from(iv.days) * i128::from(DAY_MICROS) + i128::from(iv.micros);
            let max = i128::from(MAX_TIME_MICROS);
            if micros.abs() > max {
                let bound = if micros < 0 {
                    -MAX_TIME_MICROS
                } else {
                    MAX_TIME_MICROS
                };
                return Err(Bad::new(
                    ValueProblem::OutOfRange {
                        value: format!("{} days {} µs", iv.days, iv.micros),
                        target_type: "TIME (±838:59:59)".into(),
                    },
                    Some(Value::Interval(Interval {
                        months: 0,
                        days: 0,
                        micros: bound,
                    })),
                ));
            }
            write_duration(out, micros as i64);
            return Ok(Cell::Text);
        }
        Value::Uuid(u) => {
            write_uuid(out, u);
            return Ok(Cell::Text);
        }
        Value::Inet { addr, prefix } => {
            let full = if addr.is_ipv4() { 32 } else { 128 };
            let _ = write!(Vec8(out), "{addr}");
            if enc.cidr || *prefix != full {
                let _ = write!(Vec8(out), "/{prefix}");
            }
            return Ok(Cell::Text);
        }
        Value::MacAddr(m) => {
            let _ = write!(
                Vec8(out),
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5]
            );
            return Ok(Cell::Text);
        }
        Value::Array(a) if enc.set => {
            for (i, v) in a.values.iter().enumerate() {
                match v {
                    Value::Text(t) | Value::Enum(t) if !t.as_str().contains(',') => {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(t.as_bytes());
                    }
                    other => {
                        return Err(Bad::other(format!(
                            "{other:?} cannot be a member of a SET (members are text without commas)"
                        )));
                    }
                }
            }
            return Ok(Cell::Text);
        }
        Value::Array(a) => {
            let json = array_json(a)?;
            out.extend_from_slice(json.as_bytes());
            return Ok(Cell::Text);
        }
    }
    Ok(Cell::Bare)
}

/// `std::fmt::Write` over a byte vector.
struct Vec8<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Vec8<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn show_days(days: i64) -> String {
    if days <= i64::from(i32::MIN) {
        return "-infinity".into();
    }
    if days >= i64::from(i32::MAX) {
        return "infinity".into();
    }
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn write_date(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil_from_days(days);
    let _ = write!(Vec8(out), "{y:04}-{m:02}-{d:02}");
}

/// `[-]H:MM:SS.ffffff` (hours unbounded).
fn write_duration(out: &mut Vec<u8>, micros: i64) {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let secs = m / 1_000_000;
    let _ = write!(
        Vec8(out),
        "{sign}{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        m % 1_000_000
    );
}

fn write_uuid(out: &mut Vec<u8>, u: &[u8; 16]) {
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        let _ = write!(Vec8(out), "{b:02x}");
    }
}

fn decimal_name(limits: Option<(u32, u32)>) -> String {
    match limits {
        Some((p, s)) => format!("DECIMAL({p},{s})"),
        None => "DECIMAL".into(),
    }
}

/// The largest `DECIMAL(p,s)` value as text.
fn max_decimal(p: u32, s: u32) -> String {
    let int = p.saturating_sub(s) as usize;
    let mut m = if int == 0 {
        "0".to_string()
    } else {
        "9".repeat(int)
    };
    if s > 0 {
        m.push('.');
        m.push_str(&"9".repeat(s as usize));
    }
    m
}

/// A finite decimal must fit `DECIMAL(p,s)` without rounding: MySQL would round
/// extra decimal places silently (only a note, even in strict mode).
fn check_decimal(text: &str, p: u32, s: u32) -> Result<(), Bad> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let int_digits = int.trim_start_matches('0').len();
    let frac_significant = frac.trim_end_matches('0').len();
    let neg = text.starts_with('-');
    if int_digits > p.saturating_sub(s) as usize {
        let m = max_decimal(p, s);
        return Err(Bad::new(
            ValueProblem::OutOfRange {
                value: text.into(),
                target_type: decimal_name(Some((p, s))),
            },
            Some(Value::Decimal(Decimal::Finite(
                if neg { format!("-{m}") } else { m }.into(),
            ))),
        ));
    }
    if frac_significant > s as usize {
        // Clamp: let the server round to the column's scale.
        return Err(Bad::new(
            ValueProblem::OutOfRange {
                value: text.into(),
                target_type: format!("{} (would be rounded)", decimal_name(Some((p, s)))),
            },
            Some(Value::Decimal(Decimal::Finite(text.into()))),
        ));
    }
    Ok(())
}

/// An array as a JSON array (nested for several dimensions).
fn array_json(a: &Array) -> Result<String, Bad> {
    let mut elements = Vec::with_capacity(a.values.len());
    for v in &a.values {
        elements.push(json_element(v)?);
    }
    if a.dims.len() <= 1 {
        return Ok(serde_json::Value::Array(elements).to_string());
    }
    fn nest(values: &mut std::vec::IntoIter<serde_json::Value>, dims: &[i32]) -> serde_json::Value {
        match dims.split_first() {
            None => values.next().unwrap_or(serde_json::Value::Null),
            Some((len, rest)) => {
                serde_json::Value::Array((0..(*len).max(0)).map(|_| nest(values, rest)).collect())
            }
        }
    }
    let dims: Vec<i32> = a.dims.iter().map(|d| d.len).collect();
    Ok(nest(&mut elements.into_iter(), &dims).to_string())
}

fn json_element(v: &Value) -> Result<serde_json::Value, Bad> {
    use serde_json::Value as J;
    Ok(match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int16(n) => J::from(*n),
        Value::Int32(n) => J::from(*n),
        Value::Int64(n) => J::from(*n),
        Value::UInt64(n) => J::from(*n),
        Value::Float32(f) if f.is_finite() => J::from(f64::from(*f)),
        Value::Float64(f) if f.is_finite() => J::from(*f),
        Value::Float32(_) | Value::Float64(_) => {
            return Err(Bad::other(
                "NaN or infinity in an array cannot be stored as JSON",
            ));
        }
        Value::Decimal(Decimal::Finite(t)) => match serde_json::from_str::<J>(t) {
            Ok(n @ J::Number(_)) => n,
            _ => J::String(t.to_string()),
        },
        Value::Text(t) | Value::Enum(t) => J::String(t.as_str().to_string()),
        Value::Json(t) => {
            serde_json::from_str(t.as_str()).unwrap_or_else(|_| J::String(t.as_str().to_string()))
        }
        Value::Array(inner) => serde_json::from_str(&array_json(inner)?).unwrap_or(J::Null),
        other => {
            let mut buf = Vec::new();
            render(other, &Encode::default(), &mut buf)?;
            J::String(String::from_utf8_lossy(&buf).into_owned())
        }
    })
}

// ---------------------------------------------------------------------------------
// Escaping

/// Appends `bytes` as a `LOAD DATA` field (`FIELDS TERMINATED BY '\t' ESCAPED BY '\\'
/// LINES TERMINATED BY '\n'`).
pub(crate) fn escape_infile(bytes: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0 => b"\\0",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `bytes` as a quoted SQL string literal (backslash escapes on). Binary data
/// is written as `_binary'...'` by the caller where needed.
pub(crate) fn escape_literal(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'\'');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\'' => b"''",
            0 => b"\\0",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0x1a => b"\\Z",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rendered(v: &Value, enc: &Encode) -> Result<String, Bad> {
        let mut out = Vec::new();
        render(v, enc, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn calendar_round_trip_and_epochs() {
        assert_eq!(days_from_civil(2000, 1, 1), 0);
        assert_eq!(days_from_civil(1970, 1, 1), -10_957);
        assert_eq!(days_from_civil(1, 1, 1), -730_119);
        assert_eq!(days_from_civil(9999, 12, 31), 2_921_939);
        for d in [-730_119, -1, 0, 59, 60, 2_921_939] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn zero_and_invalid_dates_are_problems() {
        let bad = decode(&Decode::Date, My::Date(0, 0, 0, 0, 0, 0, 0)).expect_err("zero");
        assert!(matches!(bad.problem, ValueProblem::ZeroDate { .. }));
        assert_eq!(bad.clamped, None);
        let bad = decode(&Decode::Date, My::Date(2024, 0, 10, 0, 0, 0, 0)).expect_err("month 0");
        assert!(
            matches!(bad.problem, ValueProblem::InvalidDate { ref value } if value == "2024-00-10")
        );
        assert_eq!(
            bad.clamped,
            Some(Value::Date(days_from_civil(2024, 1, 10) as i32))
        );
        let bad =
            decode(&Decode::Timestamp, My::Date(2024, 2, 30, 1, 2, 3, 4)).expect_err("Feb 30");
        assert_eq!(
            bad.clamped,
            Some(Value::Timestamp(
                days_from_civil(2024, 2, 29) * DAY_MICROS + 3_723_000_004
            ))
        );
    }

    #[test]
    fn invalid_utf8_names_the_problem_and_repairs_on_clamp() {
        let bad =
            decode(&Decode::Text { pad: None }, My::Bytes(vec![b'a', 0xff])).expect_err("invalid");
        assert_eq!(bad.problem, ValueProblem::InvalidUtf8);
        assert_eq!(bad.clamped, Some(Value::Text(Text::from("a\u{fffd}"))));
    }

    #[test]
    fn char_is_padded_back() {
        let v = decode(
            &Decode::Text { pad: Some(4) },
            My::Bytes(b"\xc3\xa9".to_vec()),
        )
        .expect("ok");
        assert_eq!(v, Value::Text(Text::from("é   ")));
        let blank = decode(&Decode::Text { pad: Some(84) }, My::Bytes(Vec::new())).expect("ok");
        assert_eq!(blank, Value::Text(Text::from(" ".repeat(84))));
        let long = decode(&Decode::Text { pad: Some(300) }, My::Bytes(b"ab".to_vec())).expect("ok");
        assert_eq!(
            long,
            Value::Text(Text::from(format!("ab{}", " ".repeat(298))))
        );
        let full = decode(&Decode::Text { pad: Some(2) }, My::Bytes(b"abc".to_vec())).expect("ok");
        assert_eq!(full, Value::Text(Text::from("abc")));
    }

    #[test]
    fn time_is_a_signed_duration() {
        let v = decode(&Decode::Interval, My::Time(true, 34, 22, 59, 59, 0)).expect("ok");
        assert_eq!(
            v,
            Value::Interval(Interval {
                months: 0,
                days: 0,
                micros: -MAX_TIME_MICROS
            })
        );
        let enc = Encode::default();
        assert_eq!(
            rendered(&v, &enc).ok().as_deref(),
            Some("-838:59:59.000000")
        );
        let month = Value::Interval(Interval {
            months: 1,
            days: 0,
            micros: 0,
        });
        assert!(rendered(&month, &enc).is_err());
    }

    #[test]
    fn sets_become_arrays() {
        let v = decode(&Decode::Set, My::Bytes(b"a,c".to_vec())).expect("ok");
        assert_eq!(
            v,
            Value::Array(Box::new(Array::one_dimensional(vec![
                Value::Text(Text::from("a")),
                Value::Text(Text::from("c"))
            ])))
        );
        let empty = decode(&Decode::Set, My::Bytes(Vec::new())).expect("ok");
        assert_eq!(
            empty,
            Value::Array(Box::new(Array::one_dimensional(vec![])))
        );
        assert_eq!(
            rendered(&v, &Encode::default()).ok().as_deref(),
            Some("[\"a\",\"c\"]")
        );
    }

    #[test]
    fn specials_that_mysql_cannot_hold() {
        let enc = Encode::default();
        assert!(rendered(&Value::Float64(f64::NAN), &enc).is_err());
        let inf = rendered(&Value::Float64(f64::INFINITY), &enc).expect_err("inf");
        assert_eq!(inf.clamped, Some(Value::Float64(f64::MAX)));
        assert!(rendered(&Value::Decimal(Decimal::NaN), &enc).is_err());
        let d = Encode {
            decimal: Some((5, 2)),
            ..Encode::default()
        };
        let over =
            rendered(&Value::Decimal(Decimal::Finite("1000.00".into())), &d).expect_err("over");
        assert_eq!(
            over.clamped,
            Some(Value::Decimal(Decimal::Finite("999.99".into())))
        );
        assert!(rendered(&Value::Decimal(Decimal::Finite("1.005".into())), &d).is_err());
        assert!(rendered(&Value::Decimal(Decimal::Finite("-1.500".into())), &d).is_ok());
        let ts = rendered(&Value::Timestamp(i64::MAX), &enc).expect_err("infinity");
        assert!(
            matches!(ts.problem, ValueProblem::OutOfRange { ref value, .. } if value == "infinity")
        );
    }

    #[test]
    fn text_limits_and_enums() {
        let enc = Encode {
            max_chars: Some(3),
            ..Encode::default()
        };
        let bad = rendered(&Value::Text(Text::from("héllo")), &enc).expect_err("long");
        assert_eq!(bad.clamped, Some(Value::Text(Text::from("hél"))));
        let enc = Encode {
            labels: Some(vec!["a".into()]),
            ..Encode::default()
        };
        assert!(rendered(&Value::Enum(Text::from("b")), &enc).is_err());
        assert!(rendered(&Value::Enum(Text::from("a")), &enc).is_ok());
    }

    #[test]
    fn escaping() {
        let mut out = Vec::new();
        escape_infile(b"a\tb\\c\nd\0\r", &mut out);
        assert_eq!(out, b"a\\tb\\\\c\\nd\\0\\r");
        let mut out = Vec::new();
        escape_literal(b"it's \\ \0", &mut out);
        assert_eq!(out, b"'it''s \\\\ \\0'");
    }

    #[test]
    fn uuid_text() {
        let u = [
            0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
            0x40, 0x00,
        ];
        let text = rendered(&Value::Uuid(u), &Encode::default()).expect("uuid");
        assert_eq!(text, "123e4567-e89b-12d3-a456-426614174000");
        assert_eq!(parse_uuid(&text), Some(u));
    }

    proptest! {
        #[test]
        fn dates_round_trip(days in min_date()..=max_date()) {
            let mut out = Vec::new();
            render(&Value::Date(days as i32), &Encode::default(), &mut out).expect("in range");
            let text = String::from_utf8(out).expect("ascii");
            let (y, rest) = text.split_at(4);
            let y: u16 = y.parse().expect("year");
            let m: u8 = rest[1..3].parse().expect("month");
            let d: u8 = rest[4..6].parse().expect("day");
            prop_assert_eq!(decode(&Decode::Date, My::Date(y, m, d, 0, 0, 0, 0)).ok(), Some(Value::Date(days as i32)));
        }

        #[test]
        fn timestamps_round_trip(t in (min_date() * DAY_MICROS)..((max_date() + 1) * DAY_MICROS)) {
            let mut out = Vec::new();
            render(&Value::Timestamp(t), &Encode::default(), &mut out).expect("in range");
            let text = String::from_utf8(out).expect("ascii");
            let n = |a: usize, b: usize| -> u32 { text[a..b].parse().expect("digits") };
            let v = My::Date(n(0, 4) as u16, n(5, 7) as u8, n(8, 10) as u8, n(11, 13) as u8, n(14, 16) as u8, n(17, 19) as u8, n(20, 26));
            prop_assert_eq!(decode(&Decode::Timestamp, v).ok(), Some(Value::Timestamp(t)));
        }

        #[test]
        fn durations_round_trip(micros in -MAX_TIME_MICROS..=MAX_TIME_MICROS) {
            let mut out = Vec::new();
            let v = Value::Interval(Interval { months: 0, days: 0, micros });
            render(&v, &Encode::default(), &mut out).expect("in range");
            let text = String::from_utf8(out).expect("ascii");
            let neg = text.starts_with('-');
            let body = text.trim_start_matches('-');
            let parts: Vec<&str> = body.split([':', '.']).collect();
            let h: u32 = parts[0].parse().expect("h");
            let wire = My::Time(neg, h / 24, (h % 24) as u8, parts[1].parse().expect("m"), parts[2].parse().expect("s"), parts[3].parse().expect("us"));
            let back = decode(&Decode::Interval, wire).expect("decodes");
            let want = if micros == 0 { Value::Interval(Interval::default()) } else { v };
            prop_assert_eq!(back, want);
        }

        #[test]
        fn floats_print_exactly(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            prop_assume!(f.is_finite());
            let mut out = Vec::new();
            render(&Value::Float64(f), &Encode::default(), &mut out).expect("finite");
            let back: f64 = String::from_utf8(out).expect("ascii").parse().expect("float");
            prop_assert_eq!(back.to_bits(), f.to_bits());
        }

        #[test]
        fn float32_prints_exactly(bits in any::<u32>()) {
            let f = f32::from_bits(bits);
            prop_assume!(f.is_finite());
            let mut out = Vec::new();
            render(&Value::Float32(f), &Encode::default(), &mut out).expect("finite");
            let back: f64 = String::from_utf8(out).expect("ascii").parse().expect("float");
            prop_assert_eq!((back as f32).to_bits(), f.to_bits());
        }

        #[test]
        fn infile_escaping_is_reversible(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            escape_infile(&bytes, &mut out);
            prop_assert!(!out.contains(&b'\t') && !out.contains(&b'\n'));
            let mut back = Vec::new();
            let mut it = out.iter();
            while let Some(&b) = it.next() {
                if b == b'\\' {
                    match it.next() {
                        Some(b't') => back.push(b'\t'),
                        Some(b'n') => back.push(b'\n'),
                        Some(b'r') => back.push(b'\r'),
                        Some(b'0') => back.push(0),
                        Some(&c) => back.push(c),
                        None => {}
                    }
                } else {
                    back.push(b);
                }
            }
            prop_assert_eq!(back, bytes);
        }
    }
}
