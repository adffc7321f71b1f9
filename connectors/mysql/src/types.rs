//! Type mapping between MySQL/MariaDB column types and Ferry's [`DataType`], in both
//! directions, as **data**: [`SOURCE_TYPES`] (MySQL → logical) and [`TARGET_TYPES`]
//! (logical → MySQL). Each row says what is mapped, to what, and what is lost; the
//! functions below only pick the row and fill in its parameters.

use crate::connect::Flavor;
use ferry_core::{DataType, FindingLevel};

/// Which integer columns a [`SourceMapping`] row applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// Signed and unsigned alike (or not a number).
    Any,
    /// Only signed columns.
    Signed,
    /// Only `UNSIGNED` columns.
    Unsigned,
}

/// Extra condition of a [`SourceMapping`] row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Always.
    Always,
    /// Only with the source option `tinyint1-as-bool` (on by default).
    Tinyint1AsBool,
    /// Only for a MariaDB `LONGTEXT` column with a `json_valid()` check (MariaDB's
    /// `JSON` alias).
    JsonCheck,
}

/// The logical type a [`SourceMapping`] produces, with the parameters it takes from
/// the column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// [`DataType::Bool`] (`TINYINT(1)` holding 0/1; other values are an error).
    Bool,
    /// [`DataType::Int16`].
    Int16,
    /// [`DataType::Int32`].
    Int32,
    /// [`DataType::Int64`].
    Int64,
    /// [`DataType::UInt64`].
    UInt64,
    /// [`DataType::Float32`].
    Float32,
    /// [`DataType::Float64`].
    Float64,
    /// [`DataType::Decimal`] with the column's precision and scale.
    Decimal,
    /// Fixed-length [`DataType::Text`] of the column's length (MySQL strips trailing
    /// blanks of `CHAR` on read; the source pads them back).
    Char,
    /// [`DataType::Text`] limited to the column's length in characters.
    VarChar,
    /// Unbounded [`DataType::Text`] (the `TEXT` family limits bytes, not characters).
    Text,
    /// [`DataType::Bytes`].
    Bytes,
    /// `BIT(1)` → [`DataType::Bool`], `BIT(n)` → [`DataType::Bytes`] (big-endian,
    /// `ceil(n/8)` bytes).
    Bit,
    /// [`DataType::Date`].
    Date,
    /// [`DataType::Timestamp`].
    Timestamp,
    /// [`DataType::TimestampTz`] (read in UTC: the session's `time_zone` is `+00:00`).
    TimestampTz,
    /// [`DataType::Interval`] (microseconds only; `TIME` is a signed duration).
    Interval,
    /// [`DataType::Enum`] named `<table>_<column>` with the column's members.
    Enum,
    /// [`DataType::Array`] of text: the members present in the value, in the order of
    /// the set's definition.
    Set,
    /// [`DataType::Json`] (binary).
    Json,
    /// [`DataType::Uuid`] (MariaDB `UUID`).
    Uuid,
    /// [`DataType::Inet`] (MariaDB `INET4`/`INET6`, a host address).
    Inet,
    /// [`DataType::Other`]: geometry and anything not listed; values are the
    /// server's bytes.
    Other,
}

/// One row of the MySQL → logical mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceMapping {
    /// `information_schema.COLUMNS.DATA_TYPE`, lower case.
    pub mysql: &'static str,
    /// Which signedness the row applies to.
    pub sign: Sign,
    /// Extra condition.
    pub when: When,
    /// The logical type.
    pub to: To,
    /// What the mapping loses, if anything (for documentation and assessment).
    pub loss: &'static str,
}

const fn row(mysql: &'static str, sign: Sign, to: To) -> SourceMapping {
    SourceMapping {
        mysql,
        sign,
        when: When::Always,
        to,
        loss: "",
    }
}

const fn lossy(mysql: &'static str, sign: Sign, to: To, loss: &'static str) -> SourceMapping {
    SourceMapping {
        mysql,
        sign,
        when: When::Always,
        to,
        loss,
    }
}

/// MySQL/MariaDB → logical type. The first matching row wins.
pub const SOURCE_TYPES: &[SourceMapping] = &[
    SourceMapping {
        mysql: "tinyint",
        sign: Sign::Signed,
        when: When::Tinyint1AsBool,
        to: To::Bool,
        loss: "",
    },
    row("tinyint", Sign::Any, To::Int16),
    row("smallint", Sign::Signed, To::Int16),
    row("smallint", Sign::Unsigned, To::Int32),
    row("mediumint", Sign::Any, To::Int32),
    row("int", Sign::Signed, To::Int32),
    row("int", Sign::Unsigned, To::Int64),
    row("integer", Sign::Signed, To::Int32),
    row("integer", Sign::Unsigned, To::Int64),
    row("bigint", Sign::Signed, To::Int64),
    row("bigint", Sign::Unsigned, To::UInt64),
    lossy(
        "decimal",
        Sign::Unsigned,
        To::Decimal,
        "the UNSIGNED constraint is not kept",
    ),
    row("decimal", Sign::Any, To::Decimal),
    row("numeric", Sign::Any, To::Decimal),
    row("float", Sign::Any, To::Float32),
    row("double", Sign::Any, To::Float64),
    row("real", Sign::Any, To::Float64),
    row("bit", Sign::Any, To::Bit),
    lossy(
        "year",
        Sign::Any,
        To::Int16,
        "YEAR becomes a plain integer (1901..2155, or 0)",
    ),
    row("date", Sign::Any, To::Date),
    row("datetime", Sign::Any, To::Timestamp),
    row("timestamp", Sign::Any, To::TimestampTz),
    row("time", Sign::Any, To::Interval),
    row("char", Sign::Any, To::Char),
    row("varchar", Sign::Any, To::VarChar),
    SourceMapping {
        mysql: "longtext",
        sign: Sign::Any,
        when: When::JsonCheck,
        to: To::Json,
        loss: "",
    },
    row("tinytext", Sign::Any, To::Text),
    row("text", Sign::Any, To::Text),
    row("mediumtext", Sign::Any, To::Text),
    row("longtext", Sign::Any, To::Text),
    row("binary", Sign::Any, To::Bytes),
    row("varbinary", Sign::Any, To::Bytes),
    row("tinyblob", Sign::Any, To::Bytes),
    row("blob", Sign::Any, To::Bytes),
    row("mediumblob", Sign::Any, To::Bytes),
    row("longblob", Sign::Any, To::Bytes),
    row("enum", Sign::Any, To::Enum),
    lossy(
        "set",
        Sign::Any,
        To::Set,
        "SET becomes an array of text: the allowed members are not enforced",
    ),
    row("json", Sign::Any, To::Json),
    row("uuid", Sign::Any, To::Uuid),
    row("inet6", Sign::Any, To::Inet),
    row("inet4", Sign::Any, To::Inet),
];

/// What the source knows about a column's type (from `information_schema.COLUMNS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnTypeInfo {
    /// `DATA_TYPE`, lower case (`int`, `varchar`, ...).
    pub data_type: String,
    /// `COLUMN_TYPE` as the server prints it (`int(10) unsigned zerofill`,
    /// `enum('a','B')`: members keep their case).
    pub column_type: String,
    /// `CHARACTER_MAXIMUM_LENGTH` (characters for text, bytes for binary).
    pub char_len: Option<u64>,
    /// `NUMERIC_PRECISION` (digits for decimals, bits for `BIT`).
    pub precision: Option<u64>,
    /// `NUMERIC_SCALE`.
    pub scale: Option<u64>,
    /// MariaDB: the column has a `json_valid(column)` check constraint.
    pub json_check: bool,
}

impl ColumnTypeInfo {
    fn unsigned(&self) -> bool {
        self.column_type.to_ascii_lowercase().contains("unsigned")
    }
}

/// The mapping row for a column, honouring `tinyint1_as_bool`.
pub fn source_mapping(
    info: &ColumnTypeInfo,
    tinyint1_as_bool: bool,
) -> Option<&'static SourceMapping> {
    let unsigned = info.unsigned();
    SOURCE_TYPES.iter().find(|m| {
        m.mysql == info.data_type
            && match m.sign {
                Sign::Any => true,
                Sign::Signed => !unsigned,
                Sign::Unsigned => unsigned,
            }
            && match m.when {
                When::Always => true,
                When::Tinyint1AsBool => {
                    tinyint1_as_bool && info.column_type.eq_ignore_ascii_case("tinyint(1)")
                }
                When::JsonCheck => info.json_check,
            }
    })
}

/// The logical type of a column. `enum_name` names an enum type (`<table>_<column>`).
pub fn logical_type(
    info: &ColumnTypeInfo,
    tinyint1_as_bool: bool,
    enum_name: &str,
) -> (DataType, To) {
    let Some(mapping) = source_mapping(info, tinyint1_as_bool) else {
        return (
            DataType::Other {
                engine: "mysql".into(),
                name: info.column_type.clone(),
            },
            To::Other,
        );
    };
    let len = || info.char_len.and_then(|n| u32::try_from(n).ok());
    let data_type = match mapping.to {
        To::Bool => DataType::Bool,
        To::Int16 => DataType::Int16,
        To::Int32 => DataType::Int32,
        To::Int64 => DataType::Int64,
        To::UInt64 => DataType::UInt64,
        To::Float32 => DataType::Float32,
        To::Float64 => DataType::Float64,
        To::Decimal => DataType::Decimal {
            precision: info.precision.and_then(|p| u32::try_from(p).ok()),
            scale: Some(info.scale.and_then(|s| u32::try_from(s).ok()).unwrap_or(0)),
        },
        To::Char => DataType::Text {
            max_len: len(),
            fixed: true,
        },
        To::VarChar => DataType::Text {
            max_len: len(),
            fixed: false,
        },
        To::Text => DataType::text(),
        To::Bytes => DataType::Bytes,
        To::Bit if info.precision == Some(1) => DataType::Bool,
        To::Bit => DataType::Bytes,
        To::Date => DataType::Date,
        To::Timestamp => DataType::Timestamp,
        To::TimestampTz => DataType::TimestampTz,
        To::Interval => DataType::Interval,
        To::Enum => DataType::Enum {
            name: enum_name.to_string(),
            labels: members(&info.column_type),
        },
        To::Set => DataType::Array(Box::new(DataType::text())),
        To::Json => DataType::Json { binary: true },
        To::Uuid => DataType::Uuid,
        To::Inet => DataType::Inet,
        To::Other => DataType::Other {
            engine: "mysql".into(),
            name: info.column_type.clone(),
        },
    };
    (data_type, mapping.to)
}

/// The members of `enum('a','b''c')` / `set(...)`, unquoted, in order.
pub fn members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let body = column_type[open + 1..].trim_end().trim_end_matches(')');
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut member = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    member.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(next) = chars.next() {
                        member.push(next);
                    }
                }
                c => member.push(c),
            }
        }
        out.push(member);
    }
    out
}

// ---------------------------------------------------------------------------------
// Logical → MySQL (the sink)

/// The shape of a logical type that decides its MySQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// bool.
    Bool,
    /// int16.
    Int16,
    /// int32.
    Int32,
    /// int64.
    Int64,
    /// uint64.
    UInt64,
    /// float32.
    Float32,
    /// float64.
    Float64,
    /// decimal(p,s) within DECIMAL's limits (p ≤ 65, s ≤ 30).
    Decimal,
    /// decimal(p,s) beyond DECIMAL's limits.
    DecimalTooWide,
    /// decimal without precision.
    DecimalUnbounded,
    /// char(n), n ≤ 255.
    Char,
    /// char(n), n > 255.
    CharLong,
    /// varchar(n), n ≤ 16383 (65,535 bytes in utf8mb4).
    VarChar,
    /// varchar(n), n > 16383.
    VarCharLong,
    /// unbounded text.
    Text,
    /// bytes.
    Bytes,
    /// date.
    Date,
    /// time of day.
    Time,
    /// time with offset.
    TimeTz,
    /// timestamp without zone.
    Timestamp,
    /// timestamp with zone.
    TimestampTz,
    /// interval.
    Interval,
    /// uuid.
    Uuid,
    /// json (text kept as written at the source).
    Json,
    /// jsonb (normalised).
    Jsonb,
    /// inet.
    Inet,
    /// cidr.
    Cidr,
    /// macaddr.
    MacAddr,
    /// enum.
    Enum,
    /// array of anything.
    Array,
    /// a type Ferry does not map.
    Other,
}

/// The [`Kind`] of a logical type.
pub fn kind(data_type: &DataType) -> Kind {
    match data_type {
        DataType::Bool => Kind::Bool,
        DataType::Int16 => Kind::Int16,
        DataType::Int32 => Kind::Int32,
        DataType::Int64 => Kind::Int64,
        DataType::UInt64 => Kind::UInt64,
        DataType::Float32 => Kind::Float32,
        DataType::Float64 => Kind::Float64,
        DataType::Decimal {
            precision: Some(p),
            scale,
        } if *p <= 65 && scale.unwrap_or(0) <= 30 && scale.unwrap_or(0) <= *p => Kind::Decimal,
        DataType::Decimal {
            precision: Some(_), ..
        } => Kind::DecimalTooWide,
        DataType::Decimal { .. } => Kind::DecimalUnbounded,
        DataType::Text {
            max_len: Some(n),
            fixed: true,
        } if *n <= 255 => Kind::Char,
        DataType::Text {
            max_len: Some(_),
            fixed: true,
        } => Kind::CharLong,
        DataType::Text {
            max_len: Some(n),
            fixed: false,
        } if *n <= MAX_VARCHAR => Kind::VarChar,
        DataType::Text {
            max_len: Some(_), ..
        } => Kind::VarCharLong,
        DataType::Text { max_len: None, .. } => Kind::Text,
        DataType::Bytes => Kind::Bytes,
        DataType::Date => Kind::Date,
        DataType::Time => Kind::Time,
        DataType::TimeTz => Kind::TimeTz,
        DataType::Timestamp => Kind::Timestamp,
        DataType::TimestampTz => Kind::TimestampTz,
        DataType::Interval => Kind::Interval,
        DataType::Uuid => Kind::Uuid,
        DataType::Json { binary: false } => Kind::Json,
        DataType::Json { binary: true } => Kind::Jsonb,
        DataType::Inet => Kind::Inet,
        DataType::Cidr => Kind::Cidr,
        DataType::MacAddr => Kind::MacAddr,
        DataType::Enum { .. } => Kind::Enum,
        DataType::Array(_) => Kind::Array,
        DataType::Other { .. } => Kind::Other,
    }
}

/// Longest `VARCHAR` in characters that fits MySQL's 65,535-byte limit in utf8mb4.
pub const MAX_VARCHAR: u32 = 16_383;

/// One row of the logical → MySQL mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetMapping {
    /// The logical shape.
    pub kind: Kind,
    /// Only for this server, or both.
    pub flavor: Option<Flavor>,
    /// The MySQL type; `{p}`, `{s}`, `{n}` and `{labels}` are filled in from the
    /// logical type.
    pub sql: &'static str,
    /// How serious the loss is, when there is one.
    pub level: Option<FindingLevel>,
    /// What is lost and what to do about it.
    pub note: &'static str,
}

const fn exact(kind: Kind, sql: &'static str) -> TargetMapping {
    TargetMapping {
        kind,
        flavor: None,
        sql,
        level: None,
        note: "",
    }
}

const fn note(
    kind: Kind,
    sql: &'static str,
    level: FindingLevel,
    note: &'static str,
) -> TargetMapping {
    TargetMapping {
        kind,
        flavor: None,
        sql,
        level: Some(level),
        note,
    }
}

/// Logical → MySQL/MariaDB. The first row for the kind (and flavour) wins.
pub const TARGET_TYPES: &[TargetMapping] = &[
    exact(Kind::Bool, "TINYINT(1)"),
    exact(Kind::Int16, "SMALLINT"),
    exact(Kind::Int32, "INT"),
    exact(Kind::Int64, "BIGINT"),
    exact(Kind::UInt64, "BIGINT UNSIGNED"),
    exact(Kind::Float32, "FLOAT"),
    exact(Kind::Float64, "DOUBLE"),
    exact(Kind::Decimal, "DECIMAL({p},{s})"),
    note(
        Kind::DecimalTooWide,
        "DECIMAL(65,30)",
        FindingLevel::Warning,
        "MySQL's DECIMAL holds at most 65 digits, 30 after the point; values beyond \
         that fail to load (bad-data policy) — map the column to text with a rule if they exist",
    ),
    note(
        Kind::DecimalUnbounded,
        "DECIMAL(65,30)",
        FindingLevel::Warning,
        "numeric without precision is stored as DECIMAL(65,30): values with more than 35 \
         integer digits or 30 decimal places do not fit, and the scale of every value \
         becomes 30 (1.5 reads back as 1.500000000000000000000000000000); NaN and \
         infinities cannot be stored",
    ),
    exact(Kind::Char, "CHAR({n})"),
    note(
        Kind::CharLong,
        "VARCHAR({n})",
        FindingLevel::Info,
        "CHAR holds at most 255 characters: created as VARCHAR, values keep their blanks",
    ),
    exact(Kind::VarChar, "VARCHAR({n})"),
    note(
        Kind::VarCharLong,
        "LONGTEXT",
        FindingLevel::Info,
        "VARCHAR in utf8mb4 holds at most 16,383 characters: created as LONGTEXT, the \
         length limit is not enforced",
    ),
    exact(Kind::Text, "LONGTEXT"),
    exact(Kind::Bytes, "LONGBLOB"),
    exact(Kind::Date, "DATE"),
    note(
        Kind::Time,
        "TIME(6)",
        FindingLevel::Info,
        "stored as TIME(6), which MySQL treats as a duration: Ferry reads it back as an interval",
    ),
    note(
        Kind::TimeTz,
        "VARCHAR(32)",
        FindingLevel::Warning,
        "MySQL has no time with time zone: stored as text such as 12:00:00+05:30",
    ),
    exact(Kind::Timestamp, "DATETIME(6)"),
    note(
        Kind::TimestampTz,
        "DATETIME(6)",
        FindingLevel::Info,
        "stored as DATETIME(6) in UTC (MySQL's TIMESTAMP only reaches 2038); the column no \
         longer says it is UTC",
    ),
    note(
        Kind::Interval,
        "TIME(6)",
        FindingLevel::Warning,
        "stored as TIME(6): intervals with months, or beyond ±838:59:59, do not fit and are \
         handled by the bad-data policy",
    ),
    note(
        Kind::Uuid,
        "CHAR(36)",
        FindingLevel::Info,
        "MySQL has no uuid type: stored as CHAR(36) text (lower-case, hyphenated)",
    ),
    TargetMapping {
        kind: Kind::Json,
        flavor: Some(Flavor::MySql),
        sql: "JSON",
        level: Some(FindingLevel::Warning),
        note: "MySQL's JSON normalises documents (key order, whitespace, duplicate keys): \
               the text is not kept byte for byte",
    },
    exact(Kind::Json, "JSON"),
    exact(Kind::Jsonb, "JSON"),
    note(
        Kind::Inet,
        "VARCHAR(43)",
        FindingLevel::Info,
        "MySQL has no inet type: stored as text (address/prefix)",
    ),
    note(
        Kind::Cidr,
        "VARCHAR(43)",
        FindingLevel::Info,
        "MySQL has no cidr type: stored as text (network/prefix)",
    ),
    note(
        Kind::MacAddr,
        "VARCHAR(17)",
        FindingLevel::Info,
        "MySQL has no macaddr type: stored as text (08:00:2b:01:02:03)",
    ),
    exact(Kind::Enum, "ENUM({labels})"),
    note(
        Kind::Array,
        "JSON",
        FindingLevel::Warning,
        "MySQL has no arrays: stored as a JSON array (a NULL element becomes JSON null)",
    ),
    note(
        Kind::Other,
        "LONGBLOB",
        FindingLevel::Warning,
        "the type has no MySQL equivalent: its raw bytes are stored as LONGBLOB",
    ),
];

/// The MySQL type for a logical type on `flavor`, and the loss (level and note)
/// when the mapping is not exact.
pub fn target_type(
    data_type: &DataType,
    flavor: Flavor,
) -> (String, Option<(FindingLevel, String)>) {
    let k = kind(data_type);
    let Some(mapping) = TARGET_TYPES
        .iter()
        .find(|m| m.kind == k && m.flavor.is_none_or(|f| f == flavor))
    else {
        return (
            "LONGBLOB".into(),
            Some((
                FindingLevel::Warning,
                format!("{data_type} has no MySQL mapping"),
            )),
        );
    };
    let mut sql = mapping.sql.to_string();
    match data_type {
        DataType::Decimal {
            precision: Some(p),
            scale,
        } => {
            sql = sql
                .replace("{p}", &p.to_string())
                .replace("{s}", &scale.unwrap_or(0).to_string());
        }
        DataType::Text {
            max_len: Some(n), ..
        } => sql = sql.replace("{n}", &n.to_string()),
        DataType::Enum { labels, .. } => {
            let list = labels
                .iter()
                .map(|l| crate::connect::quote_literal(l))
                .collect::<Vec<_>>()
                .join(",");
            sql = sql.replace("{labels}", &list);
        }
        _ => {}
    }
    let loss = mapping.level.map(|l| (l, mapping.note.to_string()));
    (sql, loss)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(data_type: &str, column_type: &str) -> ColumnTypeInfo {
        ColumnTypeInfo {
            data_type: data_type.into(),
            column_type: column_type.into(),
            ..ColumnTypeInfo::default()
        }
    }

    #[test]
    fn integers_by_signedness() {
        let t = |dt: &str, ct: &str| logical_type(&info(dt, ct), true, "e").0;
        assert_eq!(t("tinyint", "tinyint(4)"), DataType::Int16);
        assert_eq!(t("tinyint", "tinyint(1)"), DataType::Bool);
        assert_eq!(t("tinyint", "tinyint(1) unsigned"), DataType::Int16);
        assert_eq!(t("smallint", "smallint(5) unsigned"), DataType::Int32);
        assert_eq!(t("mediumint", "mediumint(8) unsigned"), DataType::Int32);
        assert_eq!(t("int", "int(10) unsigned zerofill"), DataType::Int64);
        assert_eq!(t("int", "int(11)"), DataType::Int32);
        assert_eq!(t("bigint", "bigint(20) unsigned"), DataType::UInt64);
        assert_eq!(t("bigint", "bigint(20)"), DataType::Int64);
        assert_eq!(
            logical_type(&info("tinyint", "tinyint(1)"), false, "e").0,
            DataType::Int16
        );
    }

    #[test]
    fn parameters_come_from_the_column() {
        let mut i = info("decimal", "decimal(10,2) unsigned");
        i.precision = Some(10);
        i.scale = Some(2);
        assert_eq!(
            logical_type(&i, true, "e").0,
            DataType::Decimal {
                precision: Some(10),
                scale: Some(2)
            }
        );
        let mut c = info("char", "char(3)");
        c.char_len = Some(3);
        assert_eq!(
            logical_type(&c, true, "e").0,
            DataType::Text {
                max_len: Some(3),
                fixed: true
            }
        );
        let mut b = info("bit", "bit(1)");
        b.precision = Some(1);
        assert_eq!(logical_type(&b, true, "e").0, DataType::Bool);
        b.precision = Some(12);
        assert_eq!(logical_type(&b, true, "e").0, DataType::Bytes);
        let mut j = info("longtext", "longtext");
        assert_eq!(logical_type(&j, true, "e").0, DataType::text());
        j.json_check = true;
        assert_eq!(
            logical_type(&j, true, "e").0,
            DataType::Json { binary: true }
        );
        assert!(matches!(
            logical_type(&info("geometry", "point"), true, "e").0,
            DataType::Other { .. }
        ));
    }

    #[test]
    fn enum_and_set_members() {
        assert_eq!(members("enum('a','B c','it''s')"), vec!["a", "B c", "it's"]);
        assert_eq!(members("set('x','y')"), vec!["x", "y"]);
        assert_eq!(members("enum('')"), vec![""]);
        let (t, _) = logical_type(&info("enum", "enum('a','b')"), true, "t_c");
        assert_eq!(
            t,
            DataType::Enum {
                name: "t_c".into(),
                labels: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn every_kind_has_a_target_row() {
        let samples = [
            DataType::Bool,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::UInt64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal {
                precision: Some(12),
                scale: Some(3),
            },
            DataType::Decimal {
                precision: Some(100),
                scale: Some(3),
            },
            DataType::Decimal {
                precision: None,
                scale: None,
            },
            DataType::Text {
                max_len: Some(5),
                fixed: true,
            },
            DataType::Text {
                max_len: Some(500),
                fixed: true,
            },
            DataType::Text {
                max_len: Some(20),
                fixed: false,
            },
            DataType::Text {
                max_len: Some(20_000),
                fixed: false,
            },
            DataType::text(),
            DataType::Bytes,
            DataType::Date,
            DataType::Time,
            DataType::TimeTz,
            DataType::Timestamp,
            DataType::TimestampTz,
            DataType::Interval,
            DataType::Uuid,
            DataType::Json { binary: false },
            DataType::Json { binary: true },
            DataType::Inet,
            DataType::Cidr,
            DataType::MacAddr,
            DataType::Enum {
                name: "e".into(),
                labels: vec!["a".into(), "it's".into()],
            },
            DataType::Array(Box::new(DataType::Int32)),
            DataType::Other {
                engine: "postgres".into(),
                name: "tsvector".into(),
            },
        ];
        for flavor in [Flavor::MySql, Flavor::MariaDb] {
            for t in &samples {
                let k = kind(t);
                assert!(
                    TARGET_TYPES
                        .iter()
                        .any(|m| m.kind == k && m.flavor.is_none_or(|f| f == flavor)),
                    "{t} on {flavor:?}"
                );
                let (sql, _) = target_type(t, flavor);
                assert!(!sql.contains('{'), "{t}: {sql}");
            }
        }
        assert_eq!(target_type(&samples[7], Flavor::MariaDb).0, "DECIMAL(12,3)");
        assert_eq!(
            target_type(&samples[28], Flavor::MariaDb).0,
            "ENUM('a','it''s')"
        );
        assert!(
            target_type(&DataType::Json { binary: false }, Flavor::MySql)
                .1
                .is_some()
        );
        assert!(
            target_type(&DataType::Json { binary: false }, Flavor::MariaDb)
                .1
                .is_none()
        );
    }

    #[test]
    fn every_source_row_is_reachable() {
        for (i, m) in SOURCE_TYPES.iter().enumerate() {
            let earlier = SOURCE_TYPES[..i]
                .iter()
                .any(|e| e.mysql == m.mysql && e.sign == Sign::Any && e.when == When::Always);
            assert!(!earlier, "row {i} ({}) is shadowed", m.mysql);
        }
    }
}
