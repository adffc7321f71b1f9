//! The conformance suite's tables and their edge values.

use super::Capabilities;
use crate::error::{Error, Result};
use crate::event::Row;
use crate::schema::{Column, Index, IndexPart, TableId, TableSchema, UniqueKey};
use crate::types::DataType;
use crate::value::{Array, Decimal, Interval, Text, Value};
use bytes::Bytes;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar, per
/// Howard Hinnant's `days_from_civil`; shifted below to the 2000-01-01 epoch.
fn days_from_civil_1970(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days from 2000-01-01 to the given date of the proleptic Gregorian calendar, the
/// representation of [`Value::Date`]. Years are astronomical: year 0 is 1 BC, -4713
/// is 4714 BC. Saturates at the `i32` range (which is ±infinity for dates).
pub fn days_since_2000(year: i32, month: u32, day: u32) -> i32 {
    let days = days_from_civil_1970(i64::from(year), i64::from(month), i64::from(day))
        - days_from_civil_1970(2000, 1, 1);
    i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX })
}

/// Microseconds from 2000-01-01 00:00:00 to the given date and time, the
/// representation of [`Value::Timestamp`] and [`Value::TimestampTz`] (UTC).
pub fn micros_since_2000(
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
) -> i64 {
    let days = i64::from(days_since_2000(year, month, day));
    let time = ((i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second)) * 1_000_000
        + i64::from(micros);
    days.saturating_mul(DAY_MICROS).saturating_add(time)
}

/// A short ASCII name for a type, used in column names (`c07_decimal_12_3`).
pub(super) fn slug(data_type: &DataType) -> String {
    match data_type {
        DataType::Bool => "bool".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Decimal {
            precision: Some(p),
            scale,
        } => format!("decimal_{p}_{}", scale.unwrap_or(0)),
        DataType::Decimal { .. } => "decimal".into(),
        DataType::Text {
            max_len: Some(n),
            fixed: true,
        } => format!("char_{n}"),
        DataType::Text {
            max_len: Some(n), ..
        } => format!("varchar_{n}"),
        DataType::Text { .. } => "text".into(),
        DataType::Bytes => "bytes".into(),
        DataType::Date => "date".into(),
        DataType::Time => "time".into(),
        DataType::TimeTz => "timetz".into(),
        DataType::Timestamp => "timestamp".into(),
        DataType::TimestampTz => "timestamptz".into(),
        DataType::Interval => "interval".into(),
        DataType::Uuid => "uuid".into(),
        DataType::Json { binary: false } => "json".into(),
        DataType::Json { binary: true } => "jsonb".into(),
        DataType::Inet => "inet".into(),
        DataType::Cidr => "cidr".into(),
        DataType::MacAddr => "macaddr".into(),
        DataType::Enum { .. } => "enum".into(),
        DataType::Array(inner) => format!("{}_array", slug(inner)),
        DataType::Other { .. } => "other".into(),
    }
}

fn column(name: &str, data_type: DataType, nullable: bool) -> Column {
    Column {
        name: name.into(),
        source_type: data_type.to_string(),
        data_type,
        nullable,
        default: None,
    }
}

/// Gives every enum (also inside arrays) a name of its own: `<namespace>.<table>_<column>`.
fn name_enums(data_type: &DataType, type_name: &str) -> DataType {
    match data_type {
        DataType::Enum { labels, .. } => DataType::Enum {
            name: type_name.into(),
            labels: labels.clone(),
        },
        DataType::Array(inner) => DataType::Array(Box::new(name_enums(inner, type_name))),
        other => other.clone(),
    }
}

/// The table with a column per declared type: `id int64 not null` (the primary key),
/// then `cNN_<type>` columns, all nullable.
pub(super) fn types_table(namespace: &str, name: &str, caps: &Capabilities) -> TableSchema {
    let mut columns = vec![column("id", DataType::Int64, false)];
    for (i, data_type) in caps.types.iter().enumerate() {
        let col_name = format!("c{i:02}_{}", slug(data_type));
        let data_type = name_enums(data_type, &format!("{namespace}.{name}_{col_name}"));
        columns.push(column(&col_name, data_type, true));
    }
    let mut schema = TableSchema::new(TableId::new(namespace, name), columns);
    schema.primary_key = vec!["id".into()];
    if caps.keys_and_indexes {
        schema.primary_key_name = Some(format!("{name}_pkey"));
    }
    schema
}

/// The rows of [`types_table`]: a row of NULLs, then every edge value of every
/// column at least once, then the edge values again mixed with NULLs. Keys are
/// not in insertion order and include `i64::MIN` and `i64::MAX`.
pub(super) fn types_rows(schema: &TableSchema, caps: &Capabilities) -> Result<Vec<Row>> {
    let edges = schema
        .columns
        .iter()
        .skip(1)
        .map(|c| edge_values(&c.data_type, caps))
        .collect::<Result<Vec<_>>>()?;
    let longest = edges.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let key = |r: usize| -> i64 {
        match r {
            0 => i64::MIN,
            1 => i64::MAX,
            _ => (r as i64 - 10) * 1_000_003,
        }
    };
    let mut rows = Vec::with_capacity(2 * longest + 1);
    let mut nulls = vec![Value::Int64(key(0))];
    nulls.extend(edges.iter().map(|_| Value::Null));
    rows.push(nulls);
    for r in 1..=2 * longest {
        let mut row = vec![Value::Int64(key(r))];
        for (c, values) in edges.iter().enumerate() {
            let value = if values.is_empty() {
                Value::Null
            } else if r <= longest {
                values[(r - 1) % values.len()].clone()
            } else if (r + c) % 4 == 0 {
                Value::Null
            } else {
                values[(r * 7 + c) % values.len()].clone()
            };
            row.push(value);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The plain table most checks load: `id int64, grp int64, label text not null,
/// note text` with the primary key `(grp, id)` (key order differs from column order),
/// plus a unique key on `label` and an index on `note` when
/// [`Capabilities::keys_and_indexes`]. With `extra`, a nullable `extra int64` column
/// is added (a different schema for the same table name).
pub(super) fn bulk_table(
    namespace: &str,
    name: &str,
    caps: &Capabilities,
    extra: bool,
) -> TableSchema {
    let mut columns = vec![
        column("id", DataType::Int64, false),
        column("grp", DataType::Int64, false),
        column("label", DataType::text(), false),
        column("note", DataType::text(), true),
    ];
    if extra {
        columns.push(column("extra", DataType::Int64, true));
    }
    let mut schema = TableSchema::new(TableId::new(namespace, name), columns);
    schema.primary_key = vec!["grp".into(), "id".into()];
    if caps.keys_and_indexes {
        schema.primary_key_name = Some(format!("{name}_pkey"));
        schema.unique_keys = vec![UniqueKey {
            name: format!("{name}_label_key"),
            columns: vec!["label".into()],
        }];
        schema.indexes = vec![Index {
            name: format!("{name}_note_idx"),
            unique: false,
            parts: vec![IndexPart::Column("note".into())],
            method: None,
            predicate: None,
        }];
    }
    schema
}

/// Rows `ids` of [`bulk_table`]; `tag` goes into every label so two loads of the
/// same keys differ. Labels are about 150 bytes so that a few thousand rows span
/// many storage pages.
pub(super) fn bulk_rows(ids: std::ops::Range<i64>, tag: &str, extra: bool) -> Vec<Row> {
    ids.map(|id| {
        let mut label = format!("{tag} row {id} ");
        while label.len() < 150 {
            label.push_str("·ü€😀 ");
        }
        let note = match id % 11 {
            0 => Value::Text(Text::from("")),
            n if n % 3 == 0 => Value::Null,
            _ => Value::Text(Text::from(format!("note {id}"))),
        };
        let mut row = vec![
            Value::Int64(id),
            Value::Int64(id % 7),
            Value::Text(Text::from(label)),
            note,
        ];
        if extra {
            row.push(if id % 2 == 0 {
                Value::Int64(id * 1000)
            } else {
                Value::Null
            });
        }
        row
    })
    .collect()
}

fn text(s: &str) -> Value {
    Value::Text(Text::from(s))
}

fn decimal(s: &str) -> Result<Value> {
    Decimal::parse(s)
        .map(Value::Decimal)
        .ok_or_else(|| Error::internal(format!("conformance: bad decimal literal {s:?}")))
}

/// `n` digits `1234567890…`, never starting with 0.
fn digits(n: usize) -> String {
    "1234567890".chars().cycle().take(n.max(1)).collect()
}

fn text_edges() -> Vec<String> {
    let long: String = "ab😀ü".repeat(2500);
    [
        "",
        " ",
        "a",
        "hello, world",
        "héllo wörld",
        "日本語テキスト",
        "emoji 😀🎉👍🏽 👨‍👩‍👧",
        "e\u{301} combining",
        "עברית RTL",
        "line\nbreak\r\ncrlf\ttab",
        "quote ' \" \\ backslash",
        "NULL",
        "\\N",
        "  padded  ",
        "ctrl \u{1}\u{1f}\u{7f}",
        "{\"a\": [1, null]}",
        "{1,\"2\",NULL}",
    ]
    .into_iter()
    .map(String::from)
    .chain(std::iter::once(long))
    .collect()
}

/// The values a column of `data_type` is loaded with (NULL is added by the rows).
pub(super) fn edge_values(data_type: &DataType, caps: &Capabilities) -> Result<Vec<Value>> {
    let floats = caps.float_specials;
    Ok(match data_type {
        DataType::Bool => vec![Value::Bool(true), Value::Bool(false)],
        DataType::Int16 => [0, 1, -1, i16::MIN, i16::MAX, 12345]
            .map(Value::Int16)
            .to_vec(),
        DataType::Int32 => [0, 1, -1, i32::MIN, i32::MAX, 1_234_567_890]
            .map(Value::Int32)
            .to_vec(),
        DataType::Int64 => [0, 1, -1, i64::MIN, i64::MAX, 1_234_567_890_123_456_789]
            .map(Value::Int64)
            .to_vec(),
        DataType::UInt64 => [0, 1, u64::MAX, 1 << 63, (1 << 63) - 1]
            .map(Value::UInt64)
            .to_vec(),
        DataType::Float32 => {
            let mut v = vec![
                0.0,
                -0.0,
                1.0,
                -1.5,
                0.1,
                std::f32::consts::PI,
                f32::MIN_POSITIVE,
                f32::from_bits(1),
                f32::MAX,
                f32::MIN,
            ];
            if floats {
                v.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
            }
            v.into_iter().map(Value::Float32).collect()
        }
        DataType::Float64 => {
            let mut v = vec![
                0.0,
                -0.0,
                1.0,
                -1.5,
                0.1,
                std::f64::consts::PI,
                1e15 + 0.3,
                f64::MIN_POSITIVE,
                f64::from_bits(1),
                f64::MAX,
                f64::MIN,
            ];
            if floats {
                v.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
            }
            v.into_iter().map(Value::Float64).collect()
        }
        DataType::Decimal {
            precision: Some(p),
            scale,
        } => {
            let (p, s) = (*p as usize, scale.unwrap_or(0) as usize);
            let int_digits = p.saturating_sub(s);
            let with_scale = |int: &str, frac: &str| {
                if s == 0 {
                    int.to_string()
                } else {
                    let mut f: String = frac.chars().take(s).collect();
                    while f.len() < s {
                        f.push('0');
                    }
                    format!("{int}.{f}")
                }
            };
            let max_int = if int_digits == 0 {
                "0".to_string()
            } else {
                "9".repeat(int_digits)
            };
            let mut v = vec![
                with_scale("0", ""),
                with_scale("1", "5"),
                with_scale("-1", "5"),
                with_scale(&max_int, &"9".repeat(s)),
                format!("-{}", with_scale(&max_int, &"9".repeat(s))),
            ];
            if s > 0 {
                v.push(with_scale("0", &format!("{}1", "0".repeat(s - 1))));
            }
            v.iter().map(|s| decimal(s)).collect::<Result<_>>()?
        }
        DataType::Decimal { .. } => {
            let n = caps.max_decimal_digits.max(2);
            let mut v = vec![
                "0".to_string(),
                "0.000".into(),
                "1".into(),
                "-1.50".into(),
                "0.000001".into(),
                "3.14159265358979323846264338327950288419716939937510".into(),
                "12345678901234567890.09876543210987654321".into(),
                digits(n),
                format!("-{}", digits(n)),
                format!("0.{}1", "0".repeat(n - 2)),
                format!("-{}.{}", digits(n / 2), digits(n - n / 2)),
            ];
            if caps.decimal_specials {
                v.extend(["NaN".into(), "Infinity".into(), "-Infinity".into()]);
            }
            v.iter().map(|s| decimal(s)).collect::<Result<_>>()?
        }
        DataType::Text {
            max_len: Some(n),
            fixed,
        } => {
            let n = *n as usize;
            let mut v: Vec<String> = text_edges()
                .into_iter()
                .filter(|s| s.chars().count() <= n)
                .collect();
            v.push("é😀a".chars().cycle().take(n).collect());
            if *fixed {
                for s in &mut v {
                    let len = s.chars().count();
                    s.extend(std::iter::repeat_n(' ', n - len));
                }
                v.dedup();
            }
            v.iter().map(|s| text(s)).collect()
        }
        DataType::Text { max_len: None, .. } => text_edges().iter().map(|s| text(s)).collect(),
        DataType::Bytes => vec![
            Bytes::new(),
            Bytes::from_static(&[0]),
            Bytes::from_static(&[0xff, 0x00, 0x01]),
            Bytes::from((0..=255u8).collect::<Vec<u8>>()),
            Bytes::from_static(b"\\x00 looks like text"),
            Bytes::from(
                (0..70_000u32)
                    .map(|i| (i * 31 % 251) as u8)
                    .collect::<Vec<u8>>(),
            ),
        ]
        .into_iter()
        .map(Value::Bytes)
        .collect(),
        DataType::Date => {
            let mut v = vec![
                0,
                1,
                -1,
                days_since_2000(1970, 1, 1),
                days_since_2000(2000, 2, 29),
                days_since_2000(2024, 2, 29),
                days_since_2000(1900, 3, 1),
                caps.min_date,
                caps.max_date,
            ];
            if caps.infinite_datetimes {
                v.extend([
                    crate::value::DATE_NEG_INFINITY,
                    crate::value::DATE_POS_INFINITY,
                ]);
            }
            v.into_iter().map(Value::Date).collect()
        }
        DataType::Time => [
            0,
            1,
            (12 * 3600 + 34 * 60 + 56) * 1_000_000 + 789_012,
            DAY_MICROS - 1,
        ]
        .map(Value::Time)
        .to_vec(),
        DataType::TimeTz => [
            (0, 0),
            (DAY_MICROS - 1, 0),
            (12 * 3_600_000_000, 19_800),
            (3_600_000_001, -43_200),
            (23 * 3_600_000_000, 50_400),
            (1, 20_700),
        ]
        .map(|(micros, offset_secs)| Value::TimeTz {
            micros,
            offset_secs,
        })
        .to_vec(),
        DataType::Timestamp | DataType::TimestampTz => {
            let mut v = vec![
                0,
                1,
                -1,
                micros_since_2000(1970, 1, 1, 0, 0, 0, 0),
                micros_since_2000(1999, 12, 31, 23, 59, 59, 999_999),
                micros_since_2000(2000, 2, 29, 12, 0, 0, 500_000),
                micros_since_2000(2038, 1, 19, 3, 14, 8, 0),
                caps.min_timestamp,
                caps.max_timestamp,
            ];
            if caps.infinite_datetimes {
                v.extend([crate::value::TS_NEG_INFINITY, crate::value::TS_POS_INFINITY]);
            }
            let tz = matches!(data_type, DataType::TimestampTz);
            v.into_iter()
                .map(|t| {
                    if tz {
                        Value::TimestampTz(t)
                    } else {
                        Value::Timestamp(t)
                    }
                })
                .collect()
        }
        DataType::Interval => [
            (0, 0, 0),
            (0, 0, 1),
            (1, 2, 3_000_000),
            (-1, -2, -3_000_000),
            (14, -3, 3_600_000_000),
            (-12_000, 0, 0),
            (0, 0, -400 * DAY_MICROS),
            (0, 45, 0),
        ]
        .map(|(months, days, micros)| {
            Value::Interval(Interval {
                months,
                days,
                micros,
            })
        })
        .to_vec(),
        DataType::Uuid => vec![
            Value::Uuid([0; 16]),
            Value::Uuid([0xff; 16]),
            Value::Uuid([
                0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
                0x40, 0x00,
            ]),
        ],
        DataType::Json { binary: false } => [
            "{}",
            "[]",
            "null",
            "true",
            "0",
            "\"emoji 😀\"",
            "{\"b\":1,\"a\":[1,2,{\"c\":null}]}",
            " { \"spaced\" : [ 1 , 2 ] } ",
            "{\"dup\":1,\"dup\":2}",
            "\"\\u00e9 escaped\"",
        ]
        .map(|s| Value::Json(Text::from(s)))
        .to_vec(),
        DataType::Json { binary: true } => [
            "{}",
            "[]",
            "null",
            "true",
            "false",
            "0",
            "-1.5",
            "\"text 😀\"",
            "[1, \"two\", null]",
            "{\"a\": 1, \"bb\": [true, null]}",
            "{\"a\": {\"b\": {\"c\": []}}}",
        ]
        .map(|s| Value::Json(Text::from(s)))
        .to_vec(),
        DataType::Inet => {
            let v4 = |a, b, c, d, prefix| (IpAddr::V4(Ipv4Addr::new(a, b, c, d)), prefix);
            let v6 = |segs: [u16; 8], prefix| {
                let [a, b, c, d, e, f, g, h] = segs;
                (IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)), prefix)
            };
            [
                v4(127, 0, 0, 1, 32),
                v4(192, 168, 1, 5, 24),
                v4(0, 0, 0, 0, 0),
                v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
                v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 64),
                v6([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304], 128),
                v6([0xfe80, 0, 0, 0, 1, 2, 3, 4], 10),
                v6([0xffff; 8], 128),
            ]
            .map(|(addr, prefix)| Value::Inet { addr, prefix })
            .to_vec()
        }
        DataType::Cidr => {
            let v4 = |a, b, c, d, prefix| (IpAddr::V4(Ipv4Addr::new(a, b, c, d)), prefix);
            let v6 = |segs: [u16; 8], prefix| {
                let [a, b, c, d, e, f, g, h] = segs;
                (IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)), prefix)
            };
            [
                v4(10, 0, 0, 0, 8),
                v4(192, 168, 0, 0, 16),
                v4(0, 0, 0, 0, 0),
                v4(1, 2, 3, 4, 32),
                v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
                v6([0; 8], 0),
                v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
                v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
            ]
            .map(|(addr, prefix)| Value::Inet { addr, prefix })
            .to_vec()
        }
        DataType::MacAddr => vec![
            Value::MacAddr([0; 6]),
            Value::MacAddr([0xff; 6]),
            Value::MacAddr([0x08, 0x00, 0x2b, 0x01, 0x02, 0x03]),
        ],
        DataType::Enum { labels, .. } => {
            if labels.is_empty() {
                return Err(Error::config(
                    "conformance: an enum type in Capabilities::types needs at least one label",
                ));
            }
            labels
                .iter()
                .map(|l| Value::Enum(Text::from(l.as_str())))
                .collect()
        }
        DataType::Array(inner) => {
            let elements = edge_values(inner, caps)?;
            let array = |values: Vec<Value>| Value::Array(Box::new(Array::one_dimensional(values)));
            let first = elements.first().cloned().unwrap_or(Value::Null);
            let last = elements.last().cloned().unwrap_or(Value::Null);
            vec![
                array(Vec::new()),
                array(vec![Value::Null]),
                array(vec![first.clone(), Value::Null, last.clone()]),
                array(elements),
                array(vec![last, first]),
            ]
        }
        DataType::Other { engine, name } => {
            return Err(Error::config(format!(
                "conformance: type {engine} {name} (DataType::Other) carries engine bytes and \
                 is not part of the generic suite; remove it from Capabilities::types"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::compare::value_fits;

    #[test]
    fn civil_dates() {
        assert_eq!(days_since_2000(2000, 1, 1), 0);
        assert_eq!(days_since_2000(1999, 12, 31), -1);
        assert_eq!(days_since_2000(1970, 1, 1), -10_957);
        assert_eq!(days_since_2000(2000, 3, 1), 60);
        // PostgreSQL: select '0001-01-01'::date - '2000-01-01'::date
        assert_eq!(days_since_2000(1, 1, 1), -730_119);
        // PostgreSQL: select '9999-12-31'::date - '2000-01-01'::date
        assert_eq!(days_since_2000(9999, 12, 31), 2_921_939);
        assert_eq!(
            micros_since_2000(2000, 1, 2, 0, 0, 1, 5),
            DAY_MICROS + 1_000_005
        );
    }

    #[test]
    fn edge_values_fit_their_types() {
        let caps = Capabilities::all();
        let schema = types_table("s", "t", &caps);
        for column in &schema.columns[1..] {
            let values = edge_values(&column.data_type, &caps).expect("edge values");
            assert!(!values.is_empty(), "{}", column.name);
            for v in &values {
                assert!(
                    value_fits(&column.data_type, v),
                    "{} {v:?}",
                    column.data_type
                );
            }
        }
    }

    #[test]
    fn constrained_decimals_keep_their_scale() {
        let caps = Capabilities::all();
        let values = edge_values(
            &DataType::Decimal {
                precision: Some(5),
                scale: Some(2),
            },
            &caps,
        )
        .expect("values");
        let texts: Vec<String> = values
            .iter()
            .map(|v| match v {
                Value::Decimal(d) => d.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            texts,
            ["0.00", "1.50", "-1.50", "999.99", "-999.99", "0.01"]
        );
    }

    #[test]
    fn fixed_text_is_padded() {
        let caps = Capabilities::all();
        let values = edge_values(
            &DataType::Text {
                max_len: Some(4),
                fixed: true,
            },
            &caps,
        )
        .expect("values");
        for v in values {
            match v {
                Value::Text(t) => assert_eq!(t.as_str().chars().count(), 4, "{t:?}"),
                other => panic!("not text: {other:?}"),
            }
        }
    }
}
