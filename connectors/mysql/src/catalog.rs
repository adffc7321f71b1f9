//! Catalog discovery from `information_schema`, shared by the source (what to read)
//! and the sink (what an existing target table looks like).

use crate::connect::{Flavor, Target, quote_ident, quote_literal};
use crate::types::{self, ColumnTypeInfo, To};
use ferry_core::{
    Column, ForeignKey, Index, IndexPart, ReferentialAction, Result, TableFilter, TableId,
    TableSchema, UniqueKey,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use std::collections::{BTreeMap, HashMap};

/// Databases that are never migrated.
pub(crate) const SYSTEM_DATABASES: &[&str] =
    &["mysql", "information_schema", "performance_schema", "sys"];

/// The `default` Ferry records for an `AUTO_INCREMENT` column (the engine-neutral
/// marker of `ferry-core`); the MySQL sink re-creates the column as `AUTO_INCREMENT`
/// when it adds the keys.
pub use ferry_core::AUTO_INCREMENT;

/// One discovered column: the logical column plus what the codec needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MyColumn {
    /// The column's MySQL type.
    pub(crate) info: ColumnTypeInfo,
    /// Which mapping produced its logical type.
    pub(crate) to: To,
    /// Generation expression of a generated (computed) column.
    pub(crate) generated: Option<String>,
    /// Character set of a text column.
    pub(crate) charset: Option<String>,
}

/// A discovered table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MyTable {
    /// The engine-neutral schema.
    pub(crate) schema: TableSchema,
    /// Per column, in column order.
    pub(crate) columns: Vec<MyColumn>,
    /// `information_schema.TABLES.DATA_LENGTH` (an estimate).
    pub(crate) data_length: u64,
    /// Storage engine (`InnoDB`, `MyISAM`, ...).
    pub(crate) engine: String,
}

/// Discovery settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DiscoverOptions {
    /// Map `TINYINT(1)` to bool.
    pub(crate) tinyint1_as_bool: bool,
}

fn text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i) {
        Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(mysql_async::Value::Int(n)) => Some(n.to_string()),
        Some(mysql_async::Value::UInt(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn number(row: &Row, i: usize) -> Option<u64> {
    match row.as_ref(i) {
        Some(mysql_async::Value::Int(n)) => u64::try_from(*n).ok(),
        Some(mysql_async::Value::UInt(n)) => Some(*n),
        Some(mysql_async::Value::Bytes(b)) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

async fn query(conn: &mut Conn, target: &Target, sql: String, what: &str) -> Result<Vec<Row>> {
    conn.query(sql)
        .await
        .map_err(|e| target.error(e, &format!("cannot read {what} from information_schema")))
}

/// Discovers every table the filter selects. When the include patterns do not
/// restrict databases, only the URL's database is searched (if it names one).
pub(crate) async fn discover(
    conn: &mut Conn,
    target: &Target,
    flavor: Flavor,
    filter: &TableFilter,
    options: DiscoverOptions,
) -> Result<Vec<MyTable>> {
    // A namespace that cannot exist matches only patterns that accept any database.
    let unconstrained = filter.may_match_namespace("\u{0}");
    let url_db = target.database().map(str::to_string);
    discover_where(conn, target, flavor, options, |id| {
        if unconstrained
            && let Some(db) = &url_db
            && &id.namespace != db
        {
            return false;
        }
        filter.may_match_namespace(&id.namespace) && filter.matches(id)
    })
    .await
}

/// Discovers one table, or `None` when it does not exist.
pub(crate) async fn discover_one(
    conn: &mut Conn,
    target: &Target,
    flavor: Flavor,
    id: &TableId,
    options: DiscoverOptions,
) -> Result<Option<MyTable>> {
    let tables = discover_where(conn, target, flavor, options, |t| t == id).await?;
    Ok(tables.into_iter().next())
}

async fn discover_where(
    conn: &mut Conn,
    target: &Target,
    flavor: Flavor,
    options: DiscoverOptions,
    selected: impl Fn(&TableId) -> bool,
) -> Result<Vec<MyTable>> {
    let system = SYSTEM_DATABASES
        .iter()
        .map(|d| quote_literal(d))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = query(
        conn,
        target,
        format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS, DATA_LENGTH, ENGINE \
             FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({system}) \
             ORDER BY TABLE_SCHEMA, TABLE_NAME"
        ),
        "tables",
    )
    .await?;
    let mut tables: BTreeMap<TableId, MyTable> = BTreeMap::new();
    for row in &rows {
        let (Some(ns), Some(name)) = (text(row, 0), text(row, 1)) else {
            continue;
        };
        let id = TableId::new(ns, name);
        if !selected(&id) {
            continue;
        }
        let mut schema = TableSchema::new(id.clone(), Vec::new());
        schema.estimated_rows = number(row, 2);
        schema.estimated_bytes = number(row, 3);
        tables.insert(
            id,
            MyTable {
                schema,
                columns: Vec::new(),
                data_length: number(row, 3).unwrap_or(0),
                engine: text(row, 4).unwrap_or_default(),
            },
        );
    }
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let mut namespaces: Vec<&str> = tables.keys().map(|id| id.namespace.as_str()).collect();
    namespaces.dedup();
    let in_list = namespaces
        .iter()
        .map(|n| quote_literal(n))
        .collect::<Vec<_>>()
        .join(", ");

    let json_checks = if flavor == Flavor::MariaDb {
        json_checks(conn, target, &in_list).await?
    } else {
        HashMap::new()
    };
    load_columns(
        conn,
        target,
        flavor,
        options,
        &in_list,
        &json_checks,
        &mut tables,
    )
    .await?;
    for table in tables.values_mut() {
        exact_enum_labels(conn, target, table).await;
    }
    load_indexes(conn, target, &in_list, &mut tables).await?;
    load_foreign_keys(conn, target, &in_list, &mut tables).await?;
    Ok(tables.into_values().collect())
}

/// MariaDB's `JSON` is `LONGTEXT` with a `json_valid(col)` check: (table, column) pairs.
async fn json_checks(
    conn: &mut Conn,
    target: &Target,
    in_list: &str,
) -> Result<HashMap<(TableId, String), ()>> {
    let rows = query(
        conn,
        target,
        format!(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE \
             FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN ({in_list})"
        ),
        "check constraints",
    )
    .await?;
    let mut out = HashMap::new();
    for row in &rows {
        let (Some(ns), Some(table), Some(clause)) = (text(row, 0), text(row, 1), text(row, 2))
        else {
            continue;
        };
        if let Some(column) = clause
            .trim()
            .strip_prefix("json_valid(`")
            .and_then(|rest| rest.strip_suffix("`)"))
        {
            out.insert((TableId::new(ns, table), column.replace("``", "`")), ());
        }
    }
    Ok(out)
}

/// `information_schema` stores `ENUM` members in utf8mb3, so a member with a
/// character beyond the BMP (an emoji) reads as `?`. For such columns, the members
/// are read back through a temporary copy of the table (members by index); without
/// the `CREATE TEMPORARY TABLES` privilege the `?` stays and a warning is logged.
async fn exact_enum_labels(conn: &mut Conn, target: &Target, table: &mut MyTable) {
    let suspicious: Vec<usize> = table
        .schema
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            matches!(&c.data_type, ferry_core::DataType::Enum { labels, .. }
                if labels.iter().any(|l| l.contains('?')))
        })
        .map(|(i, _)| i)
        .collect();
    if suspicious.is_empty() {
        return;
    }
    let probe = format!(
        "{}.`ferry_enum_probe`",
        quote_ident(&table.schema.id.namespace)
    );
    let source = crate::connect::quote_table(&table.schema.id);
    for i in suspicious {
        let column = &mut table.schema.columns[i];
        let ferry_core::DataType::Enum { labels, .. } = &mut column.data_type else {
            continue;
        };
        let c = quote_ident(&column.name);
        let values = (1..=labels.len())
            .map(|n| format!("({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        // A copy of just this column (no keys, nullable) holds every member by index.
        let statements = [
            format!("DROP TEMPORARY TABLE IF EXISTS {probe}"),
            format!("CREATE TEMPORARY TABLE {probe} SELECT {c} FROM {source} LIMIT 0"),
            format!("INSERT INTO {probe} ({c}) VALUES {values}"),
        ];
        let read = format!("SELECT {c} + 0, CAST({c} AS CHAR) FROM {probe} ORDER BY 1");
        let exact: Result<Vec<(u64, String)>, _> = async {
            for sql in statements {
                conn.query_drop(sql).await?;
            }
            conn.query(read).await
        }
        .await;
        match exact {
            Ok(rows) if rows.len() == labels.len() => {
                *labels = rows.into_iter().map(|(_, l)| l).collect();
            }
            Ok(_) => {
                tracing::warn!(table = %table.schema.id, column = %column.name, "cannot read ENUM members exactly");
            }
            Err(e) => {
                tracing::warn!(
                    table = %table.schema.id,
                    column = %column.name,
                    error = %target.error(e, "reading ENUM members"),
                    "cannot read ENUM members exactly (information_schema shows characters \
                     beyond the BMP as '?'); CREATE TEMPORARY TABLES is needed for that"
                );
            }
        }
    }
    let _ = conn
        .query_drop(format!("DROP TEMPORARY TABLE IF EXISTS {probe}"))
        .await;
}

#[allow(clippy::too_many_arguments)]
async fn load_columns(
    conn: &mut Conn,
    target: &Target,
    flavor: Flavor,
    options: DiscoverOptions,
    in_list: &str,
    json_checks: &HashMap<(TableId, String), ()>,
    tables: &mut BTreeMap<TableId, MyTable>,
) -> Result<()> {
    let rows = query(
        conn,
        target,
        format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, \
             COLUMN_DEFAULT, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, \
             CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, GENERATION_EXPRESSION \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ({in_list}) \
             ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
        ),
        "columns",
    )
    .await?;
    for row in &rows {
        let (Some(ns), Some(table), Some(name)) = (text(row, 0), text(row, 1), text(row, 2)) else {
            continue;
        };
        let id = TableId::new(ns, table);
        let Some(entry) = tables.get_mut(&id) else {
            continue;
        };
        let info = ColumnTypeInfo {
            data_type: text(row, 3).unwrap_or_default().to_ascii_lowercase(),
            column_type: text(row, 4).unwrap_or_default(),
            char_len: number(row, 7),
            precision: number(row, 8),
            scale: number(row, 9),
            json_check: json_checks.contains_key(&(id.clone(), name.clone())),
        };
        let enum_name = format!("{}_{}", id.name, name);
        let (data_type, to) = types::logical_type(&info, options.tinyint1_as_bool, &enum_name);
        let extra_raw = text(row, 12).unwrap_or_default();
        let extra = extra_raw.to_ascii_lowercase();
        let generated = if extra.contains("generated") && !extra.contains("default_generated") {
            Some(text(row, 13).unwrap_or_default())
        } else {
            None
        };
        let charset = text(row, 10);
        let collation = text(row, 11);
        let raw_default = text(row, 6);
        let default = if extra.contains("auto_increment") {
            Some(AUTO_INCREMENT.to_string())
        } else if generated.is_some() {
            None
        } else {
            let default = column_default(flavor, &info, raw_default.as_deref(), &extra);
            // `ON UPDATE CURRENT_TIMESTAMP` belongs with the default clause.
            match (default, extra.find("on update ")) {
                (Some(d), Some(at)) => Some(format!("{d} ON UPDATE {}", &extra_raw[at + 10..])),
                (d, _) => d,
            }
        };
        let mut source_type = if to == To::Json {
            "json".to_string()
        } else {
            info.column_type.clone()
        };
        if to != To::Json
            && let (Some(cs), Some(coll)) = (&charset, &collation)
        {
            source_type.push_str(&format!(" CHARACTER SET {cs} COLLATE {coll}"));
        }
        entry.schema.columns.push(Column {
            name,
            data_type,
            nullable: text(row, 5).is_some_and(|n| n.eq_ignore_ascii_case("yes")),
            default,
            source_type,
        });
        entry.columns.push(MyColumn {
            info,
            to,
            generated,
            charset,
        });
    }
    Ok(())
}

/// The column default as an SQL expression in MySQL's dialect.
fn column_default(
    flavor: Flavor,
    info: &ColumnTypeInfo,
    raw: Option<&str>,
    extra: &str,
) -> Option<String> {
    let raw = raw?;
    match flavor {
        // MariaDB 10.2.7+ reports an SQL expression: NULL, quoted strings, numbers,
        // current_timestamp(), ...
        Flavor::MariaDb if raw.eq_ignore_ascii_case("null") => None,
        Flavor::MariaDb => Some(raw.to_string()),
        // MySQL reports the bare value, or an expression with DEFAULT_GENERATED.
        Flavor::MySql if extra.contains("default_generated") => {
            if raw.to_ascii_lowercase().starts_with("current_timestamp") {
                Some(raw.to_string())
            } else {
                Some(format!("({raw})"))
            }
        }
        Flavor::MySql => {
            let numeric = matches!(
                info.data_type.as_str(),
                "tinyint"
                    | "smallint"
                    | "mediumint"
                    | "int"
                    | "integer"
                    | "bigint"
                    | "decimal"
                    | "numeric"
                    | "float"
                    | "double"
                    | "real"
            ) && raw.parse::<f64>().is_ok();
            if numeric || raw.eq_ignore_ascii_case("current_timestamp") {
                Some(raw.to_string())
            } else {
                Some(quote_literal(raw))
            }
        }
    }
}

async fn load_indexes(
    conn: &mut Conn,
    target: &Target,
    in_list: &str,
    tables: &mut BTreeMap<TableId, MyTable>,
) -> Result<()> {
    let rows = query(
        conn,
        target,
        format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, \
             INDEX_TYPE FROM information_schema.STATISTICS WHERE TABLE_SCHEMA IN ({in_list}) \
             ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
        ),
        "indexes",
    )
    .await?;
    // (table, index) → (unique, method, parts, all parts plain columns)
    type Parts = (bool, String, Vec<IndexPart>, bool);
    let mut indexes: BTreeMap<(TableId, String), Parts> = BTreeMap::new();
    let mut order: Vec<(TableId, String)> = Vec::new();
    for row in &rows {
        let (Some(ns), Some(table), Some(index)) = (text(row, 0), text(row, 1), text(row, 2))
        else {
            continue;
        };
        let id = TableId::new(ns, table);
        if !tables.contains_key(&id) {
            continue;
        }
        let unique = number(row, 3) == Some(0);
        let (part, plain) = match (text(row, 4), number(row, 5)) {
            (Some(column), None) => (IndexPart::Column(column), true),
            (Some(column), Some(prefix)) => (
                IndexPart::Expression(format!("{}({prefix})", quote_ident(&column))),
                false,
            ),
            // A functional key part (MySQL 8): the expression is not reported here.
            (None, _) => (IndexPart::Expression(String::new()), false),
        };
        let key = (id, index);
        let entry = indexes.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            (unique, text(row, 6).unwrap_or_default(), Vec::new(), true)
        });
        entry.2.push(part);
        entry.3 &= plain;
    }
    for key in order {
        let Some((unique, method, parts, plain)) = indexes.remove(&key) else {
            continue;
        };
        let (id, name) = key;
        let Some(table) = tables.get_mut(&id) else {
            continue;
        };
        let columns = || {
            parts
                .iter()
                .filter_map(|p| match p {
                    IndexPart::Column(c) => Some(c.clone()),
                    IndexPart::Expression(_) => None,
                })
                .collect::<Vec<_>>()
        };
        let method_upper = method.to_ascii_uppercase();
        if name == "PRIMARY" {
            table.schema.primary_key = columns();
            // MySQL names every primary key PRIMARY: there is no name to carry.
            table.schema.primary_key_name = None;
        } else if unique && plain && method_upper == "BTREE" {
            table.schema.unique_keys.push(UniqueKey {
                name,
                columns: columns(),
            });
        } else {
            table.schema.indexes.push(Index {
                name,
                unique,
                parts,
                method: (method_upper != "BTREE").then(|| method.to_ascii_lowercase()),
                predicate: None,
            });
        }
    }
    Ok(())
}

fn referential_action(rule: Option<&str>) -> ReferentialAction {
    match rule.map(str::to_ascii_uppercase).as_deref() {
        Some("CASCADE") => ReferentialAction::Cascade,
        Some("SET NULL") => ReferentialAction::SetNull,
        Some("SET DEFAULT") => ReferentialAction::SetDefault,
        Some("RESTRICT") => ReferentialAction::Restrict,
        _ => ReferentialAction::NoAction,
    }
}

async fn load_foreign_keys(
    conn: &mut Conn,
    target: &Target,
    in_list: &str,
    tables: &mut BTreeMap<TableId, MyTable>,
) -> Result<()> {
    let rows = query(
        conn,
        target,
        format!(
            "SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, \
             k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, \
             r.UPDATE_RULE, r.DELETE_RULE \
             FROM information_schema.KEY_COLUMN_USAGE k \
             JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.TABLE_NAME = k.TABLE_NAME \
              AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
             WHERE k.TABLE_SCHEMA IN ({in_list}) AND k.REFERENCED_TABLE_NAME IS NOT NULL \
             ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION"
        ),
        "foreign keys",
    )
    .await?;
    for row in &rows {
        let (Some(ns), Some(table), Some(name), Some(column)) =
            (text(row, 0), text(row, 1), text(row, 2), text(row, 3))
        else {
            continue;
        };
        let id = TableId::new(ns, table);
        let Some(entry) = tables.get_mut(&id) else {
            continue;
        };
        let referenced = TableId::new(
            text(row, 4).unwrap_or_default(),
            text(row, 5).unwrap_or_default(),
        );
        let referenced_column = text(row, 6).unwrap_or_default();
        let keys = &mut entry.schema.foreign_keys;
        match keys.iter_mut().find(|k| k.name == name) {
            Some(fk) => {
                fk.columns.push(column);
                fk.referenced_columns.push(referenced_column);
            }
            None => keys.push(ForeignKey {
                name,
                columns: vec![column],
                referenced_table: referenced,
                referenced_columns: vec![referenced_column],
                on_update: referential_action(text(row, 7).as_deref()),
                on_delete: referential_action(text(row, 8).as_deref()),
            }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(data_type: &str) -> ColumnTypeInfo {
        ColumnTypeInfo {
            data_type: data_type.into(),
            column_type: data_type.into(),
            ..ColumnTypeInfo::default()
        }
    }

    #[test]
    fn defaults_in_mysql_dialect() {
        let int = info("int");
        let vc = info("varchar");
        assert_eq!(
            column_default(Flavor::MariaDb, &int, Some("NULL"), ""),
            None
        );
        assert_eq!(
            column_default(Flavor::MariaDb, &vc, Some("'a''b'"), ""),
            Some("'a''b'".into())
        );
        assert_eq!(
            column_default(Flavor::MySql, &vc, Some("it's"), ""),
            Some("'it''s'".into())
        );
        assert_eq!(
            column_default(Flavor::MySql, &int, Some("5"), ""),
            Some("5".into())
        );
        assert_eq!(
            column_default(Flavor::MySql, &int, Some("rand()"), "default_generated"),
            Some("(rand())".into())
        );
        assert_eq!(column_default(Flavor::MySql, &int, None, ""), None);
    }

    #[test]
    fn referential_actions() {
        assert_eq!(
            referential_action(Some("CASCADE")),
            ReferentialAction::Cascade
        );
        assert_eq!(
            referential_action(Some("SET NULL")),
            ReferentialAction::SetNull
        );
        assert_eq!(
            referential_action(Some("NO ACTION")),
            ReferentialAction::NoAction
        );
        assert_eq!(referential_action(None), ReferentialAction::NoAction);
    }
}
