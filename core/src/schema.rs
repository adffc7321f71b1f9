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

/// One item of an assessment or conversion report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Severity.
    pub level: FindingLevel,
    /// Table concerned, if any.
    pub table: Option<TableId>,
    /// Column concerned, if any.
    pub column: Option<String>,
    /// What was found and what to do about it.
    pub message: String,
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
        write!(f, ": {}", self.message)
    }
}
