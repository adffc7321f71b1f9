//! Premigration findings about MySQL/MariaDB tables (`ferry assess`): what Ferry
//! does not convert (triggers, views, routines, events), tables without a primary
//! key, generated columns, non-InnoDB tables, non-UTF-8 character sets, zero dates
//! present in the data, and table sizes.

use crate::catalog::MyTable;
use crate::connect::{Target, quote_ident, quote_literal, quote_table};
use ferry_core::{Catalog, DataType, Finding, FindingLevel, Result, TableId, finding_code};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Character sets whose text is already Unicode (nothing to convert).
const UNICODE_CHARSETS: &[&str] = &["utf8mb4", "utf8mb3", "utf8", "ascii", "binary"];

/// Findings for the tables of `catalog`; `table` gives the discovered details.
pub(crate) async fn assess(
    conn: &mut Conn,
    target: &Target,
    catalog: &Catalog,
    table: impl Fn(&TableId) -> Option<Arc<MyTable>>,
) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let namespaces: BTreeSet<&str> = catalog
        .tables
        .iter()
        .map(|t| t.id.namespace.as_str())
        .collect();
    for schema in &catalog.tables {
        let id = &schema.id;
        let Some(info) = table(id) else {
            continue;
        };
        if !info.engine.eq_ignore_ascii_case("innodb") && !info.engine.is_empty() {
            out.push(
                Finding::new(
                    FindingLevel::Warning,
                    finding_code::OTHER,
                    format!(
                        "storage engine {} is not transactional: the snapshot is consistent only \
                         while its lock is held, so writes during the copy may be read; stop \
                         writes to this table during the full load or convert it to InnoDB",
                        info.engine
                    ),
                )
                .table(id),
            );
        }
        let mut date_columns = Vec::new();
        for (column, my) in schema.columns.iter().zip(&info.columns) {
            if let Some(expr) = &my.generated {
                out.push(
                    Finding::new(
                        FindingLevel::Warning,
                        finding_code::GENERATED_COLUMN,
                        format!(
                            "generated column (AS {expr}): its values are copied, the expression \
                             is not; the target column is a plain column"
                        ),
                    )
                    .table(id)
                    .column(&column.name),
                );
            }
            let column_type = my.info.column_type.to_ascii_lowercase();
            let loss = crate::types::source_mapping(&my.info, true)
                .map(|m| m.loss)
                .filter(|loss| !loss.is_empty());
            if let Some(loss) = loss {
                out.push(
                    Finding::new(
                        FindingLevel::Info,
                        finding_code::TYPE_MAPPING,
                        format!("{column_type}: {loss}"),
                    )
                    .table(id)
                    .column(&column.name),
                );
            } else if column_type.contains("unsigned") {
                out.push(
                    Finding::new(
                        FindingLevel::Info,
                        finding_code::TYPE_MAPPING,
                        format!(
                            "{column_type}: stored as {} so every value fits, but the target \
                             does not reject negative values",
                            column.data_type
                        ),
                    )
                    .table(id)
                    .column(&column.name),
                );
            }
            if column_type.contains("zerofill") {
                out.push(
                    Finding::new(
                        FindingLevel::Info,
                        finding_code::TYPE_MAPPING,
                        "ZEROFILL is a display attribute: the values are copied, the zero \
                         padding is not",
                    )
                    .table(id)
                    .column(&column.name),
                );
            }
            if let Some(cs) = &my.charset
                && !UNICODE_CHARSETS.contains(&cs.as_str())
            {
                out.push(
                    Finding::new(
                        FindingLevel::Info,
                        finding_code::CHARSET,
                        format!(
                            "character set {cs}: the server converts the text to UTF-8 when Ferry \
                             reads it; text stored in it with another encoding (e.g. UTF-8 bytes \
                             in a latin1 column) arrives garbled"
                        ),
                    )
                    .table(id)
                    .column(&column.name),
                );
            }
            if matches!(
                column.data_type,
                DataType::Date | DataType::Timestamp | DataType::TimestampTz
            ) {
                date_columns.push(column.name.clone());
            }
            if let DataType::Other { name, .. } = &column.data_type {
                out.push(
                    Finding::new(
                        FindingLevel::Warning,
                        finding_code::TYPE_MAPPING,
                        format!(
                            "type {name} is not mapped by Ferry: its values are copied as the \
                             server's bytes (exact only to another MySQL/MariaDB)"
                        ),
                    )
                    .table(id)
                    .column(&column.name),
                );
            }
        }
        for column in date_columns {
            let c = quote_ident(&column);
            let sql = format!(
                "SELECT COUNT(*) FROM {} WHERE MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0",
                quote_table(id)
            );
            let count: Option<u64> = conn.query_first(sql).await.map_err(|e| {
                target.error(e, &format!("cannot look for zero dates in {id}.{column}"))
            })?;
            if let Some(n) = count.filter(|n| *n > 0) {
                out.push(
                    Finding::new(
                        FindingLevel::Warning,
                        finding_code::BAD_DATA,
                        format!(
                            "{n} row(s) hold a zero date (0000-00-00) or a date with a zero month \
                             or day, which no other engine can store: they fail the load unless \
                             the table's bad-data policy is null, clamp (moves a zero month or \
                             day to the 1st) or skip-row"
                        ),
                    )
                    .table(id)
                    .column(&column),
                );
            }
        }
    }
    if namespaces.is_empty() {
        return Ok(out);
    }
    let in_list = namespaces
        .iter()
        .map(|n| quote_literal(n))
        .collect::<Vec<_>>()
        .join(", ");
    let selected: BTreeSet<&TableId> = catalog.tables.iter().map(|t| &t.id).collect();
    let objects: [(&str, &str, String); 4] = [
        (
            finding_code::TRIGGER,
            "trigger",
            format!(
                "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS \
                 WHERE TRIGGER_SCHEMA IN ({in_list}) ORDER BY 1, 2"
            ),
        ),
        (
            finding_code::VIEW,
            "view",
            format!(
                "SELECT TABLE_SCHEMA, TABLE_NAME, NULL FROM information_schema.VIEWS \
                 WHERE TABLE_SCHEMA IN ({in_list}) ORDER BY 1, 2"
            ),
        ),
        (
            finding_code::ROUTINE,
            "routine",
            format!(
                "SELECT ROUTINE_SCHEMA, CONCAT(LOWER(ROUTINE_TYPE), ' ', ROUTINE_NAME), NULL \
                 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN ({in_list}) ORDER BY 1, 2"
            ),
        ),
        (
            finding_code::OTHER,
            "event",
            format!(
                "SELECT EVENT_SCHEMA, EVENT_NAME, NULL FROM information_schema.EVENTS \
                 WHERE EVENT_SCHEMA IN ({in_list}) ORDER BY 1, 2"
            ),
        ),
    ];
    for (code, what, sql) in objects {
        let rows: Vec<(String, String, Option<String>)> = conn
            .query(sql)
            .await
            .map_err(|e| target.error(e, &format!("cannot list {what}s")))?;
        for (ns, name, table) in rows {
            let mut f = Finding::new(
                FindingLevel::Warning,
                code,
                format!("{what} {ns}.{name} is not converted; re-create it on the target by hand"),
            )
            .object(format!("{what} {ns}.{name}"));
            if let Some(t) = table {
                let id = TableId::new(ns.clone(), t);
                if !selected.contains(&id) {
                    continue;
                }
                f = f.table(&id);
            }
            out.push(f);
        }
    }
    Ok(out)
}
