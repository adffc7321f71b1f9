//! Tables, columns, keys and the catalog a source discovers.

use crate::types::DataType;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A table's identity: namespace (schema or database) and name, as the source spells them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    /// Schema (PostgreSQL) or database (MySQL) name.
    pub namespace: String,
    /// Table name.
    pub name: String,
}

impl TableId {
    /// A table id from its namespace and name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        TableId {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Column name as the source spells it.
    pub name: String,
    /// Engine-neutral type.
    pub data_type: DataType,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Default expression in the source's SQL dialect, if any.
    pub default: Option<String>,
    /// The source's own type name, exactly (e.g. `character varying(20)`).
    pub source_type: String,
}

impl Column {
    /// A nullable column without default.
    pub fn nullable(name: &str, data_type: DataType, source_type: &str) -> Self {
        Column {
            name: name.to_owned(),
            data_type,
            nullable: true,
            default: None,
            source_type: source_type.to_owned(),
        }
    }
}

/// The [`Column::default`] of a column whose values the engine generates in
/// increasing order when none is given: PostgreSQL `serial`/identity columns (with a
/// sequence owned by the column), MySQL `AUTO_INCREMENT`. Sinks re-create it in their
/// own form and continue the counter after the largest loaded value.
pub const AUTO_INCREMENT: &str = "AUTO_INCREMENT";

/// A named set of columns whose values are unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniqueKey {
    /// Constraint name at the source.
    pub name: String,
    /// Column names in key order.
    pub columns: Vec<String>,
}

/// A secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Index name at the source.
    pub name: String,
    /// Whether the index enforces uniqueness.
    pub unique: bool,
    /// Key parts: column names, or expressions in the source's dialect.
    pub parts: Vec<IndexPart>,
    /// Access method in the source's terms (e.g. `btree`, `gin`), if not the default.
    pub method: Option<String>,
    /// Partial-index predicate in the source's dialect.
    pub predicate: Option<String>,
}

/// One key part of an [`Index`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexPart {
    /// A plain column.
    Column(String),
    /// An expression in the source's dialect.
    Expression(String),
}

/// What a foreign key does when the referenced row is deleted or its key updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferentialAction {
    /// Fail at the end of the statement (SQL's default).
    #[default]
    NoAction,
    /// Fail immediately.
    Restrict,
    /// Delete or update the referencing rows too.
    Cascade,
    /// Set the referencing columns to NULL.
    SetNull,
    /// Set the referencing columns to their defaults.
    SetDefault,
}

impl ReferentialAction {
    /// The SQL spelling (`NO ACTION`, `CASCADE`, ...).
    pub fn as_sql(self) -> &'static str {
        match self {
            ReferentialAction::NoAction => "NO ACTION",
            ReferentialAction::Restrict => "RESTRICT",
            ReferentialAction::Cascade => "CASCADE",
            ReferentialAction::SetNull => "SET NULL",
            ReferentialAction::SetDefault => "SET DEFAULT",
        }
    }
}

/// A foreign key: columns of this table that reference a key of another (or the
/// same) table. Sinks create foreign keys only after every table of the task is
/// loaded ([`crate::Sink::add_foreign_keys`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Constraint name at the source.
    pub name: String,
    /// Referencing columns of this table, in key order.
    pub columns: Vec<String>,
    /// The referenced table.
    pub referenced_table: TableId,
    /// Referenced columns, in the same order as `columns`.
    pub referenced_columns: Vec<String>,
    /// Action on delete of the referenced row.
    #[serde(default)]
    pub on_delete: ReferentialAction,
    /// Action on update of the referenced key.
    #[serde(default)]
    pub on_update: ReferentialAction,
}

/// Everything a sink needs to create and load a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// The table's identity.
    pub id: TableId,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Primary key column names in key order; empty when there is none.
    pub primary_key: Vec<String>,
    /// Primary key constraint name at the source, if any.
    pub primary_key_name: Option<String>,
    /// Unique constraints other than the primary key.
    pub unique_keys: Vec<UniqueKey>,
    /// Secondary indexes that are not constraints.
    pub indexes: Vec<Index>,
    /// Foreign keys to other tables (or this one).
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKey>,
    /// The source's estimate of its row count.
    pub estimated_rows: Option<u64>,
    /// The source's estimate of its size in bytes.
    pub estimated_bytes: Option<u64>,
}

impl TableSchema {
    /// A table with columns only.
    pub fn new(id: TableId, columns: Vec<Column>) -> Self {
        TableSchema {
            id,
            columns,
            primary_key: Vec::new(),
            primary_key_name: None,
            unique_keys: Vec::new(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            estimated_rows: None,
            estimated_bytes: None,
        }
    }

    /// Index of the column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Positions of the primary key columns.
    pub fn primary_key_indices(&self) -> Vec<usize> {
        self.primary_key
            .iter()
            .filter_map(|k| self.column_index(k))
            .collect()
    }
}

/// The tables a source offers, after include/exclude filtering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Tables in a stable order.
    pub tables: Vec<TableSchema>,
}

/// How serious a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingLevel {
    /// Worth knowing; nothing is lost.
    Info,
    /// Something is converted with a loss or needs a manual step.
    Warning,
    /// Cannot be migrated as asked.
    Error,
}

/// Stable [`Finding::code`]s, for scripts and tests that look for a kind of finding.
pub mod finding_code {
    /// A column type mapped with a loss, or not mapped at all.
    pub const TYPE_MAPPING: &str = "type-mapping";
    /// A table without a primary key (CDC needs one to apply updates and deletes).
    pub const NO_PRIMARY_KEY: &str = "no-primary-key";
    /// A generated (computed) column: loaded as plain values, expression not kept.
    pub const GENERATED_COLUMN: &str = "generated-column";
    /// A trigger that is not converted.
    pub const TRIGGER: &str = "trigger";
    /// A view that is not converted.
    pub const VIEW: &str = "view";
    /// A function or procedure that is not converted.
    pub const ROUTINE: &str = "routine";
    /// A sequence that is not converted (its current value is not carried over).
    pub const SEQUENCE: &str = "sequence";
    /// A character-set or collation issue.
    pub const CHARSET: &str = "charset";
    /// Values present at the source that the target cannot hold (zero dates, NUL
    /// bytes), handled by the bad-data policy.
    pub const BAD_DATA: &str = "bad-data";
    /// The size of a table (rows, bytes).
    pub const TABLE_SIZE: &str = "table-size";
    /// A foreign key that is not created (e.g. it references a table not selected).
    pub const FOREIGN_KEY: &str = "foreign-key";
    /// A table that already exists at the target.
    pub const TARGET_EXISTS: &str = "target-exists";
    /// Anything else.
    pub const OTHER: &str = "other";
}

/// One item of an assessment or conversion report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Severity.
    pub level: FindingLevel,
    /// What kind of finding, one of [`finding_code`] (e.g. `no-primary-key`).
    #[serde(default)]
    pub code: String,
    /// Table concerned, if any.
    pub table: Option<TableId>,
    /// Column concerned, if any.
    pub column: Option<String>,
    /// The object concerned when it is not a table or column (e.g. `trigger
    /// audit_trg`, `view shop.v_orders`, `function shop.f(integer)`).
    #[serde(default)]
    pub object: Option<String>,
    /// What was found and what to do about it.
    pub message: String,
}

impl Finding {
    /// A finding of `level` and `code` with a message and nothing else set.
    pub fn new(level: FindingLevel, code: &str, message: impl Into<String>) -> Self {
        Finding {
            level,
            code: code.to_string(),
            table: None,
            column: None,
            object: None,
            message: message.into(),
        }
    }

    /// Sets the table concerned.
    pub fn table(mut self, table: &TableId) -> Self {
        self.table = Some(table.clone());
        self
    }

    /// Sets the column concerned.
    pub fn column(mut self, column: impl Into<String>) -> Self {
        self.column = Some(column.into());
        self
    }

    /// Sets the object concerned.
    pub fn object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            FindingLevel::Info => "info",
            FindingLevel::Warning => "warning",
            FindingLevel::Error => "error",
        };
        write!(f, "{level}")?;
        if let Some(t) = &self.table {
            write!(f, " {t}")?;
            if let Some(c) = &self.column {
                write!(f, ".{c}")?;
            }
        }
        if let Some(o) = &self.object {
            write!(f, " ({o})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What a connector learned about each discovered table (its own column codecs,
/// sizes, ...), shared by its snapshot workers.
#[derive(Debug)]
pub struct TableCache<T> {
    tables: std::sync::Mutex<std::collections::HashMap<TableId, std::sync::Arc<T>>>,
}

impl<T> Default for TableCache<T> {
    fn default() -> Self {
        TableCache {
            tables: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl<T> TableCache<T> {
    /// Remembers `table` under `id`, replacing what was there.
    pub fn insert(&self, id: TableId, table: T) {
        if let Ok(mut map) = self.tables.lock() {
            map.insert(id, std::sync::Arc::new(table));
        }
    }

    /// The ids of every remembered table.
    pub fn ids(&self) -> Vec<TableId> {
        self.tables
            .lock()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The table remembered under `id`.
    pub fn get(&self, id: &TableId) -> Option<std::sync::Arc<T>> {
        self.tables.lock().ok().and_then(|map| map.get(id).cloned())
    }
}
