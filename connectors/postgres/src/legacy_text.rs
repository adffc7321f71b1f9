//! Text from a `SQL_ASCII` database, which PostgreSQL stores without checking its
//! encoding: such columns are read as raw bytes and checked here, so invalid UTF-8
//! meets the table's bad-data policy instead of stopping the copy.

use crate::codec::{PgColumnType, oid};
use crate::connect::quote_ident;
use ferry_core::policy::{Action, BadDataRecorder, ValueProblem, fail_error, row_key};
use ferry_core::{DataType, Result, TableSchema, Text, Value};

/// The columns of one table that are read as bytes and checked.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawText {
    /// Positions of the checked columns.
    columns: Vec<usize>,
}

impl RawText {
    /// The text-like columns of `table` when the database does not check encodings.
    pub(crate) fn for_table(table: &TableSchema, unchecked_encoding: bool) -> Self {
        if !unchecked_encoding {
            return RawText::default();
        }
        let columns = table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                matches!(
                    c.data_type,
                    DataType::Text { .. } | DataType::Json { .. } | DataType::Enum { .. }
                )
            })
            .map(|(i, _)| i)
            .collect();
        RawText { columns }
    }

    /// Whether no column needs checking.
    pub(crate) fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The select-list expression for column `index` (its text as the database
    /// prints it, as raw bytes), or `None` to select the column as it is.
    pub(crate) fn select_expr(&self, index: usize, name: &str) -> Option<String> {
        self.columns.contains(&index).then(|| {
            let c = quote_ident(name);
            format!("CASE WHEN {c} IS NULL THEN NULL ELSE convert_to(concat({c}), 'SQL_ASCII') END")
        })
    }

    /// The codec types to decode the COPY stream with: bytes for checked columns.
    pub(crate) fn decode_types(&self, types: &[PgColumnType]) -> Vec<PgColumnType> {
        types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if self.columns.contains(&i) {
                    PgColumnType::new(DataType::Bytes, oid::BYTEA, 0)
                } else {
                    t.clone()
                }
            })
            .collect()
    }

    /// Turns the checked columns of `row` back into text, applying the policy to
    /// invalid UTF-8. Returns `false` when the row is to be skipped.
    pub(crate) fn repair(
        &self,
        table: &TableSchema,
        row: &mut [Value],
        recorder: &mut BadDataRecorder,
    ) -> Result<bool> {
        let mut keep = true;
        for &i in &self.columns {
            let Some(Value::Bytes(raw)) = row.get(i).cloned() else {
                continue;
            };
            let Some(column) = table.columns.get(i) else {
                continue;
            };
            let text = match Text::from_utf8(raw.clone()) {
                Ok(text) => text,
                Err(_) => {
                    let problem = ValueProblem::InvalidUtf8;
                    let key = || row_key(table, row);
                    match recorder.handle(column, key, &problem)? {
                        Action::Null => {
                            row[i] = Value::Null;
                            continue;
                        }
                        Action::SkipRow => {
                            keep = false;
                            continue;
                        }
                        Action::Clamp => Text::from(String::from_utf8_lossy(&raw).into_owned()),
                        Action::Fail(reason) => {
                            return Err(fail_error(
                                &table.id,
                                &column.name,
                                &row_key(table, row),
                                &problem,
                                &reason,
                            ));
                        }
                    }
                }
            };
            row[i] = match column.data_type {
                DataType::Json { .. } => Value::Json(text),
                DataType::Enum { .. } => Value::Enum(text),
                _ => Value::Text(text),
            };
        }
        Ok(keep)
    }
}
