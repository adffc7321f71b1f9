//! PostgreSQL-specific premigration findings for `ferry assess`: what the catalog
//! holds besides tables that Ferry does not migrate (triggers, views, routines,
//! sequences), generated columns, and the database encoding.

use crate::connect::{Target, quote_ident};
use ferry_core::{Catalog, Finding, FindingLevel, Result, TableId, finding_code};
use std::collections::HashSet;
use tokio_postgres::Client;

const TRIGGERS_SQL: &str = "
SELECT n.nspname::text, c.relname::text, t.tgname::text, pg_get_triggerdef(t.oid)
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND n.nspname = ANY($1)
ORDER BY 1, 2, 3";

const VIEWS_SQL: &str = "
SELECT schemaname::text, viewname::text, 'view' FROM pg_views WHERE schemaname = ANY($1)
UNION ALL
SELECT schemaname::text, matviewname::text, 'materialized view'
FROM pg_matviews WHERE schemaname = ANY($1)
ORDER BY 1, 2";

const ROUTINES_SQL: &str = "
SELECT n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid),
       p.prokind::text
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY($1)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                    AND d.deptype = 'e')
ORDER BY 1, 2, 3";

const SEQUENCES_SQL: &str = "
SELECT n.nspname::text, c.relname::text,
       CASE WHEN has_sequence_privilege(c.oid, 'SELECT')
            THEN pg_sequence_last_value(c.oid) END,
       tn.nspname::text, tc.relname::text, a.attname::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
     AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
LEFT JOIN pg_class tc ON tc.oid = d.refobjid
LEFT JOIN pg_namespace tn ON tn.oid = tc.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE c.relkind = 'S' AND n.nspname = ANY($1)
  AND NOT EXISTS (SELECT 1 FROM pg_depend e
                  WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid
                    AND e.deptype = 'e')
ORDER BY 1, 2";

const GENERATED_SQL: &str = "
SELECT n.nspname::text, c.relname::text, a.attname::text, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attgenerated <> '' AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
ORDER BY 1, 2, a.attnum";

const ENCODING_SQL: &str = "SELECT pg_encoding_to_char(encoding)::text FROM pg_database WHERE datname = current_database()";

/// Everything PostgreSQL-specific worth knowing before migrating `catalog`'s tables.
pub(crate) async fn assess(
    client: &Client,
    target: &Target,
    catalog: &Catalog,
) -> Result<Vec<Finding>> {
    let selected: HashSet<&TableId> = catalog.tables.iter().map(|t| &t.id).collect();
    let mut namespaces: Vec<String> = catalog
        .tables
        .iter()
        .map(|t| t.id.namespace.clone())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let mut findings = Vec::new();
    if namespaces.is_empty() {
        return Ok(findings);
    }
    let query = |sql: &'static str, what: &'static str| {
        let namespaces = &namespaces;
        async move {
            client
                .query(sql, &[namespaces])
                .await
                .map_err(|e| target.error(e, &format!("cannot read {what} for the assessment")))
        }
    };

    for row in query(TRIGGERS_SQL, "triggers").await? {
        let table = TableId::new(row.get::<_, String>(0), row.get::<_, String>(1));
        if !selected.contains(&table) {
            continue;
        }
        let name: String = row.get(2);
        let definition: String = row.get(3);
        findings.push(
            Finding::new(
                FindingLevel::Warning,
                finding_code::TRIGGER,
                format!(
                    "trigger is not migrated; recreate it on the target after the load if \
                     it is still needed: {definition}"
                ),
            )
            .table(&table)
            .object(format!("trigger {name}")),
        );
    }

    for row in query(VIEWS_SQL, "views").await? {
        let (schema, name, kind): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        findings.push(
            Finding::new(
                FindingLevel::Warning,
                finding_code::VIEW,
                format!(
                    "{kind} is not migrated; recreate it on the target (its definition: \
                     SELECT pg_get_viewdef('{}'::regclass) at the source)",
                    qualified(&schema, &name).replace('\'', "''")
                ),
            )
            .object(format!("{kind} {schema}.{name}")),
        );
    }

    for row in query(ROUTINES_SQL, "functions and procedures").await? {
        let (schema, name, args, kind): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let kind = match kind.as_str() {
            "p" => "procedure",
            "a" => "aggregate",
            "w" => "window function",
            _ => "function",
        };
        findings.push(
            Finding::new(
                FindingLevel::Warning,
                finding_code::ROUTINE,
                format!(
                    "{kind} is not migrated; recreate it on the target (its definition: \
                     \\sf {} in psql at the source)",
                    qualified(&schema, &name)
                ),
            )
            .object(format!("{kind} {schema}.{name}({args})")),
        );
    }

    for row in query(SEQUENCES_SQL, "sequences").await? {
        let (schema, name): (String, String) = (row.get(0), row.get(1));
        let last: Option<i64> = row.get(2);
        let owner = match (
            row.get::<_, Option<String>>(3),
            row.get::<_, Option<String>>(4),
            row.get::<_, Option<String>>(5),
        ) {
            (Some(ns), Some(table), Some(column)) => Some((TableId::new(ns, table), column)),
            _ => None,
        };
        let value = last.map_or_else(|| "never used".to_string(), |v| format!("at {v}"));
        let used_by = owner
            .as_ref()
            .map(|(t, c)| format!(" (it feeds column {t}.{c})"))
            .unwrap_or_default();
        let owned_by_selected = owner.as_ref().is_some_and(|(t, _)| selected.contains(t));
        let mut finding = if owned_by_selected {
            Finding::new(
                FindingLevel::Info,
                finding_code::SEQUENCE,
                format!(
                    "sequence ({value}){used_by}: the column becomes an identity column on the \
                     target, moved past the loaded rows; the sequence's own settings \
                     (increment, cache, cycle) are not kept"
                ),
            )
        } else {
            Finding::new(
                FindingLevel::Warning,
                finding_code::SEQUENCE,
                format!(
                    "sequence ({value}) is not migrated{used_by}; create it on the target and \
                     set it past the loaded keys with setval() before writing new rows"
                ),
            )
        }
        .object(format!("sequence {schema}.{name}"));
        if let Some((table, column)) = owner.filter(|(t, _)| selected.contains(t)) {
            finding = finding.table(&table).column(column);
        }
        findings.push(finding);
    }

    for row in query(GENERATED_SQL, "generated columns").await? {
        let table = TableId::new(row.get::<_, String>(0), row.get::<_, String>(1));
        if !selected.contains(&table) {
            continue;
        }
        let column: String = row.get(2);
        let expression: Option<String> = row.get(3);
        findings.push(
            Finding::new(
                FindingLevel::Warning,
                finding_code::GENERATED_COLUMN,
                format!(
                    "generated column (GENERATED ALWAYS AS ({}) STORED): its values are \
                     copied into a plain column; recreate the expression on the target if \
                     it must stay computed",
                    expression.unwrap_or_default()
                ),
            )
            .table(&table)
            .column(column),
        );
    }

    let encoding: String = client
        .query_one(ENCODING_SQL, &[])
        .await
        .map_err(|e| target.error(e, "cannot read the database encoding"))?
        .get(0);
    match encoding.as_str() {
        "UTF8" => {}
        "SQL_ASCII" => findings.push(Finding::new(
            FindingLevel::Warning,
            finding_code::CHARSET,
            "database encoding is SQL_ASCII: PostgreSQL does not validate text, so bytes \
             that are not valid UTF-8 may be present; such a value stops the load with its \
             row's key",
        )),
        other => findings.push(Finding::new(
            FindingLevel::Info,
            finding_code::CHARSET,
            format!(
                "database encoding is {other}; the server converts text to UTF-8 while \
                 copying, nothing is lost"
            ),
        )),
    }
    Ok(findings)
}

fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}
