//! One cell of data: [`Value`], and the exact representations it is built from.

use bytes::Bytes;
use std::fmt;
use std::net::IpAddr;

/// One cell. The variant follows the column's [`crate::DataType`].
///
/// Dates and timestamps count from **2000-01-01** (PostgreSQL's epoch, which keeps
/// the whole PostgreSQL range inside `i64`); `i32::MIN`/`i32::MAX` and
/// `i64::MIN`/`i64::MAX` stand for -infinity/+infinity.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// The source did not send this value because it did not change (PostgreSQL
    /// unchanged TOAST in an update). A sink must keep the target's value.
    Unchanged,
    /// Boolean.
    Bool(bool),
    /// 16-bit integer.
    Int16(i16),
    /// 32-bit integer.
    Int32(i32),
    /// 64-bit integer.
    Int64(i64),
    /// Unsigned 64-bit integer.
    UInt64(u64),
    /// Single-precision float (NaN and infinities included).
    Float32(f32),
    /// Double-precision float (NaN and infinities included).
    Float64(f64),
    /// Exact decimal.
    Decimal(Decimal),
    /// UTF-8 text (also `char(n)` with its padding, and enum labels via [`Value::Enum`]).
    Text(Text),
    /// Raw bytes.
    Bytes(Bytes),
    /// Days since 2000-01-01; `i32::MIN`/`i32::MAX` are -infinity/+infinity.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since midnight and the UTC offset in seconds, east positive.
    TimeTz {
        /// Microseconds since midnight, local time.
        micros: i64,
        /// Offset from UTC in seconds, east of Greenwich positive.
        offset_secs: i32,
    },
    /// Microseconds since 2000-01-01 00:00:00 (no zone); `i64::MIN`/`MAX` are ∓infinity.
    Timestamp(i64),
    /// Microseconds since 2000-01-01 00:00:00 UTC; `i64::MIN`/`MAX` are ∓infinity.
    TimestampTz(i64),
    /// Calendar interval.
    Interval(Interval),
    /// UUID bytes.
    Uuid([u8; 16]),
    /// JSON document text.
    Json(Text),
    /// Network address (inet or cidr) with its prefix length.
    Inet {
        /// The address.
        addr: IpAddr,
        /// Netmask length in bits.
        prefix: u8,
    },
    /// MAC address.
    MacAddr([u8; 6]),
    /// Enum label.
    Enum(Text),
    /// Array of values.
    Array(Box<Array>),
    /// A value of an unmapped type ([`crate::DataType::Other`]) in its engine's own
    /// binary representation.
    Other(Bytes),
}

/// -infinity for [`Value::Date`].
pub const DATE_NEG_INFINITY: i32 = i32::MIN;
/// +infinity for [`Value::Date`].
pub const DATE_POS_INFINITY: i32 = i32::MAX;
/// -infinity for [`Value::Timestamp`] and [`Value::TimestampTz`].
pub const TS_NEG_INFINITY: i64 = i64::MIN;
/// +infinity for [`Value::Timestamp`] and [`Value::TimestampTz`].
pub const TS_POS_INFINITY: i64 = i64::MAX;

impl Value {
    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Approximate heap plus inline size in bytes, for memory accounting.
    pub fn approx_size(&self) -> usize {
        let inline = std::mem::size_of::<Value>();
        inline
            + match self {
                Value::Text(t) | Value::Json(t) | Value::Enum(t) => t.len(),
                Value::Bytes(b) | Value::Other(b) => b.len(),
                Value::Decimal(Decimal::Finite(s)) => s.len(),
                Value::Array(a) => a.values.iter().map(Value::approx_size).sum(),
                _ => 0,
            }
    }
}

/// UTF-8 text that borrows the receive buffer ([`Bytes`]) instead of copying.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(Bytes);

impl Text {
    /// Wraps bytes after checking they are valid UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Text(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: the only constructors check or copy valid UTF-8.
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(&self.0)
        }
    }

    /// The UTF-8 bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Text {
    /// Text of a static string, without copying it.
    pub fn from_static(s: &'static str) -> Self {
        Text(Bytes::from_static(s.as_bytes()))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Bytes::from(s.into_bytes()))
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exact decimal number, or one of the special values some engines allow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Decimal {
    /// A finite number in canonical text form: optional `-`, digits, optional `.`
    /// and digits (trailing zeros kept: they carry the display scale).
    Finite(Box<str>),
    /// Not a number.
    NaN,
    /// +infinity.
    PosInfinity,
    /// -infinity.
    NegInfinity,
}

impl Decimal {
    /// Parses canonical decimal text (`-12.50`, `NaN`, `Infinity`, `-Infinity`).
    pub fn parse(text: &str) -> Option<Decimal> {
        if let Some(special) = Decimal::special(text) {
            return Some(special);
        }
        Decimal::is_canonical_finite(text).then(|| Decimal::Finite(text.into()))
    }

    /// Like [`Decimal::parse`], keeping `text`'s allocation instead of copying it;
    /// gives `text` back when it is not a decimal.
    pub fn parse_string(text: String) -> Result<Decimal, String> {
        if let Some(special) = Decimal::special(&text) {
            return Ok(special);
        }
        if Decimal::is_canonical_finite(&text) {
            Ok(Decimal::Finite(text.into_boxed_str()))
        } else {
            Err(text)
        }
    }

    fn special(text: &str) -> Option<Decimal> {
        match text {
            "NaN" => Some(Decimal::NaN),
            "Infinity" => Some(Decimal::PosInfinity),
            "-Infinity" => Some(Decimal::NegInfinity),
            _ => None,
        }
    }

    fn is_canonical_finite(text: &str) -> bool {
        let unsigned = text.strip_prefix('-').unwrap_or(text);
        let (int, frac) = match unsigned.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (unsigned, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        digits(int) && frac.is_none_or(digits)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decimal::Finite(s) => f.write_str(s),
            Decimal::NaN => f.write_str("NaN"),
            Decimal::PosInfinity => f.write_str("Infinity"),
            Decimal::NegInfinity => f.write_str("-Infinity"),
        }
    }
}

/// A calendar interval: months, days and microseconds kept apart, as SQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    /// Whole months.
    pub months: i32,
    /// Whole days.
    pub days: i32,
    /// Microseconds.
    pub micros: i64,
}

/// One dimension of an [`Array`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArrayDim {
    /// Number of elements along this dimension.
    pub len: i32,
    /// Index of the first element (1 in SQL unless stated otherwise).
    pub lower_bound: i32,
}

/// An array value: its dimensions and its elements in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions, outermost first; empty for an empty array.
    pub dims: Vec<ArrayDim>,
    /// The elements, row-major.
    pub values: Vec<Value>,
}

impl Array {
    /// A one-dimensional array starting at index 1.
    pub fn one_dimensional(values: Vec<Value>) -> Self {
        let dims = if values.is_empty() {
            Vec::new()
        } else {
            vec![ArrayDim {
                len: i32::try_from(values.len()).unwrap_or(i32::MAX),
                lower_bound: 1,
            }]
        };
        Array { dims, values }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_parse_accepts_canonical_forms() {
        assert_eq!(Decimal::parse("NaN"), Some(Decimal::NaN));
        assert_eq!(
            Decimal::parse("-1.50").map(|d| d.to_string()),
            Some("-1.50".into())
        );
        assert_eq!(
            Decimal::parse("12").map(|d| d.to_string()),
            Some("12".into())
        );
        assert_eq!(Decimal::parse("1e5"), None);
        assert_eq!(Decimal::parse("."), None);
        assert_eq!(Decimal::parse("-"), None);
        assert_eq!(
            Decimal::parse_string("-0.250".into()).ok(),
            Decimal::parse("-0.250")
        );
        assert_eq!(Decimal::parse_string("NaN".into()), Ok(Decimal::NaN));
        assert_eq!(Decimal::parse_string("1.".into()), Err("1.".into()));
    }

    #[test]
    fn text_rejects_invalid_utf8() {
        assert!(Text::from_utf8(Bytes::from_static(b"\xff")).is_err());
        assert_eq!(
            Text::from_utf8(Bytes::from_static(b"ok"))
                .map(|t| t.to_string())
                .ok(),
            Some("ok".into())
        );
    }
}
