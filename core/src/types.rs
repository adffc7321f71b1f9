//! Engine-neutral logical column types.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The logical type of a column, independent of any engine.
///
/// Connectors map their native types to and from these; what cannot be mapped is
/// [`DataType::Other`], carried through unchanged between engines of the same kind
/// and reported by the assessment otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum DataType {
    /// true / false.
    Bool,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// Unsigned 64-bit integer.
    UInt64,
    /// IEEE 754 single precision.
    Float32,
    /// IEEE 754 double precision.
    Float64,
    /// Exact decimal; `None` precision means unconstrained.
    Decimal {
        /// Total significant digits, if constrained.
        precision: Option<u32>,
        /// Digits after the point, if constrained.
        scale: Option<u32>,
    },
    /// UTF-8 text, optionally limited to `max_len` characters.
    Text {
        /// Maximum length in characters (`varchar(n)`), if any.
        max_len: Option<u32>,
        /// Blank-padded fixed length (`char(n)`).
        fixed: bool,
    },
    /// Raw bytes.
    Bytes,
    /// Calendar date.
    Date,
    /// Time of day without zone.
    Time,
    /// Time of day with a UTC offset.
    TimeTz,
    /// Date and time without zone.
    Timestamp,
    /// An instant (stored as UTC).
    TimestampTz,
    /// Months, days and microseconds.
    Interval,
    /// 128-bit UUID.
    Uuid,
    /// JSON document; `binary` is true for a normalised storage form (jsonb).
    Json {
        /// Stored in a normalised binary form (PostgreSQL `jsonb`).
        binary: bool,
    },
    /// IPv4/IPv6 host address with optional netmask.
    Inet,
    /// IPv4/IPv6 network.
    Cidr,
    /// 6-byte MAC address.
    MacAddr,
    /// Enumerated type with its labels in order.
    Enum {
        /// The type's name at the source (e.g. `public.mood`).
        name: String,
        /// The labels in declaration order.
        labels: Vec<String>,
    },
    /// Array of an element type.
    Array(Box<DataType>),
    /// A type Ferry cannot map: the engine and its type name. Values are carried as
    /// the engine's own binary representation.
    Other {
        /// Engine that owns the type (e.g. `postgres`).
        engine: String,
        /// The engine's type name.
        name: String,
    },
}

impl DataType {
    /// Unbounded text.
    pub fn text() -> Self {
        DataType::Text {
            max_len: None,
            fixed: false,
        }
    }

    /// Whether this type (or its element type) is [`DataType::Other`].
    pub fn is_other(&self) -> bool {
        match self {
            DataType::Other { .. } => true,
            DataType::Array(inner) => inner.is_other(),
            _ => false,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => f.write_str("bool"),
            DataType::Int16 => f.write_str("int16"),
            DataType::Int32 => f.write_str("int32"),
            DataType::Int64 => f.write_str("int64"),
            DataType::UInt64 => f.write_str("uint64"),
            DataType::Float32 => f.write_str("float32"),
            DataType::Float64 => f.write_str("float64"),
            DataType::Decimal {
                precision: Some(p),
                scale,
            } => write!(f, "decimal({p},{})", scale.unwrap_or(0)),
            DataType::Decimal { .. } => f.write_str("decimal"),
            DataType::Text {
                max_len: Some(n),
                fixed: true,
            } => write!(f, "text(fixed {n})"),
            DataType::Text {
                max_len: Some(n), ..
            } => write!(f, "text({n})"),
            DataType::Text { .. } => f.write_str("text"),
            DataType::Bytes => f.write_str("bytes"),
            DataType::Date => f.write_str("date"),
            DataType::Time => f.write_str("time"),
            DataType::TimeTz => f.write_str("timetz"),
            DataType::Timestamp => f.write_str("timestamp"),
            DataType::TimestampTz => f.write_str("timestamptz"),
            DataType::Interval => f.write_str("interval"),
            DataType::Uuid => f.write_str("uuid"),
            DataType::Json { binary: false } => f.write_str("json"),
            DataType::Json { binary: true } => f.write_str("jsonb"),
            DataType::Inet => f.write_str("inet"),
            DataType::Cidr => f.write_str("cidr"),
            DataType::MacAddr => f.write_str("macaddr"),
            DataType::Enum { name, .. } => write!(f, "enum {name}"),
            DataType::Array(inner) => write!(f, "array({inner})"),
            DataType::Other { engine, name } => write!(f, "{engine} {name}"),
        }
    }
}
