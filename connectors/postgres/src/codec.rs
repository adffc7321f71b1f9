//! PostgreSQL's binary format for single values.
//!
//! [`decode`] turns one non-NULL field of a binary `COPY ... TO STDOUT` (or a binary
//! result column) into a [`Value`]; [`encode`] writes a [`Value`] as one field of a
//! binary `COPY ... FROM STDIN`, length prefix included.
//!
//! The wire format follows the column's [`DataType`]. The OIDs in [`PgColumnType`]
//! matter where the format carries one (array headers) and where one logical type has
//! two PostgreSQL forms (`json`/`jsonb`; an unsigned 64-bit column stored as an
//! integer or as `numeric`).
//!
//! Decoding borrows variable-length values (text, bytea, json, enum labels, unmapped
//! types) from the receive buffer. Encoding is exact: a value is accepted when the
//! column can hold it without loss (an `int2` value into an `int8` column, `5` into an
//! `int2` column, text into `json`), and anything that would be rounded, truncated or
//! rejected by the server is a [`CodecError`] naming the type and the value.

use bytes::{BufMut, Bytes, BytesMut};
use ferry_core::value::{DATE_NEG_INFINITY, DATE_POS_INFINITY, TS_NEG_INFINITY, TS_POS_INFINITY};
use ferry_core::{Array, ArrayDim, DataType, Decimal, Interval, Text, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// OIDs of PostgreSQL's built-in types (fixed across databases and versions).
pub mod oid {
    /// `bool`.
    pub const BOOL: u32 = 16;
    /// `bytea`.
    pub const BYTEA: u32 = 17;
    /// `"char"` (one byte).
    pub const CHAR: u32 = 18;
    /// `name`.
    pub const NAME: u32 = 19;
    /// `int8` / `bigint`.
    pub const INT8: u32 = 20;
    /// `int2` / `smallint`.
    pub const INT2: u32 = 21;
    /// `int4` / `integer`.
    pub const INT4: u32 = 23;
    /// `text`.
    pub const TEXT: u32 = 25;
    /// `json`.
    pub const JSON: u32 = 114;
    /// `float4` / `real`.
    pub const FLOAT4: u32 = 700;
    /// `float8` / `double precision`.
    pub const FLOAT8: u32 = 701;
    /// `cidr`.
    pub const CIDR: u32 = 650;
    /// `macaddr`.
    pub const MACADDR: u32 = 829;
    /// `inet`.
    pub const INET: u32 = 869;
    /// `bpchar` / `char(n)`.
    pub const BPCHAR: u32 = 1042;
    /// `varchar`.
    pub const VARCHAR: u32 = 1043;
    /// `date`.
    pub const DATE: u32 = 1082;
    /// `time`.
    pub const TIME: u32 = 1083;
    /// `timestamp`.
    pub const TIMESTAMP: u32 = 1114;
    /// `timestamptz`.
    pub const TIMESTAMPTZ: u32 = 1184;
    /// `interval`.
    pub const INTERVAL: u32 = 1186;
    /// `timetz`.
    pub const TIMETZ: u32 = 1266;
    /// `numeric`.
    pub const NUMERIC: u32 = 1700;
    /// `uuid`.
    pub const UUID: u32 = 2950;
    /// `jsonb`.
    pub const JSONB: u32 = 3802;

    /// `bool[]`.
    pub const BOOL_ARRAY: u32 = 1000;
    /// `bytea[]`.
    pub const BYTEA_ARRAY: u32 = 1001;
    /// `name[]`.
    pub const NAME_ARRAY: u32 = 1003;
    /// `int2[]`.
    pub const INT2_ARRAY: u32 = 1005;
    /// `int4[]`.
    pub const INT4_ARRAY: u32 = 1007;
    /// `text[]`.
    pub const TEXT_ARRAY: u32 = 1009;
    /// `bpchar[]`.
    pub const BPCHAR_ARRAY: u32 = 1014;
    /// `varchar[]`.
    pub const VARCHAR_ARRAY: u32 = 1015;
    /// `int8[]`.
    pub const INT8_ARRAY: u32 = 1016;
    /// `float4[]`.
    pub const FLOAT4_ARRAY: u32 = 1021;
    /// `float8[]`.
    pub const FLOAT8_ARRAY: u32 = 1022;
    /// `macaddr[]`.
    pub const MACADDR_ARRAY: u32 = 1040;
    /// `inet[]`.
    pub const INET_ARRAY: u32 = 1041;
    /// `cidr[]`.
    pub const CIDR_ARRAY: u32 = 651;
    /// `timestamp[]`.
    pub const TIMESTAMP_ARRAY: u32 = 1115;
    /// `date[]`.
    pub const DATE_ARRAY: u32 = 1182;
    /// `time[]`.
    pub const TIME_ARRAY: u32 = 1183;
    /// `timestamptz[]`.
    pub const TIMESTAMPTZ_ARRAY: u32 = 1185;
    /// `interval[]`.
    pub const INTERVAL_ARRAY: u32 = 1187;
    /// `numeric[]`.
    pub const NUMERIC_ARRAY: u32 = 1231;
    /// `timetz[]`.
    pub const TIMETZ_ARRAY: u32 = 1270;
    /// `uuid[]`.
    pub const UUID_ARRAY: u32 = 2951;
    /// `json[]`.
    pub const JSON_ARRAY: u32 = 199;
    /// `jsonb[]`.
    pub const JSONB_ARRAY: u32 = 3807;
}

/// A column as the binary format sees it: its logical type, the PostgreSQL type OID
/// and, for arrays, the element type OID.
///
/// On a target the OIDs are the target database's (a user enum's OID differs between
/// databases, and an array header must name the target's element type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgColumnType {
    /// The column's logical type; it decides the wire format.
    pub data_type: DataType,
    /// The column's type OID.
    pub oid: u32,
    /// For arrays, the element type's OID; otherwise 0.
    pub elem_oid: u32,
}

impl PgColumnType {
    /// A column of `data_type` with the given type and element OIDs.
    pub fn new(data_type: DataType, oid: u32, elem_oid: u32) -> Self {
        PgColumnType {
            data_type,
            oid,
            elem_oid,
        }
    }

    /// A column of `data_type` stored as the built-in PostgreSQL type Ferry maps it to
    /// (`text`, `varchar`, `bpchar`, `numeric` for [`DataType::UInt64`], ...), with its
    /// OIDs; `None` for enums and [`DataType::Other`], whose OIDs depend on the
    /// database.
    pub fn builtin(data_type: DataType) -> Option<Self> {
        let (oid, elem_oid) = builtin_oids(&data_type)?;
        Some(PgColumnType {
            data_type,
            oid,
            elem_oid,
        })
    }
}

/// The (type, element) OIDs of the built-in type `data_type` maps to.
fn builtin_oids(data_type: &DataType) -> Option<(u32, u32)> {
    let scalar = |dt: &DataType| -> Option<(u32, u32)> {
        Some(match dt {
            DataType::Bool => (oid::BOOL, oid::BOOL_ARRAY),
            DataType::Int16 => (oid::INT2, oid::INT2_ARRAY),
            DataType::Int32 => (oid::INT4, oid::INT4_ARRAY),
            DataType::Int64 => (oid::INT8, oid::INT8_ARRAY),
            DataType::UInt64 | DataType::Decimal { .. } => (oid::NUMERIC, oid::NUMERIC_ARRAY),
            DataType::Float32 => (oid::FLOAT4, oid::FLOAT4_ARRAY),
            DataType::Float64 => (oid::FLOAT8, oid::FLOAT8_ARRAY),
            DataType::Text { fixed: true, .. } => (oid::BPCHAR, oid::BPCHAR_ARRAY),
            DataType::Text {
                max_len: Some(_), ..
            } => (oid::VARCHAR, oid::VARCHAR_ARRAY),
            DataType::Text { .. } => (oid::TEXT, oid::TEXT_ARRAY),
            DataType::Bytes => (oid::BYTEA, oid::BYTEA_ARRAY),
            DataType::Date => (oid::DATE, oid::DATE_ARRAY),
            DataType::Time => (oid::TIME, oid::TIME_ARRAY),
            DataType::TimeTz => (oid::TIMETZ, oid::TIMETZ_ARRAY),
            DataType::Timestamp => (oid::TIMESTAMP, oid::TIMESTAMP_ARRAY),
            DataType::TimestampTz => (oid::TIMESTAMPTZ, oid::TIMESTAMPTZ_ARRAY),
            DataType::Interval => (oid::INTERVAL, oid::INTERVAL_ARRAY),
            DataType::Uuid => (oid::UUID, oid::UUID_ARRAY),
            DataType::Json { binary: false } => (oid::JSON, oid::JSON_ARRAY),
            DataType::Json { binary: true } => (oid::JSONB, oid::JSONB_ARRAY),
            DataType::Inet => (oid::INET, oid::INET_ARRAY),
            DataType::Cidr => (oid::CIDR, oid::CIDR_ARRAY),
            DataType::MacAddr => (oid::MACADDR, oid::MACADDR_ARRAY),
            DataType::Enum { .. } | DataType::Other { .. } | DataType::Array(_) => return None,
        })
    };
    match data_type {
        DataType::Array(inner) => {
            let (elem, array) = scalar(innermost(inner))?;
            Some((array, elem))
        }
        dt => scalar(dt).map(|(oid, _)| (oid, 0)),
    }
}

/// An error encoding or decoding the binary format. Messages name the type and the
/// value; the caller adds table, column and row.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Bytes from the server are not a valid binary value of the column's type.
    #[error("invalid binary {ty} value: {detail}")]
    Malformed {
        /// The column's type.
        ty: String,
        /// What is wrong.
        detail: String,
    },
    /// A text-like value is not valid UTF-8.
    #[error("invalid UTF-8 in a {ty} value: {error}")]
    InvalidUtf8 {
        /// The column's type.
        ty: String,
        /// Where the bytes stop being UTF-8.
        error: std::str::Utf8Error,
    },
    /// A value of a kind the column's type cannot take at all.
    #[error("cannot write a {value} value into a {ty} column")]
    TypeMismatch {
        /// The column's type.
        ty: String,
        /// The kind of value (`text`, `int64`, ...).
        value: &'static str,
    },
    /// A value the column's type cannot hold exactly.
    #[error("cannot write {value} into a {ty} column: {reason}")]
    Unrepresentable {
        /// The column's type.
        ty: String,
        /// The value (shortened if long).
        value: String,
        /// Why.
        reason: String,
    },
    /// [`Value::Unchanged`] (an unsent TOAST value) cannot be written as data.
    #[error("cannot write an unchanged (unsent TOAST) value as column data")]
    Unchanged,
    /// A row or tuple with the wrong number of fields.
    #[error("{got} fields where the table has {expected} columns")]
    FieldCount {
        /// Fields present.
        got: usize,
        /// Columns expected.
        expected: usize,
    },
    /// The binary `COPY` stream itself is malformed (header, framing, trailer).
    #[error("invalid binary COPY stream: {0}")]
    Stream(String),
    /// An error in one column of a row (0-based column index).
    #[error("column {column}: {error}")]
    Column {
        /// 0-based index of the column.
        column: usize,
        /// The error.
        error: Box<CodecError>,
    },
}

impl CodecError {
    /// Wraps this error with the 0-based index of the column it happened in.
    #[cold]
    pub fn at_column(self, column: usize) -> CodecError {
        CodecError::Column {
            column,
            error: Box::new(self),
        }
    }
}

#[cold]
fn malformed(dt: &DataType, detail: impl Into<String>) -> CodecError {
    CodecError::Malformed {
        ty: dt.to_string(),
        detail: detail.into(),
    }
}

#[cold]
fn mismatch(dt: &DataType, value: &Value) -> CodecError {
    CodecError::TypeMismatch {
        ty: dt.to_string(),
        value: kind(value),
    }
}

#[cold]
fn unrepresentable(dt: &DataType, value: &Value, reason: impl Into<String>) -> CodecError {
    CodecError::Unrepresentable {
        ty: dt.to_string(),
        value: describe(value),
        reason: reason.into(),
    }
}

/// The kind of a value, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Unchanged => "unchanged",
        Value::Bool(_) => "bool",
        Value::Int16(_) => "int16",
        Value::Int32(_) => "int32",
        Value::Int64(_) => "int64",
        Value::UInt64(_) => "uint64",
        Value::Float32(_) => "float32",
        Value::Float64(_) => "float64",
        Value::Decimal(_) => "decimal",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::TimeTz { .. } => "timetz",
        Value::Timestamp(_) => "timestamp",
        Value::TimestampTz(_) => "timestamptz",
        Value::Interval(_) => "interval",
        Value::Uuid(_) => "uuid",
        Value::Json(_) => "json",
        Value::Inet { .. } => "inet",
        Value::MacAddr(_) => "macaddr",
        Value::Enum(_) => "enum",
        Value::Array(_) => "array",
        Value::Other(_) => "other",
    }
}

/// A value for a message, shortened to about 100 characters.
fn describe(value: &Value) -> String {
    const MAX: usize = 100;
    let mut text = match value {
        Value::Decimal(d) => format!("decimal {d}"),
        Value::Text(t) | Value::Json(t) | Value::Enum(t) => format!("{} {t:?}", kind(value)),
        other => format!("{other:?}"),
    };
    if let Some((cut, _)) = text.char_indices().nth(MAX) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The element type of an array type: PostgreSQL arrays are multi-dimensional
/// arrays of one scalar type, so nested array types mean their innermost element.
fn innermost(mut dt: &DataType) -> &DataType {
    while let DataType::Array(inner) = dt {
        dt = inner;
    }
    dt
}

// ---------------------------------------------------------------------------------
// Constants of the server's formats and ranges.

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
/// Largest display scale PostgreSQL stores (`NUMERIC_DSCALE_MASK`).
const NUMERIC_MAX_DSCALE: usize = 0x3FFF;

const USECS_PER_DAY: i64 = 86_400_000_000;
/// 4714-11-24 BC, the first day PostgreSQL accepts (days since 2000-01-01).
const MIN_DATE: i32 = -2_451_545;
/// 5874898-01-01 AD, the first day past PostgreSQL's range.
const END_DATE: i32 = 2_145_031_949;
/// 4714-11-24 00:00 BC in microseconds since 2000-01-01.
const MIN_TIMESTAMP: i64 = -211_813_488_000_000_000;
/// 294277-01-01 00:00 AD, the first instant past PostgreSQL's range.
const END_TIMESTAMP: i64 = 9_223_371_331_200_000_000;
/// Time zone displacements must be strictly within ±16 hours.
const TZDISP_LIMIT: i32 = 57_600;
/// PostgreSQL's `MAXDIM`.
const MAX_ARRAY_DIMS: usize = 6;

const PGSQL_AF_INET: u8 = 2;
const PGSQL_AF_INET6: u8 = 3;

// ---------------------------------------------------------------------------------
// Decoding.

/// Decodes one non-NULL field of column type `ty` from its binary representation.
///
/// Text, bytea, json, enum labels and unmapped types borrow `raw` (no copy).
pub fn decode(ty: &PgColumnType, raw: Bytes) -> Result<Value, CodecError> {
    let end = raw.len();
    decode_in(&ty.data_type, ty.oid, &raw, 0, end)
}

/// Decodes the field `buf[start..end]` of column type `ty`; variable-length values
/// slice `buf`. The caller guarantees `start <= end <= buf.len()`.
pub(crate) fn decode_field(
    ty: &PgColumnType,
    buf: &Bytes,
    start: usize,
    end: usize,
) -> Result<Value, CodecError> {
    decode_in(&ty.data_type, ty.oid, buf, start, end)
}

#[inline]
fn fixed<const N: usize>(dt: &DataType, b: &[u8]) -> Result<[u8; N], CodecError> {
    <[u8; N]>::try_from(b)
        .map_err(|_| malformed(dt, format!("expected {N} bytes, got {}", b.len())))
}

#[inline]
fn text_of(dt: &DataType, buf: &Bytes, start: usize, end: usize) -> Result<Text, CodecError> {
    Text::from_utf8(buf.slice(start..end)).map_err(|error| CodecError::InvalidUtf8 {
        ty: dt.to_string(),
        error,
    })
}

fn decode_in(
    dt: &DataType,
    oid: u32,
    buf: &Bytes,
    start: usize,
    end: usize,
) -> Result<Value, CodecError> {
    let b = buf
        .get(start..end)
        .ok_or_else(|| malformed(dt, "field extends past the buffer"))?;
    Ok(match dt {
        DataType::Bool => Value::Bool(fixed::<1>(dt, b)?[0] != 0),
        DataType::Int16 => Value::Int16(i16::from_be_bytes(fixed(dt, b)?)),
        DataType::Int32 => Value::Int32(i32::from_be_bytes(fixed(dt, b)?)),
        DataType::Int64 => Value::Int64(i64::from_be_bytes(fixed(dt, b)?)),
        DataType::UInt64 => Value::UInt64(decode_u64(dt, oid, b)?),
        DataType::Float32 => Value::Float32(f32::from_be_bytes(fixed(dt, b)?)),
        DataType::Float64 => Value::Float64(f64::from_be_bytes(fixed(dt, b)?)),
        DataType::Decimal { .. } => Value::Decimal(decode_numeric(dt, b)?),
        DataType::Text { .. } => Value::Text(text_of(dt, buf, start, end)?),
        DataType::Bytes => Value::Bytes(buf.slice(start..end)),
        DataType::Date => Value::Date(i32::from_be_bytes(fixed(dt, b)?)),
        DataType::Time => Value::Time(i64::from_be_bytes(fixed(dt, b)?)),
        DataType::TimeTz => {
            let b: [u8; 12] = fixed(dt, b)?;
            let (micros, zone) = b.split_at(8);
            let micros = i64::from_be_bytes(micros.try_into().unwrap_or_default());
            let zone = i32::from_be_bytes(zone.try_into().unwrap_or_default());
            let offset_secs = zone
                .checked_neg()
                .ok_or_else(|| malformed(dt, format!("zone displacement {zone}")))?;
            Value::TimeTz {
                micros,
                offset_secs,
            }
        }
        DataType::Timestamp => Value::Timestamp(i64::from_be_bytes(fixed(dt, b)?)),
        DataType::TimestampTz => Value::TimestampTz(i64::from_be_bytes(fixed(dt, b)?)),
        DataType::Interval => {
            let b: [u8; 16] = fixed(dt, b)?;
            let mut micros = [0u8; 8];
            let mut days = [0u8; 4];
            let mut months = [0u8; 4];
            micros.copy_from_slice(&b[0..8]);
            days.copy_from_slice(&b[8..12]);
            months.copy_from_slice(&b[12..16]);
            Value::Interval(Interval {
                months: i32::from_be_bytes(months),
                days: i32::from_be_bytes(days),
                micros: i64::from_be_bytes(micros),
            })
        }
        DataType::Uuid => Value::Uuid(fixed(dt, b)?),
        DataType::Json { binary } => {
            if is_jsonb(oid, *binary) {
                match b.first() {
                    Some(1) => Value::Json(text_of(dt, buf, start + 1, end)?),
                    Some(v) => return Err(malformed(dt, format!("unsupported jsonb version {v}"))),
                    None => return Err(malformed(dt, "empty jsonb value")),
                }
            } else {
                Value::Json(text_of(dt, buf, start, end)?)
            }
        }
        DataType::Inet | DataType::Cidr => decode_inet(dt, b)?,
        DataType::MacAddr => Value::MacAddr(fixed(dt, b)?),
        DataType::Enum { .. } => Value::Enum(text_of(dt, buf, start, end)?),
        DataType::Array(inner) => decode_array(dt, innermost(inner), buf, start, end)?,
        DataType::Other { .. } => Value::Other(buf.slice(start..end)),
    })
}

/// Whether a json column of this OID / flag uses the jsonb format.
fn is_jsonb(oid: u32, binary: bool) -> bool {
    match oid {
        oid::JSONB => true,
        oid::JSON => false,
        _ => binary,
    }
}

fn decode_u64(dt: &DataType, oid: u32, b: &[u8]) -> Result<u64, CodecError> {
    let signed: i64 = match oid {
        oid::INT2 => i16::from_be_bytes(fixed(dt, b)?).into(),
        oid::INT4 => i32::from_be_bytes(fixed(dt, b)?).into(),
        oid::INT8 => i64::from_be_bytes(fixed(dt, b)?),
        _ => {
            let decimal = decode_numeric(dt, b)?;
            return match &decimal {
                Decimal::Finite(text) => decimal_to_int(text)
                    .and_then(|v| u64::try_from(v).ok())
                    .ok_or_else(|| {
                        malformed(dt, format!("{text} is not an unsigned 64-bit integer"))
                    }),
                special => Err(malformed(
                    dt,
                    format!("{special} is not an unsigned 64-bit integer"),
                )),
            };
        }
    };
    u64::try_from(signed)
        .map_err(|_| malformed(dt, format!("{signed} is not an unsigned 64-bit integer")))
}

/// Number of decimal digits of a base-10000 digit (1 for 0).
#[inline]
fn dec_digits(d: u16) -> usize {
    match d {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        _ => 4,
    }
}

/// Decodes a binary `numeric` into the text PostgreSQL prints for it (what
/// `numeric_recv` followed by `numeric_out` produce: digits past the display scale are
/// dropped, a zero is never negative).
fn decode_numeric(dt: &DataType, b: &[u8]) -> Result<Decimal, CodecError> {
    let header: [u8; 8] = b
        .get(..8)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| malformed(dt, format!("numeric needs 8 header bytes, got {}", b.len())))?;
    let ndigits = usize::from(u16::from_be_bytes([header[0], header[1]]));
    let weight = i64::from(i16::from_be_bytes([header[2], header[3]]));
    let sign = u16::from_be_bytes([header[4], header[5]]);
    let dscale = u16::from_be_bytes([header[6], header[7]]);
    match sign {
        NUMERIC_POS | NUMERIC_NEG => {}
        NUMERIC_NAN => return Ok(Decimal::NaN),
        NUMERIC_PINF => return Ok(Decimal::PosInfinity),
        NUMERIC_NINF => return Ok(Decimal::NegInfinity),
        other => return Err(malformed(dt, format!("invalid numeric sign 0x{other:04x}"))),
    }
    if usize::from(dscale) > NUMERIC_MAX_DSCALE {
        return Err(malformed(
            dt,
            format!("invalid numeric display scale {dscale}"),
        ));
    }
    let body = &b[8..];
    if body.len() != 2 * ndigits {
        return Err(malformed(
            dt,
            format!(
                "numeric with {ndigits} digits has {} bytes of digits",
                body.len()
            ),
        ));
    }
    let digits = body
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]));
    if let Some(bad) = digits.clone().find(|&d| d >= 10_000) {
        return Err(malformed(dt, format!("invalid numeric digit {bad}")));
    }
    let digit = |i: usize| u16::from_be_bytes([body[2 * i], body[2 * i + 1]]);

    // Drop leading and trailing zero groups (weight follows the first kept group).
    let mut first = 0;
    while first < ndigits && digit(first) == 0 {
        first += 1;
    }
    let mut last = ndigits;
    while last > first && digit(last - 1) == 0 {
        last -= 1;
    }
    let weight = weight - first as i64;
    let count = last - first;
    // Base-10000 digit with exponent `g` (10000^g).
    let group = |g: i64| -> u16 {
        let idx = weight - g;
        if idx >= 0 && (idx as usize) < count {
            digit(first + idx as usize)
        } else {
            0
        }
    };
    let dscale = usize::from(dscale);
    let frac_groups = dscale.div_ceil(4) as i64;
    // Digits of the last fractional group that are shown (1..=4).
    let last_shown = dscale - 4 * (dscale.saturating_sub(1) / 4);

    // Is anything non-zero shown? If not, the value is zero and has no sign.
    let visible = count > 0
        && (weight >= 0
            || (-frac_groups..0).any(|g| {
                let d = group(g);
                if g == -frac_groups {
                    d / 10u16.pow(4 - last_shown as u32) != 0
                } else {
                    d != 0
                }
            }));
    let negative = sign == NUMERIC_NEG && visible;

    let int_len = if count == 0 || weight < 0 {
        1
    } else {
        dec_digits(group(weight)) + 4 * weight as usize
    };
    let len = usize::from(negative) + int_len + if dscale > 0 { 1 + dscale } else { 0 };
    let mut out = String::with_capacity(len);
    if negative {
        out.push('-');
    }
    if count == 0 || weight < 0 {
        out.push('0');
    } else {
        let top = group(weight);
        push_digits(&mut out, top, dec_digits(top));
        for g in (0..weight).rev() {
            push_digits(&mut out, group(g), 4);
        }
    }
    if dscale > 0 {
        out.push('.');
        for g in (-frac_groups..0).rev() {
            let shown = if g == -frac_groups { last_shown } else { 4 };
            push_top_digits(&mut out, group(g), shown);
        }
    }
    debug_assert_eq!(out.len(), len);
    Ok(Decimal::Finite(out.into_boxed_str()))
}

/// Appends the low `n` decimal digits of `d` (zero-padded).
#[inline]
fn push_digits(out: &mut String, d: u16, n: usize) {
    const POW: [u16; 4] = [1000, 100, 10, 1];
    for p in &POW[4 - n..] {
        out.push(char::from(b'0' + ((d / p) % 10) as u8));
    }
}

/// Appends the top `n` of the 4 decimal digits of `d`.
#[inline]
fn push_top_digits(out: &mut String, d: u16, n: usize) {
    const POW: [u16; 4] = [1000, 100, 10, 1];
    for p in &POW[..n] {
        out.push(char::from(b'0' + ((d / p) % 10) as u8));
    }
}

fn decode_inet(dt: &DataType, b: &[u8]) -> Result<Value, CodecError> {
    let [family, bits, _is_cidr, nb, addr @ ..] = b else {
        return Err(malformed(dt, format!("{} bytes", b.len())));
    };
    let addr = match (*family, usize::from(*nb), addr.len()) {
        (PGSQL_AF_INET, 4, 4) if *bits <= 32 => IpAddr::V4(Ipv4Addr::from(
            <[u8; 4]>::try_from(addr).unwrap_or_default(),
        )),
        (PGSQL_AF_INET6, 16, 16) if *bits <= 128 => IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(addr).unwrap_or_default(),
        )),
        _ => {
            return Err(malformed(
                dt,
                format!(
                    "family {family}, {bits} bits, {nb} address bytes, {} bytes present",
                    addr.len()
                ),
            ));
        }
    };
    Ok(Value::Inet {
        addr,
        prefix: *bits,
    })
}

#[inline]
fn be_i32(b: &[u8], pos: usize) -> Option<i32> {
    let bytes = b.get(pos..pos + 4)?;
    Some(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn decode_array(
    dt: &DataType,
    elem_dt: &DataType,
    buf: &Bytes,
    start: usize,
    end: usize,
) -> Result<Value, CodecError> {
    let b = &buf[start..end];
    let short = || malformed(dt, "array shorter than its header says");
    let ndim = be_i32(b, 0).ok_or_else(short)?;
    let _has_null = be_i32(b, 4).ok_or_else(short)?;
    let elem_oid = be_i32(b, 8).ok_or_else(short)? as u32;
    let ndim = usize::try_from(ndim)
        .ok()
        .filter(|&n| n <= MAX_ARRAY_DIMS)
        .ok_or_else(|| malformed(dt, format!("{ndim} dimensions")))?;
    let mut pos = 12;
    let mut dims = Vec::with_capacity(ndim);
    let mut total: usize = 1;
    for _ in 0..ndim {
        let len = be_i32(b, pos).ok_or_else(short)?;
        let lower_bound = be_i32(b, pos + 4).ok_or_else(short)?;
        pos += 8;
        let n = usize::try_from(len)
            .map_err(|_| malformed(dt, format!("dimension of length {len}")))?;
        total = total
            .checked_mul(n)
            .filter(|&t| t <= i32::MAX as usize)
            .ok_or_else(|| malformed(dt, "too many elements"))?;
        dims.push(ArrayDim { len, lower_bound });
    }
    if ndim == 0 || total == 0 {
        // PostgreSQL makes every array without elements the empty array.
        if pos != b.len() {
            return Err(malformed(dt, "trailing bytes after an empty array"));
        }
        return Ok(Value::Array(Box::new(Array {
            dims: Vec::new(),
            values: Vec::new(),
        })));
    }
    // Each element takes at least its 4-byte length.
    let mut values = Vec::with_capacity(total.min((b.len() - pos) / 4));
    for _ in 0..total {
        let len = be_i32(b, pos).ok_or_else(short)?;
        pos += 4;
        if len == -1 {
            values.push(Value::Null);
            continue;
        }
        let n =
            usize::try_from(len).map_err(|_| malformed(dt, format!("element of length {len}")))?;
        if b.len() - pos < n {
            return Err(short());
        }
        values.push(decode_in(
            elem_dt,
            elem_oid,
            buf,
            start + pos,
            start + pos + n,
        )?);
        pos += n;
    }
    if pos != b.len() {
        return Err(malformed(dt, "trailing bytes after the last element"));
    }
    Ok(Value::Array(Box::new(Array { dims, values })))
}

// ---------------------------------------------------------------------------------
// Encoding.

/// Writes `value` as one binary field of column type `ty`: the 4-byte length and the
/// body, or length -1 for NULL. On error `out` is left as it was.
pub fn encode(ty: &PgColumnType, value: &Value, out: &mut BytesMut) -> Result<(), CodecError> {
    let mark = out.len();
    let result = encode_in(&ty.data_type, ty.oid, ty.elem_oid, value, out);
    if result.is_err() {
        out.truncate(mark);
    }
    result
}

/// [`encode`] without restoring `out` on error (the caller does).
#[inline]
pub(crate) fn encode_field(
    ty: &PgColumnType,
    value: &Value,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    encode_in(&ty.data_type, ty.oid, ty.elem_oid, value, out)
}

/// Writes a length-prefixed variable-length body.
#[inline]
fn put_var(
    dt: &DataType,
    value: &Value,
    body: &[u8],
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    let len = i32::try_from(body.len())
        .map_err(|_| unrepresentable(dt, value, "longer than a field can be (2 GiB)"))?;
    out.reserve(4 + body.len());
    out.put_i32(len);
    out.put_slice(body);
    Ok(())
}

/// Text bodies cannot contain NUL: PostgreSQL rejects it in every text type.
#[inline]
fn check_no_nul(dt: &DataType, value: &Value, text: &[u8]) -> Result<(), CodecError> {
    if text.contains(&0) {
        return Err(unrepresentable(
            dt,
            value,
            "PostgreSQL text cannot contain the NUL character (0x00)",
        ));
    }
    Ok(())
}

fn encode_in(
    dt: &DataType,
    oid: u32,
    elem_oid: u32,
    value: &Value,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    match value {
        Value::Null => {
            out.put_i32(-1);
            return Ok(());
        }
        Value::Unchanged => return Err(CodecError::Unchanged),
        _ => {}
    }
    match dt {
        DataType::Bool => match value {
            Value::Bool(v) => {
                out.put_i32(1);
                out.put_u8(u8::from(*v));
            }
            _ => return Err(mismatch(dt, value)),
        },
        DataType::Int16 => {
            let v = i16::try_from(int_of(dt, value)?)
                .map_err(|_| unrepresentable(dt, value, "out of range for int2"))?;
            out.put_i32(2);
            out.put_i16(v);
        }
        DataType::Int32 => {
            let v = i32::try_from(int_of(dt, value)?)
                .map_err(|_| unrepresentable(dt, value, "out of range for int4"))?;
            out.put_i32(4);
            out.put_i32(v);
        }
        DataType::Int64 => {
            let v = i64::try_from(int_of(dt, value)?)
                .map_err(|_| unrepresentable(dt, value, "out of range for int8"))?;
            out.put_i32(8);
            out.put_i64(v);
        }
        DataType::UInt64 => {
            let v = u64::try_from(int_of(dt, value)?).map_err(|_| {
                unrepresentable(dt, value, "out of range for an unsigned 64-bit integer")
            })?;
            let range =
                |_| unrepresentable(dt, value, "out of range for the column's integer type");
            match oid {
                oid::INT2 => {
                    out.put_i32(2);
                    out.put_i16(i16::try_from(v).map_err(range)?);
                }
                oid::INT4 => {
                    out.put_i32(4);
                    out.put_i32(i32::try_from(v).map_err(range)?);
                }
                oid::INT8 => {
                    out.put_i32(8);
                    out.put_i64(i64::try_from(v).map_err(range)?);
                }
                _ => encode_numeric_int(dt, value, None, None, i128::from(v), out)?,
            }
        }
        DataType::Float32 => {
            let v = match *value {
                Value::Float32(v) => v,
                Value::Float64(v) => {
                    let narrow = v as f32;
                    if !(v.is_nan() || f64::from(narrow) == v) {
                        return Err(unrepresentable(
                            dt,
                            value,
                            "not exactly representable as float4",
                        ));
                    }
                    narrow
                }
                Value::Int16(v) => f32::from(v),
                Value::Int32(_) | Value::Int64(_) | Value::UInt64(_) => {
                    let i = int_of(dt, value)?;
                    let f = i as f32;
                    if f as i128 != i || !f.is_finite() {
                        return Err(unrepresentable(
                            dt,
                            value,
                            "not exactly representable as float4",
                        ));
                    }
                    f
                }
                _ => return Err(mismatch(dt, value)),
            };
            out.put_i32(4);
            out.put_u32(v.to_bits());
        }
        DataType::Float64 => {
            let v = match *value {
                Value::Float64(v) => v,
                Value::Float32(v) => f64::from(v),
                Value::Int16(v) => f64::from(v),
                Value::Int32(v) => f64::from(v),
                Value::Int64(_) | Value::UInt64(_) => {
                    let i = int_of(dt, value)?;
                    let f = i as f64;
                    if f as i128 != i || !f.is_finite() {
                        return Err(unrepresentable(
                            dt,
                            value,
                            "not exactly representable as float8",
                        ));
                    }
                    f
                }
                _ => return Err(mismatch(dt, value)),
            };
            out.put_i32(8);
            out.put_u64(v.to_bits());
        }
        DataType::Decimal { precision, scale } => {
            // `numeric(p)` is `numeric(p,0)`.
            let scale = scale.or(precision.map(|_| 0));
            match value {
                Value::Decimal(d) => encode_numeric(dt, value, *precision, scale, d, out)?,
                Value::Int16(_) | Value::Int32(_) | Value::Int64(_) | Value::UInt64(_) => {
                    let v = int_of(dt, value)?;
                    encode_numeric_int(dt, value, *precision, scale, v, out)?;
                }
                _ => return Err(mismatch(dt, value)),
            }
        }
        DataType::Text { max_len, fixed } => match value {
            Value::Text(t) | Value::Json(t) | Value::Enum(t) => {
                check_no_nul(dt, value, t.as_bytes())?;
                let mut body: &[u8] = t.as_bytes();
                if let Some(max) = *max_len {
                    check_text_len(dt, value, t.as_str(), max)?;
                    if *fixed && oid == oid::BPCHAR {
                        // `char(n)` input pads with spaces to n characters itself:
                        // the padding need not cross the wire.
                        while let [rest @ .., b' '] = body {
                            body = rest;
                        }
                    }
                }
                put_var(dt, value, body, out)?;
            }
            _ => return Err(mismatch(dt, value)),
        },
        DataType::Bytes => match value {
            Value::Bytes(b) => put_var(dt, value, b, out)?,
            _ => return Err(mismatch(dt, value)),
        },
        DataType::Date => match *value {
            Value::Date(d) => {
                if !(d == DATE_NEG_INFINITY
                    || d == DATE_POS_INFINITY
                    || (MIN_DATE..END_DATE).contains(&d))
                {
                    return Err(unrepresentable(
                        dt,
                        value,
                        "outside PostgreSQL's date range (4714-11-24 BC to 5874897-12-31 AD)",
                    ));
                }
                out.put_i32(4);
                out.put_i32(d);
            }
            _ => return Err(mismatch(dt, value)),
        },
        DataType::Time => match *value {
            Value::Time(t) => {
                check_time(dt, value, t)?;
                out.put_i32(8);
                out.put_i64(t);
            }
            _ => return Err(mismatch(dt, value)),
        },
        DataType::TimeTz => match *value {
            Value::TimeTz {
                micros,
                offset_secs,
            } => {
                check_time(dt, value, micros)?;
                if offset_secs <= -TZDISP_LIMIT || offset_secs >= TZDISP_LIMIT {
                    return Err(unrepresentable(
                        dt,
                        value,
                        "UTC offset must be within ±15:59:59",
                    ));
                }
                out.put_i32(12);
                out.put_i64(micros);
                out.put_i32(-offset_secs);
            }
            _ => return Err(mismatch(dt, value)),
        },
        DataType::Timestamp => {
            let t = match *value {
                Value::Timestamp(t) => t,
                Value::Date(DATE_NEG_INFINITY) => TS_NEG_INFINITY,
                Value::Date(DATE_POS_INFINITY) => TS_POS_INFINITY,
                Value::Date(d) => i64::from(d) * USECS_PER_DAY,
                _ => return Err(mismatch(dt, value)),
            };
            check_timestamp(dt, value, t)?;
            out.put_i32(8);
            out.put_i64(t);
        }
        DataType::TimestampTz => match *value {
            Value::TimestampTz(t) => {
                check_timestamp(dt, value, t)?;
                out.put_i32(8);
                out.put_i64(t);
            }
            _ => return Err(mismatch(dt, value)),
        },
        DataType::Interval => match value {
            Value::Interval(i) => {
                out.put_i32(16);
                out.put_i64(i.micros);
                out.put_i32(i.days);
                out.put_i32(i.months);
            }
            _ => return Err(mismatch(dt, value)),
        },
        DataType::Uuid => match value {
            Value::Uuid(u) => {
                out.put_i32(16);
                out.put_slice(u);
            }
            _ => return Err(mismatch(dt, value)),
        },
        DataType::Json { binary } => match value {
            Value::Json(t) | Value::Text(t) => {
                check_no_nul(dt, value, t.as_bytes())?;
                if is_jsonb(oid, *binary) {
                    let len = i32::try_from(t.len() + 1)
                        .map_err(|_| unrepresentable(dt, value, "longer than a field can be"))?;
                    out.reserve(5 + t.len());
                    out.put_i32(len);
                    out.put_u8(1);
                    out.put_slice(t.as_bytes());
                } else {
                    put_var(dt, value, t.as_bytes(), out)?;
                }
            }
            _ => return Err(mismatch(dt, value)),
        },
        DataType::Inet | DataType::Cidr => match value {
            Value::Inet { addr, prefix } => encode_inet(dt, value, addr, *prefix, out)?,
            _ => return Err(mismatch(dt, value)),
        },
        DataType::MacAddr => match value {
            Value::MacAddr(m) => {
                out.put_i32(6);
                out.put_slice(m);
            }
            _ => return Err(mismatch(dt, value)),
        },
        DataType::Enum { labels, name } => match value {
            Value::Enum(t) | Value::Text(t) => {
                if labels.is_empty() {
                    check_no_nul(dt, value, t.as_bytes())?;
                } else if !labels.iter().any(|l| l.as_str() == t.as_str()) {
                    return Err(unrepresentable(
                        dt,
                        value,
                        format!("not a label of enum {name}"),
                    ));
                }
                put_var(dt, value, t.as_bytes(), out)?;
            }
            _ => return Err(mismatch(dt, value)),
        },
        DataType::Array(inner) => match value {
            Value::Array(a) => encode_array(dt, innermost(inner), elem_oid, value, a, out)?,
            _ => return Err(mismatch(dt, value)),
        },
        DataType::Other { .. } => match value {
            Value::Other(b) => put_var(dt, value, b, out)?,
            _ => return Err(mismatch(dt, value)),
        },
    }
    Ok(())
}

fn check_time(dt: &DataType, value: &Value, micros: i64) -> Result<(), CodecError> {
    if !(0..=USECS_PER_DAY).contains(&micros) {
        return Err(unrepresentable(
            dt,
            value,
            "time of day must be within 00:00:00 and 24:00:00",
        ));
    }
    Ok(())
}

fn check_timestamp(dt: &DataType, value: &Value, t: i64) -> Result<(), CodecError> {
    if !(t == TS_NEG_INFINITY
        || t == TS_POS_INFINITY
        || (MIN_TIMESTAMP..END_TIMESTAMP).contains(&t))
    {
        return Err(unrepresentable(
            dt,
            value,
            "outside PostgreSQL's timestamp range (4714-11-24 BC to 294276-12-31 AD)",
        ));
    }
    Ok(())
}

/// `varchar(n)` / `char(n)`: PostgreSQL rejects values longer than `n` characters
/// unless the excess is spaces (which it drops).
fn check_text_len(dt: &DataType, value: &Value, text: &str, max: u32) -> Result<(), CodecError> {
    let max = max as usize;
    // At most one character per byte: short texts need no counting.
    if text.len() <= max {
        return Ok(());
    }
    if let Some((cut, _)) = text.char_indices().nth(max)
        && !text[cut..].bytes().all(|b| b == b' ')
    {
        return Err(unrepresentable(
            dt,
            value,
            format!(
                "{} characters, more than the {max} the column allows",
                text.chars().count()
            ),
        ));
    }
    Ok(())
}

/// An integer-valued value as `i128`: integers, and decimals without a fractional
/// part.
fn int_of(dt: &DataType, value: &Value) -> Result<i128, CodecError> {
    match value {
        Value::Int16(v) => Ok(i128::from(*v)),
        Value::Int32(v) => Ok(i128::from(*v)),
        Value::Int64(v) => Ok(i128::from(*v)),
        Value::UInt64(v) => Ok(i128::from(*v)),
        Value::Decimal(Decimal::Finite(text)) => decimal_to_int(text)
            .ok_or_else(|| unrepresentable(dt, value, "not an integer in range")),
        Value::Decimal(_) => Err(unrepresentable(dt, value, "not a finite number")),
        _ => Err(mismatch(dt, value)),
    }
}

/// Parses decimal text whose fractional digits are all zero as an integer.
fn decimal_to_int(text: &str) -> Option<i128> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() || !frac.bytes().all(|b| b == b'0') {
        return None;
    }
    let mut v: i128 = 0;
    for b in int.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        let d = i128::from(b - b'0');
        v = v.checked_mul(10)?;
        v = if negative {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

#[inline]
fn put_numeric_header(out: &mut BytesMut, ndigits: usize, weight: i64, sign: u16, dscale: usize) {
    out.put_i32((8 + 2 * ndigits) as i32);
    out.put_u16(ndigits as u16);
    out.put_i16(weight as i16);
    out.put_u16(sign);
    out.put_u16(dscale as u16);
}

/// Checks an integer part of `int_digits` significant digits against `numeric(p,s)`.
fn check_precision(
    dt: &DataType,
    value: &Value,
    precision: Option<u32>,
    scale: Option<u32>,
    int_digits: i64,
) -> Result<(), CodecError> {
    if let Some(p) = precision {
        let allowed = i64::from(p) - i64::from(scale.unwrap_or(0));
        if int_digits > allowed {
            return Err(unrepresentable(
                dt,
                value,
                format!(
                    "numeric field overflow: precision {p}, scale {} allows at most {} digits before the point",
                    scale.unwrap_or(0),
                    allowed.max(0)
                ),
            ));
        }
    }
    Ok(())
}

fn encode_numeric(
    dt: &DataType,
    value: &Value,
    precision: Option<u32>,
    scale: Option<u32>,
    decimal: &Decimal,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    let text = match decimal {
        Decimal::Finite(text) => text.as_bytes(),
        Decimal::NaN => {
            put_numeric_header(out, 0, 0, NUMERIC_NAN, 0);
            return Ok(());
        }
        Decimal::PosInfinity | Decimal::NegInfinity => {
            if precision.is_some() {
                return Err(unrepresentable(
                    dt,
                    value,
                    "a numeric with a precision cannot hold infinity",
                ));
            }
            let sign = if matches!(decimal, Decimal::PosInfinity) {
                NUMERIC_PINF
            } else {
                NUMERIC_NINF
            };
            put_numeric_header(out, 0, 0, sign, 0);
            return Ok(());
        }
    };
    let (negative, body) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (int, frac) = match body.iter().position(|&b| b == b'.') {
        Some(p) => (&body[..p], &body[p + 1..]),
        None => (body, &body[body.len()..]),
    };
    if int.len() + frac.len() == 0 || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return Err(unrepresentable(dt, value, "not decimal text"));
    }
    let dscale = frac.len();
    if dscale > NUMERIC_MAX_DSCALE {
        return Err(unrepresentable(
            dt,
            value,
            format!(
                "{dscale} digits after the point, PostgreSQL allows at most {NUMERIC_MAX_DSCALE}"
            ),
        ));
    }
    // Digits of int ++ frac; the digit at index i has exponent p - 1 - i.
    let total = int.len() + frac.len();
    let p = int.len() as i64;
    let digit_at = |i: usize| -> u8 {
        if i < int.len() {
            int[i] - b'0'
        } else {
            frac[i - int.len()] - b'0'
        }
    };
    let Some(first_nz) = (0..total).find(|&i| digit_at(i) != 0) else {
        // Zero keeps its display scale and is never negative.
        check_precision(dt, value, precision, scale, 0)?;
        put_numeric_header(out, 0, 0, NUMERIC_POS, dscale);
        return Ok(());
    };
    let last_nz = (first_nz..total)
        .rev()
        .find(|&i| digit_at(i) != 0)
        .unwrap_or(first_nz);
    let e_first = p - 1 - first_nz as i64;
    let e_last = p - 1 - last_nz as i64;
    if let Some(s) = scale
        && e_last < -i64::from(s)
    {
        return Err(unrepresentable(
            dt,
            value,
            format!("more than {s} digits after the point; PostgreSQL would round it"),
        ));
    }
    check_precision(dt, value, precision, scale, (e_first + 1).max(0))?;
    let weight = e_first.div_euclid(4);
    let last_group = e_last.div_euclid(4);
    if weight > i64::from(i16::MAX) {
        return Err(unrepresentable(
            dt,
            value,
            "more than 131072 digits before the point, beyond PostgreSQL's numeric range",
        ));
    }
    let ndigits = (weight - last_group + 1) as usize;
    put_numeric_header(
        out,
        ndigits,
        weight,
        if negative { NUMERIC_NEG } else { NUMERIC_POS },
        dscale,
    );
    let digit_at_exp = |e: i64| -> u16 {
        let idx = p - 1 - e;
        if idx >= 0 && (idx as usize) < total {
            u16::from(digit_at(idx as usize))
        } else {
            0
        }
    };
    out.reserve(2 * ndigits);
    for g in (last_group..=weight).rev() {
        let base = 4 * g;
        let v = digit_at_exp(base + 3) * 1000
            + digit_at_exp(base + 2) * 100
            + digit_at_exp(base + 1) * 10
            + digit_at_exp(base);
        out.put_u16(v);
    }
    Ok(())
}

fn encode_numeric_int(
    dt: &DataType,
    value: &Value,
    precision: Option<u32>,
    scale: Option<u32>,
    v: i128,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    let mut mag = v.unsigned_abs();
    if mag == 0 {
        check_precision(dt, value, precision, scale, 0)?;
        put_numeric_header(out, 0, 0, NUMERIC_POS, 0);
        return Ok(());
    }
    let int_digits = mag.ilog10() as i64 + 1;
    check_precision(dt, value, precision, scale, int_digits)?;
    // Base-10000 digits, least significant first (u128 needs at most 10).
    let mut groups = [0u16; 10];
    let mut n = 0;
    while mag > 0 {
        groups[n] = (mag % 10_000) as u16;
        mag /= 10_000;
        n += 1;
    }
    let low = groups.iter().position(|&g| g != 0).unwrap_or(0);
    let sign = if v < 0 { NUMERIC_NEG } else { NUMERIC_POS };
    put_numeric_header(out, n - low, n as i64 - 1, sign, 0);
    for g in groups[low..n].iter().rev() {
        out.put_u16(*g);
    }
    Ok(())
}

fn encode_inet(
    dt: &DataType,
    value: &Value,
    addr: &IpAddr,
    prefix: u8,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    let is_cidr = matches!(dt, DataType::Cidr);
    let (family, octets, max): (u8, [u8; 16], u8) = match addr {
        IpAddr::V4(a) => {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&a.octets());
            (PGSQL_AF_INET, o, 32)
        }
        IpAddr::V6(a) => (PGSQL_AF_INET6, a.octets(), 128),
    };
    if prefix > max {
        return Err(unrepresentable(
            dt,
            value,
            format!("netmask length {prefix} exceeds {max}"),
        ));
    }
    let nb = usize::from(max / 8);
    if is_cidr {
        let host_bits_set = octets[..nb].iter().enumerate().any(|(i, &byte)| {
            let bit = 8 * i as u32;
            let p = u32::from(prefix);
            if bit + 8 <= p {
                false
            } else if bit >= p {
                byte != 0
            } else {
                byte & (0xFFu8 >> (p - bit)) != 0
            }
        });
        if host_bits_set {
            return Err(unrepresentable(
                dt,
                value,
                "a cidr value has bits set to the right of its netmask",
            ));
        }
    }
    out.put_i32(4 + nb as i32);
    out.put_u8(family);
    out.put_u8(prefix);
    out.put_u8(u8::from(is_cidr));
    out.put_u8(nb as u8);
    out.put_slice(&octets[..nb]);
    Ok(())
}

fn encode_array(
    dt: &DataType,
    elem_dt: &DataType,
    elem_oid: u32,
    value: &Value,
    array: &Array,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    if elem_oid == 0 {
        return Err(unrepresentable(
            dt,
            value,
            "the column's element type OID is unknown (0)",
        ));
    }
    if array.dims.len() > MAX_ARRAY_DIMS {
        return Err(unrepresentable(
            dt,
            value,
            format!(
                "{} dimensions, PostgreSQL allows {MAX_ARRAY_DIMS}",
                array.dims.len()
            ),
        ));
    }
    let mut total: usize = if array.dims.is_empty() { 0 } else { 1 };
    for d in &array.dims {
        let n = usize::try_from(d.len)
            .map_err(|_| unrepresentable(dt, value, format!("dimension of length {}", d.len)))?;
        if d.lower_bound.checked_add(d.len).is_none() {
            return Err(unrepresentable(dt, value, "array bounds overflow"));
        }
        total = total.saturating_mul(n);
    }
    if total != array.values.len() {
        return Err(unrepresentable(
            dt,
            value,
            format!(
                "dimensions hold {total} elements but the array has {}",
                array.values.len()
            ),
        ));
    }
    let len_at = out.len();
    out.put_i32(0);
    if array.values.is_empty() {
        out.put_i32(0);
        out.put_i32(0);
        out.put_u32(elem_oid);
    } else {
        out.put_i32(array.dims.len() as i32);
        out.put_i32(i32::from(array.values.iter().any(Value::is_null)));
        out.put_u32(elem_oid);
        for d in &array.dims {
            out.put_i32(d.len);
            out.put_i32(d.lower_bound);
        }
        for v in &array.values {
            if let Value::Array(_) = v {
                return Err(unrepresentable(
                    dt,
                    value,
                    "nested array elements; PostgreSQL arrays are multi-dimensional (use dims)",
                ));
            }
            encode_in(elem_dt, elem_oid, 0, v, out)?;
        }
    }
    let body = out.len() - len_at - 4;
    let body = i32::try_from(body)
        .map_err(|_| unrepresentable(dt, value, "longer than a field can be (2 GiB)"))?;
    out[len_at..len_at + 4].copy_from_slice(&body.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn col(dt: DataType) -> PgColumnType {
        PgColumnType::builtin(dt).expect("a built-in type")
    }

    fn numeric() -> DataType {
        DataType::Decimal {
            precision: None,
            scale: None,
        }
    }

    fn numeric_ps(precision: u32, scale: u32) -> DataType {
        DataType::Decimal {
            precision: Some(precision),
            scale: Some(scale),
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Bytes {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect::<Vec<u8>>()
            .into()
    }

    /// Encodes `value` and returns the body after checking the length prefix.
    fn body(ty: &PgColumnType, value: &Value) -> Bytes {
        let mut out = BytesMut::new();
        encode(ty, value, &mut out).expect("encode");
        let len = i32::from_be_bytes(out[..4].try_into().expect("length"));
        assert_eq!(len as usize, out.len() - 4, "length prefix of {value:?}");
        out.freeze().slice(4..)
    }

    fn round_trip(ty: &PgColumnType, value: &Value) -> Value {
        decode(ty, body(ty, value)).expect("decode")
    }

    fn assert_round_trip(dt: DataType, values: &[Value]) {
        let ty = col(dt);
        for v in values {
            assert_eq!(&round_trip(&ty, v), v, "{}", ty.data_type);
        }
    }

    fn encode_err(ty: &PgColumnType, value: &Value) -> String {
        let mut out = BytesMut::from(&b"keep"[..]);
        let err = encode(ty, value, &mut out).expect_err("encode must fail");
        assert_eq!(&out[..], b"keep", "a failed encode leaves the buffer alone");
        err.to_string()
    }

    fn dec(text: &str) -> Value {
        Value::Decimal(Decimal::parse(text).expect("decimal text"))
    }

    fn text(s: &str) -> Text {
        Text::from(s)
    }

    /// Days since 2000-01-01 of a proleptic Gregorian date (year 0 = 1 BC).
    fn days(y: i64, m: i64, d: i64) -> i32 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        (era * 146_097 + doe - 719_468 - 10_957) as i32
    }

    #[test]
    fn builtin_oids_follow_pg_type() {
        let t = col(DataType::text());
        assert_eq!((t.oid, t.elem_oid), (oid::TEXT, 0));
        let a = col(DataType::Array(Box::new(DataType::Int32)));
        assert_eq!((a.oid, a.elem_oid), (oid::INT4_ARRAY, oid::INT4));
        let v = col(DataType::Array(Box::new(DataType::Text {
            max_len: Some(3),
            fixed: false,
        })));
        assert_eq!((v.oid, v.elem_oid), (oid::VARCHAR_ARRAY, oid::VARCHAR));
        assert!(
            PgColumnType::builtin(DataType::Enum {
                name: "mood".into(),
                labels: vec![]
            })
            .is_none()
        );
    }

    #[test]
    fn scalars_round_trip() {
        assert_round_trip(DataType::Bool, &[Value::Bool(true), Value::Bool(false)]);
        assert_round_trip(
            DataType::Int16,
            &[
                Value::Int16(i16::MIN),
                Value::Int16(0),
                Value::Int16(i16::MAX),
            ],
        );
        assert_round_trip(
            DataType::Int32,
            &[
                Value::Int32(i32::MIN),
                Value::Int32(-1),
                Value::Int32(i32::MAX),
            ],
        );
        assert_round_trip(
            DataType::Int64,
            &[
                Value::Int64(i64::MIN),
                Value::Int64(42),
                Value::Int64(i64::MAX),
            ],
        );
        assert_round_trip(
            DataType::Uuid,
            &[Value::Uuid([0xAB; 16]), Value::Uuid([0; 16])],
        );
        assert_round_trip(DataType::MacAddr, &[Value::MacAddr([8, 0, 0x2b, 1, 2, 3])]);
        assert_round_trip(
            DataType::Bytes,
            &[
                Value::Bytes(Bytes::new()),
                Value::Bytes(Bytes::from_static(b"\x00\xff\x01")),
            ],
        );
        assert_round_trip(
            DataType::text(),
            &[Value::Text(text("")), Value::Text(text("héllo wörld ✓ 🚀"))],
        );
        assert_round_trip(
            DataType::Interval,
            &[
                Value::Interval(Interval::default()),
                Value::Interval(Interval {
                    months: -1,
                    days: -2,
                    micros: -3_000_000,
                }),
                Value::Interval(Interval {
                    months: i32::MAX,
                    days: i32::MIN,
                    micros: i64::MAX,
                }),
            ],
        );
    }

    #[test]
    fn floats_are_bit_exact() {
        let f32s = [
            0.0f32,
            -0.0,
            1.5,
            f32::MIN_POSITIVE / 2.0,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::from_bits(0x7fc0_0001),
        ];
        let ty = col(DataType::Float32);
        for f in f32s {
            match round_trip(&ty, &Value::Float32(f)) {
                Value::Float32(g) => assert_eq!(g.to_bits(), f.to_bits()),
                other => panic!("{other:?}"),
            }
        }
        let f64s = [
            0.0f64,
            -0.0,
            0.1,
            f64::MIN_POSITIVE / 4.0,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        let ty = col(DataType::Float64);
        for f in f64s {
            match round_trip(&ty, &Value::Float64(f)) {
                Value::Float64(g) => assert_eq!(g.to_bits(), f.to_bits()),
                other => panic!("{other:?}"),
            }
        }
        // What PostgreSQL sends for 'NaN'::float8 and '-Infinity'::float8.
        assert!(matches!(
            decode(&ty, unhex("7ff8000000000000")),
            Ok(Value::Float64(f)) if f.is_nan()
        ));
        assert!(matches!(
            decode(&ty, unhex("fff0000000000000")),
            Ok(Value::Float64(f)) if f == f64::NEG_INFINITY
        ));
    }

    /// `numeric_send(text::numeric)` and `numeric_out` from PostgreSQL 15.
    const SERVER_NUMERICS: &[(&str, &str, &str)] = &[
        ("0", "0000000000000000", "0"),
        ("0.000", "0000000000000003", "0.000"),
        ("-0.5", "0001ffff400000011388", "-0.5"),
        ("1.50", "000200000000000200011388", "1.50"),
        ("-0", "0000000000000000", "0"),
        ("-0.000", "0000000000000003", "0.000"),
        ("10000", "00010001000000000001", "10000"),
        ("12345678.9", "000300010000000104d2162e2328", "12345678.9"),
        ("0.0001", "0001ffff000000040001", "0.0001"),
        ("0.00001", "0001fffe0000000503e8", "0.00001"),
        ("99999999", "0002000100000000270f270f", "99999999"),
        ("100000000", "00010002000000000001", "100000000"),
        (
            "-9223372036854775808",
            "0005000440000000039a0d2c0170156516b0",
            "-9223372036854775808",
        ),
        ("007.10", "0002000000000002000703e8", "7.10"),
        (
            "0.00000000000000000001",
            "0001fffb000000140001",
            "0.00000000000000000001",
        ),
    ];

    #[test]
    fn numeric_matches_the_server() {
        let ty = col(numeric());
        for (input, wire, printed) in SERVER_NUMERICS {
            assert_eq!(hex(&body(&ty, &dec(input))), *wire, "encode {input}");
            assert_eq!(
                decode(&ty, unhex(wire)).expect("decode"),
                dec(printed),
                "decode {input}"
            );
        }
        // Specials as the server sends them (it sets a display scale on infinities).
        for (wire, want) in [
            ("00000000c0000000", Decimal::NaN),
            ("00000000d0000020", Decimal::PosInfinity),
            ("00000000f0000020", Decimal::NegInfinity),
        ] {
            assert_eq!(
                decode(&ty, unhex(wire)).expect("decode"),
                Value::Decimal(want.clone())
            );
            let sent = body(&ty, &Value::Decimal(want));
            assert_eq!(&sent[..6], &unhex(wire)[..6]);
        }
    }

    #[test]
    fn numeric_round_trips_edge_values() {
        let tiny = format!("0.{}1", "0".repeat(998));
        let max_scale_zero = format!("0.{}", "0".repeat(NUMERIC_MAX_DSCALE));
        let max_scale_tiny = format!("-0.{}7", "0".repeat(NUMERIC_MAX_DSCALE - 1));
        let thousand: String = (0..1000)
            .map(|i| char::from(b'1' + (i % 9) as u8))
            .collect();
        let thousand_frac = format!("-{}.{}", &thousand[..600], &thousand[600..]);
        let huge = format!("9{}", "0".repeat(131_071));
        let cases: Vec<String> = [
            "0",
            "0.000",
            "-0.5",
            "1.50",
            "100",
            "100.000100",
            "0.1",
            "-1234.5678",
            "9999.9999",
            "10000.0001",
            "-9223372036854775808",
            "340282366920938463463374607431768211455",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            tiny,
            max_scale_zero,
            max_scale_tiny,
            thousand,
            thousand_frac,
            huge,
        ])
        .collect();
        let values: Vec<Value> = cases
            .iter()
            .map(|s| dec(s))
            .chain([
                Value::Decimal(Decimal::NaN),
                Value::Decimal(Decimal::PosInfinity),
                Value::Decimal(Decimal::NegInfinity),
            ])
            .collect();
        assert_round_trip(numeric(), &values);
    }

    #[test]
    fn numeric_decode_normalises_like_the_server() {
        let ty = col(numeric());
        let wire = |ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]| {
            let mut b = BytesMut::new();
            b.put_u16(ndigits);
            b.put_i16(weight);
            b.put_u16(sign);
            b.put_u16(dscale);
            for d in digits {
                b.put_u16(*d);
            }
            b.freeze()
        };
        let get = |raw: Bytes| match decode(&ty, raw).expect("decode") {
            Value::Decimal(d) => d.to_string(),
            other => panic!("{other:?}"),
        };
        // Leading and trailing zero groups.
        assert_eq!(get(wire(4, 1, NUMERIC_POS, 0, &[0, 5, 0, 0])), "5");
        // Digits beyond the display scale are dropped; a zero is not negative.
        assert_eq!(get(wire(1, -1, NUMERIC_NEG, 2, &[5])), "0.00");
        assert_eq!(get(wire(1, -1, NUMERIC_NEG, 1, &[1234])), "-0.1");
        assert_eq!(get(wire(2, 0, NUMERIC_NEG, 0, &[7, 9999])), "-7");
        assert_eq!(get(wire(0, 0, NUMERIC_NEG, 0, &[])), "0");
        // Integer part with zero groups inside, fraction with a short last group.
        assert_eq!(
            get(wire(3, 2, NUMERIC_POS, 5, &[12, 0, 34])),
            "1200000034.00000"
        );
        assert_eq!(get(wire(1, -3, NUMERIC_POS, 9, &[1200])), "0.000000001");
        // Invalid input.
        for bad in [
            wire(1, 0, NUMERIC_POS, 0, &[10_000]),
            wire(1, 0, 0x1234, 0, &[1]),
            wire(2, 0, NUMERIC_POS, 0, &[1]),
            wire(0, 0, NUMERIC_POS, 0x4000, &[]),
            Bytes::from_static(b"\0\0\0"),
        ] {
            assert!(decode(&ty, bad).is_err());
        }
    }

    #[test]
    fn numeric_rejects_what_it_cannot_hold() {
        let ty = col(numeric());
        let long_scale = format!("1.{}", "0".repeat(NUMERIC_MAX_DSCALE + 1));
        assert!(encode_err(&ty, &dec(&long_scale)).contains("16383"));
        let too_big = format!("1{}", "0".repeat(131_072));
        assert!(encode_err(&ty, &dec(&too_big)).contains("131072"));
        for bad in ["1e5", "", "-", "1.2.3", "+1", " 1", "0x10"] {
            let v = Value::Decimal(Decimal::Finite(bad.into()));
            assert!(encode_err(&ty, &v).contains("not decimal text"), "{bad:?}");
        }
        assert!(encode_err(&ty, &Value::Float64(0.5)).contains("float64"));

        let constrained = PgColumnType::new(numeric_ps(5, 2), oid::NUMERIC, 0);
        for ok in ["999.99", "-999.99", "0.5", "1.500000", "0.000", "12"] {
            assert_eq!(
                decode(&constrained, body(&constrained, &dec(ok))).ok(),
                Some(dec(ok))
            );
        }
        assert!(encode_err(&constrained, &dec("1.555")).contains("round"));
        assert!(encode_err(&constrained, &dec("1000")).contains("overflow"));
        assert!(encode_err(&constrained, &Value::Int32(1000)).contains("overflow"));
        assert!(
            encode_err(&constrained, &Value::Decimal(Decimal::PosInfinity)).contains("infinity")
        );
        body(&constrained, &Value::Decimal(Decimal::NaN));
        // numeric(3) is numeric(3,0): PostgreSQL would round a fraction away.
        let integral = PgColumnType::new(
            DataType::Decimal {
                precision: Some(3),
                scale: None,
            },
            oid::NUMERIC,
            0,
        );
        body(&integral, &dec("-999.000"));
        assert!(encode_err(&integral, &dec("1.5")).contains("more than 0 digits"));
        assert!(encode_err(&integral, &dec("1000")).contains("overflow"));
    }

    #[test]
    fn integers_and_decimals_cross_where_exact() {
        let int2 = col(DataType::Int16);
        let int4 = col(DataType::Int32);
        let int8 = col(DataType::Int64);
        let num = col(numeric());
        assert_eq!(round_trip(&int8, &Value::Int16(-7)), Value::Int64(-7));
        assert_eq!(round_trip(&int2, &Value::Int64(5)), Value::Int16(5));
        assert_eq!(round_trip(&int4, &dec("-12.000")), Value::Int32(-12));
        assert_eq!(
            round_trip(&int8, &Value::UInt64(i64::MAX as u64)),
            Value::Int64(i64::MAX)
        );
        assert!(encode_err(&int2, &Value::Int32(70_000)).contains("out of range"));
        assert!(encode_err(&int8, &Value::UInt64(u64::MAX)).contains("out of range"));
        assert!(encode_err(&int4, &dec("1.5")).contains("integer"));
        assert!(encode_err(&int4, &Value::Decimal(Decimal::NaN)).contains("finite"));
        assert!(encode_err(&int4, &Value::Text(text("1"))).contains("text"));
        assert_eq!(
            round_trip(&num, &Value::Int64(i64::MIN)),
            dec("-9223372036854775808")
        );
        assert_eq!(round_trip(&num, &Value::Int32(-10_000)), dec("-10000"));
        assert_eq!(round_trip(&num, &Value::Int16(0)), dec("0"));
        assert_eq!(
            round_trip(&num, &Value::UInt64(u64::MAX)),
            dec("18446744073709551615")
        );
        // Integer encodings of numerics equal the text path's, byte for byte.
        for v in [
            i64::MIN,
            -1,
            0,
            1,
            9_999,
            10_000,
            1_000_000_000_000,
            i64::MAX,
        ] {
            assert_eq!(
                body(&num, &Value::Int64(v)),
                body(&num, &dec(&v.to_string()))
            );
        }

        // UInt64 columns, stored as numeric or as an integer type.
        let u_num = col(DataType::UInt64);
        assert_eq!(u_num.oid, oid::NUMERIC);
        assert_eq!(
            round_trip(&u_num, &Value::UInt64(u64::MAX)),
            Value::UInt64(u64::MAX)
        );
        let u_int8 = PgColumnType::new(DataType::UInt64, oid::INT8, 0);
        assert_eq!(round_trip(&u_int8, &Value::UInt64(7)), Value::UInt64(7));
        assert!(encode_err(&u_int8, &Value::UInt64(u64::MAX)).contains("out of range"));
        assert!(encode_err(&u_num, &Value::Int64(-1)).contains("out of range"));
        assert!(decode(&u_num, body(&num, &dec("-1"))).is_err());
        assert!(decode(&u_num, body(&num, &dec("1.5"))).is_err());
        assert!(decode(&u_int8, body(&int8, &Value::Int64(-1))).is_err());
    }

    #[test]
    fn floats_cross_only_when_exact() {
        let f4 = col(DataType::Float32);
        let f8 = col(DataType::Float64);
        assert_eq!(
            round_trip(&f8, &Value::Float32(0.1)),
            Value::Float64(f64::from(0.1f32))
        );
        assert_eq!(
            round_trip(&f8, &Value::Int32(i32::MIN)),
            Value::Float64(-2_147_483_648.0)
        );
        assert_eq!(
            round_trip(&f8, &Value::Int64(1 << 53)),
            Value::Float64(9_007_199_254_740_992.0)
        );
        assert!(encode_err(&f8, &Value::Int64((1 << 53) + 1)).contains("exactly"));
        assert_eq!(round_trip(&f4, &Value::Float64(1.5)), Value::Float32(1.5));
        assert!(
            matches!(round_trip(&f4, &Value::Float64(f64::NAN)), Value::Float32(f) if f.is_nan())
        );
        assert_eq!(
            round_trip(&f4, &Value::Float64(f64::INFINITY)),
            Value::Float32(f32::INFINITY)
        );
        assert!(encode_err(&f4, &Value::Float64(0.1)).contains("exactly"));
        assert!(encode_err(&f4, &Value::Int32(16_777_217)).contains("exactly"));
        assert_eq!(round_trip(&f4, &Value::Int16(-300)), Value::Float32(-300.0));
        assert!(encode_err(&f8, &dec("1.5")).contains("decimal"));
    }

    #[test]
    fn text_types() {
        let t = col(DataType::text());
        let bad = Bytes::from_static(b"ok\xff");
        assert!(matches!(
            decode(&t, bad),
            Err(CodecError::InvalidUtf8 { .. })
        ));
        assert!(encode_err(&t, &Value::Text(text("a\0b"))).contains("NUL"));
        assert_eq!(
            round_trip(&t, &Value::Json(text("{}"))),
            Value::Text(text("{}"))
        );
        assert_eq!(
            round_trip(&t, &Value::Enum(text("happy"))),
            Value::Text(text("happy"))
        );
        assert!(encode_err(&t, &Value::Bytes(Bytes::from_static(b"x"))).contains("bytes"));

        // Decoding borrows the buffer.
        let raw = Bytes::from_static(b"borrowed");
        match decode(&t, raw.clone()).expect("decode") {
            Value::Text(s) => assert_eq!(s.as_bytes().as_ptr(), raw.as_ptr()),
            other => panic!("{other:?}"),
        }
        let b = col(DataType::Bytes);
        match decode(&b, raw.clone()).expect("decode") {
            Value::Bytes(s) => assert_eq!(s.as_ptr(), raw.as_ptr()),
            other => panic!("{other:?}"),
        }

        for fixed in [false, true] {
            let v = col(DataType::Text {
                max_len: Some(3),
                fixed,
            });
            for ok in ["", "abc", "äöü", "ab  ", "abc   "] {
                body(&v, &Value::Text(text(ok)));
            }
            assert!(encode_err(&v, &Value::Text(text("abcd"))).contains("4 characters"));
            assert!(encode_err(&v, &Value::Text(text("äöüß"))).contains("more than the 3"));
        }
        // char(n) input pads to n itself: the padding is not sent, other spaces are.
        let bp = col(DataType::Text {
            max_len: Some(4),
            fixed: true,
        });
        assert_eq!(&body(&bp, &Value::Text(text("a   ")))[..], b"a");
        assert_eq!(&body(&bp, &Value::Text(text("    ")))[..], b"");
        assert_eq!(&body(&bp, &Value::Text(text(" a\t ")))[..], b" a\t");
        let vc = col(DataType::Text {
            max_len: Some(4),
            fixed: false,
        });
        assert_eq!(&body(&vc, &Value::Text(text("a   ")))[..], b"a   ");
    }

    #[test]
    fn json_and_jsonb() {
        let json = col(DataType::Json { binary: false });
        let jsonb = col(DataType::Json { binary: true });
        let doc = Value::Json(text(r#"{"a": 1}"#));
        assert_eq!(hex(&body(&json, &doc)), "7b2261223a20317d");
        assert_eq!(hex(&body(&jsonb, &doc)), "017b2261223a20317d");
        assert_eq!(round_trip(&json, &doc), doc);
        assert_eq!(round_trip(&jsonb, &doc), doc);
        assert_eq!(
            round_trip(&jsonb, &Value::Text(text("[1]"))),
            Value::Json(text("[1]"))
        );
        assert!(decode(&jsonb, Bytes::from_static(b"\x02{}")).is_err());
        assert!(decode(&jsonb, Bytes::new()).is_err());
        // The OID decides the format when it is a json type.
        let mislabelled = PgColumnType::new(DataType::Json { binary: false }, oid::JSONB, 0);
        assert_eq!(hex(&body(&mislabelled, &Value::Json(text("1")))), "0131");
    }

    #[test]
    fn dates_and_times() {
        let date = col(DataType::Date);
        let bc_4713 = days(-4712, 1, 1);
        let ad_5874897 = days(5_874_897, 12, 31);
        assert_eq!(bc_4713, -2_451_507);
        assert_eq!(ad_5874897, 2_145_031_948);
        assert_eq!(days(-4713, 11, 24), MIN_DATE);
        assert_round_trip(
            DataType::Date,
            &[
                Value::Date(0),
                Value::Date(DATE_NEG_INFINITY),
                Value::Date(DATE_POS_INFINITY),
                Value::Date(bc_4713),
                Value::Date(ad_5874897),
                Value::Date(MIN_DATE),
            ],
        );
        assert!(encode_err(&date, &Value::Date(MIN_DATE - 1)).contains("date range"));
        assert!(encode_err(&date, &Value::Date(END_DATE)).contains("date range"));

        assert_round_trip(
            DataType::Time,
            &[
                Value::Time(0),
                Value::Time(USECS_PER_DAY),
                Value::Time(45_296_789_012),
            ],
        );
        assert!(encode_err(&col(DataType::Time), &Value::Time(-1)).contains("time of day"));

        let timetz = col(DataType::TimeTz);
        let v = Value::TimeTz {
            micros: 12 * 3_600_000_000,
            offset_secs: 19_800,
        };
        // PostgreSQL counts the zone west of Greenwich: +05:30 is -19800 on the wire.
        assert_eq!(hex(&body(&timetz, &v)), "0000000a0eebb000ffffb2a8");
        assert_round_trip(
            DataType::TimeTz,
            &[
                v,
                Value::TimeTz {
                    micros: 0,
                    offset_secs: -57_599,
                },
                Value::TimeTz {
                    micros: USECS_PER_DAY,
                    offset_secs: 57_599,
                },
            ],
        );
        let far = Value::TimeTz {
            micros: 0,
            offset_secs: 57_600,
        };
        assert!(encode_err(&timetz, &far).contains("offset"));

        for dt in [DataType::Timestamp, DataType::TimestampTz] {
            let wrap = |t: i64| {
                if dt == DataType::Timestamp {
                    Value::Timestamp(t)
                } else {
                    Value::TimestampTz(t)
                }
            };
            assert_round_trip(
                dt.clone(),
                &[
                    wrap(0),
                    wrap(TS_NEG_INFINITY),
                    wrap(TS_POS_INFINITY),
                    wrap(MIN_TIMESTAMP),
                    wrap(END_TIMESTAMP - 1),
                    wrap(-1),
                ],
            );
            let ty = col(dt.clone());
            assert!(encode_err(&ty, &wrap(MIN_TIMESTAMP - 1)).contains("timestamp range"));
            assert!(encode_err(&ty, &wrap(END_TIMESTAMP)).contains("timestamp range"));
        }
        let ts = col(DataType::Timestamp);
        let tstz = col(DataType::TimestampTz);
        assert_eq!(
            round_trip(&ts, &Value::Date(1)),
            Value::Timestamp(USECS_PER_DAY)
        );
        assert_eq!(
            round_trip(&ts, &Value::Date(DATE_NEG_INFINITY)),
            Value::Timestamp(TS_NEG_INFINITY)
        );
        assert!(encode_err(&tstz, &Value::Timestamp(0)).contains("timestamp value"));
        assert!(encode_err(&ts, &Value::TimestampTz(0)).contains("timestamptz value"));
    }

    #[test]
    fn interval_wire_order() {
        let ty = col(DataType::Interval);
        let v = Value::Interval(Interval {
            months: -1,
            days: -2,
            micros: -3_000_000,
        });
        assert_eq!(hex(&body(&ty, &v)), "ffffffffffd23940fffffffeffffffff");
    }

    #[test]
    fn network_addresses() {
        let inet = col(DataType::Inet);
        let cidr = col(DataType::Cidr);
        let v4 = |a: [u8; 4], prefix| Value::Inet {
            addr: IpAddr::V4(Ipv4Addr::from(a)),
            prefix,
        };
        let v6 = |s: &str, prefix| Value::Inet {
            addr: IpAddr::V6(s.parse().expect("ipv6")),
            prefix,
        };
        assert_eq!(
            hex(&body(&cidr, &v4([192, 168, 0, 0], 16))),
            "02100104c0a80000"
        );
        assert_eq!(
            hex(&body(&inet, &v6("::1", 128))),
            "0380001000000000000000000000000000000001"
        );
        let values = [
            v4([192, 168, 1, 7], 24),
            v4([0, 0, 0, 0], 0),
            v4([255, 255, 255, 255], 32),
            v6("2001:db8::1", 64),
            v6("::ffff:1.2.3.4", 128),
        ];
        assert_round_trip(DataType::Inet, &values);
        assert_round_trip(
            DataType::Cidr,
            &[
                v4([10, 0, 0, 0], 8),
                v4([10, 1, 2, 128], 25),
                v6("2001:db8::", 32),
                v6("::", 0),
            ],
        );
        assert!(encode_err(&cidr, &v4([10, 1, 2, 3], 24)).contains("right of its netmask"));
        assert!(encode_err(&cidr, &v4([10, 1, 2, 129], 25)).contains("netmask"));
        assert!(encode_err(&cidr, &v6("2001:db8::1", 64)).contains("netmask"));
        assert!(encode_err(&inet, &v4([1, 2, 3, 4], 33)).contains("33"));
        assert!(decode(&inet, unhex("02200004c0a800")).is_err());
        assert!(decode(&inet, unhex("07200004c0a80001")).is_err());
        assert!(decode(&inet, unhex("02210004c0a80001")).is_err());
    }

    #[test]
    fn enums() {
        let mood = PgColumnType::new(
            DataType::Enum {
                name: "public.mood".into(),
                labels: vec!["sad".into(), "happy".into()],
            },
            91_234,
            0,
        );
        assert_eq!(
            round_trip(&mood, &Value::Enum(text("happy"))),
            Value::Enum(text("happy"))
        );
        assert_eq!(
            round_trip(&mood, &Value::Text(text("sad"))),
            Value::Enum(text("sad"))
        );
        assert!(
            encode_err(&mood, &Value::Enum(text("meh")))
                .contains("not a label of enum public.mood")
        );
        let open = PgColumnType::new(
            DataType::Enum {
                name: "x".into(),
                labels: vec![],
            },
            91_235,
            0,
        );
        assert_eq!(
            round_trip(&open, &Value::Enum(text("any"))),
            Value::Enum(text("any"))
        );
    }

    #[test]
    fn other_passes_through() {
        let ty = PgColumnType::new(
            DataType::Other {
                engine: "postgres".into(),
                name: "tsvector".into(),
            },
            3614,
            0,
        );
        let raw = Bytes::from_static(b"\x00\x00\x00\x01anything\x00");
        assert_eq!(
            round_trip(&ty, &Value::Other(raw.clone())),
            Value::Other(raw)
        );
        assert!(encode_err(&ty, &Value::Text(text("x"))).contains("text"));
        assert!(encode_err(&col(DataType::text()), &Value::Other(Bytes::new())).contains("other"));
    }

    #[test]
    fn null_and_unchanged() {
        for dt in [DataType::Int32, DataType::text(), numeric()] {
            let ty = col(dt);
            let mut out = BytesMut::new();
            encode(&ty, &Value::Null, &mut out).expect("null");
            assert_eq!(&out[..], b"\xff\xff\xff\xff");
            assert!(matches!(
                encode(&ty, &Value::Unchanged, &mut out),
                Err(CodecError::Unchanged)
            ));
        }
    }

    #[test]
    fn mismatch_messages_name_type_and_value() {
        let msg = encode_err(&col(DataType::Bool), &Value::Int32(1));
        assert_eq!(msg, "cannot write a int32 value into a bool column");
        let msg = encode_err(&col(DataType::Int16), &Value::Int64(1 << 40));
        assert_eq!(
            msg,
            "cannot write Int64(1099511627776) into a int16 column: out of range for int2"
        );
        let long = "x".repeat(500);
        let msg = encode_err(
            &col(DataType::Text {
                max_len: Some(10),
                fixed: false,
            }),
            &Value::Text(text(&long)),
        );
        assert!(msg.len() < 250, "{msg}");
        assert!(msg.contains("500 characters"));
    }

    fn int4_array() -> PgColumnType {
        col(DataType::Array(Box::new(DataType::Int32)))
    }

    #[test]
    fn arrays_match_the_server() {
        let ty = int4_array();
        let two_d = Value::Array(Box::new(Array {
            dims: vec![
                ArrayDim {
                    len: 2,
                    lower_bound: 1,
                },
                ArrayDim {
                    len: 2,
                    lower_bound: 1,
                },
            ],
            values: vec![
                Value::Int32(1),
                Value::Null,
                Value::Int32(3),
                Value::Int32(4),
            ],
        }));
        let server = "000000020000000100000017000000020000000100000002000000010000000400000001ffffffff00000004000000030000000400000004";
        assert_eq!(hex(&body(&ty, &two_d)), server);
        assert_eq!(decode(&ty, unhex(server)).expect("decode"), two_d);
        let empty = Value::Array(Box::new(Array::one_dimensional(vec![])));
        assert_eq!(hex(&body(&ty, &empty)), "000000000000000000000017");
        assert_eq!(
            decode(&ty, unhex("000000000000000000000017")).expect("decode"),
            empty
        );
        let text_arr = col(DataType::Array(Box::new(DataType::text())));
        let zero_based = Value::Array(Box::new(Array {
            dims: vec![ArrayDim {
                len: 2,
                lower_bound: 0,
            }],
            values: vec![Value::Text(text("a")), Value::Text(text("b"))],
        }));
        let server = "000000010000000000000019000000020000000000000001610000000162";
        assert_eq!(hex(&body(&text_arr, &zero_based)), server);
        assert_eq!(
            decode(&text_arr, unhex(server)).expect("decode"),
            zero_based
        );
        // A dimension of length 0 is the empty array, as in PostgreSQL.
        assert_eq!(
            decode(&ty, unhex("000000010000000000000017000000000000000100")).ok(),
            None
        );
        assert_eq!(
            decode(&ty, unhex("0000000100000000000000170000000000000001")).expect("decode"),
            empty
        );
    }

    #[test]
    fn arrays_of_every_type_round_trip() {
        let arr = |values: Vec<Value>| Value::Array(Box::new(Array::one_dimensional(values)));
        let cases: Vec<(DataType, Vec<Value>)> = vec![
            (DataType::Bool, vec![Value::Bool(true), Value::Null]),
            (
                DataType::Int16,
                vec![Value::Int16(-1), Value::Null, Value::Int16(2)],
            ),
            (DataType::Int64, vec![Value::Int64(i64::MIN)]),
            (
                DataType::Float64,
                vec![Value::Float64(f64::INFINITY), Value::Null],
            ),
            (
                numeric(),
                vec![
                    dec("1.50"),
                    Value::Null,
                    dec("-0.5"),
                    Value::Decimal(Decimal::NaN),
                ],
            ),
            (
                DataType::text(),
                vec![Value::Text(text("x,y")), Value::Null, Value::Text(text(""))],
            ),
            (
                DataType::Bytes,
                vec![Value::Bytes(Bytes::from_static(b"\0\x01"))],
            ),
            (
                DataType::Date,
                vec![Value::Date(DATE_POS_INFINITY), Value::Date(-1)],
            ),
            (DataType::Time, vec![Value::Time(1)]),
            (
                DataType::TimeTz,
                vec![Value::TimeTz {
                    micros: 5,
                    offset_secs: -3600,
                }],
            ),
            (DataType::Timestamp, vec![Value::Timestamp(TS_NEG_INFINITY)]),
            (DataType::TimestampTz, vec![Value::TimestampTz(123)]),
            (
                DataType::Interval,
                vec![Value::Interval(Interval {
                    months: 1,
                    days: -1,
                    micros: 0,
                })],
            ),
            (DataType::Uuid, vec![Value::Uuid([7; 16]), Value::Null]),
            (
                DataType::Json { binary: true },
                vec![Value::Json(text("{}"))],
            ),
            (
                DataType::Json { binary: false },
                vec![Value::Json(text("[]"))],
            ),
            (
                DataType::Inet,
                vec![Value::Inet {
                    addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    prefix: 32,
                }],
            ),
            (
                DataType::Cidr,
                vec![Value::Inet {
                    addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    prefix: 0,
                }],
            ),
            (DataType::MacAddr, vec![Value::MacAddr([1, 2, 3, 4, 5, 6])]),
            (DataType::UInt64, vec![Value::UInt64(u64::MAX)]),
        ];
        for (dt, values) in cases {
            let ty = col(DataType::Array(Box::new(dt)));
            let v = arr(values);
            assert_eq!(round_trip(&ty, &v), v, "{}", ty.data_type);
            let empty = arr(vec![]);
            assert_eq!(round_trip(&ty, &empty), empty, "{}", ty.data_type);
        }
        // Enum arrays carry the target's element OID.
        let mood = DataType::Enum {
            name: "mood".into(),
            labels: vec!["ok".into()],
        };
        let ty = PgColumnType::new(DataType::Array(Box::new(mood)), 70_001, 70_002);
        let v = arr(vec![Value::Enum(text("ok")), Value::Null]);
        let raw = body(&ty, &v);
        assert_eq!(&raw[8..12], &70_002u32.to_be_bytes());
        assert_eq!(decode(&ty, raw).expect("decode"), v);
        assert!(encode_err(&ty, &arr(vec![Value::Enum(text("no"))])).contains("not a label"));
        // Arrays of unmapped types.
        let other = PgColumnType::new(
            DataType::Array(Box::new(DataType::Other {
                engine: "postgres".into(),
                name: "point".into(),
            })),
            1017,
            600,
        );
        let v = arr(vec![Value::Other(Bytes::from_static(&[0; 16]))]);
        assert_eq!(round_trip(&other, &v), v);
    }

    #[test]
    fn multi_dimensional_arrays() {
        let ty = col(DataType::Array(Box::new(DataType::text())));
        let dims = vec![
            ArrayDim {
                len: 2,
                lower_bound: -3,
            },
            ArrayDim {
                len: 3,
                lower_bound: 1,
            },
            ArrayDim {
                len: 1,
                lower_bound: 5,
            },
        ];
        let values: Vec<Value> = (0..6)
            .map(|i| {
                if i == 4 {
                    Value::Null
                } else {
                    Value::Text(Text::from(format!("e{i}")))
                }
            })
            .collect();
        let v = Value::Array(Box::new(Array { dims, values }));
        assert_eq!(round_trip(&ty, &v), v);
        // Nested array types mean the innermost element.
        let nested = col(DataType::Array(Box::new(DataType::Array(Box::new(
            DataType::text(),
        )))));
        assert_eq!(nested.elem_oid, oid::TEXT);
        assert_eq!(round_trip(&nested, &v), v);
    }

    #[test]
    fn arrays_reject_inconsistent_shapes() {
        let ty = int4_array();
        let shape = |dims: Vec<(i32, i32)>, n: i32| {
            Value::Array(Box::new(Array {
                dims: dims
                    .into_iter()
                    .map(|(len, lower_bound)| ArrayDim { len, lower_bound })
                    .collect(),
                values: (0..n).map(Value::Int32).collect(),
            }))
        };
        assert!(encode_err(&ty, &shape(vec![(2, 1)], 3)).contains("2 elements"));
        assert!(encode_err(&ty, &shape(vec![], 1)).contains("0 elements"));
        assert!(encode_err(&ty, &shape(vec![(1, i32::MAX)], 1)).contains("overflow"));
        assert!(encode_err(&ty, &shape(vec![(1, 1); 7], 1)).contains("dimensions"));
        assert!(encode_err(&ty, &shape(vec![(-1, 1)], 0)).contains("length -1"));
        let nested = Value::Array(Box::new(Array::one_dimensional(vec![shape(
            vec![(1, 1)],
            1,
        )])));
        assert!(encode_err(&ty, &nested).contains("nested"));
        let wrong = Value::Array(Box::new(Array::one_dimensional(vec![Value::Text(text(
            "1",
        ))])));
        assert!(encode_err(&ty, &wrong).contains("text"));
        let no_oid = PgColumnType::new(DataType::Array(Box::new(DataType::Int32)), 1007, 0);
        assert!(encode_err(&no_oid, &shape(vec![(1, 1)], 1)).contains("element type OID"));
        assert!(encode_err(&ty, &Value::Int32(1)).contains("int32"));

        let good = body(&ty, &shape(vec![(2, 1)], 2));
        assert!(decode(&ty, good.slice(..good.len() - 1)).is_err());
        let mut trailing = BytesMut::from(&good[..]);
        trailing.put_u8(0);
        assert!(decode(&ty, trailing.freeze()).is_err());
        assert!(decode(&ty, unhex("0000000700000000000000170000")).is_err());
        assert!(decode(&ty, unhex("ffffffff0000000000000017")).is_err());
    }

    fn canonical_decimal() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            prop_oneof![Just(String::from("0")), "[1-9][0-9]{0,40}"],
            proptest::option::of("[0-9]{1,40}"),
        )
            .prop_map(|(neg, int, frac)| {
                let mut s = int;
                if let Some(f) = frac {
                    s.push('.');
                    s.push_str(&f);
                }
                let zero = s.bytes().all(|b| b == b'0' || b == b'.');
                if neg && !zero { format!("-{s}") } else { s }
            })
    }

    proptest! {
        #[test]
        fn prop_ints_round_trip(a: i16, b: i32, c: i64) {
            prop_assert_eq!(round_trip(&col(DataType::Int16), &Value::Int16(a)), Value::Int16(a));
            prop_assert_eq!(round_trip(&col(DataType::Int32), &Value::Int32(b)), Value::Int32(b));
            prop_assert_eq!(round_trip(&col(DataType::Int64), &Value::Int64(c)), Value::Int64(c));
            prop_assert_eq!(round_trip(&col(DataType::Int64), &Value::Int32(b)), Value::Int64(i64::from(b)));
            prop_assert_eq!(round_trip(&col(numeric()), &Value::Int64(c)), dec(&c.to_string()));
        }

        #[test]
        fn prop_floats_round_trip_bits(a: u32, b: u64) {
            let (f, g) = (f32::from_bits(a), f64::from_bits(b));
            match round_trip(&col(DataType::Float32), &Value::Float32(f)) {
                Value::Float32(x) => prop_assert_eq!(x.to_bits(), a),
                other => prop_assert!(false, "{other:?}"),
            }
            match round_trip(&col(DataType::Float64), &Value::Float64(g)) {
                Value::Float64(x) => prop_assert_eq!(x.to_bits(), b),
                other => prop_assert!(false, "{other:?}"),
            }
        }

        #[test]
        fn prop_numeric_text_round_trips(s in canonical_decimal()) {
            prop_assert_eq!(round_trip(&col(numeric()), &dec(&s)), dec(&s));
        }

        #[test]
        fn prop_numeric_leading_zeros_are_dropped(zeros in 1usize..6, s in canonical_decimal()) {
            let (sign, body) = s.strip_prefix('-').map_or(("", s.as_str()), |b| ("-", b));
            let padded = format!("{sign}{}{body}", "0".repeat(zeros));
            prop_assert_eq!(round_trip(&col(numeric()), &dec(&padded)), dec(&s));
        }

        #[test]
        fn prop_text_round_trips(s in "[^\u{0}]*") {
            let v = Value::Text(Text::from(s.as_str()));
            prop_assert_eq!(round_trip(&col(DataType::text()), &v), v.clone());
            let j = Value::Json(Text::from(s.as_str()));
            prop_assert_eq!(round_trip(&col(DataType::Json { binary: true }), &j), j);
        }
    }
}
