//! What to do with data the target cannot hold: the bad-data policies, the shared
//! decision ([`apply`]), the record of every affected row ([`BadRow`]) and the
//! per-load report ([`LoadReport`]).
//!
//! A problem is handled where it is detected: a source at decode (a MySQL zero date,
//! invalid UTF-8 in a latin1 column), a sink at encode (a NUL byte in text going to
//! PostgreSQL, a string longer than `varchar(n)`, a number out of the column's
//! range). Every connector asks the same question through [`apply`] (or the
//! stateful [`BadDataRecorder`]), so `null`, `clamp` and `skip-row` mean the same
//! thing everywhere, and every value changed or row dropped is recorded: never
//! silent corruption.

use crate::error::{Error, Result};
use crate::schema::{Column, TableId, TableSchema};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How many [`BadRow`]s a [`LoadReport`] keeps; the rest are only counted.
pub const MAX_BAD_ROWS: usize = 10_000;

/// What to do with a value the target cannot hold (task key `bad-data`, per table
/// `[task.bad-data-tables]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadDataPolicy {
    /// Stop the task with a message naming the table, column and row key.
    #[default]
    Fail,
    /// Load NULL instead of the value (fails if the column is `NOT NULL`).
    Null,
    /// Load the nearest value the target can hold: NUL bytes stripped, over-long text
    /// truncated, out-of-range numbers set to the type's bound, invalid UTF-8
    /// replaced by U+FFFD, a date with a zero month or day moved to the 1st. Fails
    /// for a problem without a nearest value (e.g. the date `0000-00-00`).
    Clamp,
    /// Leave the whole row out and record its key.
    SkipRow,
}

impl BadDataPolicy {
    /// The policy's name in the task file (`fail`, `null`, `clamp`, `skip-row`).
    pub fn as_str(self) -> &'static str {
        match self {
            BadDataPolicy::Fail => "fail",
            BadDataPolicy::Null => "null",
            BadDataPolicy::Clamp => "clamp",
            BadDataPolicy::SkipRow => "skip-row",
        }
    }

    /// Every policy, in the order the docs list them.
    pub const ALL: [BadDataPolicy; 4] = [
        BadDataPolicy::Fail,
        BadDataPolicy::Null,
        BadDataPolicy::Clamp,
        BadDataPolicy::SkipRow,
    ];
}

impl fmt::Display for BadDataPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BadDataPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        BadDataPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                Error::config(format!(
                    "unknown bad-data policy {s:?}; valid: fail, null, clamp, skip-row"
                ))
            })
    }
}

/// What is wrong with one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueProblem {
    /// Text holds a NUL byte (PostgreSQL text cannot).
    NulInText,
    /// Text is longer than the column allows.
    TooLong {
        /// The value's length in characters.
        len: usize,
        /// The column's limit in characters.
        max_len: u32,
    },
    /// A number outside the target type's range.
    OutOfRange {
        /// The value as text.
        value: String,
        /// The target type (e.g. `smallint`).
        target_type: String,
    },
    /// Bytes that are not valid in the column's character set.
    InvalidUtf8,
    /// A date or timestamp that is all zeros (MySQL `0000-00-00`): no nearest value.
    ZeroDate {
        /// The value as the source printed it.
        value: String,
    },
    /// A date with a zero month or day (MySQL `2024-00-10`): clamps to the 1st.
    InvalidDate {
        /// The value as the source printed it.
        value: String,
    },
    /// Anything else, described; not clampable.
    Other(String),
}

impl ValueProblem {
    /// Whether [`BadDataPolicy::Clamp`] has a nearest value for this problem.
    pub fn clampable(&self) -> bool {
        matches!(
            self,
            ValueProblem::NulInText
                | ValueProblem::TooLong { .. }
                | ValueProblem::OutOfRange { .. }
                | ValueProblem::InvalidUtf8
                | ValueProblem::InvalidDate { .. }
        )
    }
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueProblem::NulInText => f.write_str("text contains a NUL byte (0x00)"),
            ValueProblem::TooLong { len, max_len } => write!(
                f,
                "text of {len} characters is longer than the column's limit of {max_len}"
            ),
            ValueProblem::OutOfRange { value, target_type } => {
                write!(f, "{value} is out of range for {target_type}")
            }
            ValueProblem::InvalidUtf8 => f.write_str("text is not valid UTF-8"),
            ValueProblem::ZeroDate { value } => write!(f, "zero date {value}"),
            ValueProblem::InvalidDate { value } => {
                write!(f, "invalid date {value} (zero month or day)")
            }
            ValueProblem::Other(text) => f.write_str(text),
        }
    }
}

/// The decision for one bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop: the reason says why the policy could not be applied (or that it is
    /// `fail`).
    Fail(String),
    /// Load NULL instead.
    Null,
    /// Load the nearest value the target can hold.
    Clamp,
    /// Leave the row out.
    SkipRow,
}

impl Action {
    /// The policy that was applied, for the record; `None` for [`Action::Fail`].
    pub fn applied(&self) -> Option<BadDataPolicy> {
        match self {
            Action::Fail(_) => None,
            Action::Null => Some(BadDataPolicy::Null),
            Action::Clamp => Some(BadDataPolicy::Clamp),
            Action::SkipRow => Some(BadDataPolicy::SkipRow),
        }
    }
}

/// The one decision every connector shares: what `policy` does with `problem` in
/// `column`. `null` on a `NOT NULL` column and `clamp` on a problem without a
/// nearest value ([`ValueProblem::clampable`]) fail rather than guess.
pub fn apply(policy: BadDataPolicy, column: &Column, problem: &ValueProblem) -> Action {
    match policy {
        BadDataPolicy::Fail => Action::Fail("the bad-data policy is \"fail\"".into()),
        BadDataPolicy::Null if column.nullable => Action::Null,
        BadDataPolicy::Null => Action::Fail(format!(
            "the bad-data policy is \"null\" but column {} is NOT NULL",
            column.name
        )),
        BadDataPolicy::Clamp if problem.clampable() => Action::Clamp,
        BadDataPolicy::Clamp => Action::Fail(format!(
            "the bad-data policy is \"clamp\" but {problem} has no nearest valid value"
        )),
        BadDataPolicy::SkipRow => Action::SkipRow,
    }
}

/// The error for a bad value that stops the load: it names the table, column, row
/// key, the problem, why the policy did not help, and the task keys that change it.
pub fn fail_error(
    table: &TableId,
    column: &str,
    key: &str,
    problem: &ValueProblem,
    reason: &str,
) -> Error {
    Error::conversion(format!(
        "table {table}, column {column}, row {key}: {problem}; {reason}. To load such \
         values anyway set `bad-data = \"null\" | \"clamp\" | \"skip-row\"` in [task], or \
         for this table only `\"{table}\" = \"...\"` in [task.bad-data-tables]"
    ))
}

/// One value changed or one row left out because of a bad-data policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRow {
    /// The table, as the component that detected the problem names it.
    pub table: TableId,
    /// The row's key, e.g. `(id=5)` (the first columns when there is no primary key).
    pub key: String,
    /// The column holding the bad value.
    pub column: String,
    /// What was wrong.
    pub problem: String,
    /// What was done: `null`, `clamp` or `skip-row`.
    pub action: BadDataPolicy,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} row {} column {}: {} ({})",
            self.table, self.key, self.column, self.problem, self.action
        )
    }
}

/// What loading (or reading) one partition did: rows delivered, rows left out, and
/// the bad values met on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Rows delivered: sent down the pipeline by a source, written by a sink.
    pub rows: u64,
    /// Rows left out by [`BadDataPolicy::SkipRow`] (not counted in `rows`).
    pub skipped_rows: u64,
    /// The first [`MAX_BAD_ROWS`] bad values met, in order (each with its row key).
    pub bad_rows: Vec<BadRow>,
    /// All bad values met (may exceed `bad_rows.len()`).
    pub bad_row_count: u64,
}

impl LoadReport {
    /// A report of `rows` rows and no bad data.
    pub fn rows(rows: u64) -> Self {
        LoadReport {
            rows,
            ..LoadReport::default()
        }
    }

    /// Records one bad value (kept if there is room, always counted).
    pub fn record(&mut self, bad: BadRow) {
        self.bad_row_count += 1;
        if self.bad_rows.len() < MAX_BAD_ROWS {
            self.bad_rows.push(bad);
        }
    }

    /// Adds `other` to this report (rows, skipped rows and bad values).
    pub fn merge(&mut self, other: LoadReport) {
        self.rows += other.rows;
        self.skipped_rows += other.skipped_rows;
        self.bad_row_count += other.bad_row_count;
        let room = MAX_BAD_ROWS.saturating_sub(self.bad_rows.len());
        self.bad_rows.extend(other.bad_rows.into_iter().take(room));
    }

    /// Whether any bad value was met.
    pub fn has_bad_data(&self) -> bool {
        self.bad_row_count > 0
    }
}

/// Applies one table's policy value by value and keeps the record: what a source's
/// decoder or a sink's encoder holds while it works through a partition.
#[derive(Debug, Clone)]
pub struct BadDataRecorder {
    table: TableId,
    policy: BadDataPolicy,
    report: LoadReport,
}

impl BadDataRecorder {
    /// A recorder for `table` under `policy`.
    pub fn new(table: TableId, policy: BadDataPolicy) -> Self {
        BadDataRecorder {
            table,
            policy,
            report: LoadReport::default(),
        }
    }

    /// The policy applied.
    pub fn policy(&self) -> BadDataPolicy {
        self.policy
    }

    /// The table.
    pub fn table(&self) -> &TableId {
        &self.table
    }

    /// Decides what to do with `problem` in `column` of the row whose key `key`
    /// describes (called only when a problem is found). Returns the action to take
    /// (`Null`, `Clamp` or `SkipRow`, recorded) or the error that stops the load.
    pub fn handle(
        &mut self,
        column: &Column,
        key: impl FnOnce() -> String,
        problem: &ValueProblem,
    ) -> Result<Action> {
        let action = apply(self.policy, column, problem);
        let key = key();
        match action.applied() {
            None => {
                let reason = match &action {
                    Action::Fail(reason) => reason.as_str(),
                    _ => "",
                };
                Err(fail_error(&self.table, &column.name, &key, problem, reason))
            }
            Some(applied) => {
                self.report.record(BadRow {
                    table: self.table.clone(),
                    key,
                    column: column.name.clone(),
                    problem: problem.to_string(),
                    action: applied,
                });
                Ok(action)
            }
        }
    }

    /// Counts one row delivered.
    pub fn row_delivered(&mut self) {
        self.report.rows += 1;
    }

    /// Counts one row left out.
    pub fn row_skipped(&mut self) {
        self.report.skipped_rows += 1;
    }

    /// The report so far.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// The report, mutable (e.g. to set `rows` from a server's count).
    pub fn report_mut(&mut self) -> &mut LoadReport {
        &mut self.report
    }

    /// The final report.
    pub fn into_report(self) -> LoadReport {
        self.report
    }
}

/// A row's key for messages and [`BadRow::key`]: the primary key as `(id=5)` or
/// `(a=1, b='x')`, or the first three columns when the table has no primary key.
/// Long values are cut.
pub fn row_key(schema: &TableSchema, row: &[Value]) -> String {
    let mut indices = schema.primary_key_indices();
    if indices.is_empty() {
        indices = (0..row.len().min(3)).collect();
    }
    let parts = indices
        .into_iter()
        .filter_map(|i| Some((schema.columns.get(i)?, row.get(i)?)))
        .map(|(c, v)| format!("{}={}", c.name, key_value(v)))
        .collect::<Vec<_>>()
        .join(", ");
    format!("({parts})")
}

fn key_value(v: &Value) -> String {
    const MAX: usize = 60;
    let text = match v {
        Value::Null => "NULL".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int16(n) => n.to_string(),
        Value::Int32(n) => n.to_string(),
        Value::Int64(n) => n.to_string(),
        Value::UInt64(n) => n.to_string(),
        Value::Float32(n) => n.to_string(),
        Value::Float64(n) => n.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Text(t) | Value::Enum(t) | Value::Json(t) => {
            format!("'{}'", t.as_str().replace('\'', "''").replace('\0', "\\0"))
        }
        Value::Uuid(u) => u.iter().map(|b| format!("{b:02x}")).collect(),
        other => format!("{other:?}"),
    };
    if text.chars().count() > MAX {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    } else {
        text
    }
}

/// `text` without NUL bytes (the `clamp` fix for [`ValueProblem::NulInText`]).
pub fn strip_nul(text: &str) -> String {
    text.replace('\0', "")
}

/// `text` cut to at most `max_chars` characters (the `clamp` fix for
/// [`ValueProblem::TooLong`]).
pub fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::DataType;

    fn column(nullable: bool) -> Column {
        Column {
            name: "name".into(),
            data_type: DataType::text(),
            nullable,
            default: None,
            source_type: "text".into(),
        }
    }

    #[test]
    fn policies_parse_and_print_in_kebab_case() {
        for p in BadDataPolicy::ALL {
            assert_eq!(p.as_str().parse::<BadDataPolicy>().ok(), Some(p));
            let json = format!("\"{}\"", p.as_str());
            assert_eq!(serde_json::to_string(&p).ok(), Some(json.clone()));
            assert_eq!(serde_json::from_str::<BadDataPolicy>(&json).ok(), Some(p));
        }
        assert!("skip_row".parse::<BadDataPolicy>().is_err());
        assert_eq!(BadDataPolicy::default(), BadDataPolicy::Fail);
    }

    #[test]
    fn apply_follows_the_policy() {
        let nul = ValueProblem::NulInText;
        let zero = ValueProblem::ZeroDate {
            value: "0000-00-00".into(),
        };
        assert!(matches!(
            apply(BadDataPolicy::Fail, &column(true), &nul),
            Action::Fail(_)
        ));
        assert_eq!(
            apply(BadDataPolicy::Null, &column(true), &nul),
            Action::Null
        );
        match apply(BadDataPolicy::Null, &column(false), &nul) {
            Action::Fail(reason) => assert!(reason.contains("NOT NULL"), "{reason}"),
            other => panic!("null into NOT NULL must fail, got {other:?}"),
        }
        assert_eq!(
            apply(BadDataPolicy::Clamp, &column(false), &nul),
            Action::Clamp
        );
        match apply(BadDataPolicy::Clamp, &column(true), &zero) {
            Action::Fail(reason) => assert!(reason.contains("no nearest"), "{reason}"),
            other => panic!("a zero date cannot be clamped, got {other:?}"),
        }
        assert_eq!(
            apply(BadDataPolicy::SkipRow, &column(false), &zero),
            Action::SkipRow
        );
    }

    #[test]
    fn recorder_records_applied_actions_and_fails_with_the_keys_to_change() {
        let table = TableId::new("shop", "legacy");
        let mut r = BadDataRecorder::new(table.clone(), BadDataPolicy::Null);
        let action = r
            .handle(&column(true), || "(id=5)".into(), &ValueProblem::NulInText)
            .expect("nullable");
        assert_eq!(action, Action::Null);
        r.row_delivered();
        let err = r
            .handle(&column(false), || "(id=6)".into(), &ValueProblem::NulInText)
            .expect_err("not null");
        let msg = err.to_string();
        for part in [
            "shop.legacy",
            "column name",
            "(id=6)",
            "NUL",
            "NOT NULL",
            "bad-data",
            "[task.bad-data-tables]",
        ] {
            assert!(msg.contains(part), "{part:?} missing from {msg}");
        }
        let report = r.into_report();
        assert_eq!(report.rows, 1);
        assert_eq!(report.bad_row_count, 1);
        assert_eq!(
            report.bad_rows,
            vec![BadRow {
                table,
                key: "(id=5)".into(),
                column: "name".into(),
                problem: "text contains a NUL byte (0x00)".into(),
                action: BadDataPolicy::Null,
            }]
        );
    }

    #[test]
    fn reports_merge_and_stay_bounded() {
        let bad = |n: usize| BadRow {
            table: TableId::new("s", "t"),
            key: format!("(id={n})"),
            column: "c".into(),
            problem: "p".into(),
            action: BadDataPolicy::SkipRow,
        };
        let mut a = LoadReport::rows(10);
        for n in 0..MAX_BAD_ROWS - 1 {
            a.record(bad(n));
        }
        let mut b = LoadReport::rows(5);
        b.skipped_rows = 3;
        for n in 0..3 {
            b.record(bad(10_000 + n));
        }
        a.merge(b);
        assert_eq!(a.rows, 15);
        assert_eq!(a.skipped_rows, 3);
        assert_eq!(a.bad_row_count, MAX_BAD_ROWS as u64 + 2);
        assert_eq!(a.bad_rows.len(), MAX_BAD_ROWS);
        assert_eq!(
            a.bad_rows.last().map(|b| b.key.as_str()),
            Some("(id=10000)")
        );
        assert!(a.has_bad_data());
    }

    #[test]
    fn row_keys_name_the_primary_key() {
        let col = |name: &str, data_type| Column {
            name: name.into(),
            data_type,
            nullable: true,
            default: None,
            source_type: String::new(),
        };
        let mut s = TableSchema::new(
            TableId::new("s", "t"),
            vec![
                col("a", DataType::Int64),
                col("b", DataType::text()),
                col("c", DataType::text()),
                col("d", DataType::text()),
            ],
        );
        let row = vec![
            Value::Int64(5),
            Value::Text("it's\0x".into()),
            Value::Null,
            Value::Text("z".into()),
        ];
        assert_eq!(row_key(&s, &row), "(a=5, b='it''s\\0x', c=NULL)");
        s.primary_key = vec!["a".into()];
        assert_eq!(row_key(&s, &row), "(a=5)");
    }

    #[test]
    fn clamp_helpers() {
        assert_eq!(strip_nul("a\0b\0"), "ab");
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hé", 5), "hé");
    }
}
