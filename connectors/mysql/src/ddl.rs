//! DDL for the sink: schema conversion with findings, `CREATE TABLE`, keys and
//! indexes after the load, foreign keys after every table.

use crate::catalog::AUTO_INCREMENT;
use crate::connect::{MAX_IDENTIFIER_LEN, ServerInfo, quote_ident, quote_table};
use crate::types;
use ferry_core::{
    Column, DataType, Finding, FindingLevel, ForeignKey, Index, IndexPart, SchemaDdl, TableSchema,
    finding_code,
};

/// Characters of an unbounded text column that a secondary index covers.
pub(crate) const INDEX_PREFIX_CHARS: u32 = 255;
/// InnoDB's longest index key in bytes (DYNAMIC row format).
const MAX_KEY_BYTES: u32 = 3072;
/// The row-size limit of MySQL tables (all `VARCHAR`/`CHAR` bytes together).
const MAX_ROW_BYTES: u64 = 65_535;

/// Whether a converted column's MySQL type is a `TEXT`/`BLOB`/`JSON` type, which
/// cannot be a key without a prefix.
fn is_lob(source_type: &str) -> bool {
    let t = source_type.trim().to_ascii_lowercase();
    [
        "tinytext",
        "text",
        "mediumtext",
        "longtext",
        "tinyblob",
        "blob",
        "mediumblob",
        "longblob",
        "json",
    ]
    .iter()
    .any(|lob| t == *lob || t.starts_with(&format!("{lob} ")))
}

fn is_text_lob(source_type: &str) -> bool {
    let t = source_type.trim().to_ascii_lowercase();
    t.contains("text")
}

/// Bytes a column takes in the row-size limit (only what counts: `VARCHAR`/`CHAR`
/// and the fixed types; `TEXT`/`BLOB` count a few bytes).
fn row_bytes(source_type: &str) -> u64 {
    let t = source_type.trim().to_ascii_lowercase();
    let n = t
        .split_once('(')
        .and_then(|(_, rest)| rest.split([')', ',']).next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if t.starts_with("varchar") {
        n * 4 + 2
    } else if t.starts_with("char") {
        n * 4
    } else if t.starts_with("varbinary") {
        n + 2
    } else if t.starts_with("binary") {
        n
    } else if t.starts_with("decimal") {
        n / 2 + 1
    } else {
        12
    }
}

/// The target schema for a source table, with a finding for everything that is not
/// converted exactly. `Error` findings mean the table cannot be created as asked.
/// With `database` (the target URL's), every table and every table a foreign key
/// references moves into that database.
pub(crate) fn convert(
    source_engine: &str,
    schema: &TableSchema,
    server: &ServerInfo,
    database: Option<&str>,
) -> (TableSchema, Vec<Finding>) {
    let mut target = schema.clone();
    if let Some(db) = database {
        target.id.namespace = db.to_string();
        for fk in &mut target.foreign_keys {
            fk.referenced_table.namespace = db.to_string();
        }
    }
    let mut findings = Vec::new();
    let same_engine = source_engine == server.flavor.engine();
    let id = &schema.id;
    let finding = |level: FindingLevel, code: &str, column: Option<&str>, message: String| {
        let f = Finding::new(level, code, message).table(id);
        match column {
            Some(c) => f.column(c),
            None => f,
        }
    };

    // Columns and their types.
    let single_int_pk = schema.primary_key.len() == 1;
    for column in &mut target.columns {
        if same_engine {
            if column.data_type.is_other() {
                findings.push(finding(
                    FindingLevel::Info,
                    finding_code::TYPE_MAPPING,
                    Some(&column.name),
                    format!(
                        "type {} is not mapped by Ferry; passed through unchanged ({} to {})",
                        column.source_type, source_engine, source_engine
                    ),
                ));
            }
            continue;
        }
        let (sql, loss) = types::target_type(&column.data_type, server.flavor);
        if let Some((level, note)) = loss {
            findings.push(finding(
                level,
                finding_code::TYPE_MAPPING,
                Some(&column.name),
                note,
            ));
        }
        column.source_type = sql;
        let serial = column
            .default
            .as_deref()
            .is_some_and(|d| d == AUTO_INCREMENT || d.contains("nextval("));
        if let Some(default) = column.default.take().filter(|_| !serial) {
            findings.push(finding(
                FindingLevel::Info,
                finding_code::TYPE_MAPPING,
                Some(&column.name),
                format!(
                    "default {default} is in the source's SQL dialect and is not converted; the \
                     column is created without a default"
                ),
            ));
        }
        if serial {
            let integer = matches!(
                column.data_type,
                DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt64
            );
            if integer && single_int_pk && schema.primary_key.first() == Some(&column.name) {
                column.default = Some(AUTO_INCREMENT.to_string());
                findings.push(finding(
                    FindingLevel::Info,
                    finding_code::SEQUENCE,
                    Some(&column.name),
                    "the sequence default becomes AUTO_INCREMENT (the counter continues after \
                     the largest loaded value)"
                        .into(),
                ));
            } else {
                findings.push(finding(
                    FindingLevel::Warning,
                    finding_code::SEQUENCE,
                    Some(&column.name),
                    "the sequence default is not converted: MySQL allows AUTO_INCREMENT only on \
                     a key column; the column is created without a default"
                        .into(),
                ));
            }
        }
    }

    // MySQL names every primary key PRIMARY.
    target.primary_key_name = None;

    // Key columns of TEXT/BLOB types need a bounded type (primary and unique keys) or
    // a prefix (secondary indexes).
    let mut key_sets: Vec<Vec<String>> = Vec::new();
    if !target.primary_key.is_empty() {
        key_sets.push(target.primary_key.clone());
    }
    key_sets.extend(target.unique_keys.iter().map(|k| k.columns.clone()));
    for key in &key_sets {
        let lobs: Vec<String> = key
            .iter()
            .filter(|c| target.column(c).is_some_and(|c| is_lob(&c.source_type)))
            .cloned()
            .collect();
        if lobs.is_empty() {
            continue;
        }
        let share = MAX_KEY_BYTES / u32::try_from(lobs.len()).unwrap_or(1).max(1);
        for name in lobs {
            let Some(column) = target.columns.iter_mut().find(|c| c.name == name) else {
                continue;
            };
            if !is_lob(&column.source_type) {
                continue; // already bounded for another key
            }
            if column.source_type.to_ascii_lowercase().starts_with("json") {
                findings.push(finding(
                    FindingLevel::Error,
                    finding_code::TYPE_MAPPING,
                    Some(&name),
                    "a JSON column cannot be part of a MySQL primary or unique key; drop the key \
                     or change the column's type with a rule"
                        .into(),
                ));
                continue;
            }
            if is_text_lob(&column.source_type) {
                let chars = share / 4;
                column.source_type = format!("VARCHAR({chars})");
                column.data_type = DataType::Text {
                    max_len: Some(chars),
                    fixed: false,
                };
                findings.push(finding(
                    FindingLevel::Warning,
                    finding_code::TYPE_MAPPING,
                    Some(&name),
                    format!(
                        "unbounded text in a primary or unique key: created as VARCHAR({chars}) \
                         (InnoDB keys hold at most {MAX_KEY_BYTES} bytes); longer values are \
                         handled by the bad-data policy"
                    ),
                ));
            } else {
                column.source_type = format!("VARBINARY({share})");
                findings.push(finding(
                    FindingLevel::Warning,
                    finding_code::TYPE_MAPPING,
                    Some(&name),
                    format!(
                        "bytes in a primary or unique key: created as VARBINARY({share}) (InnoDB \
                         keys hold at most {MAX_KEY_BYTES} bytes); longer values fail to load"
                    ),
                ));
            }
        }
    }

    // Secondary indexes: keep what MySQL can build.
    let columns = target.columns.clone();
    let mut kept = Vec::new();
    for mut index in std::mem::take(&mut target.indexes) {
        let mut drop_reason = None;
        if index.predicate.is_some() {
            drop_reason = Some("MySQL has no partial indexes".to_string());
        }
        if !same_engine && let Some(method) = &index.method {
            drop_reason = Some(format!("MySQL has no {method} indexes"));
        }
        for part in &mut index.parts {
            match part {
                IndexPart::Column(c) => {
                    let lob = columns
                        .iter()
                        .find(|col| &col.name == c)
                        .is_some_and(|col| is_lob(&col.source_type));
                    if lob && index.method.is_none() {
                        if columns
                            .iter()
                            .find(|col| &col.name == c)
                            .is_some_and(|col| {
                                col.source_type.to_ascii_lowercase().starts_with("json")
                            })
                        {
                            drop_reason =
                                Some(format!("column {c} is JSON, which MySQL cannot index"));
                            continue;
                        }
                        findings.push(finding(
                            FindingLevel::Info,
                            finding_code::OTHER,
                            Some(c),
                            format!(
                                "index {} covers the first {INDEX_PREFIX_CHARS} characters of this \
                                 TEXT/BLOB column (MySQL indexes only a prefix of them)",
                                index.name
                            ),
                        ));
                        *part = IndexPart::Expression(format!(
                            "{}({INDEX_PREFIX_CHARS})",
                            quote_ident(c)
                        ));
                    }
                }
                IndexPart::Expression(e) => {
                    if !(same_engine && is_prefix_part(e)) {
                        drop_reason = Some(if e.is_empty() {
                            "its expression key parts are not reported by information_schema".into()
                        } else {
                            format!("its expression {e} is in another SQL dialect")
                        });
                    }
                }
            }
        }
        match drop_reason {
            Some(reason) => findings.push(finding(
                FindingLevel::Warning,
                finding_code::OTHER,
                None,
                format!(
                    "index {} is not created: {reason}; create it by hand after the load",
                    index.name
                ),
            )),
            None => kept.push(index),
        }
    }
    target.indexes = kept;

    // Row size: too many wide VARCHARs make CREATE TABLE fail; the widest become TEXT.
    let in_key = |name: &str| {
        key_sets.iter().any(|k| k.iter().any(|c| c == name))
            || target
                .indexes
                .iter()
                .any(|i| i.parts.contains(&IndexPart::Column(name.to_string())))
    };
    let mut total: u64 = target
        .columns
        .iter()
        .map(|c| row_bytes(&c.source_type))
        .sum();
    while total > MAX_ROW_BYTES - 1024 {
        let widest = target
            .columns
            .iter_mut()
            .filter(|c| {
                c.source_type.to_ascii_uppercase().starts_with("VARCHAR") && !in_key(&c.name)
            })
            .max_by_key(|c| row_bytes(&c.source_type));
        let Some(column) = widest else {
            findings.push(finding(
                FindingLevel::Error,
                finding_code::OTHER,
                None,
                format!(
                    "the columns need {total} bytes per row, more than MySQL's 65,535; change \
                     some types with a rule"
                ),
            ));
            break;
        };
        total -= row_bytes(&column.source_type);
        findings.push(finding(
            FindingLevel::Info,
            finding_code::TYPE_MAPPING,
            Some(&column.name),
            format!(
                "{} would exceed MySQL's 65,535-byte row size together with the other columns: \
                 created as LONGTEXT, the length limit is not enforced",
                column.source_type
            ),
        ));
        column.source_type = "LONGTEXT".into();
        total += row_bytes("LONGTEXT");
    }

    // Identifier lengths.
    let mut names: Vec<(&str, String)> = vec![
        ("database", target.id.namespace.clone()),
        ("table", target.id.name.clone()),
    ];
    names.extend(target.columns.iter().map(|c| ("column", c.name.clone())));
    names.extend(
        target
            .unique_keys
            .iter()
            .map(|k| ("unique key", k.name.clone())),
    );
    names.extend(target.indexes.iter().map(|i| ("index", i.name.clone())));
    names.extend(
        target
            .foreign_keys
            .iter()
            .map(|k| ("foreign key", k.name.clone())),
    );
    for (what, name) in names {
        let len = name.chars().count();
        if len > MAX_IDENTIFIER_LEN {
            findings.push(
                finding(
                    FindingLevel::Error,
                    finding_code::OTHER,
                    None,
                    format!(
                        "{what} name {name:?} is {len} characters long; MySQL allows \
                         {MAX_IDENTIFIER_LEN}: rename it with a rule"
                    ),
                )
                .object(format!("{what} {name}")),
            );
        }
    }
    (target, findings)
}

/// Whether an index expression is a MySQL prefix key part, `` `col`(n) ``.
fn is_prefix_part(expr: &str) -> bool {
    let Some(rest) = expr.strip_prefix('`') else {
        return false;
    };
    let Some(open) = rest.rfind("`(") else {
        return false;
    };
    rest[open + 2..]
        .strip_suffix(')')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A column's definition in `CREATE TABLE` and `ALTER TABLE ... ADD COLUMN`.
pub(crate) fn column_definition(column: &Column) -> String {
    let mut def = format!("{} {}", quote_ident(&column.name), column.source_type);
    if !column.nullable {
        def.push_str(" NOT NULL");
    } else if column
        .source_type
        .to_ascii_lowercase()
        .starts_with("timestamp")
    {
        def.push_str(" NULL");
    }
    if let Some(default) = column.default.as_deref().filter(|d| *d != AUTO_INCREMENT) {
        def.push_str(&format!(" DEFAULT {default}"));
    }
    def
}

/// `CREATE DATABASE IF NOT EXISTS` for the table's database.
pub(crate) fn create_database(schema: &TableSchema) -> String {
    format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4",
        quote_ident(&schema.id.namespace)
    )
}

/// `CREATE TABLE` without keys (they are added after the load).
pub(crate) fn create_table(schema: &TableSchema, server: &ServerInfo) -> String {
    let columns = schema
        .columns
        .iter()
        .map(column_definition)
        .collect::<Vec<_>>()
        .join(",\n  ");
    format!(
        "CREATE TABLE {} (\n  {columns}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={}",
        quote_table(&schema.id),
        server.binary_collation()
    )
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn index_clause(index: &Index) -> String {
    let parts = index
        .parts
        .iter()
        .map(|p| match p {
            IndexPart::Column(c) => quote_ident(c),
            IndexPart::Expression(e) if is_prefix_part(e) => e.clone(),
            IndexPart::Expression(e) => format!("({e})"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let kind = match index.method.as_deref() {
        Some("fulltext") => "FULLTEXT INDEX",
        Some("spatial") => "SPATIAL INDEX",
        _ if index.unique => "UNIQUE INDEX",
        _ => "INDEX",
    };
    let using = match index.method.as_deref() {
        Some("hash") => " USING HASH",
        _ => "",
    };
    format!("ADD {kind} {}{using} ({parts})", quote_ident(&index.name))
}

/// The one `ALTER TABLE` that adds the primary key (and `AUTO_INCREMENT`), unique
/// keys and indexes after the load; `None` when there is nothing to add.
pub(crate) fn post_load(schema: &TableSchema) -> Option<String> {
    let mut clauses = Vec::new();
    if !schema.primary_key.is_empty() {
        clauses.push(format!(
            "ADD PRIMARY KEY ({})",
            column_list(&schema.primary_key)
        ));
    }
    for column in &schema.columns {
        if column.default.as_deref() == Some(AUTO_INCREMENT) {
            clauses.push(format!(
                "MODIFY {} {} NOT NULL AUTO_INCREMENT",
                quote_ident(&column.name),
                column.source_type
            ));
        }
    }
    for key in &schema.unique_keys {
        clauses.push(format!(
            "ADD UNIQUE KEY {} ({})",
            quote_ident(&key.name),
            column_list(&key.columns)
        ));
    }
    for index in &schema.indexes {
        clauses.push(index_clause(index));
    }
    (!clauses.is_empty()).then(|| {
        format!(
            "ALTER TABLE {}\n  {}",
            quote_table(&schema.id),
            clauses.join(",\n  ")
        )
    })
}

fn foreign_key_clause(fk: &ForeignKey) -> String {
    format!(
        "ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {} ON UPDATE {}",
        quote_ident(&fk.name),
        column_list(&fk.columns),
        quote_table(&fk.referenced_table),
        column_list(&fk.referenced_columns),
        fk.on_delete.as_sql(),
        fk.on_update.as_sql()
    )
}

/// The one `ALTER TABLE` that adds the foreign keys; `None` without any.
pub(crate) fn foreign_keys(schema: &TableSchema) -> Option<String> {
    (!schema.foreign_keys.is_empty()).then(|| {
        format!(
            "ALTER TABLE {}\n  {}",
            quote_table(&schema.id),
            schema
                .foreign_keys
                .iter()
                .map(foreign_key_clause)
                .collect::<Vec<_>>()
                .join(",\n  ")
        )
    })
}

/// Everything the sink runs for a converted table, for `ferry schema`.
pub(crate) fn schema_ddl(schema: &TableSchema, server: &ServerInfo) -> SchemaDdl {
    SchemaDdl {
        pre_load: vec![create_database(schema), create_table(schema, server)],
        post_load: post_load(schema).into_iter().collect(),
        foreign_keys: foreign_keys(schema).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::Flavor;
    use ferry_core::{ReferentialAction, TableId, UniqueKey};

    fn server() -> ServerInfo {
        ServerInfo {
            flavor: Flavor::MariaDb,
            version: (10, 11, 0),
        }
    }

    fn column(name: &str, data_type: DataType, nullable: bool) -> Column {
        Column {
            name: name.into(),
            source_type: data_type.to_string(),
            data_type,
            nullable,
            default: None,
        }
    }

    fn table() -> TableSchema {
        let mut s = TableSchema::new(
            TableId::new("shop", "order"),
            vec![
                column("id", DataType::Int64, false),
                column("label", DataType::text(), false),
                column("note", DataType::text(), true),
                column(
                    "price",
                    DataType::Decimal {
                        precision: None,
                        scale: None,
                    },
                    true,
                ),
            ],
        );
        s.primary_key = vec!["id".into()];
        s.primary_key_name = Some("order_pkey".into());
        s.unique_keys.push(UniqueKey {
            name: "order_label_key".into(),
            columns: vec!["label".into()],
        });
        s.indexes.push(Index {
            name: "order_note_idx".into(),
            unique: false,
            parts: vec![IndexPart::Column("note".into())],
            method: None,
            predicate: None,
        });
        s.indexes.push(Index {
            name: "order_lower".into(),
            unique: false,
            parts: vec![IndexPart::Expression("lower(note)".into())],
            method: None,
            predicate: None,
        });
        s.columns[0].default = Some("nextval('order_id_seq'::regclass)".into());
        s
    }

    #[test]
    fn conversion_from_another_engine() {
        let (t, findings) = convert("postgres", &table(), &server(), None);
        assert_eq!(t.primary_key_name, None);
        assert_eq!(t.columns[0].source_type, "BIGINT");
        assert_eq!(t.columns[0].default.as_deref(), Some(AUTO_INCREMENT));
        assert_eq!(t.columns[1].source_type, "VARCHAR(768)");
        assert_eq!(
            t.columns[1].data_type,
            DataType::Text {
                max_len: Some(768),
                fixed: false
            }
        );
        assert_eq!(t.columns[2].source_type, "LONGTEXT");
        assert_eq!(t.columns[3].source_type, "DECIMAL(65,30)");
        assert_eq!(t.indexes.len(), 1, "{:?}", t.indexes);
        assert_eq!(
            t.indexes[0].parts,
            vec![IndexPart::Expression("`note`(255)".into())]
        );
        let text = findings
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("order_lower is not created"), "{text}");
        assert!(text.contains("DECIMAL(65,30)"), "{text}");
        assert!(
            findings.iter().all(|f| f.level != FindingLevel::Error),
            "{text}"
        );
        assert_eq!(
            types::kind(&t.columns[3].data_type),
            types::Kind::DecimalUnbounded
        );
    }

    #[test]
    fn ddl_statements() {
        let (mut t, _) = convert("postgres", &table(), &server(), None);
        t.foreign_keys.push(ForeignKey {
            name: "fk_customer".into(),
            columns: vec!["id".into()],
            referenced_table: TableId::new("shop", "customer"),
            referenced_columns: vec!["id".into()],
            on_delete: ReferentialAction::Cascade,
            on_update: ReferentialAction::NoAction,
        });
        assert_eq!(
            create_table(&t, &server()),
            "CREATE TABLE `shop`.`order` (\n  `id` BIGINT NOT NULL,\n  `label` VARCHAR(768) NOT NULL,\n  \
             `note` LONGTEXT,\n  `price` DECIMAL(65,30)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 \
             COLLATE=utf8mb4_nopad_bin"
        );
        assert_eq!(
            post_load(&t).as_deref(),
            Some(
                "ALTER TABLE `shop`.`order`\n  ADD PRIMARY KEY (`id`),\n  MODIFY `id` BIGINT NOT NULL \
                 AUTO_INCREMENT,\n  ADD UNIQUE KEY `order_label_key` (`label`),\n  ADD INDEX \
                 `order_note_idx` (`note`(255))"
            )
        );
        assert_eq!(
            foreign_keys(&t).as_deref(),
            Some(
                "ALTER TABLE `shop`.`order`\n  ADD CONSTRAINT `fk_customer` FOREIGN KEY (`id`) \
                 REFERENCES `shop`.`customer` (`id`) ON DELETE CASCADE ON UPDATE NO ACTION"
            )
        );
    }

    #[test]
    fn long_identifiers_are_errors() {
        let mut s = table();
        s.columns[2].name = "n".repeat(65);
        s.indexes.clear();
        let (_, findings) = convert("postgres", &s, &server(), None);
        let errors: Vec<_> = findings
            .iter()
            .filter(|f| f.level == FindingLevel::Error)
            .collect();
        assert_eq!(errors.len(), 1, "{findings:?}");
        assert!(errors[0].message.contains("65 characters"));
    }

    #[test]
    fn wide_varchars_fit_the_row() {
        let cols = (0..6)
            .map(|i| {
                column(
                    &format!("c{i}"),
                    DataType::Text {
                        max_len: Some(5000),
                        fixed: false,
                    },
                    true,
                )
            })
            .collect();
        let s = TableSchema::new(TableId::new("s", "wide"), cols);
        let (t, findings) = convert("postgres", &s, &server(), None);
        let total: u64 = t.columns.iter().map(|c| row_bytes(&c.source_type)).sum();
        assert!(total < MAX_ROW_BYTES, "{total}");
        assert!(findings.iter().any(|f| f.message.contains("row size")));
    }

    #[test]
    fn same_engine_keeps_types_and_prefixes() {
        let mut s = TableSchema::new(
            TableId::new("s", "t"),
            vec![Column {
                name: "tx".into(),
                data_type: DataType::text(),
                nullable: true,
                default: None,
                source_type: "mediumtext CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci".into(),
            }],
        );
        s.indexes.push(Index {
            name: "ix".into(),
            unique: false,
            parts: vec![IndexPart::Expression("`tx`(10)".into())],
            method: None,
            predicate: None,
        });
        let (t, findings) = convert("mariadb", &s, &server(), Some("copy"));
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(t.columns[0].source_type, s.columns[0].source_type);
        assert_eq!(
            post_load(&t).as_deref(),
            Some("ALTER TABLE `copy`.`t`\n  ADD INDEX `ix` (`tx`(10))")
        );
        assert!(is_prefix_part("`a``b`(3)"));
        assert!(!is_prefix_part("lower(a)"));
    }
}
