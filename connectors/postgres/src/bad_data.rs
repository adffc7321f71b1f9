//! Values PostgreSQL cannot hold, for the sink's bad-data policy: what is wrong with
//! a value ([`diagnose`]) and its nearest valid value ([`clamp`]).
//!
//! Only consulted after the codec refused a row, so loading clean data costs
//! nothing.

use crate::codec::{PgColumnType, oid};
use ferry_core::policy::{ValueProblem, strip_nul, truncate_chars};
use ferry_core::{Array, DataType, Decimal, Text, Value};

/// The problem with `value` in a column of type `ty`, if it is one the policies know
/// (NUL bytes, over-long text, numbers out of range); `None` otherwise.
pub(crate) fn diagnose(ty: &PgColumnType, value: &Value) -> Option<ValueProblem> {
    diagnose_in(&ty.data_type, ty.oid, value)
}

fn diagnose_in(dt: &DataType, type_oid: u32, value: &Value) -> Option<ValueProblem> {
    match (dt, value) {
        (DataType::Array(inner), Value::Array(array)) => {
            array.values.iter().find_map(|v| diagnose_in(inner, 0, v))
        }
        (
            DataType::Text { .. } | DataType::Json { .. } | DataType::Enum { .. },
            Value::Text(t) | Value::Json(t) | Value::Enum(t),
        ) if t.as_bytes().contains(&0) => Some(ValueProblem::NulInText),
        (
            DataType::Text {
                max_len: Some(max), ..
            },
            Value::Text(t) | Value::Json(t) | Value::Enum(t),
        ) => {
            let len = significant_len(t.as_str());
            (len > *max as usize).then_some(ValueProblem::TooLong { len, max_len: *max })
        }
        (DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt64, _) => {
            let v = int_value(value)?;
            let (lo, hi, name) = int_bounds(dt, type_oid);
            (v < lo || v > hi).then(|| ValueProblem::OutOfRange {
                value: v.to_string(),
                target_type: name.to_string(),
            })
        }
        (
            DataType::Decimal {
                precision: Some(p),
                scale,
            },
            _,
        ) => {
            let text = decimal_text(value)?;
            let allowed = i64::from(*p) - i64::from(scale.unwrap_or(0));
            let int_digits = text
                .trim_start_matches('-')
                .split('.')
                .next()
                .unwrap_or("")
                .trim_start_matches('0')
                .len() as i64;
            (int_digits > allowed).then(|| ValueProblem::OutOfRange {
                value: text,
                target_type: format!("numeric({p},{})", scale.unwrap_or(0)),
            })
        }
        _ => None,
    }
}

/// The nearest value of `ty` to `value`: NUL bytes stripped and text cut to the
/// column's length (also inside arrays), integers and constrained decimals set to
/// the type's bound. `None` when there is no such value.
pub(crate) fn clamp(ty: &PgColumnType, value: &Value) -> Option<Value> {
    clamp_in(&ty.data_type, ty.oid, value)
}

fn clamp_in(dt: &DataType, type_oid: u32, value: &Value) -> Option<Value> {
    if diagnose_in(dt, type_oid, value).is_none() {
        return Some(value.clone());
    }
    match (dt, value) {
        (DataType::Array(inner), Value::Array(array)) => {
            let values = array
                .values
                .iter()
                .map(|v| clamp_in(inner, 0, v))
                .collect::<Option<Vec<_>>>()?;
            Some(Value::Array(Box::new(Array {
                dims: array.dims.clone(),
                values,
            })))
        }
        (
            DataType::Text { .. } | DataType::Json { .. },
            Value::Text(t) | Value::Json(t) | Value::Enum(t),
        ) => {
            let mut text = strip_nul(t.as_str());
            if let DataType::Text {
                max_len: Some(max), ..
            } = dt
            {
                text = truncate_chars(&text, *max as usize).to_string();
            }
            let text = Text::from(text);
            Some(match value {
                Value::Json(_) => Value::Json(text),
                Value::Enum(_) => Value::Enum(text),
                _ => Value::Text(text),
            })
        }
        (DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt64, _) => {
            let v = int_value(value)?;
            let (lo, hi, _) = int_bounds(dt, type_oid);
            let v = v.clamp(lo, hi);
            Some(match dt {
                DataType::UInt64 => Value::UInt64(u64::try_from(v).ok()?),
                _ => Value::Int64(i64::try_from(v).ok()?),
            })
        }
        (
            DataType::Decimal {
                precision: Some(p),
                scale,
            },
            _,
        ) => {
            let text = decimal_text(value)?;
            let scale = scale.unwrap_or(0);
            let int_digits = p.saturating_sub(scale) as usize;
            let mut max = if int_digits == 0 {
                "0".to_string()
            } else {
                "9".repeat(int_digits)
            };
            if scale > 0 {
                max.push('.');
                max.push_str(&"9".repeat(scale as usize));
            }
            if text.starts_with('-') {
                max.insert(0, '-');
            }
            Decimal::parse(&max).map(Value::Decimal)
        }
        _ => None,
    }
}

/// Length in characters, not counting trailing spaces PostgreSQL would drop.
fn significant_len(text: &str) -> usize {
    text.trim_end_matches(' ').chars().count()
}

fn int_value(value: &Value) -> Option<i128> {
    match value {
        Value::Int16(v) => Some(i128::from(*v)),
        Value::Int32(v) => Some(i128::from(*v)),
        Value::Int64(v) => Some(i128::from(*v)),
        Value::UInt64(v) => Some(i128::from(*v)),
        _ => None,
    }
}

fn decimal_text(value: &Value) -> Option<String> {
    match value {
        Value::Decimal(Decimal::Finite(text)) => Some(text.to_string()),
        other => int_value(other).map(|v| v.to_string()),
    }
}

/// Bounds and name of an integer column (a [`DataType::UInt64`] column is stored as
/// `numeric(20)` unless the target's type OID says otherwise).
fn int_bounds(dt: &DataType, type_oid: u32) -> (i128, i128, &'static str) {
    let by_oid = match type_oid {
        oid::INT2 => Some((i128::from(i16::MIN), i128::from(i16::MAX), "smallint")),
        oid::INT4 => Some((i128::from(i32::MIN), i128::from(i32::MAX), "integer")),
        oid::INT8 => Some((i128::from(i64::MIN), i128::from(i64::MAX), "bigint")),
        _ => None,
    };
    let (lo, hi, name) = match dt {
        DataType::Int16 => (i128::from(i16::MIN), i128::from(i16::MAX), "smallint"),
        DataType::Int32 => (i128::from(i32::MIN), i128::from(i32::MAX), "integer"),
        DataType::Int64 => (i128::from(i64::MIN), i128::from(i64::MAX), "bigint"),
        _ => (0, i128::from(u64::MAX), "unsigned 64-bit integer"),
    };
    match (dt, by_oid) {
        // An unsigned column stored in a signed type: both bounds apply.
        (DataType::UInt64, Some((_, h, n))) => (0, h, n),
        _ => (lo, hi, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use bytes::BytesMut;

    fn ty(dt: DataType) -> PgColumnType {
        PgColumnType::builtin(dt).expect("built-in")
    }

    fn varchar(n: u32) -> DataType {
        DataType::Text {
            max_len: Some(n),
            fixed: false,
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(Text::from(s))
    }

    fn encodes(ty: &PgColumnType, v: &Value) -> bool {
        codec::encode(ty, v, &mut BytesMut::new()).is_ok()
    }

    #[test]
    fn text_problems_and_their_clamps() {
        let t = ty(varchar(3));
        assert_eq!(diagnose(&t, &text("a\0b")), Some(ValueProblem::NulInText));
        assert_eq!(
            diagnose(&t, &text("abcdé")),
            Some(ValueProblem::TooLong { len: 5, max_len: 3 })
        );
        assert_eq!(diagnose(&t, &text("abc   ")), None, "trailing spaces fit");
        assert_eq!(clamp(&t, &text("a\0bcdef")), Some(text("abc")));
        let plain = ty(DataType::text());
        assert_eq!(clamp(&plain, &text("\0x\0")), Some(text("x")));
        for v in [text("a\0bcdef"), text("abcdé")] {
            let fixed = clamp(&t, &v).expect("clampable");
            assert!(encodes(&t, &fixed), "{fixed:?}");
        }
    }

    #[test]
    fn arrays_are_clamped_element_by_element() {
        let t = ty(DataType::Array(Box::new(varchar(2))));
        let v = Value::Array(Box::new(Array::one_dimensional(vec![
            text("ok"),
            Value::Null,
            text("x\0yz"),
        ])));
        assert_eq!(diagnose(&t, &v), Some(ValueProblem::NulInText));
        let fixed = clamp(&t, &v).expect("clampable");
        assert_eq!(
            fixed,
            Value::Array(Box::new(Array::one_dimensional(vec![
                text("ok"),
                Value::Null,
                text("xy")
            ])))
        );
        assert!(encodes(&t, &fixed));
    }

    #[test]
    fn numbers_clamp_to_the_type_bounds() {
        let small = ty(DataType::Int16);
        let problem = diagnose(&small, &Value::Int64(70_000));
        assert_eq!(
            problem,
            Some(ValueProblem::OutOfRange {
                value: "70000".into(),
                target_type: "smallint".into()
            })
        );
        assert_eq!(
            clamp(&small, &Value::Int64(70_000)),
            Some(Value::Int64(32767))
        );
        assert_eq!(
            clamp(&small, &Value::Int64(-70_000)),
            Some(Value::Int64(-32768))
        );
        let big = ty(DataType::Int64);
        assert_eq!(
            clamp(&big, &Value::UInt64(u64::MAX)),
            Some(Value::Int64(i64::MAX))
        );
        let unsigned = ty(DataType::UInt64);
        assert_eq!(clamp(&unsigned, &Value::Int64(-5)), Some(Value::UInt64(0)));
        let num = ty(DataType::Decimal {
            precision: Some(5),
            scale: Some(2),
        });
        let v = Value::Decimal(Decimal::parse("-12345.6").expect("decimal"));
        assert!(matches!(
            diagnose(&num, &v),
            Some(ValueProblem::OutOfRange { .. })
        ));
        let fixed = clamp(&num, &v).expect("clampable");
        assert_eq!(
            fixed,
            Value::Decimal(Decimal::parse("-999.99").expect("decimal"))
        );
        assert!(encodes(&num, &fixed));
        assert_eq!(diagnose(&num, &Value::Int32(999)), None);
    }

    #[test]
    fn unknown_problems_are_not_clamped() {
        let d = ty(DataType::Date);
        assert_eq!(diagnose(&d, &Value::Date(i32::MAX - 1)), None);
        assert_eq!(
            clamp(&ty(DataType::Int16), &Value::Float64(1e9)),
            Some(Value::Float64(1e9)),
            "no known problem: returned unchanged (the codec decides)"
        );
    }
}
