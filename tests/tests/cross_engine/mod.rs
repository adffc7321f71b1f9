//! Row-by-row comparison of a table on MariaDB and on PostgreSQL through a canonical
//! text form that each server computes itself, column by column, from its own type.

#![allow(dead_code)]

use ferry_tests::{MariaService, PgService};

/// Text used for NULL in canonical rows.
const NULL: &str = "∅";
/// Separator between canonical values (ASCII unit separator).
const SEP: char = '\u{1f}';

/// How two canonical values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Same text.
    Exact,
    /// Same number once parsed as f64 (or f32 for single precision).
    Float { single: bool },
    /// Same JSON document once parsed.
    Json,
    /// Same decimal number (trailing fractional zeros do not count).
    Decimal,
}

/// One column of a table as each side sees it.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    /// Lower-case type name on its side: `information_schema.COLUMNS.COLUMN_TYPE`
    /// on MariaDB, `format_type` on PostgreSQL.
    pub type_name: String,
}

/// Columns of a MariaDB table in order.
pub fn maria_columns(maria: &MariaService, db: &str, table: &str) -> Vec<ColumnInfo> {
    let out = maria
        .sql(
            db,
            &format!(
                "SELECT COLUMN_NAME, LOWER(COLUMN_TYPE) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
            ),
        )
        .expect("mariadb columns");
    // MariaDB's JSON is LONGTEXT with a json_valid() check.
    let json = maria
        .sql(
            db,
            &format!(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = '{db}' AND TABLE_NAME = '{table}'"
            ),
        )
        .expect("mariadb checks");
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, ty) = l.split_once('\t').expect("two columns");
            let is_json = json.contains(&format!("json_valid(`{name}`)"));
            ColumnInfo {
                name: name.to_string(),
                type_name: if is_json {
                    "json".into()
                } else {
                    ty.to_string()
                },
            }
        })
        .collect()
}

/// Columns of a PostgreSQL table in order.
pub fn pg_columns(pg: &PgService, db: &str, schema: &str, table: &str) -> Vec<ColumnInfo> {
    let out = pg
        .psql(
            db,
            &format!(
                "SELECT a.attname || E'\\t' || format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute a WHERE a.attrelid = '\"{schema}\".\"{table}\"'::regclass \
                 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
            ),
        )
        .expect("postgres columns");
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, ty) = l.split_once('\t').expect("two columns");
            ColumnInfo {
                name: name.to_string(),
                type_name: ty.to_lowercase(),
            }
        })
        .collect()
}

fn base(type_name: &str) -> &str {
    type_name.split(['(', ' ']).next().unwrap_or(type_name)
}

/// The MariaDB and PostgreSQL expressions that give the same canonical text for a
/// column, chosen from the types on both sides, and how to compare them.
pub fn canonical(m: &ColumnInfo, p: &ColumnInfo) -> (String, String, Kind) {
    let mc = format!("`{}`", m.name);
    let pc = format!("\"{}\"", p.name);
    let (mt, pt) = (m.type_name.as_str(), p.type_name.as_str());
    let (mb, pb) = (base(mt), base(pt));
    let text = |e: String| (e, format!("{pc}::text"), Kind::Exact);
    let float = |single| {
        (
            // FLOAT prints only 6 digits; as DOUBLE it prints exactly.
            format!("CAST(CAST({mc} AS DOUBLE) AS CHAR)"),
            format!("{pc}::text"),
            Kind::Float { single },
        )
    };
    let stamp = |pg_expr: String| {
        (
            format!("DATE_FORMAT({mc}, '%Y-%m-%d %H:%i:%s.%f')"),
            format!("to_char({pg_expr}, 'YYYY-MM-DD HH24:MI:SS.US')"),
            Kind::Exact,
        )
    };
    let utc = format!("{pc} AT TIME ZONE 'UTC'");
    match (mb, pb) {
        (_, "boolean") => (
            format!("CONCAT({mc} + 0)"),
            format!("CASE WHEN {pc} THEN '1' WHEN NOT {pc} THEN '0' END"),
            Kind::Exact,
        ),
        (_, "bytea") if mb == "bit" => {
            let bits: usize = mt
                .trim_start_matches("bit(")
                .trim_end_matches(')')
                .parse()
                .expect("bit width");
            (
                format!("LPAD(LOWER(HEX({mc})), {}, '0')", bits.div_ceil(8) * 2),
                format!("encode({pc}, 'hex')"),
                Kind::Exact,
            )
        }
        ("tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "year", _) => {
            text(format!("CONCAT({mc} + 0)"))
        }
        ("decimal", _) => (
            format!("CAST({mc} AS CHAR)"),
            format!("{pc}::text"),
            Kind::Decimal,
        ),
        ("float", _) => float(true),
        ("double", _) => float(false),
        ("date", _) => text(format!("CAST({mc} AS CHAR)")),
        ("datetime" | "timestamp", "timestamp") if pt.contains("with time zone") => stamp(utc),
        ("datetime" | "timestamp", _) => stamp(pc.clone()),
        ("time", _) => (
            format!("CAST(TIME_TO_SEC({mc}) AS CHAR)"),
            format!("extract(epoch FROM {pc})::text"),
            Kind::Float { single: false },
        ),
        ("json", _) if pt.ends_with("[]") => (
            format!("JSON_COMPACT({mc})"),
            format!("array_to_json({pc})::text"),
            Kind::Json,
        ),
        ("json", _) => (
            format!("JSON_COMPACT({mc})"),
            format!("{pc}::text"),
            Kind::Json,
        ),
        ("set", _) => {
            text(format!("CAST({mc} AS CHAR)")).with_pg(format!("array_to_string({pc}, ',')"))
        }
        // timetz has no MySQL type: Ferry stores HH:MM:SS.ffffff±HH:MM text.
        ("varchar", "time") if pt.contains("with time zone") => (
            format!("CAST({mc} AS CHAR)"),
            format!(
                "to_char(date '2000-01-01' + {pc}::time, 'HH24:MI:SS.US') \
                 || CASE WHEN extract(timezone FROM {pc}) < 0 THEN '-' ELSE '+' END \
                 || to_char(make_interval(secs => abs(extract(timezone FROM {pc}))), 'HH24:MI')"
            ),
            Kind::Exact,
        ),
        // concat() uses the type's output function (`::text` adds /128 to inet hosts).
        ("char" | "varchar", "uuid" | "inet" | "cidr" | "macaddr") => (
            format!("CAST({mc} AS CHAR)"),
            format!("CASE WHEN {pc} IS NOT NULL THEN concat({pc}) END"),
            Kind::Exact,
        ),
        ("char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext", _) => (
            format!("MD5(CONVERT({mc} USING utf8mb4))"),
            format!("md5({pc}::text)"),
            Kind::Exact,
        ),
        ("binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob", _) => {
            (format!("MD5({mc})"), format!("md5({pc})"), Kind::Exact)
        }
        ("enum", _) => text(format!("CAST({mc} AS CHAR)")),
        _ => panic!(
            "no canonical form for column {} (MariaDB {mt}, PostgreSQL {pt})",
            m.name
        ),
    }
}

trait WithPg {
    fn with_pg(self, pg: String) -> Self;
}

impl WithPg for (String, String, Kind) {
    fn with_pg(self, pg: String) -> Self {
        (self.0, pg, self.2)
    }
}

fn same(kind: Kind, a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if a == NULL || b == NULL {
        return false;
    }
    match kind {
        Kind::Exact => false,
        Kind::Decimal => {
            let trim = |t: &str| {
                if t.contains('.') {
                    t.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    t.to_string()
                }
            };
            trim(a) == trim(b)
        }
        Kind::Float { single: true } => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x as f32 == y as f32 || (x.is_nan() && y.is_nan()),
            _ => false,
        },
        Kind::Float { single: false } => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x == y || (x.is_nan() && y.is_nan()),
            _ => false,
        },
        Kind::Json => match (
            serde_json::from_str::<serde_json::Value>(a),
            serde_json::from_str::<serde_json::Value>(b),
        ) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        },
    }
}

/// Every row of the MariaDB table and of its PostgreSQL copy as canonical text
/// (columns joined by [`SEP`]; unsorted), with the comparison kind of each column.
#[allow(clippy::too_many_arguments)]
pub fn fetch_canonical(
    maria: &MariaService,
    maria_db: &str,
    pg: &PgService,
    pg_db: &str,
    pg_schema: &str,
    table: &str,
    mcols: &[ColumnInfo],
    pcols: &[ColumnInfo],
) -> (Vec<Kind>, Vec<String>, Vec<String>) {
    let mut mexprs = Vec::new();
    let mut pexprs = Vec::new();
    let mut kinds = Vec::new();
    for (m, p) in mcols.iter().zip(pcols) {
        let (me, pe, kind) = canonical(m, p);
        mexprs.push(format!("IFNULL({me}, '{NULL}')"));
        pexprs.push(format!("COALESCE({pe}, '{NULL}')"));
        kinds.push(kind);
    }
    let msql = format!(
        "SET time_zone = '+00:00'; SELECT CONCAT_WS(CHAR(31), {}) FROM `{table}`",
        mexprs.join(", ")
    );
    let psql = format!(
        "SELECT concat_ws(E'\\x1f', {}) FROM \"{pg_schema}\".\"{table}\"",
        pexprs.join(", ")
    );
    let lines = |out: String| -> Vec<String> {
        out.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mrows = lines(maria.sql(maria_db, &msql).expect("mariadb rows"));
    let prows = lines(pg.psql(pg_db, &psql).expect("postgres rows"));
    (kinds, mrows, prows)
}

/// Asserts that a MariaDB table and its PostgreSQL copy hold the same rows.
/// `maria_is_source` only changes the wording of a failure.
pub fn assert_same_table(
    maria: &MariaService,
    maria_db: &str,
    pg: &PgService,
    pg_db: &str,
    pg_schema: &str,
    table: &str,
) -> usize {
    let mcols = maria_columns(maria, maria_db, table);
    let pcols = pg_columns(pg, pg_db, pg_schema, table);
    let mnames: Vec<&str> = mcols.iter().map(|c| c.name.as_str()).collect();
    let pnames: Vec<&str> = pcols.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(mnames, pnames, "columns of {table} differ");
    let (kinds, mut mrows, mut prows) =
        fetch_canonical(maria, maria_db, pg, pg_db, pg_schema, table, &mcols, &pcols);
    assert_eq!(
        mrows.len(),
        prows.len(),
        "row counts of {table} differ (MariaDB {}, PostgreSQL {})",
        mrows.len(),
        prows.len()
    );
    // Rows sort by their first (key) column numerically where it is a number.
    let key = |row: &String| {
        let first = row.split(SEP).next().unwrap_or("").to_string();
        (first.parse::<i128>().unwrap_or(i128::MAX), row.clone())
    };
    mrows.sort_by_key(key);
    prows.sort_by_key(key);
    for (m, p) in mrows.iter().zip(&prows) {
        let mv: Vec<&str> = m.split(SEP).collect();
        let pv: Vec<&str> = p.split(SEP).collect();
        for (i, kind) in kinds.iter().enumerate() {
            let (a, b) = (
                mv.get(i).copied().unwrap_or(""),
                pv.get(i).copied().unwrap_or(""),
            );
            assert!(
                same(*kind, a, b),
                "{table}.{} differs in row with key {}: MariaDB {a:?} ({}), PostgreSQL {b:?} ({})",
                mcols[i].name,
                mv[0],
                mcols[i].type_name,
                pcols[i].type_name
            );
        }
    }
    mrows.len()
}
