//! DDL for the sink: type names, `CREATE TABLE`, enum types, keys and indexes.

use crate::connect::{quote_ident, quote_literal, quote_table};
use crate::options::EnumAs;
use ferry_core::{
    AUTO_INCREMENT, Column, DataType, Finding, FindingLevel, ForeignKey, Index, IndexPart,
    ReferentialAction, SchemaDdl, TableSchema, finding_code,
};

/// The PostgreSQL type for a logical type from another engine, and a finding when
/// the mapping is not exact.
///
/// Enum types without a schema in their name live in `namespace` (the table's).
pub(crate) fn type_name(data_type: &DataType, namespace: &str) -> (String, Option<String>) {
    let plain = |s: &str| (s.to_string(), None);
    match data_type {
        DataType::Bool => plain("boolean"),
        DataType::Int16 => plain("smallint"),
        DataType::Int32 => plain("integer"),
        DataType::Int64 => plain("bigint"),
        DataType::UInt64 => plain("numeric(20,0)"),
        DataType::Float32 => plain("real"),
        DataType::Float64 => plain("double precision"),
        DataType::Decimal {
            precision: Some(p),
            scale,
        } => (format!("numeric({p},{})", scale.unwrap_or(0)), None),
        DataType::Decimal { .. } => plain("numeric"),
        DataType::Text {
            max_len: Some(n),
            fixed: true,
        } => (format!("character({n})"), None),
        DataType::Text {
            max_len: Some(n),
            fixed: false,
        } => (format!("character varying({n})"), None),
        DataType::Text { .. } => plain("text"),
        DataType::Bytes => plain("bytea"),
        DataType::Date => plain("date"),
        DataType::Time => plain("time without time zone"),
        DataType::TimeTz => plain("time with time zone"),
        DataType::Timestamp => plain("timestamp without time zone"),
        DataType::TimestampTz => plain("timestamp with time zone"),
        DataType::Interval => plain("interval"),
        DataType::Uuid => plain("uuid"),
        DataType::Json { binary: true } => plain("jsonb"),
        DataType::Json { binary: false } => plain("json"),
        DataType::Inet => plain("inet"),
        DataType::Cidr => plain("cidr"),
        DataType::MacAddr => plain("macaddr"),
        DataType::Enum { name, .. } => (enum_sql_name(name, namespace).1, None),
        DataType::Array(inner) => {
            let (name, finding) = type_name(inner, namespace);
            (format!("{name}[]"), finding)
        }
        DataType::Other { engine, name } => (
            "bytea".into(),
            Some(format!(
                "{engine} type {name} has no PostgreSQL equivalent; its raw bytes are stored as bytea"
            )),
        ),
    }
}

/// The target schema for a source table, with findings for what is not exact.
pub(crate) fn convert(
    source_engine: &str,
    schema: &TableSchema,
    enum_as: EnumAs,
) -> (TableSchema, Vec<Finding>) {
    let mut target = schema.clone();
    let mut findings = Vec::new();
    let same_engine = source_engine == "postgres";
    // PostgreSQL cuts longer names to 63 bytes, which could silently merge two names.
    let too_long = |kind: &str, name: &str| {
        (name.len() > 63).then(|| {
            Finding::new(
                FindingLevel::Error,
                finding_code::TYPE_MAPPING,
                format!(
                    "{kind} name {name:?} is {} bytes; PostgreSQL allows 63: rename it at the \
                     source or with a mapping rule",
                    name.len()
                ),
            )
            .table(&schema.id)
        })
    };
    findings.extend(too_long("table", &schema.id.name));
    findings.extend(too_long("schema", &schema.id.namespace));
    for column in &schema.columns {
        findings.extend(too_long("column", &column.name).map(|f| f.column(column.name.clone())));
    }
    for column in &mut target.columns {
        let finding_of = |code: &str, level, message: String| {
            Finding::new(level, code, message)
                .table(&schema.id)
                .column(column.name.clone())
        };
        let finding = |level, message| finding_of(finding_code::TYPE_MAPPING, level, message);
        if same_engine {
            if column.data_type.is_other() {
                findings.push(finding(
                    FindingLevel::Info,
                    format!(
                        "type {} is not mapped by Ferry; passed through unchanged (PostgreSQL to PostgreSQL)",
                        column.source_type
                    ),
                ));
            }
        } else {
            let (name, lossy) = type_name(&column.data_type, &schema.id.namespace);
            if let Some(message) = lossy {
                findings.push(finding(FindingLevel::Warning, message));
            }
            column.source_type = name;
            if let Some(default) = column.default.take_if(|d| d.as_str() != AUTO_INCREMENT) {
                findings.push(finding(
                    FindingLevel::Info,
                    format!(
                        "default {default} is in the source's SQL dialect and is not converted; \
                         the column is created without a default"
                    ),
                ));
            }
        }
        if column.default.as_deref() == Some(AUTO_INCREMENT)
            && !matches!(
                column.data_type,
                DataType::Int16 | DataType::Int32 | DataType::Int64
            )
        {
            findings.push(finding_of(
                finding_code::SEQUENCE,
                FindingLevel::Warning,
                format!(
                    "auto-increment on a {} column has no PostgreSQL equivalent (identity \
                     columns are integers); the column is created without a default",
                    column.data_type
                ),
            ));
            column.default = None;
        }
        if column
            .default
            .as_deref()
            .is_some_and(|d| d.contains("nextval("))
        {
            findings.push(finding_of(
                finding_code::SEQUENCE,
                FindingLevel::Warning,
                format!(
                    "default {} uses a sequence, which is not migrated; the column is created without a default",
                    column.default.as_deref().unwrap_or_default()
                ),
            ));
            column.default = None;
        }
    }
    if enum_as == EnumAs::TextCheck {
        for column in &mut target.columns {
            let DataType::Enum { labels, .. } = &column.data_type else {
                continue;
            };
            let members = labels
                .iter()
                .map(|l| quote_literal(l))
                .collect::<Vec<_>>()
                .join(", ");
            column.source_type =
                format!("text CHECK ({} IN ({members}))", quote_ident(&column.name));
            column.data_type = DataType::text();
            findings.push(
                Finding::new(
                    FindingLevel::Info,
                    finding_code::TYPE_MAPPING,
                    "the enumeration becomes text with a CHECK constraint on its members \
                     (target option enum-as = \"text-check\")",
                )
                .table(&schema.id)
                .column(column.name.clone()),
            );
        }
    }
    if !same_engine {
        target.indexes = foreign_indexes(schema, &mut findings);
        // Other engines name indexes per table, PostgreSQL per schema.
        for index in &mut target.indexes {
            index.name = relation_name(&schema.id.name, &index.name);
        }
        for key in &mut target.unique_keys {
            key.name = relation_name(&schema.id.name, &key.name);
        }
    }
    (target, findings)
}

/// Indexes from another engine, as PostgreSQL can build them: access methods become
/// the default B-tree, MySQL prefix parts (`` `title`(10) ``) index the whole column,
/// and what PostgreSQL has no counterpart for (full-text, spatial, expressions in
/// another dialect) is left out with a finding.
fn foreign_indexes(schema: &TableSchema, findings: &mut Vec<Finding>) -> Vec<Index> {
    let mut out = Vec::new();
    for index in &schema.indexes {
        let finding = |level, message: String| {
            Finding::new(level, finding_code::TYPE_MAPPING, message)
                .table(&schema.id)
                .object(format!("index {}", index.name))
        };
        let method = index.method.as_deref().map(str::to_ascii_lowercase);
        if let Some(m) = method
            .as_deref()
            .filter(|m| !matches!(*m, "btree" | "hash"))
        {
            findings.push(finding(
                FindingLevel::Warning,
                format!(
                    "{m} index {} has no PostgreSQL counterpart and is not created; create a \
                     suitable one (e.g. GIN over to_tsvector for full-text) by hand",
                    index.name
                ),
            ));
            continue;
        }
        let mut parts = Vec::with_capacity(index.parts.len());
        for part in &index.parts {
            match part {
                IndexPart::Column(c) => parts.push(IndexPart::Column(c.clone())),
                IndexPart::Expression(e) => match mysql_prefix_column(e) {
                    Some(column) if schema.column(&column).is_some() => {
                        findings.push(finding(
                            FindingLevel::Info,
                            format!(
                                "index {} uses a prefix of column {column} ({e}); PostgreSQL \
                                 indexes the whole column",
                                index.name
                            ),
                        ));
                        parts.push(IndexPart::Column(column));
                    }
                    _ => {
                        parts.clear();
                        break;
                    }
                },
            }
        }
        if parts.is_empty() {
            findings.push(finding(
                FindingLevel::Warning,
                format!(
                    "index {} has expressions in another SQL dialect and is not created; \
                     re-create it by hand",
                    index.name
                ),
            ));
            continue;
        }
        out.push(Index {
            name: index.name.clone(),
            unique: index.unique,
            parts,
            method: None,
            predicate: None,
        });
    }
    out
}

/// An index or key name unique within the schema: prefixed with its table's name
/// (unless it already is), cut to PostgreSQL's 63 bytes.
fn relation_name(table: &str, name: &str) -> String {
    let mut full = if name.starts_with(&format!("{table}_")) {
        name.to_string()
    } else {
        format!("{table}_{name}")
    };
    while full.len() > 63 {
        full.pop();
    }
    full
}

/// The column of a MySQL prefix key part such as `` `title`(10) ``.
fn mysql_prefix_column(part: &str) -> Option<String> {
    let rest = part.strip_prefix('`')?;
    let (name, length) = rest.rsplit_once("`(")?;
    let digits = length.strip_suffix(')')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.replace("``", "`"))
}

/// Enum types a table needs, as (quoted schema, quoted qualified name, labels).
pub(crate) fn enum_types(schema: &TableSchema) -> Vec<(String, String, Vec<String>)> {
    fn visit(t: &DataType, namespace: &str, out: &mut Vec<(String, String, Vec<String>)>) {
        match t {
            DataType::Enum { name, labels } => {
                let (schema, qualified) = enum_sql_name(name, namespace);
                if !out.iter().any(|(_, n, _)| *n == qualified) {
                    out.push((schema, qualified, labels.clone()));
                }
            }
            DataType::Array(inner) => visit(inner, namespace, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for c in &schema.columns {
        visit(&c.data_type, &schema.id.namespace, &mut out);
    }
    out
}

/// The quoted schema and quoted qualified name of an enum called `schema.name`
/// (or just `name`, which then lives in `namespace`).
pub(crate) fn enum_sql_name(name: &str, namespace: &str) -> (String, String) {
    let (schema, name) = name.split_once('.').unwrap_or((namespace, name));
    let schema = quote_ident(schema);
    let qualified = format!("{schema}.{}", quote_ident(name));
    (schema, qualified)
}

/// A statement creating an enum type unless it exists (its schema must exist).
pub(crate) fn create_enum(qualified: &str, labels: &[String]) -> String {
    let labels = labels
        .iter()
        .map(|l| quote_literal(l))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "DO $ferry$ BEGIN CREATE TYPE {qualified} AS ENUM ({labels}); \
         EXCEPTION WHEN duplicate_object THEN NULL; END $ferry$"
    )
}

/// Statements run before the load, in order: the table's schema, the schemas and
/// enum types its columns use, and `CREATE TABLE` (always last). No `DROP`.
pub(crate) fn pre_load(schema: &TableSchema) -> Vec<String> {
    let create_schema = |s: &str| format!("CREATE SCHEMA IF NOT EXISTS {s}");
    let table_schema = quote_ident(&schema.id.namespace);
    let mut out = vec![create_schema(&table_schema)];
    for (enum_schema, qualified, labels) in enum_types(schema) {
        let stmt = create_schema(&enum_schema);
        if !out.contains(&stmt) {
            out.push(stmt);
        }
        out.push(create_enum(&qualified, &labels));
    }
    out.push(create_table(schema));
    out
}

/// `ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY` for each foreign key.
pub(crate) fn foreign_keys(schema: &TableSchema) -> Vec<String> {
    schema
        .foreign_keys
        .iter()
        .map(|fk| foreign_key(schema, fk))
        .collect()
}

fn foreign_key(schema: &TableSchema, fk: &ForeignKey) -> String {
    let list = |cols: &[String]| {
        cols.iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sql = format!(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
        quote_table(&schema.id),
        quote_ident(&fk.name),
        list(&fk.columns),
        quote_table(&fk.referenced_table),
        list(&fk.referenced_columns)
    );
    if fk.on_delete != ReferentialAction::NoAction {
        sql.push_str(&format!(" ON DELETE {}", fk.on_delete.as_sql()));
    }
    if fk.on_update != ReferentialAction::NoAction {
        sql.push_str(&format!(" ON UPDATE {}", fk.on_update.as_sql()));
    }
    sql
}

/// Everything the sink runs for a converted table, without a connection.
pub fn schema_ddl(schema: &TableSchema) -> SchemaDdl {
    SchemaDdl {
        pre_load: pre_load(schema),
        post_load: post_load(schema),
        foreign_keys: foreign_keys(schema),
    }
}

/// `CREATE TABLE` for a converted schema (types from `source_type`).
pub(crate) fn create_table(schema: &TableSchema) -> String {
    let columns = schema
        .columns
        .iter()
        .map(column_definition)
        .collect::<Vec<_>>()
        .join(",\n  ");
    format!("CREATE TABLE {} (\n  {columns}\n)", quote_table(&schema.id))
}

/// `"name" type [DEFAULT ...] [NOT NULL]` for `CREATE TABLE` and `ADD COLUMN`.
pub(crate) fn column_definition(column: &Column) -> String {
    let mut def = format!("{} {}", quote_ident(&column.name), column.source_type);
    match column.default.as_deref() {
        Some(AUTO_INCREMENT) => def.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
        Some(default) => def.push_str(&format!(" DEFAULT {default}")),
        None => {}
    }
    if !column.nullable {
        def.push_str(" NOT NULL");
    }
    def
}

/// Statements that move each auto-increment column's sequence past the largest
/// loaded value, so the target's own inserts do not collide with loaded rows. They do
/// nothing for a column without an owned sequence.
pub(crate) fn restart_sequences(schema: &TableSchema) -> Vec<String> {
    let table = quote_table(&schema.id);
    schema
        .columns
        .iter()
        .filter(|c| c.default.as_deref() == Some(AUTO_INCREMENT))
        .map(|c| {
            format!(
                "SELECT setval(pg_get_serial_sequence({}, {}), coalesce(max({}), 0) + 1, false) FROM {table}",
                quote_literal(&table),
                quote_literal(&c.name),
                quote_ident(&c.name)
            )
        })
        .collect()
}

/// Statements that add the primary key, unique keys and indexes after the load.
pub(crate) fn post_load(schema: &TableSchema) -> Vec<String> {
    let table = quote_table(&schema.id);
    let list = |cols: &[String]| {
        cols.iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    if !schema.primary_key.is_empty() {
        let name = schema
            .primary_key_name
            .as_deref()
            .map(|n| format!("CONSTRAINT {} ", quote_ident(n)))
            .unwrap_or_default();
        out.push(format!(
            "ALTER TABLE {table} ADD {name}PRIMARY KEY ({})",
            list(&schema.primary_key)
        ));
    }
    for key in &schema.unique_keys {
        out.push(format!(
            "ALTER TABLE {table} ADD CONSTRAINT {} UNIQUE ({})",
            quote_ident(&key.name),
            list(&key.columns)
        ));
    }
    for index in &schema.indexes {
        out.push(create_index(&table, index));
    }
    out
}

fn create_index(table: &str, index: &Index) -> String {
    let parts = index
        .parts
        .iter()
        .map(|p| match p {
            IndexPart::Column(c) => quote_ident(c),
            IndexPart::Expression(e) => format!("({e})"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let unique = if index.unique { "UNIQUE " } else { "" };
    let using = index
        .method
        .as_deref()
        .map(|m| format!(" USING {}", quote_ident(m)))
        .unwrap_or_default();
    let predicate = index
        .predicate
        .as_deref()
        .map(|p| format!(" WHERE {p}"))
        .unwrap_or_default();
    format!(
        "CREATE {unique}INDEX {} ON {table}{using} ({parts}){predicate}",
        quote_ident(&index.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{TableId, UniqueKey};

    fn column(name: &str, source_type: &str, data_type: DataType) -> Column {
        Column {
            name: name.into(),
            data_type,
            nullable: false,
            default: None,
            source_type: source_type.into(),
        }
    }

    #[test]
    fn create_table_uses_source_types_for_postgres() {
        let mut s = TableSchema::new(
            TableId::new("shop", "Order"),
            vec![
                column("id", "integer", DataType::Int32),
                column("note", "character varying(20)", DataType::text()),
            ],
        );
        s.columns[1].nullable = true;
        let (t, findings) = convert("postgres", &s, EnumAs::Type);
        assert!(findings.is_empty());
        assert_eq!(
            create_table(&t),
            "CREATE TABLE \"shop\".\"Order\" (\n  \"id\" integer NOT NULL,\n  \"note\" character varying(20)\n)"
        );
    }

    #[test]
    fn indexes_from_mysql_become_what_postgres_can_build() {
        let mut s = TableSchema::new(
            TableId::new("s", "t"),
            vec![
                column("title", "varchar(255)", DataType::text()),
                column("body", "text", DataType::text()),
            ],
        );
        let index = |name: &str, method: Option<&str>, parts: Vec<IndexPart>| Index {
            name: name.into(),
            unique: false,
            parts,
            method: method.map(Into::into),
            predicate: None,
        };
        s.indexes = vec![
            index("by_title", None, vec![IndexPart::Column("title".into())]),
            index(
                "by_prefix",
                Some("btree"),
                vec![IndexPart::Expression("`title`(10)".into())],
            ),
            index(
                "ft",
                Some("fulltext"),
                vec![IndexPart::Column("body".into())],
            ),
            index(
                "fn",
                None,
                vec![IndexPart::Expression("lower(`title`)".into())],
            ),
            index("h", Some("hash"), vec![IndexPart::Column("title".into())]),
        ];
        let (t, findings) = convert("mysql", &s, EnumAs::Type);
        let names: Vec<&str> = t.indexes.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, vec!["t_by_title", "t_by_prefix", "t_h"]);
        assert_eq!(relation_name("t", "t_x"), "t_x");
        assert_eq!(relation_name(&"a".repeat(40), &"b".repeat(40)).len(), 63);
        assert_eq!(t.indexes[1].parts, vec![IndexPart::Column("title".into())]);
        assert!(t.indexes.iter().all(|i| i.method.is_none()));
        assert_eq!(findings.len(), 3, "{findings:?}");
        assert_eq!(mysql_prefix_column("`a``b`(3)"), Some("a`b".into()));
        assert_eq!(mysql_prefix_column("`a`"), None);
    }

    #[test]
    fn auto_increment_becomes_identity_and_restarts_after_the_load() {
        let mut s = TableSchema::new(
            TableId::new("s", "T"),
            vec![column("Id", "integer", DataType::Int32)],
        );
        s.columns[0].default = Some(AUTO_INCREMENT.into());
        let (t, findings) = convert("mysql", &s, EnumAs::Type);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(
            create_table(&t),
            "CREATE TABLE \"s\".\"T\" (\n  \"Id\" integer GENERATED BY DEFAULT AS IDENTITY NOT NULL\n)"
        );
        assert_eq!(
            restart_sequences(&t),
            vec![
                "SELECT setval(pg_get_serial_sequence('\"s\".\"T\"', 'Id'), coalesce(max(\"Id\"), 0) + 1, false) FROM \"s\".\"T\""
            ]
        );
        // Not on a decimal column: no identity there.
        s.columns[0].data_type = DataType::UInt64;
        let (t, findings) = convert("mysql", &s, EnumAs::Type);
        assert_eq!(t.columns[0].default, None);
        assert_eq!(findings.len(), 1);
    }

    #[test]
    fn sequence_defaults_are_dropped_with_a_finding() {
        let mut s = TableSchema::new(
            TableId::new("s", "t"),
            vec![column("id", "integer", DataType::Int32)],
        );
        s.columns[0].default = Some("nextval('t_id_seq'::regclass)".into());
        let (t, findings) = convert("postgres", &s, EnumAs::Type);
        assert_eq!(t.columns[0].default, None);
        assert_eq!(findings.len(), 1);
    }

    #[test]
    fn keys_and_indexes_after_load() {
        let mut s = TableSchema::new(
            TableId::new("s", "t"),
            vec![column("a", "integer", DataType::Int32)],
        );
        s.primary_key = vec!["a".into()];
        s.primary_key_name = Some("t_pkey".into());
        s.unique_keys.push(UniqueKey {
            name: "t_a_key".into(),
            columns: vec!["a".into()],
        });
        s.indexes.push(Index {
            name: "t_lower".into(),
            unique: false,
            parts: vec![IndexPart::Expression("lower(a::text)".into())],
            method: None,
            predicate: Some("(a > 0)".into()),
        });
        assert_eq!(
            post_load(&s),
            vec![
                "ALTER TABLE \"s\".\"t\" ADD CONSTRAINT \"t_pkey\" PRIMARY KEY (\"a\")",
                "ALTER TABLE \"s\".\"t\" ADD CONSTRAINT \"t_a_key\" UNIQUE (\"a\")",
                "CREATE INDEX \"t_lower\" ON \"s\".\"t\" ((lower(a::text))) WHERE (a > 0)",
            ]
        );
    }

    #[test]
    fn schema_ddl_orders_statements_by_phase() {
        let mut s = TableSchema::new(
            TableId::new("shop", "orders"),
            vec![
                column("id", "integer", DataType::Int32),
                column("customer", "integer", DataType::Int32),
                column(
                    "mood",
                    "sales.mood",
                    DataType::Enum {
                        name: "sales.mood".into(),
                        labels: vec!["ok".into(), "it's".into()],
                    },
                ),
            ],
        );
        s.primary_key = vec!["id".into()];
        s.foreign_keys.push(ForeignKey {
            name: "orders_customer_fkey".into(),
            columns: vec!["customer".into()],
            referenced_table: TableId::new("shop", "customers"),
            referenced_columns: vec!["id".into()],
            on_delete: ReferentialAction::Cascade,
            on_update: ReferentialAction::NoAction,
        });
        let ddl = schema_ddl(&s);
        assert_eq!(
            ddl.pre_load,
            vec![
                "CREATE SCHEMA IF NOT EXISTS \"shop\"".to_string(),
                "CREATE SCHEMA IF NOT EXISTS \"sales\"".to_string(),
                "DO $ferry$ BEGIN CREATE TYPE \"sales\".\"mood\" AS ENUM ('ok', 'it''s'); \
                 EXCEPTION WHEN duplicate_object THEN NULL; END $ferry$"
                    .to_string(),
                create_table(&s),
            ]
        );
        assert_eq!(
            ddl.post_load,
            vec!["ALTER TABLE \"shop\".\"orders\" ADD PRIMARY KEY (\"id\")"]
        );
        assert_eq!(
            ddl.foreign_keys,
            vec![
                "ALTER TABLE \"shop\".\"orders\" ADD CONSTRAINT \"orders_customer_fkey\" \
                 FOREIGN KEY (\"customer\") REFERENCES \"shop\".\"customers\" (\"id\") ON DELETE CASCADE"
            ]
        );
    }

    #[test]
    fn enum_names_are_qualified_and_quoted() {
        assert_eq!(
            enum_sql_name("shop.Mood", "public"),
            ("\"shop\"".into(), "\"shop\".\"Mood\"".into())
        );
        assert_eq!(
            enum_sql_name("t_mood", "sales"),
            ("\"sales\"".into(), "\"sales\".\"t_mood\"".into())
        );
    }
}
