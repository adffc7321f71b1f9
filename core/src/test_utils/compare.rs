//! Value equality, a total order over values, and type checks, for tests.
//!
//! [`Value`]'s derived `PartialEq` follows IEEE 754, so a `NaN` never equals itself;
//! a round-trip test wants "the same value came back" instead, which is
//! [`same_value`]. Sorting rows by key needs a total order, which is
//! [`compare_values`].

use crate::types::DataType;
use crate::value::{Array, Decimal, Value};
use std::cmp::Ordering;
use std::net::IpAddr;

/// Whether `a` and `b` are the same value: like `==`, except that NaN equals NaN
/// (floats, and floats inside arrays). Decimals compare by their exact text, so
/// `1.50` and `1.5` differ (the scale is part of the value).
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float32(x), Value::Float32(y)) => (x.is_nan() && y.is_nan()) || x == y,
        (Value::Float64(x), Value::Float64(y)) => (x.is_nan() && y.is_nan()) || x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.dims == y.dims
                && x.values.len() == y.values.len()
                && x.values
                    .iter()
                    .zip(&y.values)
                    .all(|(a, b)| same_value(a, b))
        }
        _ => a == b,
    }
}

/// Whether two rows hold the same values ([`same_value`] cell by cell).
pub fn same_row(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b))
}

/// A total order over values, for sorting rows and finding duplicate keys.
///
/// Values of the same variant compare naturally (integers and floats numerically,
/// with every NaN equal and greater than +infinity; finite decimals numerically,
/// then by text so that `1.5` and `1.50` are ordered but distinct; text and bytes
/// bytewise; arrays element by element). Values of different variants compare by
/// variant. `NULL` sorts after everything, as in SQL's ascending order.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Int16(x), Value::Int16(y)) => x.cmp(y),
        (Value::Int32(x), Value::Int32(y)) => x.cmp(y),
        (Value::Int64(x), Value::Int64(y)) => x.cmp(y),
        (Value::UInt64(x), Value::UInt64(y)) => x.cmp(y),
        (Value::Float32(x), Value::Float32(y)) => cmp_f64(f64::from(*x), f64::from(*y)),
        (Value::Float64(x), Value::Float64(y)) => cmp_f64(*x, *y),
        (Value::Decimal(x), Value::Decimal(y)) => cmp_decimal(x, y),
        (Value::Text(x), Value::Text(y))
        | (Value::Json(x), Value::Json(y))
        | (Value::Enum(x), Value::Enum(y)) => x.cmp(y),
        (Value::Bytes(x), Value::Bytes(y)) | (Value::Other(x), Value::Other(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Time(x), Value::Time(y)) => x.cmp(y),
        (
            Value::TimeTz {
                micros: m1,
                offset_secs: o1,
            },
            Value::TimeTz {
                micros: m2,
                offset_secs: o2,
            },
        ) => (m1, o1).cmp(&(m2, o2)),
        (Value::Timestamp(x), Value::Timestamp(y))
        | (Value::TimestampTz(x), Value::TimestampTz(y)) => x.cmp(y),
        (Value::Interval(x), Value::Interval(y)) => {
            (x.months, x.days, x.micros).cmp(&(y.months, y.days, y.micros))
        }
        (Value::Uuid(x), Value::Uuid(y)) => x.cmp(y),
        (
            Value::Inet {
                addr: a1,
                prefix: p1,
            },
            Value::Inet {
                addr: a2,
                prefix: p2,
            },
        ) => cmp_ip(a1, a2).then(p1.cmp(p2)),
        (Value::MacAddr(x), Value::MacAddr(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => cmp_array(x, y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// [`compare_values`] over rows, column by column (shorter rows first on a tie).
pub fn compare_rows(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = compare_values(x, y);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Whether `value` can be stored in a column of type `data_type` (`NULL` always can;
/// nullability is the column's business). Text lengths are checked against
/// `max_len` in characters, enum labels against the type's labels, array elements
/// against the element type.
pub fn value_fits(data_type: &DataType, value: &Value) -> bool {
    match (data_type, value) {
        (_, Value::Null) => true,
        (DataType::Bool, Value::Bool(_))
        | (DataType::Int16, Value::Int16(_))
        | (DataType::Int32, Value::Int32(_))
        | (DataType::Int64, Value::Int64(_))
        | (DataType::UInt64, Value::UInt64(_))
        | (DataType::Float32, Value::Float32(_))
        | (DataType::Float64, Value::Float64(_))
        | (DataType::Decimal { .. }, Value::Decimal(_))
        | (DataType::Bytes, Value::Bytes(_))
        | (DataType::Date, Value::Date(_))
        | (DataType::Time, Value::Time(_))
        | (DataType::TimeTz, Value::TimeTz { .. })
        | (DataType::Timestamp, Value::Timestamp(_))
        | (DataType::TimestampTz, Value::TimestampTz(_))
        | (DataType::Interval, Value::Interval(_))
        | (DataType::Uuid, Value::Uuid(_))
        | (DataType::Json { .. }, Value::Json(_))
        | (DataType::Inet | DataType::Cidr, Value::Inet { .. })
        | (DataType::MacAddr, Value::MacAddr(_))
        | (DataType::Other { .. }, Value::Other(_)) => true,
        (DataType::Text { max_len, .. }, Value::Text(t)) => {
            max_len.is_none_or(|n| t.as_str().chars().count() <= n as usize)
        }
        (DataType::Enum { labels, .. }, Value::Enum(label)) => {
            labels.iter().any(|l| l == label.as_str())
        }
        (DataType::Array(inner), Value::Array(array)) => {
            array.values.iter().all(|v| value_fits(inner, v))
        }
        _ => false,
    }
}

/// A short, readable rendering of a value for error messages: long text, bytes and
/// decimals are cut, with their full length given.
pub fn show_value(value: &Value) -> String {
    const MAX: usize = 120;
    let full = match value {
        Value::Text(t) => format!("Text({:?})", t.as_str()),
        Value::Json(t) => format!("Json({:?})", t.as_str()),
        Value::Enum(t) => format!("Enum({:?})", t.as_str()),
        Value::Decimal(d) => format!("Decimal({d})"),
        Value::Array(a) => {
            let one_based = a.dims.len() == 1 && a.dims.first().is_some_and(|d| d.lower_bound == 1);
            let dims = if a.dims.is_empty() || one_based {
                String::new()
            } else {
                format!("{:?}", a.dims)
            };
            let mut out = format!("Array{dims}[");
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&show_value(v));
                if out.len() > MAX {
                    break;
                }
            }
            out.push(']');
            out
        }
        other => format!("{other:?}"),
    };
    if full.chars().count() <= MAX {
        return full;
    }
    let cut: String = full.chars().take(MAX).collect();
    let len = match value {
        Value::Text(t) | Value::Json(t) | Value::Enum(t) => format!("{} bytes", t.len()),
        Value::Bytes(b) | Value::Other(b) => format!("{} bytes", b.len()),
        Value::Decimal(d) => format!("{} characters", d.to_string().len()),
        Value::Array(a) => format!("{} elements", a.values.len()),
        _ => format!("{} characters", full.len()),
    };
    format!("{cut}… ({len})")
}

/// "expected X, read back Y", plus where they first differ when that is not
/// obvious from the shortened values (array element, text position).
pub fn describe_difference(expected: &Value, actual: &Value) -> String {
    let mut out = format!(
        "expected {}, read back {}",
        show_value(expected),
        show_value(actual)
    );
    match (expected, actual) {
        (Value::Array(e), Value::Array(a)) if e.dims != a.dims => {
            out.push_str(&format!(
                " (dimensions {:?} expected, {:?} read back)",
                e.dims, a.dims
            ));
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some((i, (x, y))) = e
                .values
                .iter()
                .zip(&a.values)
                .enumerate()
                .find(|(_, (x, y))| !same_value(x, y))
            {
                out.push_str(&format!(
                    " (first difference at element {i}: {})",
                    describe_difference(x, y)
                ));
            }
        }
        (Value::Text(e), Value::Text(a))
        | (Value::Json(e), Value::Json(a))
        | (Value::Enum(e), Value::Enum(a)) => {
            let (e, a) = (e.as_str(), a.as_str());
            let at = e
                .chars()
                .zip(a.chars())
                .position(|(x, y)| x != y)
                .unwrap_or_else(|| e.chars().count().min(a.chars().count()));
            out.push_str(&format!(
                " (first difference at character {at}; {} vs {} characters)",
                e.chars().count(),
                a.chars().count()
            ));
        }
        (Value::Bytes(e), Value::Bytes(a)) => {
            let at = e
                .iter()
                .zip(a.iter())
                .position(|(x, y)| x != y)
                .unwrap_or_else(|| e.len().min(a.len()));
            out.push_str(&format!(
                " (first difference at byte {at}; {} vs {} bytes)",
                e.len(),
                a.len()
            ));
        }
        _ => {}
    }
    out
}

fn cmp_f64(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

fn cmp_ip(a: &IpAddr, b: &IpAddr) -> Ordering {
    match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x.cmp(y),
        (IpAddr::V6(x), IpAddr::V6(y)) => x.cmp(y),
        (IpAddr::V4(_), IpAddr::V6(_)) => Ordering::Less,
        (IpAddr::V6(_), IpAddr::V4(_)) => Ordering::Greater,
    }
}

fn cmp_array(a: &Array, b: &Array) -> Ordering {
    let dims = |x: &Array| {
        x.dims
            .iter()
            .map(|d| (d.len, d.lower_bound))
            .collect::<Vec<_>>()
    };
    compare_rows(&a.values, &b.values).then_with(|| dims(a).cmp(&dims(b)))
}

fn decimal_rank(d: &Decimal) -> u8 {
    match d {
        Decimal::NegInfinity => 0,
        Decimal::Finite(_) => 1,
        Decimal::PosInfinity => 2,
        Decimal::NaN => 3,
    }
}

fn cmp_decimal(a: &Decimal, b: &Decimal) -> Ordering {
    match (a, b) {
        (Decimal::Finite(x), Decimal::Finite(y)) => {
            cmp_decimal_text(x, y).then_with(|| x.as_ref().cmp(y.as_ref()))
        }
        _ => decimal_rank(a).cmp(&decimal_rank(b)),
    }
}

/// Numeric comparison of two canonical decimal texts (`-?digits(.digits)?`).
fn cmp_decimal_text(x: &str, y: &str) -> Ordering {
    let split = |s: &str| {
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let int = int.trim_start_matches('0').to_string();
        let frac = frac.trim_end_matches('0').to_string();
        let zero = int.is_empty() && frac.is_empty();
        (neg && !zero, int, frac)
    };
    let (xn, xi, xf) = split(x);
    let (yn, yi, yf) = split(y);
    let magnitude = xi
        .len()
        .cmp(&yi.len())
        .then_with(|| xi.cmp(&yi))
        .then_with(|| xf.cmp(&yf));
    match (xn, yn) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

/// Order of variants when two values of different variants are compared.
fn rank(v: &Value) -> u8 {
    match v {
        Value::Bool(_) => 0,
        Value::Int16(_) => 1,
        Value::Int32(_) => 2,
        Value::Int64(_) => 3,
        Value::UInt64(_) => 4,
        Value::Float32(_) => 5,
        Value::Float64(_) => 6,
        Value::Decimal(_) => 7,
        Value::Text(_) => 8,
        Value::Bytes(_) => 9,
        Value::Date(_) => 10,
        Value::Time(_) => 11,
        Value::TimeTz { .. } => 12,
        Value::Timestamp(_) => 13,
        Value::TimestampTz(_) => 14,
        Value::Interval(_) => 15,
        Value::Uuid(_) => 16,
        Value::Json(_) => 17,
        Value::Inet { .. } => 18,
        Value::MacAddr(_) => 19,
        Value::Enum(_) => 20,
        Value::Array(_) => 21,
        Value::Other(_) => 22,
        Value::Null => 23,
        Value::Unchanged => 24,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Text;

    fn dec(s: &str) -> Value {
        Value::Decimal(Decimal::parse(s).expect("valid decimal"))
    }

    #[test]
    fn nan_is_the_same_value_as_nan() {
        assert!(same_value(
            &Value::Float64(f64::NAN),
            &Value::Float64(f64::NAN)
        ));
        assert!(same_value(
            &Value::Float32(f32::NAN),
            &Value::Float32(f32::NAN)
        ));
        assert!(!same_value(&Value::Float64(1.0), &Value::Float64(f64::NAN)));
        let arr = |v: f64| Value::Array(Box::new(Array::one_dimensional(vec![Value::Float64(v)])));
        assert!(same_value(&arr(f64::NAN), &arr(f64::NAN)));
        assert!(!same_value(&arr(1.0), &arr(2.0)));
    }

    #[test]
    fn decimals_order_numerically_and_keep_scale_distinct() {
        assert_eq!(compare_values(&dec("2"), &dec("10")), Ordering::Less);
        assert_eq!(compare_values(&dec("-2"), &dec("-10")), Ordering::Greater);
        assert_eq!(compare_values(&dec("-0.5"), &dec("0.1")), Ordering::Less);
        assert_eq!(
            compare_values(&dec("0.10"), &dec("0.09")),
            Ordering::Greater
        );
        assert_ne!(compare_values(&dec("1.5"), &dec("1.50")), Ordering::Equal);
        assert!(!same_value(&dec("1.5"), &dec("1.50")));
        assert_eq!(
            compare_values(&Value::Decimal(Decimal::NaN), &dec("1")),
            Ordering::Greater
        );
    }

    #[test]
    fn null_sorts_last_and_floats_totally() {
        assert_eq!(
            compare_values(&Value::Null, &Value::Int64(i64::MAX)),
            Ordering::Greater
        );
        assert_eq!(
            compare_values(&Value::Float64(f64::NAN), &Value::Float64(f64::INFINITY)),
            Ordering::Greater
        );
    }

    #[test]
    fn fits_checks_types_lengths_and_labels() {
        let varchar = DataType::Text {
            max_len: Some(3),
            fixed: false,
        };
        assert!(value_fits(&varchar, &Value::Text(Text::from("日本語"))));
        assert!(!value_fits(&varchar, &Value::Text(Text::from("abcd"))));
        assert!(!value_fits(&DataType::Int32, &Value::Int64(1)));
        let mood = DataType::Enum {
            name: "s.mood".into(),
            labels: vec!["ok".into()],
        };
        assert!(value_fits(&mood, &Value::Enum(Text::from("ok"))));
        assert!(!value_fits(&mood, &Value::Enum(Text::from("meh"))));
    }

    #[test]
    fn show_value_cuts_long_values() {
        let long = Value::Text(Text::from("x".repeat(10_000)));
        let shown = show_value(&long);
        assert!(shown.len() < 200, "{shown}");
        assert!(shown.contains("10000 bytes"));
    }
}
