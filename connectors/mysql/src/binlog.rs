//! Row-based binlog events → [`ChangeEvent`]s.
//!
//! Rows are parsed straight from the rows event's bytes with the column types and
//! metadata of the preceding table map event, into the driver's [`My`] values the
//! binary protocol would have produced, and then decoded by the same
//! [`codec::decode`] as the snapshot, so that a row reads the same whether it came
//! from the snapshot or from the binlog: `TIMESTAMP` (UTC epoch seconds in the
//! binlog) becomes the UTC date-time the snapshot reads with `time_zone = '+00:00'`,
//! `ENUM` indexes and `SET` bitmasks become their labels, latin1 text becomes UTF-8,
//! `CHAR` blanks and `BINARY` zero padding are restored, MariaDB `UUID`/`INET4`/`INET6`
//! become their text forms, MySQL binary JSON becomes JSON text.

use crate::catalog::MyTable;
use crate::codec::{self, Decode};
use crate::position::BinlogPosition;
use crate::types::{self, To};
use ferry_core::{
    ChangeEvent, DataType, Error, ErrorKind, Operation, Result, Row, TableSchema, Value,
};
use mysql_async::Value as My;
use mysql_async::binlog::events::{OptionalMetaExtractor, RowsEventData, TableMapEvent};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Microseconds between 1970-01-01 and 2000-01-01.
const UNIX_TO_2000_MICROS: i64 = 946_684_800_000_000;

/// Binlog seconds since 1970 → microseconds since 2000-01-01 UTC.
pub(crate) fn binlog_time(seconds: u32) -> i64 {
    i64::from(seconds) * 1_000_000 - UNIX_TO_2000_MICROS
}

/// Now, in microseconds since 2000-01-01 UTC.
pub(crate) fn now_micros() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    now - UNIX_TO_2000_MICROS
}

// ---------------------------------------------------------------------------------
// Column types of the table map

/// Binlog column type codes (`enum_field_types`).
mod ty {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

/// How one column is laid out in a rows event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// Little-endian integer of `n` bytes.
    Int(u8),
    /// `FLOAT`.
    Float,
    /// `DOUBLE`.
    Double,
    /// Binary `DECIMAL(p, s)`.
    Decimal(u8, u8),
    /// `YEAR` (one byte, 1900-based; 0 is year 0).
    Year,
    /// 3-byte `DATE`.
    Date,
    /// Old 8-byte `DATETIME` (`YYYYMMDDhhmmss`).
    DateTimeOld,
    /// `DATETIME(fsp)`.
    DateTime2(u8),
    /// Old 4-byte `TIMESTAMP`.
    TimestampOld,
    /// `TIMESTAMP(fsp)`.
    Timestamp2(u8),
    /// Old 3-byte `TIME`.
    TimeOld,
    /// `TIME(fsp)`.
    Time2(u8),
    /// `BIT(n)`: `n` bytes.
    Bit(u16),
    /// `ENUM` of 1 or 2 bytes.
    Enum(u8),
    /// `SET` of `n` bytes.
    Set(u8),
    /// Bytes with a length prefix of `n` bytes (`VARCHAR`, `CHAR`, blobs, geometry).
    Prefixed(u8),
    /// MySQL binary JSON with a length prefix of `n` bytes.
    Json(u8),
}

/// One column of a table map: its layout and, with `binlog_row_metadata = FULL`,
/// its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MapColumn {
    /// Layout.
    pub(crate) wire: Wire,
    /// Binlog type code (after resolving `ENUM`/`SET` hidden in `STRING`).
    pub(crate) code: u8,
    /// Name, if the server sent it.
    pub(crate) name: Option<String>,
}

/// A table map event, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableMap {
    /// Database.
    pub(crate) db: String,
    /// Table.
    pub(crate) table: String,
    /// Columns in table order.
    pub(crate) columns: Vec<MapColumn>,
}

fn wire_of(raw: u8, meta: &[u8]) -> std::result::Result<(u8, Wire), String> {
    let m = |i: usize| meta.get(i).copied().unwrap_or(0);
    Ok(match raw {
        ty::TINY => (raw, Wire::Int(1)),
        ty::SHORT => (raw, Wire::Int(2)),
        ty::INT24 => (raw, Wire::Int(3)),
        ty::LONG => (raw, Wire::Int(4)),
        ty::LONGLONG => (raw, Wire::Int(8)),
        ty::FLOAT => (raw, Wire::Float),
        ty::DOUBLE => (raw, Wire::Double),
        ty::NEWDECIMAL => (raw, Wire::Decimal(m(0), m(1))),
        ty::YEAR => (raw, Wire::Year),
        ty::DATE | ty::NEWDATE => (raw, Wire::Date),
        ty::DATETIME => (raw, Wire::DateTimeOld),
        ty::DATETIME2 => (raw, Wire::DateTime2(m(0))),
        ty::TIMESTAMP => (raw, Wire::TimestampOld),
        ty::TIMESTAMP2 => (raw, Wire::Timestamp2(m(0))),
        ty::TIME => (raw, Wire::TimeOld),
        ty::TIME2 => (raw, Wire::Time2(m(0))),
        ty::BIT => {
            let bits = u16::from(m(1)) * 8 + u16::from(m(0));
            (raw, Wire::Bit(bits.div_ceil(8)))
        }
        ty::VARCHAR | ty::VAR_STRING => {
            let max = u16::from_le_bytes([m(0), m(1)]);
            (raw, Wire::Prefixed(if max < 256 { 1 } else { 2 }))
        }
        ty::STRING | ty::ENUM | ty::SET => {
            let (b0, b1) = (m(0), m(1));
            let real = if b0 != 0 { b0 | 0x30 } else { raw };
            match real {
                ty::ENUM => (ty::ENUM, Wire::Enum(b1)),
                ty::SET => (ty::SET, Wire::Set(b1)),
                _ => {
                    let length = if (b0 & 0x30) != 0x30 {
                        usize::from(b1) | ((usize::from(b0 & 0x30) ^ 0x30) << 4)
                    } else {
                        usize::from(b1)
                    };
                    (ty::STRING, Wire::Prefixed(if length < 256 { 1 } else { 2 }))
                }
            }
        }
        ty::TINY_BLOB | ty::MEDIUM_BLOB | ty::LONG_BLOB | ty::BLOB | ty::GEOMETRY => {
            (raw, Wire::Prefixed(m(0)))
        }
        ty::JSON => (raw, Wire::Json(m(0))),
        ty::DECIMAL => return Err("pre-5.0 DECIMAL".into()),
        other => return Err(format!("binlog column type {other}")),
    })
}

impl TableMap {
    /// Parses a table map event.
    pub(crate) fn parse(tme: &TableMapEvent<'_>) -> Result<TableMap> {
        let db = tme.database_name().into_owned();
        let table = tme.table_name().into_owned();
        let n = tme.columns_count() as usize;
        let names: Vec<String> = match OptionalMetaExtractor::new(tme.iter_optional_meta()) {
            Ok(meta) => meta
                .iter_column_name()
                .filter_map(|r| r.ok().map(|c| c.name().into_owned()))
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut columns = Vec::with_capacity(n);
        for i in 0..n {
            let raw = match tme.get_raw_column_type(i) {
                Ok(Some(t)) => t as u8,
                _ => {
                    return Err(Error::new(
                        ErrorKind::Source,
                        format!(
                            "table map of {db}.{table}: unknown type of column {}",
                            i + 1
                        ),
                    ));
                }
            };
            let meta = tme.get_column_metadata(i).unwrap_or(&[]);
            let (code, wire) = wire_of(raw, meta).map_err(|what| {
                Error::unsupported(format!(
                    "{db}.{table} column {}: {what} cannot be read from the binlog",
                    names.get(i).map(String::as_str).unwrap_or("?")
                ))
            })?;
            columns.push(MapColumn {
                wire,
                code,
                name: names.get(i).cloned(),
            });
        }
        Ok(TableMap { db, table, columns })
    }
}

// ---------------------------------------------------------------------------------
// Per-column conversion

/// What to do with a parsed cell before [`codec::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fix {
    /// Nothing.
    None,
    /// latin1 (cp1252) text → UTF-8.
    Latin1,
    /// `CHAR(n)`: trailing blanks stripped (the snapshot pads them back).
    CharTrim { latin1: bool },
    /// `BINARY(n)`: zero-padded to `n` bytes.
    BinaryPad(usize),
    /// ENUM index → label.
    Enum(Vec<String>),
    /// SET bitmask → comma-separated members.
    Set(Vec<String>),
    /// `TIMESTAMP` epoch seconds → UTC date-time.
    Timestamp,
    /// MariaDB `UUID` bytes → text.
    Uuid,
    /// MariaDB `INET4`/`INET6` bytes (of this length) → text.
    Inet(usize),
    /// Unsigned integer of this many bytes.
    Unsigned(u8),
}

#[derive(Debug, Clone)]
struct ColumnCodec {
    wire: Wire,
    fix: Fix,
    decode: Decode,
}

/// Decodes the rows of one table, for one table map shape.
#[derive(Debug, Clone)]
pub(crate) struct RowCodec {
    /// The schema rows follow.
    pub(crate) schema: Arc<TableSchema>,
    columns: Vec<ColumnCodec>,
    /// The table map the codec was built for.
    map: TableMap,
}

/// Whether a binlog column type can carry values of a catalog column.
fn compatible(code: u8, column: &crate::catalog::MyColumn) -> bool {
    let t = column.info.data_type.as_str();
    match code {
        ty::TINY => matches!(t, "tinyint" | "bool" | "boolean"),
        ty::SHORT => t == "smallint",
        ty::INT24 => t == "mediumint",
        ty::LONG => matches!(t, "int" | "integer"),
        ty::LONGLONG => t == "bigint",
        ty::FLOAT => t == "float",
        ty::DOUBLE => matches!(t, "double" | "real" | "double precision"),
        ty::NEWDECIMAL => matches!(t, "decimal" | "numeric" | "fixed"),
        ty::YEAR => t == "year",
        ty::DATE | ty::NEWDATE => t == "date",
        ty::DATETIME | ty::DATETIME2 => t == "datetime",
        ty::TIMESTAMP | ty::TIMESTAMP2 => t == "timestamp",
        ty::TIME | ty::TIME2 => t == "time",
        ty::BIT => t == "bit",
        ty::ENUM => t == "enum",
        ty::SET => t == "set",
        ty::JSON => t == "json",
        _ => !matches!(
            t,
            "tinyint"
                | "smallint"
                | "mediumint"
                | "int"
                | "bigint"
                | "float"
                | "double"
                | "decimal"
                | "year"
                | "date"
                | "datetime"
                | "timestamp"
                | "time"
                | "bit"
                | "enum"
                | "set"
        ),
    }
}

impl RowCodec {
    /// The codec for `table` (as discovered) read through `map`, or why they do not
    /// match (the table changed since it was discovered).
    pub(crate) fn new(table: &MyTable, map: &TableMap) -> std::result::Result<RowCodec, String> {
        if table.columns.len() != map.columns.len()
            || table.schema.columns.len() != map.columns.len()
        {
            return Err(format!(
                "the binlog has {} columns, the table had {}",
                map.columns.len(),
                table.columns.len()
            ));
        }
        let mut columns = Vec::with_capacity(map.columns.len());
        for ((mc, my), col) in map
            .columns
            .iter()
            .zip(&table.columns)
            .zip(&table.schema.columns)
        {
            if let Some(name) = &mc.name
                && name != &col.name
            {
                return Err(format!("column {name} is now where {} was", col.name));
            }
            if !compatible(mc.code, my) {
                return Err(format!(
                    "column {} has binlog type {} but was {}",
                    col.name, mc.code, my.info.column_type
                ));
            }
            let latin1 = my
                .charset
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("latin1"));
            let column_type = my.info.column_type.to_ascii_lowercase();
            let fix = match (mc.wire, my.to) {
                (Wire::Enum(_), _) => match &col.data_type {
                    DataType::Enum { labels, .. } => Fix::Enum(labels.clone()),
                    _ => Fix::Enum(types::members(&my.info.column_type)),
                },
                (Wire::Set(_), _) => Fix::Set(types::members(&my.info.column_type)),
                (Wire::Timestamp2(_) | Wire::TimestampOld, _) => Fix::Timestamp,
                (_, To::Uuid) => Fix::Uuid,
                (_, To::Inet) => Fix::Inet(if my.info.data_type == "inet4" { 4 } else { 16 }),
                (_, To::Char) => Fix::CharTrim { latin1 },
                (Wire::Prefixed(_), To::Bytes) if column_type.starts_with("binary(") => {
                    Fix::BinaryPad(my.info.char_len.unwrap_or(0) as usize)
                }
                (Wire::Prefixed(_), To::VarChar | To::Text | To::Enum | To::Set) if latin1 => {
                    Fix::Latin1
                }
                (Wire::Int(n), _) if column_type.contains("unsigned") => Fix::Unsigned(n),
                _ => Fix::None,
            };
            columns.push(ColumnCodec {
                wire: mc.wire,
                fix,
                decode: Decode::for_column(&col.data_type, my.to),
            });
        }
        Ok(RowCodec {
            schema: Arc::new(table.schema.clone()),
            columns,
            map: map.clone(),
        })
    }

    /// Whether this codec was built for a table map of the same shape.
    pub(crate) fn fits(&self, map: &TableMap) -> bool {
        self.map.columns.len() == map.columns.len()
            && self.map.columns.iter().zip(&map.columns).all(|(a, b)| {
                a.wire == b.wire && (a.name.is_none() || b.name.is_none() || a.name == b.name)
            })
    }

    /// Decodes every row of `event` and hands each [`ChangeEvent`] to `emit`.
    /// `at` names the event for error messages.
    pub(crate) fn decode_rows(
        &self,
        event: &RowsEventData<'_>,
        commit_time: Option<i64>,
        at: &BinlogPosition,
        mut emit: impl FnMut(ChangeEvent),
    ) -> Result<()> {
        let op = match event {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                Operation::Insert
            }
            RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => {
                Operation::Update
            }
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                Operation::Delete
            }
            RowsEventData::PartialUpdateRowsEvent(_) => {
                return Err(Error::unsupported(format!(
                    "{}: partial JSON updates in the binlog (binlog_row_value_options = \
                     PARTIAL_JSON) cannot be captured; set binlog_row_value_options = '' on the \
                     server",
                    self.schema.id
                )));
            }
        };
        let n = self.columns.len();
        if event.num_columns() as usize != n {
            return Err(self.corrupt(
                at,
                "the rows event's column count differs from its table map",
            ));
        }
        let before_cols: Option<Vec<bool>> = event
            .columns_before_image()
            .map(|b| (0..n).map(|i| b.get(i).is_some_and(|x| *x)).collect());
        let after_cols: Option<Vec<bool>> = event
            .columns_after_image()
            .map(|b| (0..n).map(|i| b.get(i).is_some_and(|x| *x)).collect());
        let mut data: &[u8] = event.rows_data();
        while !data.is_empty() {
            let before = match &before_cols {
                Some(cols) => Some(self.row(&mut data, cols, Value::Null, at)?),
                None => None,
            };
            let after = match &after_cols {
                Some(cols) => Some(self.row(&mut data, cols, Value::Unchanged, at)?),
                None => None,
            };
            let (before, after) = match op {
                Operation::Insert => (None, after),
                Operation::Delete => (before, None),
                _ => (before, after),
            };
            emit(ChangeEvent {
                op,
                before,
                after,
                commit_time,
            });
        }
        Ok(())
    }

    fn corrupt(&self, at: &BinlogPosition, what: &str) -> Error {
        Error::new(
            ErrorKind::Source,
            format!(
                "{} at binlog {}:{}: {what}",
                self.schema.id, at.file, at.offset
            ),
        )
    }

    /// One row image: present-column bitmap `cols`, then a null bitmap over the
    /// present columns, then the values. Absent columns are `absent`.
    fn row(
        &self,
        data: &mut &[u8],
        cols: &[bool],
        absent: Value,
        at: &BinlogPosition,
    ) -> Result<Row> {
        let present = cols.iter().filter(|c| **c).count();
        let null_len = present.div_ceil(8);
        let (nulls, rest) = data
            .split_at_checked(null_len)
            .ok_or_else(|| self.corrupt(at, "row image ends early"))?;
        *data = rest;
        let mut row = Vec::with_capacity(cols.len());
        let mut k = 0usize;
        for (i, &is_present) in cols.iter().enumerate() {
            if !is_present {
                row.push(absent.clone());
                continue;
            }
            let is_null = nulls[k / 8] & (1 << (k % 8)) != 0;
            k += 1;
            if is_null {
                row.push(Value::Null);
                continue;
            }
            let column = &self.columns[i];
            let raw = parse_cell(column.wire, data).map_err(|what| {
                self.corrupt(
                    at,
                    &format!("column {}: {what}", self.schema.columns[i].name),
                )
            })?;
            let fixed = fix(&column.fix, raw);
            match codec::decode(&column.decode, fixed) {
                Ok(v) => row.push(v),
                Err(bad) => {
                    tracing::warn!(
                        table = %self.schema.id,
                        column = %self.schema.columns[i].name,
                        binlog = %format!("{}:{}", at.file, at.offset),
                        problem = ?bad.problem,
                        "a value in the binlog has no valid value (e.g. a zero date); it is sent as NULL"
                    );
                    row.push(Value::Null);
                }
            }
        }
        Ok(row)
    }
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> std::result::Result<&'a [u8], String> {
    let (head, rest) = data
        .split_at_checked(n)
        .ok_or_else(|| format!("value ends early (needs {n} bytes, {} left)", data.len()))?;
    *data = rest;
    Ok(head)
}

fn uint_le(b: &[u8]) -> u64 {
    b.iter()
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

fn uint_be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// Fractional-second bytes of a `*2` temporal type with `dec` digits.
fn frac_len(dec: u8) -> usize {
    usize::from(dec).div_ceil(2)
}

/// Microseconds of the big-endian signed fraction `b` (`dec` digits).
fn frac_micros(b: &[u8]) -> i64 {
    match b.len() {
        0 => 0,
        1 => i64::from(b[0] as i8) * 10_000,
        2 => i64::from(i16::from_be_bytes([b[0], b[1]])) * 100,
        _ => {
            let v = uint_be(&b[..3]) as i64;
            if v & 0x80_0000 != 0 {
                v - 0x100_0000
            } else {
                v
            }
        }
    }
}

/// Parses one non-NULL cell into the value the binary protocol would carry.
fn parse_cell(wire: Wire, data: &mut &[u8]) -> std::result::Result<My, String> {
    Ok(match wire {
        Wire::Int(n) => {
            let b = take(data, usize::from(n))?;
            // Signed value; `Fix::Unsigned` reinterprets it.
            let u = uint_le(b);
            let bits = u32::from(n) * 8;
            let signed = if bits < 64 && u & (1 << (bits - 1)) != 0 {
                (u as i64) - (1i64 << bits)
            } else {
                u as i64
            };
            My::Int(signed)
        }
        Wire::Float => {
            let b = take(data, 4)?;
            My::Float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        Wire::Double => {
            let b = take(data, 8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            My::Double(f64::from_le_bytes(a))
        }
        Wire::Decimal(p, s) => {
            let size =
                mysql_common::binlog::decimal::decimal_bin_size(usize::from(p), usize::from(s));
            let b = take(data, size)?;
            let d = mysql_common::binlog::decimal::Decimal::read_bin(
                b,
                usize::from(p),
                usize::from(s),
                false,
            )
            .map_err(|e| format!("bad DECIMAL: {e}"))?;
            My::Bytes(d.to_string().into_bytes())
        }
        Wire::Year => {
            let y = take(data, 1)?[0];
            My::Int(if y == 0 { 0 } else { 1900 + i64::from(y) })
        }
        Wire::Date => {
            let v = uint_le(take(data, 3)?);
            My::Date(
                (v >> 9) as u16,
                ((v >> 5) & 15) as u8,
                (v & 31) as u8,
                0,
                0,
                0,
                0,
            )
        }
        Wire::DateTimeOld => {
            let v = uint_le(take(data, 8)?);
            let (d, t) = (v / 1_000_000, v % 1_000_000);
            My::Date(
                (d / 10_000) as u16,
                ((d / 100) % 100) as u8,
                (d % 100) as u8,
                (t / 10_000) as u8,
                ((t / 100) % 100) as u8,
                (t % 100) as u8,
                0,
            )
        }
        Wire::DateTime2(dec) => {
            let int = uint_be(take(data, 5)?) as i64 - 0x80_0000_0000;
            let frac = frac_micros(take(data, frac_len(dec))?);
            let ymd = int >> 17;
            let ym = ymd >> 5;
            let hms = int & 0x1_FFFF;
            My::Date(
                (ym / 13) as u16,
                (ym % 13) as u8,
                (ymd & 31) as u8,
                (hms >> 12) as u8,
                ((hms >> 6) & 63) as u8,
                (hms & 63) as u8,
                frac.max(0) as u32,
            )
        }
        Wire::TimestampOld => {
            let secs = uint_le(take(data, 4)?) as i64;
            timestamp(secs, 0)
        }
        Wire::Timestamp2(dec) => {
            let secs = uint_be(take(data, 4)?) as i64;
            let frac = frac_micros(take(data, frac_len(dec))?);
            timestamp(secs, frac)
        }
        Wire::TimeOld => {
            let u = uint_le(take(data, 3)?) as i64;
            let v = if u & 0x80_0000 != 0 {
                u - 0x100_0000
            } else {
                u
            };
            let neg = v < 0;
            let a = v.unsigned_abs();
            let (h, m, s) = (a / 10_000, (a / 100) % 100, a % 100);
            My::Time(neg, (h / 24) as u32, (h % 24) as u8, m as u8, s as u8, 0)
        }
        Wire::Time2(dec) => {
            let packed: i64 = match dec {
                0 => (uint_be(take(data, 3)?) as i64 - 0x80_0000) << 24,
                1 | 2 => {
                    let mut int = uint_be(take(data, 3)?) as i64 - 0x80_0000;
                    let mut frac = i64::from(take(data, 1)?[0]);
                    if int < 0 && frac != 0 {
                        int += 1;
                        frac -= 0x100;
                    }
                    (int << 24) + frac * 10_000
                }
                3 | 4 => {
                    let mut int = uint_be(take(data, 3)?) as i64 - 0x80_0000;
                    let mut frac = uint_be(take(data, 2)?) as i64;
                    if int < 0 && frac != 0 {
                        int += 1;
                        frac -= 0x1_0000;
                    }
                    (int << 24) + frac * 100
                }
                _ => uint_be(take(data, 6)?) as i64 - 0x8000_0000_0000,
            };
            let neg = packed < 0;
            let a = packed.unsigned_abs();
            let hms = a >> 24;
            let micros = (a % (1 << 24)) as u32;
            let h = (hms >> 12) % (1 << 10);
            My::Time(
                neg,
                (h / 24) as u32,
                (h % 24) as u8,
                ((hms >> 6) % 64) as u8,
                (hms % 64) as u8,
                micros,
            )
        }
        Wire::Bit(n) => My::Bytes(take(data, usize::from(n))?.to_vec()),
        Wire::Enum(n) => My::UInt(uint_le(take(data, usize::from(n.max(1)))?)),
        Wire::Set(n) => My::UInt(uint_le(take(data, usize::from(n.max(1)).min(8))?)),
        Wire::Prefixed(n) => {
            let len = uint_le(take(data, usize::from(n))?) as usize;
            My::Bytes(take(data, len)?.to_vec())
        }
        Wire::Json(n) => {
            let len = uint_le(take(data, usize::from(n))?) as usize;
            let bytes = take(data, len)?;
            if bytes.is_empty() {
                My::Bytes(b"null".to_vec())
            } else {
                let value: mysql_common::binlog::jsonb::Value<'_> =
                    mysql_common::io::ParseBuf(bytes)
                        .parse(())
                        .map_err(|e| format!("bad binary JSON: {e}"))?;
                let json =
                    serde_json::Value::try_from(value).map_err(|e| format!("binary JSON: {e}"))?;
                My::Bytes(json.to_string().into_bytes())
            }
        }
    })
}

/// A `TIMESTAMP` (UTC epoch seconds) as the UTC date-time the snapshot reads; 0 is
/// the zero date.
fn timestamp(secs: i64, micros: i64) -> My {
    if secs == 0 && micros == 0 {
        return My::Date(0, 0, 0, 0, 0, 0, 0);
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = codec::civil_from_days(days - 10_957);
    My::Date(
        y as u16,
        m as u8,
        d as u8,
        (rem / 3600) as u8,
        ((rem / 60) % 60) as u8,
        (rem % 60) as u8,
        micros.max(0) as u32,
    )
}

/// cp1252 code points of bytes 0x80..=0x9F (MySQL's `latin1`).
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

/// MySQL `latin1` (cp1252) bytes → UTF-8.
fn latin1_to_utf8(bytes: Vec<u8>) -> Vec<u8> {
    if bytes.is_ascii() {
        return bytes;
    }
    let mut s = String::with_capacity(bytes.len() + 8);
    for b in bytes {
        s.push(match b {
            0x80..=0x9F => CP1252_HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        });
    }
    s.into_bytes()
}

fn fix(fix: &Fix, v: My) -> My {
    match (fix, v) {
        (Fix::None, v) => v,
        (Fix::Unsigned(bytes), My::Int(n)) => My::UInt(if *bytes >= 8 {
            n as u64
        } else {
            (n as u64) & ((1u64 << (u32::from(*bytes) * 8)) - 1)
        }),
        (Fix::Latin1, My::Bytes(b)) => My::Bytes(latin1_to_utf8(b)),
        (Fix::CharTrim { latin1 }, My::Bytes(mut b)) => {
            while b.last() == Some(&b' ') {
                b.pop();
            }
            My::Bytes(if *latin1 { latin1_to_utf8(b) } else { b })
        }
        (Fix::BinaryPad(n), My::Bytes(mut b)) => {
            if b.len() < *n {
                b.resize(*n, 0);
            }
            My::Bytes(b)
        }
        (Fix::Enum(labels), My::UInt(i)) => {
            match (i as usize).checked_sub(1).and_then(|i| labels.get(i)) {
                Some(label) => My::Bytes(label.as_bytes().to_vec()),
                None => My::Bytes(Vec::new()),
            }
        }
        (Fix::Set(members), My::UInt(mask)) => {
            let mut out = Vec::new();
            for (i, m) in members.iter().enumerate().take(64) {
                if mask & (1 << i) != 0 {
                    if !out.is_empty() {
                        out.push(b',');
                    }
                    out.extend_from_slice(m.as_bytes());
                }
            }
            My::Bytes(out)
        }
        (Fix::Timestamp, v) => v,
        // The binlog drops trailing zero bytes of these fixed-size binary types.
        (Fix::Uuid, My::Bytes(mut b)) if b.len() <= 16 => {
            b.resize(16, 0);
            My::Bytes(uuid_text(&b).into_bytes())
        }
        (Fix::Inet(4), My::Bytes(mut b)) if b.len() <= 4 => {
            b.resize(4, 0);
            My::Bytes(
                std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])
                    .to_string()
                    .into_bytes(),
            )
        }
        (Fix::Inet(_), My::Bytes(mut b)) if b.len() <= 16 => {
            b.resize(16, 0);
            let mut a = [0u8; 16];
            a.copy_from_slice(&b);
            My::Bytes(std::net::Ipv6Addr::from(a).to_string().into_bytes())
        }
        (_, v) => v,
    }
}

/// A UUID's 16 bytes as text (MariaDB's binlog carries them in text order).
fn uuid_text(u: &[u8]) -> String {
    let h: String = u.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether two schemas have the same columns and key (estimates aside).
pub(crate) fn same_shape(a: &TableSchema, b: &TableSchema) -> bool {
    a.columns == b.columns && a.primary_key == b.primary_key
}

/// The table as a table map with column names (`binlog_row_metadata = FULL`)
/// shows it: each column taken by name from `latest` (the table now) or `known`
/// (the table as last seen), when its binlog type fits. `None` without names or
/// when a column is in neither.
pub(crate) fn merge_by_names(map: &TableMap, latest: &MyTable, known: &MyTable) -> Option<MyTable> {
    let mut columns = Vec::with_capacity(map.columns.len());
    let mut my = Vec::with_capacity(map.columns.len());
    for mc in &map.columns {
        let name = mc.name.as_ref()?;
        let (column, mycol) = [latest, known].into_iter().find_map(|t| {
            let i = t.schema.column_index(name)?;
            compatible(mc.code, &t.columns[i])
                .then(|| (t.schema.columns[i].clone(), t.columns[i].clone()))
        })?;
        columns.push(column);
        my.push(mycol);
    }
    let names: std::collections::HashSet<String> = columns.iter().map(|c| c.name.clone()).collect();
    let has = |c: &String| names.contains(c);
    let mut schema = latest.schema.clone();
    schema.columns = columns;
    if !schema.primary_key.iter().all(has) {
        schema.primary_key.clear();
        schema.primary_key_name = None;
    }
    schema.unique_keys.retain(|k| k.columns.iter().all(has));
    schema.indexes.retain(|i| {
        i.parts.iter().all(|p| match p {
            ferry_core::IndexPart::Column(c) => has(c),
            ferry_core::IndexPart::Expression(_) => true,
        })
    });
    schema.foreign_keys.retain(|f| f.columns.iter().all(has));
    Some(MyTable {
        schema,
        columns: my,
        data_length: latest.data_length,
        engine: latest.engine.clone(),
    })
}

// ---------------------------------------------------------------------------------
// MariaDB GTIDs

/// MariaDB's GTID event (type 162): `seq_no` (8 bytes), `domain_id` (4), `flags2` (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MariaGtid {
    /// Sequence number.
    pub(crate) seq: u64,
    /// Replication domain.
    pub(crate) domain: u32,
    /// The transaction is one statement without BEGIN/COMMIT (DDL).
    pub(crate) standalone: bool,
}

impl MariaGtid {
    /// Parses the event's data.
    pub(crate) fn parse(data: &[u8]) -> Option<MariaGtid> {
        let seq = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
        let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
        let flags = *data.get(12)?;
        Some(MariaGtid {
            seq,
            domain,
            standalone: flags & 1 != 0,
        })
    }
}

/// A MariaDB GTID position (`gtid_binlog_pos`): per domain, the last server id and
/// sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GtidPos(BTreeMap<u32, (u32, u64)>);

impl GtidPos {
    /// Parses `0-1-42,1-2-7`; anything unparsable is left out.
    pub(crate) fn parse(text: &str) -> GtidPos {
        let mut map = BTreeMap::new();
        for part in text.split(',') {
            let mut it = part.trim().split('-');
            if let (Some(d), Some(s), Some(n), None) = (it.next(), it.next(), it.next(), it.next())
                && let (Ok(d), Ok(s), Ok(n)) = (d.parse(), s.parse(), n.parse())
            {
                map.insert(d, (s, n));
            }
        }
        GtidPos(map)
    }

    /// Records a transaction.
    pub(crate) fn update(&mut self, domain: u32, server: u32, seq: u64) {
        self.0.insert(domain, (server, seq));
    }

    /// `0-1-42,1-2-7`, or `None` when empty.
    pub(crate) fn render(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        Some(
            self.0
                .iter()
                .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

// ---------------------------------------------------------------------------------
// DDL

/// What a statement in a query event does to tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ddl {
    /// `BEGIN`.
    Begin,
    /// `COMMIT`.
    Commit,
    /// `ROLLBACK`.
    Rollback,
    /// `TRUNCATE [TABLE] t`.
    Truncate((Option<String>, String)),
    /// `ALTER TABLE t ...` (not a rename).
    Alter((Option<String>, String)),
    /// `ALTER TABLE t RENAME ...` / `RENAME TABLE t TO u, ...`: the old names.
    Rename(Vec<(Option<String>, String)>),
    /// `DROP TABLE t, u`.
    Drop(Vec<(Option<String>, String)>),
    /// `DROP DATABASE d`.
    DropDatabase(String),
    /// Anything else.
    Other,
}

/// A tiny tokenizer: words, backquoted identifiers, punctuation; comments skipped.
fn tokens(sql: &str) -> Vec<(String, bool)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < 64 {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            // `/*!50001 ...*/` version comments hold real SQL: keep their body.
            if b.get(i + 2) == Some(&b'!') {
                i += 3;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                match sql[i + 2..].find("*/") {
                    Some(end) => i += end + 4,
                    None => break,
                }
            }
        } else if c == b'*' && b.get(i + 1) == Some(&b'/') {
            i += 2;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') || c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'`' {
            let mut name = String::new();
            i += 1;
            let mut start = i;
            loop {
                match sql[i..].find('`') {
                    Some(rel) => {
                        name.push_str(&sql[start..i + rel]);
                        i += rel + 1;
                        if b.get(i) == Some(&b'`') {
                            name.push('`');
                            i += 1;
                            start = i;
                        } else {
                            break;
                        }
                    }
                    None => {
                        name.push_str(&sql[start..]);
                        i = b.len();
                        break;
                    }
                }
            }
            out.push((name, true));
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push((sql[start..i].to_string(), false));
        } else {
            out.push(((c as char).to_string(), false));
            i += 1;
        }
    }
    out
}

fn is_kw(tok: Option<&(String, bool)>, kw: &str) -> bool {
    tok.is_some_and(|(t, quoted)| !quoted && t.eq_ignore_ascii_case(kw))
}

/// Reads `[db.]name` at `*i`.
fn table_name(toks: &[(String, bool)], i: &mut usize) -> Option<(Option<String>, String)> {
    let first = toks.get(*i)?.0.clone();
    *i += 1;
    if toks.get(*i).is_some_and(|t| t.0 == "." && !t.1) {
        let second = toks.get(*i + 1)?.0.clone();
        *i += 2;
        Some((Some(first), second))
    } else {
        Some((None, first))
    }
}

/// Classifies a query event's statement.
pub(crate) fn parse_ddl(sql: &str) -> Ddl {
    let toks = tokens(sql);
    let kw = |i: usize, k: &str| is_kw(toks.get(i), k);
    if toks.is_empty() {
        return Ddl::Other;
    }
    if kw(0, "BEGIN") || (kw(0, "START") && kw(1, "TRANSACTION")) {
        return Ddl::Begin;
    }
    if kw(0, "COMMIT") {
        return Ddl::Commit;
    }
    if kw(0, "ROLLBACK") && !kw(1, "TO") {
        return Ddl::Rollback;
    }
    if kw(0, "TRUNCATE") {
        let mut i = if kw(1, "TABLE") { 2 } else { 1 };
        return table_name(&toks, &mut i).map_or(Ddl::Other, Ddl::Truncate);
    }
    if kw(0, "ALTER") {
        let mut i = 1;
        while kw(i, "ONLINE") || kw(i, "IGNORE") || kw(i, "OFFLINE") {
            i += 1;
        }
        if !kw(i, "TABLE") {
            return Ddl::Other;
        }
        i += 1;
        if kw(i, "IF") && kw(i + 1, "EXISTS") {
            i += 2;
        }
        let Some(name) = table_name(&toks, &mut i) else {
            return Ddl::Other;
        };
        // `RENAME TO`/`RENAME AS`/`RENAME new` renames the table; `RENAME COLUMN` /
        // `RENAME INDEX` / `RENAME KEY` do not.
        let mut depth = 0i32;
        let mut j = i;
        while j < toks.len() {
            let (t, quoted) = &toks[j];
            if !quoted && t == "(" {
                depth += 1;
            } else if !quoted && t == ")" {
                depth -= 1;
            } else if depth == 0
                && kw(j, "RENAME")
                && !(kw(j + 1, "COLUMN") || kw(j + 1, "INDEX") || kw(j + 1, "KEY"))
            {
                return Ddl::Rename(vec![name]);
            }
            j += 1;
        }
        return Ddl::Alter(name);
    }
    if kw(0, "RENAME") && kw(1, "TABLE") {
        let mut i = 2;
        let mut names = Vec::new();
        while let Some(name) = table_name(&toks, &mut i) {
            names.push(name);
            if !kw(i, "TO") {
                break;
            }
            i += 1;
            let _ = table_name(&toks, &mut i);
            if toks.get(i).is_some_and(|t| t.0 == "," && !t.1) {
                i += 1;
            } else {
                break;
            }
        }
        return Ddl::Rename(names);
    }
    if kw(0, "DROP") {
        let mut i = 1;
        if kw(i, "TEMPORARY") {
            return Ddl::Other;
        }
        if kw(i, "DATABASE") || kw(i, "SCHEMA") {
            i += 1;
            if kw(i, "IF") && kw(i + 1, "EXISTS") {
                i += 2;
            }
            return toks
                .get(i)
                .map_or(Ddl::Other, |t| Ddl::DropDatabase(t.0.clone()));
        }
        if !kw(i, "TABLE") {
            return Ddl::Other;
        }
        i += 1;
        if kw(i, "IF") && kw(i + 1, "EXISTS") {
            i += 2;
        }
        let mut names = Vec::new();
        while let Some(name) = table_name(&toks, &mut i) {
            names.push(name);
            if toks.get(i).is_some_and(|t| t.0 == "," && !t.1) {
                i += 1;
            } else {
                break;
            }
        }
        return Ddl::Drop(names);
    }
    Ddl::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: Option<&str>, name: &str) -> (Option<String>, String) {
        (db.map(str::to_string), name.to_string())
    }

    #[test]
    fn ddl_statements_are_classified() {
        assert_eq!(parse_ddl("BEGIN"), Ddl::Begin);
        assert_eq!(parse_ddl("COMMIT"), Ddl::Commit);
        assert_eq!(
            parse_ddl("truncate table `a`.`b`"),
            Ddl::Truncate(t(Some("a"), "b"))
        );
        assert_eq!(parse_ddl("TRUNCATE x"), Ddl::Truncate(t(None, "x")));
        assert_eq!(
            parse_ddl("ALTER TABLE t ADD COLUMN c INT"),
            Ddl::Alter(t(None, "t"))
        );
        assert_eq!(
            parse_ddl("alter table `d`.`t` rename column a to b"),
            Ddl::Alter(t(Some("d"), "t"))
        );
        assert_eq!(
            parse_ddl("ALTER TABLE t RENAME TO u"),
            Ddl::Rename(vec![t(None, "t")])
        );
        assert_eq!(
            parse_ddl("RENAME TABLE a TO b, c.d TO c.e"),
            Ddl::Rename(vec![t(None, "a"), t(Some("c"), "d")])
        );
        assert_eq!(
            parse_ddl("DROP TABLE IF EXISTS `t1`,`x`.`t2` /* generated by server */"),
            Ddl::Drop(vec![t(None, "t1"), t(Some("x"), "t2")])
        );
        assert_eq!(parse_ddl("DROP TEMPORARY TABLE t"), Ddl::Other);
        assert_eq!(
            parse_ddl("DROP DATABASE `db`"),
            Ddl::DropDatabase("db".into())
        );
        assert_eq!(parse_ddl("CREATE TABLE t (a int)"), Ddl::Other);
        assert_eq!(
            parse_ddl("/* c */ ALTER ONLINE TABLE `we``ird` ADD x INT"),
            Ddl::Alter(t(None, "we`ird"))
        );
    }

    #[test]
    fn gtid_positions_update_per_domain() {
        let mut g = GtidPos::parse("0-1-42,2-5-7");
        g.update(0, 1, 43);
        g.update(1, 3, 1);
        assert_eq!(g.render().as_deref(), Some("0-1-43,1-3-1,2-5-7"));
        assert_eq!(GtidPos::parse("").render(), None);
        let e = MariaGtid::parse(&[5, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1]).expect("gtid");
        assert_eq!(
            e,
            MariaGtid {
                seq: 5,
                domain: 2,
                standalone: true
            }
        );
    }

    #[test]
    fn temporal_cells() {
        // DATETIME(0) 2024-02-29 13:14:15: ym = 2024*13+2.
        let ym: i64 = 2024 * 13 + 2;
        let int = ((ym << 5 | 29) << 17) | (13 << 12) | (14 << 6) | 15;
        let bytes = ((int + 0x80_0000_0000) as u64).to_be_bytes();
        let mut data: &[u8] = &bytes[3..];
        assert_eq!(
            parse_cell(Wire::DateTime2(0), &mut data),
            Ok(My::Date(2024, 2, 29, 13, 14, 15, 0))
        );
        assert!(data.is_empty());
        // TIMESTAMP(3) 2000-01-01 00:00:01.5 UTC.
        let secs: u32 = 946_684_801;
        let mut bytes = secs.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(5000i16).to_be_bytes());
        let mut data: &[u8] = &bytes;
        assert_eq!(
            parse_cell(Wire::Timestamp2(3), &mut data),
            Ok(My::Date(2000, 1, 1, 0, 0, 1, 500_000))
        );
        // TIME(0) -01:00:00.
        let v = ((-(1i64 << 12)) + 0x80_0000) as u32;
        let bytes = v.to_be_bytes();
        let mut data: &[u8] = &bytes[1..];
        assert_eq!(
            parse_cell(Wire::Time2(0), &mut data),
            Ok(My::Time(true, 0, 1, 0, 0, 0))
        );
        assert_eq!(timestamp(0, 0), My::Date(0, 0, 0, 0, 0, 0, 0));
    }

    #[test]
    fn latin1_and_fixes() {
        assert_eq!(latin1_to_utf8(vec![b'a', 0xE9, 0x80]), "aé€".as_bytes());
        assert_eq!(
            fix(
                &Fix::Set(vec!["a".into(), "b".into(), "c".into()]),
                My::UInt(5)
            ),
            My::Bytes(b"a,c".to_vec())
        );
        assert_eq!(
            fix(&Fix::Enum(vec!["x".into()]), My::UInt(1)),
            My::Bytes(b"x".to_vec())
        );
        assert_eq!(fix(&Fix::Unsigned(8), My::Int(-1)), My::UInt(u64::MAX));
        assert_eq!(fix(&Fix::Unsigned(1), My::Int(-1)), My::UInt(255));
        assert_eq!(binlog_time(946_684_800), 0);
    }

    #[test]
    fn signed_integers() {
        let mut data: &[u8] = &[0xff, 0xff, 0xff];
        assert_eq!(parse_cell(Wire::Int(3), &mut data), Ok(My::Int(-1)));
        let mut data: &[u8] = &[0xff; 8];
        assert_eq!(parse_cell(Wire::Int(8), &mut data), Ok(My::Int(-1)));
    }
}
