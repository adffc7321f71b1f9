//! Catalog discovery from `pg_catalog`, shared by the source (what to read) and the
//! sink (what the target table looks like, including the target's type OIDs).

use crate::codec::PgColumnType;
use crate::connect::{Target, quote_ident};
use ferry_core::{
    Column, DataType, ForeignKey, Index, IndexPart, ReferentialAction, Result, TableFilter,
    TableId, TableSchema, UniqueKey,
};
use std::collections::HashMap;
use tokio_postgres::Client;

/// A discovered table: the engine-neutral schema plus what the codec needs.
#[derive(Debug, Clone)]
pub(crate) struct PgTable {
    /// The table's schema.
    pub(crate) schema: TableSchema,
    /// Codec type of each column, in column order.
    pub(crate) types: Vec<PgColumnType>,
    /// `r` for a plain table, `p` for a partitioned one.
    pub(crate) relkind: char,
    /// Size of the main fork in pages.
    pub(crate) pages: u64,
    /// Whether a column is generated (`COPY table (columns) TO` refuses those).
    pub(crate) has_generated: bool,
}

/// One row of `pg_type` that type mapping needs.
#[derive(Debug, Clone)]
struct TypeInfo {
    qualified_name: String,
    /// `schema.name`, unquoted (the engine-neutral enum name).
    plain_name: String,
    typtype: char,
    typcategory: char,
    typelem: u32,
    base_type: u32,
    base_typmod: i32,
}

const TABLES_SQL: &str = "
SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.reltuples::float8,
       pg_relation_size(c.oid)::int8, current_setting('block_size')::int8
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
ORDER BY n.nspname, c.relname";

const COLUMNS_SQL: &str = "
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.atttypid, a.atttypmod, a.attgenerated::text,
       a.attidentity <> '' OR pg_get_serial_sequence(a.attrelid::regclass::text, a.attname) IS NOT NULL
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum";

const TYPES_SQL: &str = "
WITH RECURSIVE wanted(oid) AS (
    SELECT unnest($1::oid[])
  UNION
    SELECT x FROM wanted w JOIN pg_type t ON t.oid = w.oid,
      LATERAL (VALUES (t.typelem), (t.typbasetype)) v(x)
    WHERE x <> 0
)
SELECT t.oid, format_type(t.oid, NULL), t.typtype::text, t.typcategory::text, t.typelem,
       t.typbasetype, t.typtypmod, n.nspname || '.' || t.typname
FROM pg_type t JOIN wanted w ON w.oid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace";

const ENUMS_SQL: &str = "
SELECT enumtypid, array_agg(enumlabel::text ORDER BY enumsortorder)
FROM pg_enum WHERE enumtypid = ANY($1) GROUP BY enumtypid";

const KEYS_SQL: &str = "
SELECT con.conrelid, con.conname, con.contype::text,
       array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
             ORDER BY k.ord)
FROM pg_constraint con
WHERE con.conrelid = ANY($1) AND con.contype IN ('p', 'u')
ORDER BY con.conrelid, con.conname";

const INDEXES_SQL: &str = "
SELECT i.indrelid, ic.relname, i.indisunique, am.amname, pg_get_expr(i.indpred, i.indrelid),
       array(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k),
       array(SELECT i.indkey[k - 1]::int4 FROM generate_series(1, i.indnkeyatts) k)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
WHERE i.indrelid = ANY($1)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
ORDER BY i.indrelid, ic.relname";

const FOREIGN_KEYS_SQL: &str = "
SELECT con.conrelid, con.conname,
       array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
             ORDER BY k.ord),
       rn.nspname::text, rc.relname::text,
       array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
             ORDER BY k.ord),
       con.confdeltype::text, con.confupdtype::text
FROM pg_constraint con
JOIN pg_class rc ON rc.oid = con.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.conrelid = ANY($1) AND con.contype = 'f'
ORDER BY con.conrelid, con.conname";

/// Discovers every table the filter selects.
pub(crate) async fn discover(
    client: &Client,
    target: &Target,
    filter: &TableFilter,
) -> Result<Vec<PgTable>> {
    discover_where(client, target, |id| filter.matches(id)).await
}

/// Discovers one table by name, or `None` when it does not exist.
pub(crate) async fn discover_one(
    client: &Client,
    target: &Target,
    id: &TableId,
) -> Result<Option<PgTable>> {
    let tables = discover_where(client, target, |t| t == id).await?;
    Ok(tables.into_iter().next())
}

async fn discover_where(
    client: &Client,
    target: &Target,
    selected: impl Fn(&TableId) -> bool,
) -> Result<Vec<PgTable>> {
    let rows = client
        .query(TABLES_SQL, &[])
        .await
        .map_err(|e| target.error(e, "cannot list tables"))?;
    let mut tables = Vec::new();
    for row in rows {
        let id = TableId::new(row.get::<_, String>(1), row.get::<_, String>(2));
        if !selected(&id) {
            continue;
        }
        let oid: u32 = row.get(0);
        let relkind = row.get::<_, String>(3).chars().next().unwrap_or('r');
        let reltuples: f64 = row.get(4);
        let bytes: i64 = row.get(5);
        let block: i64 = row.get(6);
        tables.push((oid, id, relkind, reltuples, bytes, block));
    }
    let oids: Vec<u32> = tables.iter().map(|t| t.0).collect();
    let mut details = load_details(client, target, &oids).await?;
    let mut out = Vec::with_capacity(tables.len());
    for (oid, id, relkind, reltuples, bytes, block) in tables {
        let Some(Details {
            columns,
            types,
            keys,
            indexes,
            foreign_keys,
            has_generated,
        }) = details.remove(&oid)
        else {
            continue;
        };
        let mut schema = TableSchema::new(id, columns);
        apply_keys(&mut schema, keys);
        schema.indexes = indexes;
        schema.foreign_keys = foreign_keys;
        schema.estimated_rows = (reltuples >= 0.0).then_some(reltuples as u64);
        schema.estimated_bytes = u64::try_from(bytes).ok();
        let pages = u64::try_from(bytes / block.max(1)).unwrap_or(0);
        out.push(PgTable {
            schema,
            types,
            relkind,
            pages,
            has_generated,
        });
    }
    Ok(out)
}

/// What [`load_details`] finds for one table.
#[derive(Debug, Default)]
struct Details {
    columns: Vec<Column>,
    types: Vec<PgColumnType>,
    keys: Vec<(String, char, Vec<String>)>,
    indexes: Vec<Index>,
    foreign_keys: Vec<ForeignKey>,
    has_generated: bool,
}

async fn load_details(
    client: &Client,
    target: &Target,
    oids: &[u32],
) -> Result<HashMap<u32, Details>> {
    let mut out: HashMap<u32, Details> = HashMap::new();
    if oids.is_empty() {
        return Ok(out);
    }
    let columns = client
        .query(COLUMNS_SQL, &[&oids])
        .await
        .map_err(|e| target.error(e, "cannot read columns"))?;
    let type_oids: Vec<u32> = columns.iter().map(|r| r.get::<_, u32>(5)).collect();
    let types = load_types(client, target, &type_oids).await?;
    let labels = load_enum_labels(client, target, &types).await?;
    for row in columns {
        let rel: u32 = row.get(0);
        let type_oid: u32 = row.get(5);
        let typmod: i32 = row.get(6);
        let generated: String = row.get(7);
        let (data_type, codec) = map_type(type_oid, typmod, &types, &labels);
        let mut default: Option<String> = row.get(4);
        // Identity columns and serial columns (a nextval() default on a sequence the
        // column owns) are the engine-neutral auto-increment.
        if row.get::<_, bool>(8) {
            default = Some(ferry_core::AUTO_INCREMENT.to_string());
        }
        let entry = out.entry(rel).or_default();
        if !generated.is_empty() {
            default = None;
            entry.has_generated = true;
        }
        entry.columns.push(Column {
            name: row.get(1),
            data_type,
            nullable: !row.get::<_, bool>(3),
            default,
            source_type: row.get(2),
        });
        entry.types.push(codec);
    }
    for row in client
        .query(KEYS_SQL, &[&oids])
        .await
        .map_err(|e| target.error(e, "cannot read keys"))?
    {
        let rel: u32 = row.get(0);
        let kind = row.get::<_, String>(2).chars().next().unwrap_or('u');
        if let Some(entry) = out.get_mut(&rel) {
            entry.keys.push((row.get(1), kind, row.get(3)));
        }
    }
    for row in client
        .query(INDEXES_SQL, &[&oids])
        .await
        .map_err(|e| target.error(e, "cannot read indexes"))?
    {
        let rel: u32 = row.get(0);
        let Some(entry) = out.get_mut(&rel) else {
            continue;
        };
        let defs: Vec<String> = row.get(5);
        let attnums: Vec<i32> = row.get(6);
        let parts = defs
            .into_iter()
            .zip(attnums)
            .map(|(def, attnum)| {
                let column = usize::try_from(attnum)
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|n| entry.columns.get(n));
                match column {
                    Some(c) if quote_ident(&c.name) == def || c.name == def => {
                        IndexPart::Column(c.name.clone())
                    }
                    _ => IndexPart::Expression(def),
                }
            })
            .collect();
        let method: String = row.get(3);
        entry.indexes.push(Index {
            name: row.get(1),
            unique: row.get(2),
            parts,
            method: (method != "btree").then_some(method),
            predicate: row.get(4),
        });
    }
    for row in client
        .query(FOREIGN_KEYS_SQL, &[&oids])
        .await
        .map_err(|e| target.error(e, "cannot read foreign keys"))?
    {
        let rel: u32 = row.get(0);
        let Some(entry) = out.get_mut(&rel) else {
            continue;
        };
        entry.foreign_keys.push(ForeignKey {
            name: row.get(1),
            columns: row.get(2),
            referenced_table: TableId::new(row.get::<_, String>(3), row.get::<_, String>(4)),
            referenced_columns: row.get(5),
            on_delete: referential_action(&row.get::<_, String>(6)),
            on_update: referential_action(&row.get::<_, String>(7)),
        });
    }
    Ok(out)
}

/// `pg_constraint.confdeltype` / `confupdtype` as a [`ReferentialAction`].
fn referential_action(code: &str) -> ReferentialAction {
    match code {
        "r" => ReferentialAction::Restrict,
        "c" => ReferentialAction::Cascade,
        "n" => ReferentialAction::SetNull,
        "d" => ReferentialAction::SetDefault,
        _ => ReferentialAction::NoAction,
    }
}

/// Columns described only by name, type OID and modifier (a replication relation
/// message), mapped as discovery maps them; nullable, without default.
pub(crate) async fn describe_columns(
    client: &Client,
    target: &Target,
    columns: &[(String, u32, i32)],
) -> Result<Vec<(Column, PgColumnType)>> {
    let oids: Vec<u32> = columns.iter().map(|c| c.1).collect();
    let types = load_types(client, target, &oids).await?;
    let labels = load_enum_labels(client, target, &types).await?;
    let mut out = Vec::with_capacity(columns.len());
    for (name, oid, typmod) in columns {
        let (data_type, codec) = map_type(*oid, *typmod, &types, &labels);
        let source_type: String = client
            .query_one("SELECT format_type($1, $2)", &[oid, typmod])
            .await
            .map_err(|e| target.error(e, "cannot name a column type"))?
            .get(0);
        out.push((
            Column {
                name: name.clone(),
                data_type,
                nullable: true,
                default: None,
                source_type,
            },
            codec,
        ));
    }
    Ok(out)
}

/// The labels of the enum types among `types`, by type OID.
async fn load_enum_labels(
    client: &Client,
    target: &Target,
    types: &HashMap<u32, TypeInfo>,
) -> Result<HashMap<u32, Vec<String>>> {
    let enum_oids: Vec<u32> = types
        .iter()
        .filter(|(_, t)| t.typtype == 'e')
        .map(|(oid, _)| *oid)
        .collect();
    let mut labels: HashMap<u32, Vec<String>> = HashMap::new();
    if !enum_oids.is_empty() {
        for row in client
            .query(ENUMS_SQL, &[&enum_oids])
            .await
            .map_err(|e| target.error(e, "cannot read enum labels"))?
        {
            labels.insert(row.get(0), row.get(1));
        }
    }
    Ok(labels)
}

async fn load_types(
    client: &Client,
    target: &Target,
    oids: &[u32],
) -> Result<HashMap<u32, TypeInfo>> {
    let mut unique: Vec<u32> = oids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let rows = client
        .query(TYPES_SQL, &[&unique])
        .await
        .map_err(|e| target.error(e, "cannot read types"))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let ch = |i: usize| row.get::<_, String>(i).chars().next().unwrap_or(' ');
            (
                row.get::<_, u32>(0),
                TypeInfo {
                    qualified_name: row.get(1),
                    plain_name: row.get(7),
                    typtype: ch(2),
                    typcategory: ch(3),
                    typelem: row.get(4),
                    base_type: row.get(5),
                    base_typmod: row.get(6),
                },
            )
        })
        .collect())
}

/// Maps a PostgreSQL type (after resolving domains) to the logical type and the
/// codec descriptor.
fn map_type(
    oid: u32,
    typmod: i32,
    types: &HashMap<u32, TypeInfo>,
    labels: &HashMap<u32, Vec<String>>,
) -> (DataType, PgColumnType) {
    let info = types.get(&oid);
    if let Some(t) = info.filter(|t| t.typtype == 'd' && t.base_type != 0) {
        let base_mod = if t.base_typmod >= 0 {
            t.base_typmod
        } else {
            typmod
        };
        return map_type(t.base_type, base_mod, types, labels);
    }
    let data_type = logical_type(oid, typmod, types, labels);
    let elem_oid = match &data_type {
        DataType::Array(_) => info.map(|t| t.typelem).unwrap_or(0),
        _ => 0,
    };
    let codec = PgColumnType {
        data_type: data_type.clone(),
        oid,
        elem_oid,
    };
    (data_type, codec)
}

fn logical_type(
    oid: u32,
    typmod: i32,
    types: &HashMap<u32, TypeInfo>,
    labels: &HashMap<u32, Vec<String>>,
) -> DataType {
    let len = |m: i32| u32::try_from(m - 4).ok();
    match oid {
        16 => DataType::Bool,
        21 => DataType::Int16,
        23 => DataType::Int32,
        20 => DataType::Int64,
        700 => DataType::Float32,
        701 => DataType::Float64,
        1700 => {
            let (precision, scale) = if typmod >= 4 {
                let m = typmod - 4;
                (
                    u32::try_from((m >> 16) & 0xffff).ok(),
                    u32::try_from(m & 0xffff).ok(),
                )
            } else {
                (None, None)
            };
            DataType::Decimal { precision, scale }
        }
        25 => DataType::text(),
        1043 => DataType::Text {
            max_len: len(typmod),
            fixed: false,
        },
        1042 => DataType::Text {
            max_len: len(typmod),
            fixed: true,
        },
        19 => DataType::Text {
            max_len: Some(63),
            fixed: false,
        },
        17 => DataType::Bytes,
        1082 => DataType::Date,
        1083 => DataType::Time,
        1266 => DataType::TimeTz,
        1114 => DataType::Timestamp,
        1184 => DataType::TimestampTz,
        1186 => DataType::Interval,
        2950 => DataType::Uuid,
        114 => DataType::Json { binary: false },
        3802 => DataType::Json { binary: true },
        869 => DataType::Inet,
        650 => DataType::Cidr,
        829 => DataType::MacAddr,
        _ => {
            let Some(info) = types.get(&oid) else {
                return DataType::Other {
                    engine: "postgres".into(),
                    name: format!("oid {oid}"),
                };
            };
            if info.typtype == 'e' {
                return DataType::Enum {
                    name: info.plain_name.clone(),
                    labels: labels.get(&oid).cloned().unwrap_or_default(),
                };
            }
            if info.typcategory == 'A' && info.typelem != 0 {
                let (elem, _) = map_type(info.typelem, typmod, types, labels);
                return DataType::Array(Box::new(elem));
            }
            DataType::Other {
                engine: "postgres".into(),
                name: info.qualified_name.clone(),
            }
        }
    }
}

/// Sets the primary key and unique keys from constraint rows.
fn apply_keys(schema: &mut TableSchema, keys: Vec<(String, char, Vec<String>)>) {
    for (name, kind, columns) in keys {
        if kind == 'p' {
            schema.primary_key = columns;
            schema.primary_key_name = Some(name);
        } else {
            schema.unique_keys.push(UniqueKey { name, columns });
        }
    }
}
