//! `ferry schema <task>`: the target DDL for the selected tables, without touching
//! the target (the AWS SCT role). Only the source is connected to; the sink is
//! built with [`AnySink::ddl_only`] and asked for [`Sink::schema_ddl`].
//!
//! The DDL comes in three sections, in the order they must run:
//!
//! 1. **pre-load**: schemas, enum types, `CREATE TABLE` (no keys, for a fast load);
//! 2. **post-load**: primary keys, unique keys, indexes (after each table's load);
//! 3. **foreign-keys**: after every table is loaded (they reference other tables).
//!
//! `ferry run` does the same itself with `table-prep = "drop-and-create"`; to
//! review or adapt the DDL, apply section 1, run the task with
//! `table-prep = "do-nothing"`, then apply sections 2 and 3.

use crate::config::TaskConfig;
use crate::endpoint::{AnySink, AnySource};
use crate::pipeline::{PassedThrough, Plan, select_tables};
use ferry_core::{Finding, FindingLevel, Result, SchemaDdl, Sink, Source, TableId};
use serde::Serialize;
use std::collections::HashSet;
use std::fmt::Write as _;

/// Which part of the DDL to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Section {
    /// Everything, in order.
    #[default]
    All,
    /// Schemas, types and tables: before the load.
    PreLoad,
    /// Primary keys, unique keys and indexes: after the load.
    PostLoad,
    /// Foreign keys: after every table is loaded.
    ForeignKeys,
}

/// The DDL of one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableDdl {
    /// The table at the source.
    pub source: TableId,
    /// The table at the target.
    pub target: TableId,
    /// Its statements, by section.
    #[serde(flatten)]
    pub ddl: SchemaDdl,
}

/// What `ferry schema` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaScript {
    /// The source engine.
    pub source_engine: String,
    /// The target engine.
    pub target_engine: String,
    /// Per table, in `schema.table` order.
    pub tables: Vec<TableDdl>,
    /// Conversion findings: what is not converted exactly.
    pub findings: Vec<Finding>,
    /// Columns of unmapped types, passed through as the source gives them.
    pub passed_through: Vec<PassedThrough>,
}

impl SchemaScript {
    /// Whether a table cannot be converted as asked (an error-level finding).
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.level == FindingLevel::Error)
    }

    /// The statements of `section` over all tables, in order, each once (tables
    /// sharing a schema or an enum type need it created once).
    pub fn statements(&self, section: Section) -> Vec<&str> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let parts: &[fn(&SchemaDdl) -> &Vec<String>] = match section {
            Section::All => &[|d| &d.pre_load, |d| &d.post_load, |d| &d.foreign_keys],
            Section::PreLoad => &[|d| &d.pre_load],
            Section::PostLoad => &[|d| &d.post_load],
            Section::ForeignKeys => &[|d| &d.foreign_keys],
        };
        for part in parts {
            for table in &self.tables {
                for statement in part(&table.ddl) {
                    if seen.insert(statement.as_str()) {
                        out.push(statement.as_str());
                    }
                }
            }
        }
        out
    }
}

/// How long `ferry schema` waits for the target before it writes DDL for the
/// connector's default server version instead.
const TARGET_PROBE: std::time::Duration = std::time::Duration::from_secs(5);

/// Builds the task's target DDL. The target is only read (to learn its server
/// version, e.g. MariaDB's collations differ from MySQL 8's), never written; when it
/// cannot be reached, the DDL is for the connector's default server version.
pub async fn schema_for_task(config: &TaskConfig) -> Result<SchemaScript> {
    let sink = match AnySink::connect_timeout(&config.target, TARGET_PROBE).await {
        Ok(sink) => sink,
        Err(e) => {
            tracing::info!(
                error = %e,
                "target not reachable; writing DDL for the connector's default server version"
            );
            AnySink::ddl_only(&config.target)?
        }
    };
    let source = AnySource::connect(&config.source).await?;
    generate(&source, &sink, &Plan::from_config(config)).await
}

/// The target DDL of the tables `plan` selects from `source`, as `sink` would
/// create them.
pub async fn generate<S: Source, K: Sink>(
    source: &S,
    sink: &K,
    plan: &Plan,
) -> Result<SchemaScript> {
    let mut tables = select_tables(source, plan).await?;
    tables.sort_by(|a, b| a.id.cmp(&b.id));
    let conversion = plan.convert(sink, source.engine(), tables)?;
    let mut out = SchemaScript {
        source_engine: source.engine().to_string(),
        target_engine: sink.engine().to_string(),
        tables: Vec::with_capacity(conversion.tables.len()),
        findings: conversion.findings,
        passed_through: conversion.passed_through,
    };
    for (table, target) in conversion.tables {
        let ddl = sink
            .schema_ddl(&target)
            .map_err(|e| e.context(format!("DDL of table {}", target.id)))?;
        out.tables.push(TableDdl {
            source: table.id,
            target: target.id,
            ddl,
        });
    }
    Ok(out)
}

/// The DDL as an SQL script (`section` only), with the findings as comments; it
/// can be piped to the target's SQL client.
pub fn render_sql(script: &SchemaScript, section: Section) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- Ferry schema: {} tables, {} to {}; nothing was written to the target.",
        script.tables.len(),
        script.source_engine,
        script.target_engine
    );
    if section == Section::All {
        let _ = writeln!(
            out,
            "-- Run the sections in order: 1 before the load, 2 after it, 3 once every \
             table is loaded."
        );
    }
    if !script.findings.is_empty() || !script.passed_through.is_empty() {
        let _ = writeln!(out, "--\n-- conversion findings:");
        for f in &script.findings {
            let _ = writeln!(out, "--   {}", one_line(&f.to_string()));
        }
        for p in &script.passed_through {
            let _ = writeln!(
                out,
                "--   info {}.{}: type {} is not mapped; values are passed through as the \
                 source gives them",
                p.table, p.column, p.source_type
            );
        }
    }
    let sections: &[(Section, &str)] = &[
        (
            Section::PreLoad,
            "1. before the load: schemas, types, tables",
        ),
        (
            Section::PostLoad,
            "2. after the load: primary keys, unique keys, indexes",
        ),
        (
            Section::ForeignKeys,
            "3. after every table is loaded: foreign keys",
        ),
    ];
    for (part, title) in sections {
        if section != Section::All && section != *part {
            continue;
        }
        let _ = writeln!(out, "\n-- {title}");
        for statement in script.statements(*part) {
            let _ = writeln!(out, "{statement};");
        }
    }
    out
}

/// The script as JSON (all sections, per table, plus the findings).
pub fn render_json(script: &SchemaScript) -> String {
    serde_json::to_string_pretty(script).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::test_utils::{MemorySink, MemorySource};
    use ferry_core::{Column, DataType, TableSchema};

    /// A memory sink that prints DDL.
    struct DdlSink(MemorySink);

    impl Sink for DdlSink {
        type Writer = <MemorySink as Sink>::Writer;
        type Applier = ferry_core::NoApplier;
        fn engine(&self) -> &'static str {
            "memory"
        }
        fn convert_schema(
            &self,
            source_engine: &str,
            schema: &TableSchema,
        ) -> Result<(TableSchema, Vec<Finding>)> {
            self.0.convert_schema(source_engine, schema)
        }
        async fn prepare_table(
            &self,
            schema: &TableSchema,
            prep: ferry_core::TablePrep,
        ) -> Result<()> {
            self.0.prepare_table(schema, prep).await
        }
        async fn open_writer(
            &self,
            schema: std::sync::Arc<TableSchema>,
            policy: ferry_core::BadDataPolicy,
        ) -> Result<Self::Writer> {
            self.0.open_writer(schema, policy).await
        }
        async fn finish_table(
            &self,
            schema: &TableSchema,
            prep: ferry_core::TablePrep,
        ) -> Result<()> {
            self.0.finish_table(schema, prep).await
        }
        fn schema_ddl(&self, schema: &TableSchema) -> Result<SchemaDdl> {
            Ok(SchemaDdl {
                pre_load: vec![
                    "CREATE SCHEMA s".into(),
                    format!("CREATE TABLE {}", schema.id),
                ],
                post_load: vec![format!("KEY {}", schema.id)],
                foreign_keys: vec![],
            })
        }
    }

    fn table(name: &str) -> TableSchema {
        TableSchema::new(
            TableId::new("s", name),
            vec![Column {
                name: "id".into(),
                data_type: DataType::Int64,
                nullable: false,
                default: None,
                source_type: String::new(),
            }],
        )
    }

    #[tokio::test]
    async fn sections_are_ordered_and_deduplicated() {
        let source =
            MemorySource::from_tables([(table("b"), vec![]), (table("a"), vec![])]).expect("ok");
        let sink = DdlSink(MemorySink::new());
        let script = generate(&source, &sink, &Plan::new(&["s.*".into()], &[]))
            .await
            .expect("script");
        assert_eq!(
            script.statements(Section::All),
            vec![
                "CREATE SCHEMA s",
                "CREATE TABLE s.a",
                "CREATE TABLE s.b",
                "KEY s.a",
                "KEY s.b"
            ]
        );
        let sql = render_sql(&script, Section::PostLoad);
        assert!(sql.contains("\nKEY s.a;\nKEY s.b;\n"), "{sql}");
        assert!(!sql.contains("CREATE TABLE"), "{sql}");
        let json: serde_json::Value = serde_json::from_str(&render_json(&script)).expect("json");
        assert_eq!(json["tables"][0]["target"]["name"], "a");
        assert_eq!(json["tables"][0]["post_load"][0], "KEY s.a");
    }

    #[tokio::test]
    async fn a_sink_without_ddl_says_so() {
        let source = MemorySource::from_tables([(table("a"), vec![])]).expect("ok");
        let e = generate(&source, &MemorySink::new(), &Plan::new(&[], &[]))
            .await
            .expect_err("memory sink has no DDL");
        assert!(e.to_string().contains("cannot print DDL"), "{e}");
    }
}
