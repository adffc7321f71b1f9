//! `ferry assess <task>`: a premigration assessment. Connects to both ends and
//! reports, per table and column, everything that will not migrate cleanly, with a
//! verdict:
//!
//! | verdict | meaning | exit code |
//! |---|---|---|
//! | `ready` | nothing to report beyond information | 0 |
//! | `ready-with-warnings` | the task runs, but something is lost, changed or left for a manual step | 0 |
//! | `blocked` | at least one error: the task cannot run as asked | 2 |
//!
//! (Exit code 1 means the assessment itself failed, e.g. a source it cannot reach.)
//!
//! Findings come from four places, each with a stable code
//! ([`ferry_core::finding_code`]):
//!
//! - the runner, from the catalog: `table-size` (every table), `no-primary-key`
//!   (CDC needs one), `foreign-key` (references a table not selected);
//! - the sink's type mapping ([`Sink::convert_schema`]): `type-mapping`, including
//!   unmapped types passed through;
//! - the source ([`Source::assess`]): triggers, views, routines, sequences,
//!   generated columns, character sets, bad data present;
//! - the target ([`Sink::assess`]): tables that already exist (`target-exists`).

use crate::config::TaskConfig;
use crate::endpoint::{AnySink, AnySource};
use crate::pipeline::{Plan, select_tables};
use ferry_core::{
    BadDataPolicy, Catalog, Finding, FindingLevel, Result, Sink, Source, TableId, TablePrep,
    TableSchema, finding_code,
};
use serde::Serialize;
use std::fmt::Write as _;

/// The overall outcome of an assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Nothing beyond information.
    Ready,
    /// Warnings: the task runs, with losses or manual steps.
    ReadyWithWarnings,
    /// Errors: the task cannot run as asked.
    Blocked,
}

impl Verdict {
    /// The verdict for a set of findings.
    pub fn of(findings: &[Finding]) -> Verdict {
        match findings.iter().map(|f| f.level).max() {
            Some(FindingLevel::Error) => Verdict::Blocked,
            Some(FindingLevel::Warning) => Verdict::ReadyWithWarnings,
            _ => Verdict::Ready,
        }
    }

    /// The process exit code: 0 for `ready` and `ready-with-warnings`, 2 for
    /// `blocked`.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Ready | Verdict::ReadyWithWarnings => 0,
            Verdict::Blocked => 2,
        }
    }

    /// `ready`, `ready-with-warnings` or `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ready => "ready",
            Verdict::ReadyWithWarnings => "ready-with-warnings",
            Verdict::Blocked => "blocked",
        }
    }
}

/// One end of the task, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointInfo {
    /// The connector's engine.
    pub engine: String,
    /// The URL without its password.
    pub url: String,
}

/// One selected table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssessedTable {
    /// The table at the source.
    pub source: TableId,
    /// The table at the target.
    pub target: TableId,
    /// The source's estimate of its rows.
    pub estimated_rows: Option<u64>,
    /// The source's estimate of its size in bytes.
    pub estimated_bytes: Option<u64>,
    /// Its primary key columns (empty: none).
    pub primary_key: Vec<String>,
    /// The bad-data policy the task applies to it.
    pub bad_data: BadDataPolicy,
}

/// Number of findings per level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Error-level findings.
    pub error: usize,
    /// Warning-level findings.
    pub warning: usize,
    /// Info-level findings.
    pub info: usize,
}

/// What `ferry assess` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The source.
    pub source: EndpointInfo,
    /// The target.
    pub target: EndpointInfo,
    /// The task's table-prep (what would happen to existing target tables).
    pub table_prep: TablePrep,
    /// The selected tables, in `schema.table` order.
    pub tables: Vec<AssessedTable>,
    /// Every finding: by table (objects not tied to a table last), then severity.
    pub findings: Vec<Finding>,
    /// Findings per level.
    pub counts: Counts,
    /// The overall verdict.
    pub verdict: Verdict,
}

/// Connects to both ends of the task and assesses it.
pub async fn assess_task(config: &TaskConfig) -> Result<Assessment> {
    let (source, sink) = tokio::try_join!(
        AnySource::connect(&config.source),
        AnySink::connect(&config.target)
    )?;
    let mut report = assess(&source, &sink, &Plan::from_config(config)).await?;
    report.source.url = config.source.redacted_url();
    report.target.url = config.target.redacted_url();
    Ok(report)
}

/// Assesses moving the tables `plan` selects from `source` to `sink` (endpoint URLs
/// are left empty: [`assess_task`] fills them in).
pub async fn assess<S: Source, K: Sink>(source: &S, sink: &K, plan: &Plan) -> Result<Assessment> {
    let mut tables = select_tables(source, plan).await?;
    tables.sort_by(|a, b| a.id.cmp(&b.id));
    let mut findings = Vec::new();
    for table in &tables {
        findings.push(size_finding(table));
        if table.primary_key.is_empty() {
            findings.push(no_primary_key(table));
        }
    }
    let catalog = Catalog {
        tables: tables.clone(),
    };
    let conversion = plan.convert(sink, source.engine(), tables)?;
    findings.extend(conversion.findings);
    for p in &conversion.passed_through {
        findings.push(
            Finding::new(
                FindingLevel::Info,
                finding_code::TYPE_MAPPING,
                format!(
                    "type {} is not mapped by Ferry; its values are passed through as the \
                     source gives them (works between two {} databases only)",
                    p.source_type,
                    source.engine()
                ),
            )
            .table(&p.table)
            .column(p.column.clone()),
        );
    }
    findings.extend(
        source
            .assess(&catalog)
            .await
            .map_err(|e| e.context("assessing the source"))?,
    );
    let targets: Vec<TableSchema> = conversion.tables.iter().map(|(_, t)| t.clone()).collect();
    findings.extend(
        sink.assess(&targets, plan.table_prep)
            .await
            .map_err(|e| e.context("assessing the target"))?,
    );
    // By table (objects without a table last), most severe first, then code.
    findings.sort_by(|a, b| {
        (
            a.table.is_none(),
            &a.table,
            std::cmp::Reverse(a.level),
            &a.code,
        )
            .cmp(&(
                b.table.is_none(),
                &b.table,
                std::cmp::Reverse(b.level),
                &b.code,
            ))
    });
    let counts = Counts {
        error: count(&findings, FindingLevel::Error),
        warning: count(&findings, FindingLevel::Warning),
        info: count(&findings, FindingLevel::Info),
    };
    Ok(Assessment {
        source: EndpointInfo {
            engine: source.engine().to_string(),
            url: String::new(),
        },
        target: EndpointInfo {
            engine: sink.engine().to_string(),
            url: String::new(),
        },
        table_prep: plan.table_prep,
        tables: conversion
            .tables
            .iter()
            .map(|(s, t)| AssessedTable {
                source: s.id.clone(),
                target: t.id.clone(),
                estimated_rows: s.estimated_rows,
                estimated_bytes: s.estimated_bytes,
                primary_key: s.primary_key.clone(),
                bad_data: plan.policy_for(&s.id),
            })
            .collect(),
        verdict: Verdict::of(&findings),
        findings,
        counts,
    })
}

fn count(findings: &[Finding], level: FindingLevel) -> usize {
    findings.iter().filter(|f| f.level == level).count()
}

fn size_finding(table: &TableSchema) -> Finding {
    let rows = table
        .estimated_rows
        .map_or_else(|| "unknown".to_string(), |r| r.to_string());
    let size = table
        .estimated_bytes
        .map_or_else(|| "unknown".to_string(), human_bytes);
    Finding::new(
        FindingLevel::Info,
        finding_code::TABLE_SIZE,
        format!("about {rows} rows, {size} (source estimates)"),
    )
    .table(&table.id)
}

fn no_primary_key(table: &TableSchema) -> Finding {
    let hint = match table.unique_keys.first() {
        Some(k) => format!(
            " (unique key {} on ({}) could become the primary key)",
            k.name,
            k.columns.join(", ")
        ),
        None => String::new(),
    };
    Finding::new(
        FindingLevel::Warning,
        finding_code::NO_PRIMARY_KEY,
        format!(
            "table has no primary key: a full load copies it, but CDC cannot apply updates \
             and deletes to it, and a reload may duplicate rows{hint}; add a primary key \
             at the source"
        ),
    )
    .table(&table.id)
}

/// `1.5 MiB`-style size.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The assessment as a human-readable report: the tables, the findings as a table
/// (level, code, table or object, column, message), and the verdict.
pub fn render_text(report: &Assessment) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Ferry assessment: {} {} -> {} {} ({} tables, table-prep {})",
        report.source.engine,
        report.source.url,
        report.target.engine,
        report.target.url,
        report.tables.len(),
        table_prep_name(report.table_prep)
    );
    let rows: Vec<[String; 5]> = report
        .tables
        .iter()
        .map(|t| {
            [
                t.source.to_string(),
                t.estimated_rows.map_or("?".into(), |r| r.to_string()),
                t.estimated_bytes.map_or("?".into(), human_bytes),
                if t.primary_key.is_empty() {
                    "(none)".into()
                } else {
                    t.primary_key.join(", ")
                },
                t.bad_data.to_string(),
            ]
        })
        .collect();
    out.push('\n');
    write_table(
        &mut out,
        [
            "table",
            "rows (est.)",
            "size (est.)",
            "primary key",
            "bad-data",
        ],
        &rows,
    );
    let shown: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.code != finding_code::TABLE_SIZE)
        .collect();
    out.push('\n');
    if shown.is_empty() {
        let _ = writeln!(out, "no findings beyond table sizes");
    } else {
        let rows: Vec<[String; 5]> = shown
            .iter()
            .map(|f| {
                let place = match (&f.table, &f.object) {
                    (Some(t), Some(o)) => format!("{t} ({o})"),
                    (Some(t), None) => t.to_string(),
                    (None, Some(o)) => o.clone(),
                    (None, None) => "-".into(),
                };
                [
                    level_name(f.level).into(),
                    f.code.clone(),
                    place,
                    f.column.clone().unwrap_or_default(),
                    f.message.split_whitespace().collect::<Vec<_>>().join(" "),
                ]
            })
            .collect();
        write_table(
            &mut out,
            ["level", "code", "table / object", "column", "finding"],
            &rows,
        );
    }
    let _ = writeln!(
        out,
        "\nverdict: {} ({} errors, {} warnings, {} info)",
        report.verdict.as_str(),
        report.counts.error,
        report.counts.warning,
        report.counts.info
    );
    out
}

/// The assessment as pretty JSON.
pub fn render_json(report: &Assessment) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn level_name(level: FindingLevel) -> &'static str {
    match level {
        FindingLevel::Info => "info",
        FindingLevel::Warning => "warning",
        FindingLevel::Error => "error",
    }
}

fn table_prep_name(prep: TablePrep) -> &'static str {
    match prep {
        TablePrep::DropAndCreate => "drop-and-create",
        TablePrep::Truncate => "truncate",
        TablePrep::DoNothing => "do-nothing",
    }
}

/// Left-aligned columns; the last column is not padded.
fn write_table<const N: usize>(out: &mut String, header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::test_utils::{MemorySink, MemorySource};
    use ferry_core::{Column, DataType, UniqueKey};

    fn table(name: &str, pk: bool) -> TableSchema {
        let mut t = TableSchema::new(
            TableId::new("s", name),
            vec![Column {
                name: "id".into(),
                data_type: DataType::Int64,
                nullable: false,
                default: None,
                source_type: String::new(),
            }],
        );
        if pk {
            t.primary_key = vec!["id".into()];
        } else {
            t.unique_keys.push(UniqueKey {
                name: "u".into(),
                columns: vec!["id".into()],
            });
        }
        t
    }

    #[tokio::test]
    async fn generic_findings_and_verdict() {
        let source = MemorySource::from_tables([
            (table("keyed", true), vec![]),
            (table("loose", false), vec![]),
        ])
        .expect("tables");
        let report = assess(&source, &MemorySink::new(), &Plan::new(&[], &[]))
            .await
            .expect("assessed");
        let codes: Vec<(String, String)> = report
            .findings
            .iter()
            .map(|f| {
                (
                    f.code.clone(),
                    f.table.as_ref().map(|t| t.to_string()).unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            codes,
            vec![
                ("table-size".to_string(), "s.keyed".to_string()),
                ("no-primary-key".to_string(), "s.loose".to_string()),
                ("table-size".to_string(), "s.loose".to_string()),
            ]
        );
        assert!(report.findings[1].message.contains("unique key u on (id)"));
        assert_eq!(report.verdict, Verdict::ReadyWithWarnings);
        assert_eq!(report.verdict.exit_code(), 0);
        assert_eq!(
            report.counts,
            Counts {
                error: 0,
                warning: 1,
                info: 2
            }
        );
        let text = render_text(&report);
        assert!(
            text.contains("verdict: ready-with-warnings (0 errors, 1 warnings, 2 info)"),
            "{text}"
        );
        assert!(text.contains("warning  no-primary-key  s.loose"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&render_json(&report)).expect("json");
        assert_eq!(json["verdict"], "ready-with-warnings");
        assert_eq!(json["tables"][1]["primary_key"], serde_json::json!([]));
        assert_eq!(json["findings"][1]["code"], "no-primary-key");
    }

    #[test]
    fn verdicts() {
        let f = |level| Finding::new(level, finding_code::OTHER, "x");
        assert_eq!(Verdict::of(&[]), Verdict::Ready);
        assert_eq!(Verdict::of(&[f(FindingLevel::Info)]), Verdict::Ready);
        assert_eq!(
            Verdict::of(&[f(FindingLevel::Info), f(FindingLevel::Error)]),
            Verdict::Blocked
        );
        assert_eq!(Verdict::Blocked.exit_code(), 2);
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
