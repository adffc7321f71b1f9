//! The MySQL/MariaDB sink: table preparation, bulk load (`LOAD DATA LOCAL INFILE`
//! from memory, or multi-row `INSERT`), keys and indexes after the load, foreign keys
//! after every table.

use crate::catalog::{self, DiscoverOptions, MyTable};
use crate::codec::{self, Cell, Encode};
use crate::connect::{ServerInfo, Target, quote_ident, quote_table};
use crate::ddl;
use bytes::Bytes;
use ferry_core::policy::{Action, BadDataRecorder, fail_error, row_key};
use ferry_core::{
    BadDataPolicy, Batch, DataType, Error, ErrorKind, Finding, FindingLevel, LoadReport, Result,
    SchemaDdl, Sink, TableId, TablePrep, TableSchema, TableWriter, Value, finding_code,
};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Bytes of row data sent per `LOAD DATA` statement.
const LOAD_DATA_CHUNK: usize = 16 << 20;
/// Bytes of one multi-row `INSERT` (also bounded by the server's `max_allowed_packet`).
const INSERT_CHUNK: usize = 4 << 20;

/// How the sink loads rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadMethod {
    /// `LOAD DATA LOCAL INFILE` fed from memory (needs `local_infile=ON` on the
    /// server; MariaDB's default, MySQL 8's is OFF). Falls back to `Insert` when the
    /// server refuses it.
    #[default]
    LoadData,
    /// Multi-row `INSERT` statements of a few MiB.
    Insert,
}

impl std::str::FromStr for LoadMethod {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "load-data" => Ok(LoadMethod::LoadData),
            "insert" => Ok(LoadMethod::Insert),
            other => Err(Error::config(format!(
                "unknown load-method {other:?}; valid: \"load-data\", \"insert\""
            ))),
        }
    }
}

/// Sink settings (`[target.options]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkOptions {
    /// How rows are loaded (`load-method`, default `load-data`).
    pub load_method: LoadMethod,
}

/// Writes tables into a MySQL or MariaDB server.
pub struct MySqlSink {
    target: Target,
    server: ServerInfo,
    options: SinkOptions,
    /// Serialises DDL on one connection; `None` for [`MySqlSink::ddl_only`].
    ddl: Option<tokio::sync::Mutex<Conn>>,
    /// Tables this sink created, which get keys and indexes after the load.
    created: Mutex<HashSet<TableId>>,
    /// The target's own view of each prepared table.
    prepared: Mutex<HashMap<TableId, Arc<MyTable>>>,
}

fn lock_err() -> Error {
    Error::internal("sink state poisoned")
}

impl MySqlSink {
    /// Connects to the server named in `url` (`mysql://user:pass@host:port/db` or
    /// `mariadb://...`), with default options.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, SinkOptions::default()).await
    }

    /// Like [`MySqlSink::connect`], with options.
    pub async fn connect_with(url: &str, options: SinkOptions) -> Result<Self> {
        let target = Target::parse(url)?;
        let mut conn = target.connect().await?;
        let server = target.server_info(&mut conn).await?;
        conn.query_drop("SET foreign_key_checks = 0")
            .await
            .map_err(|e| target.error(e, "cannot set up the DDL session"))?;
        let mut options = options;
        if options.load_method == LoadMethod::LoadData {
            let local_infile: Option<i64> = conn
                .query_first("SELECT @@local_infile")
                .await
                .map_err(|e| target.error(e, "cannot read local_infile"))?;
            if local_infile == Some(0) {
                tracing::warn!(
                    target = %target.display,
                    "the server has local_infile=OFF: loading with multi-row INSERT instead of \
                     LOAD DATA LOCAL INFILE (slower; SET GLOBAL local_infile=ON to speed it up)"
                );
                options.load_method = LoadMethod::Insert;
            }
        }
        Ok(MySqlSink {
            target,
            server,
            options,
            ddl: Some(tokio::sync::Mutex::new(conn)),
            created: Mutex::new(HashSet::new()),
            prepared: Mutex::new(HashMap::new()),
        })
    }

    /// A sink that never connects: [`Sink::convert_schema`] and [`Sink::schema_ddl`]
    /// work, everything else fails. The flavour comes from the URL's scheme
    /// (`mariadb://` → MariaDB 10.11, `mysql://` → MySQL 8.0); `ferry schema` uses it
    /// to print the target DDL without touching the target.
    pub fn ddl_only(url: &str) -> Result<Self> {
        let target = Target::parse(url)?;
        let server = if url
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("mariadb:")
        {
            ServerInfo {
                flavor: crate::connect::Flavor::MariaDb,
                version: (10, 11, 0),
            }
        } else {
            ServerInfo {
                flavor: crate::connect::Flavor::MySql,
                version: (8, 0, 0),
            }
        };
        Ok(MySqlSink {
            target,
            server,
            options: SinkOptions::default(),
            ddl: None,
            created: Mutex::new(HashSet::new()),
            prepared: Mutex::new(HashMap::new()),
        })
    }

    /// The DDL connection, locked.
    async fn ddl_conn(&self) -> Result<tokio::sync::MutexGuard<'_, Conn>> {
        match &self.ddl {
            Some(conn) => Ok(conn.lock().await),
            None => Err(Error::internal(
                "this MySQL sink was built to print DDL only (MySqlSink::ddl_only) and cannot \
                 change the target",
            )),
        }
    }

    /// The target as `mysql://user@host:port/db`, without the password.
    pub fn display(&self) -> &str {
        &self.target.display
    }

    async fn execute(&self, conn: &mut Conn, sql: &str, context: &str) -> Result<()> {
        conn.query_drop(sql)
            .await
            .map_err(|e| self.target.error(e, context))
    }

    async fn refresh(&self, conn: &mut Conn, id: &TableId) -> Result<Arc<MyTable>> {
        let table = catalog::discover_one(
            conn,
            &self.target,
            self.server.flavor,
            id,
            DiscoverOptions {
                tinyint1_as_bool: true,
            },
        )
        .await?
        .ok_or_else(|| {
            Error::schema(format!(
                "table {id} does not exist in the target {}",
                self.target.display
            ))
        })?;
        let table = Arc::new(table);
        self.prepared
            .lock()
            .map_err(|_| lock_err())?
            .insert(id.clone(), Arc::clone(&table));
        Ok(table)
    }

    async fn create(&self, conn: &mut Conn, schema: &TableSchema, drop: bool) -> Result<()> {
        let context = format!("cannot create table {}", schema.id);
        self.execute(conn, &ddl::create_database(schema), &context)
            .await?;
        if drop {
            let sql = format!("DROP TABLE IF EXISTS {}", quote_table(&schema.id));
            self.execute(conn, &sql, &context).await?;
        }
        self.execute(conn, &ddl::create_table(schema, &self.server), &context)
            .await?;
        self.created
            .lock()
            .map_err(|_| lock_err())?
            .insert(schema.id.clone());
        Ok(())
    }

    fn was_created(&self, id: &TableId) -> Result<bool> {
        Ok(self.created.lock().map_err(|_| lock_err())?.contains(id))
    }
}

impl Sink for MySqlSink {
    type Writer = MySqlTableWriter;
    type Applier = crate::apply::MySqlApplier;

    fn engine(&self) -> &'static str {
        self.server.flavor.engine()
    }

    async fn open_applier(
        &self,
        task: &str,
        tables: Vec<ferry_core::ApplyTable>,
    ) -> Result<crate::apply::MySqlApplier> {
        crate::apply::MySqlApplier::open(&self.target, self.server.clone(), task, tables).await
    }

    async fn read_checkpoint(&self, task: &str) -> Result<Option<ferry_core::Position>> {
        crate::apply::read_checkpoint(&self.target, task).await
    }

    async fn write_checkpoint(&self, task: &str, position: &ferry_core::Position) -> Result<()> {
        crate::apply::write_checkpoint(&self.target, task, position).await
    }

    async fn remove_checkpoint(&self, task: &str) -> Result<bool> {
        crate::apply::remove_checkpoint(&self.target, task).await
    }

    fn convert_schema(
        &self,
        source_engine: &str,
        schema: &TableSchema,
    ) -> Result<(TableSchema, Vec<Finding>)> {
        Ok(ddl::convert(
            source_engine,
            schema,
            &self.server,
            self.target.database(),
        ))
    }

    async fn prepare_table(&self, schema: &TableSchema, prep: TablePrep) -> Result<()> {
        let mut conn = self.ddl_conn().await?;
        let exists = catalog::discover_one(
            &mut conn,
            &self.target,
            self.server.flavor,
            &schema.id,
            DiscoverOptions {
                tinyint1_as_bool: true,
            },
        )
        .await?
        .is_some();
        self.created
            .lock()
            .map_err(|_| lock_err())?
            .remove(&schema.id);
        match prep {
            TablePrep::DropAndCreate => self.create(&mut conn, schema, true).await?,
            TablePrep::Truncate if exists => {
                let sql = format!("TRUNCATE TABLE {}", quote_table(&schema.id));
                self.execute(&mut conn, &sql, &format!("cannot truncate {}", schema.id))
                    .await?;
            }
            TablePrep::Truncate => self.create(&mut conn, schema, false).await?,
            TablePrep::DoNothing if exists => {}
            TablePrep::DoNothing => {
                return Err(Error::schema(format!(
                    "table {} does not exist in the target {}; table-prep = \"do-nothing\" \
                     needs it to exist (use \"drop-and-create\" or \"truncate\" to create it)",
                    schema.id, self.target.display
                )));
            }
        }
        self.refresh(&mut conn, &schema.id).await?;
        Ok(())
    }

    async fn open_writer(
        &self,
        schema: Arc<TableSchema>,
        policy: BadDataPolicy,
    ) -> Result<MySqlTableWriter> {
        let cached = self
            .prepared
            .lock()
            .map_err(|_| lock_err())?
            .get(&schema.id)
            .cloned();
        let mut conn = self.target.connect().await?;
        let table = match cached {
            Some(t) => t,
            None => self.refresh(&mut conn, &schema.id).await?,
        };
        let encoders = encoders(&schema, &table, &self.target)?;
        let context = format!("loading {}", schema.id);
        // unique_checks stays on: with both checks off MariaDB ≥ 10.6 bulk-loads an
        // empty table under a table lock, which serialises the partitions' writers
        // (and tables created here have no unique index until after the load).
        conn.query_drop("SET foreign_key_checks = 0")
            .await
            .map_err(|e| self.target.error(e, &context))?;
        conn.query_drop("START TRANSACTION")
            .await
            .map_err(|e| self.target.error(e, &context))?;
        let method = self.options.load_method;
        let max_packet: Option<u64> = conn
            .query_first("SELECT @@max_allowed_packet")
            .await
            .map_err(|e| self.target.error(e, &context))?;
        let insert_chunk = usize::try_from(max_packet.unwrap_or(1 << 20))
            .unwrap_or(INSERT_CHUNK)
            .saturating_sub(64 << 10)
            .clamp(64 << 10, INSERT_CHUNK);
        Ok(MySqlTableWriter {
            conn,
            load_data: load_data_statement(&schema, &encoders),
            insert_head: insert_head(&schema),
            method,
            insert_chunk,
            chunk: Vec::with_capacity(LOAD_DATA_CHUNK + (1 << 20)),
            chunk_keys: Vec::new(),
            row: Vec::with_capacity(4096),
            cell: Vec::with_capacity(4096),
            key_columns: key_columns(&schema),
            recorder: BadDataRecorder::new(schema.id.clone(), policy),
            encoders,
            schema,
            target: self.target.clone(),
            context,
        })
    }

    async fn finish_table(&self, schema: &TableSchema, _prep: TablePrep) -> Result<()> {
        let created = self.was_created(&schema.id)?;
        // Keys are built on a connection of their own, so several tables can build at
        // once while others are still loading.
        let mut conn = self.target.connect().await?;
        if created && let Some(sql) = ddl::post_load(schema) {
            let context = format!("cannot add keys and indexes to {}", schema.id);
            self.execute(&mut conn, &sql, &context).await?;
        }
        let analyze = format!("ANALYZE TABLE {}", quote_table(&schema.id));
        let _: Vec<mysql_async::Row> = conn.query(analyze).await.map_err(|e| {
            self.target
                .error(e, &format!("cannot analyze {}", schema.id))
        })?;
        let _ = conn.disconnect().await;
        Ok(())
    }

    async fn add_foreign_keys(&self, schema: &TableSchema, _prep: TablePrep) -> Result<()> {
        if !self.was_created(&schema.id)? {
            return Ok(());
        }
        let Some(sql) = ddl::foreign_keys(schema) else {
            return Ok(());
        };
        let mut conn = self.target.connect().await?;
        // The rows come from one consistent snapshot; checking them again would make
        // InnoDB copy the table.
        self.execute(
            &mut conn,
            "SET foreign_key_checks = 0",
            "cannot add foreign keys",
        )
        .await?;
        self.execute(
            &mut conn,
            &sql,
            &format!("cannot add the foreign keys of {}", schema.id),
        )
        .await?;
        let _ = conn.disconnect().await;
        Ok(())
    }

    fn schema_ddl(&self, schema: &TableSchema) -> Result<SchemaDdl> {
        Ok(ddl::schema_ddl(schema, &self.server))
    }

    async fn assess(&self, schemas: &[TableSchema], prep: TablePrep) -> Result<Vec<Finding>> {
        let mut conn = self.ddl_conn().await?;
        let mut out = Vec::new();
        for schema in schemas {
            let exists = catalog::discover_one(
                &mut conn,
                &self.target,
                self.server.flavor,
                &schema.id,
                DiscoverOptions {
                    tinyint1_as_bool: true,
                },
            )
            .await?
            .is_some();
            let message = match (exists, prep) {
                (true, TablePrep::DropAndCreate) => {
                    "the table exists at the target and will be dropped and re-created"
                }
                (true, TablePrep::Truncate) => "the table exists at the target and will be emptied",
                (true, TablePrep::DoNothing) => {
                    "the table exists at the target; rows are added to it"
                }
                (false, TablePrep::DoNothing) => {
                    out.push(
                        Finding::new(
                            FindingLevel::Error,
                            finding_code::TARGET_EXISTS,
                            "the table does not exist at the target, and table-prep = \
                             \"do-nothing\" does not create it",
                        )
                        .table(&schema.id),
                    );
                    continue;
                }
                (false, _) => continue,
            };
            out.push(
                Finding::new(FindingLevel::Info, finding_code::TARGET_EXISTS, message)
                    .table(&schema.id),
            );
        }
        Ok(out)
    }
}

/// The encoder of each column of `schema` (the converted schema), from the
/// target's own view of the table.
pub(crate) fn encoders(
    schema: &TableSchema,
    found: &MyTable,
    target: &Target,
) -> Result<Vec<Encode>> {
    schema
        .columns
        .iter()
        .map(|column| {
            let at = found.schema.column_index(&column.name).ok_or_else(|| {
                Error::schema(format!(
                    "column {} of table {} does not exist in the target {}",
                    column.name, schema.id, target.display
                ))
            })?;
            Ok(encoder(
                &column.data_type,
                &found.schema.columns[at].data_type,
                &found.columns[at].info.data_type,
            ))
        })
        .collect()
}

/// How values of a source column are written into a target column.
pub(crate) fn encoder(source: &DataType, target: &DataType, target_mysql_type: &str) -> Encode {
    Encode {
        max_chars: match target {
            DataType::Text { max_len, .. } => *max_len,
            _ => None,
        },
        // Members with `?` may be characters information_schema cannot show; the
        // server checks those (and LOAD DATA's warnings fail the load).
        labels: match target {
            DataType::Enum { labels, .. } if !labels.iter().any(|l| l.contains('?')) => {
                Some(labels.clone())
            }
            _ => None,
        },
        decimal: match target {
            DataType::Decimal {
                precision: Some(p),
                scale,
            } => Some((*p, scale.unwrap_or(0))),
            _ => None,
        },
        bit: target_mysql_type == "bit",
        set: target_mysql_type == "set",
        cidr: matches!(source, DataType::Cidr),
    }
}

/// The columns whose values name a row in messages (primary key, or the first three).
fn key_columns(schema: &TableSchema) -> Vec<usize> {
    let key = schema.primary_key_indices();
    if key.is_empty() {
        (0..schema.columns.len().min(3)).collect()
    } else {
        key
    }
}

fn load_data_statement(schema: &TableSchema, encoders: &[Encode]) -> String {
    let mut columns = Vec::with_capacity(schema.columns.len());
    let mut sets = Vec::new();
    for (i, (column, enc)) in schema.columns.iter().zip(encoders).enumerate() {
        if enc.bit {
            columns.push(format!("@ferry_{i}"));
            sets.push(format!("{} = UNHEX(@ferry_{i})", quote_ident(&column.name)));
        } else {
            columns.push(quote_ident(&column.name));
        }
    }
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE 'ferry' INTO TABLE {} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        quote_table(&schema.id),
        columns.join(", ")
    );
    if !sets.is_empty() {
        sql.push_str(" SET ");
        sql.push_str(&sets.join(", "));
    }
    sql
}

fn insert_head(schema: &TableSchema) -> String {
    format!(
        "INSERT INTO {} ({}) VALUES ",
        quote_table(&schema.id),
        schema
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Loads one partition in one transaction: rows become visible at
/// [`TableWriter::finish`]; a writer dropped before that closes its connection, and
/// the server rolls its rows back.
pub struct MySqlTableWriter {
    conn: Conn,
    schema: Arc<TableSchema>,
    encoders: Vec<Encode>,
    method: LoadMethod,
    load_data: String,
    insert_head: String,
    insert_chunk: usize,
    /// Rows rendered and not yet sent.
    chunk: Vec<u8>,
    /// The key values of the rows in `chunk`, to name a row the server warns about.
    chunk_keys: Vec<Vec<Value>>,
    row: Vec<u8>,
    cell: Vec<u8>,
    key_columns: Vec<usize>,
    recorder: BadDataRecorder,
    target: Target,
    context: String,
}

impl MySqlTableWriter {
    /// Renders one row into `self.row`; `Ok(false)` when the policy skips it.
    fn render_row(&mut self, row: &[Value]) -> Result<bool> {
        self.row.clear();
        let insert = self.method == LoadMethod::Insert;
        if insert {
            self.row.push(b'(');
        }
        for (i, value) in row.iter().enumerate() {
            if i > 0 {
                self.row.push(if insert { b',' } else { b'\t' });
            }
            let Some(enc) = self.encoders.get(i) else {
                return Err(Error::internal(format!(
                    "{}: a row has {} values for {} columns",
                    self.context,
                    row.len(),
                    self.encoders.len()
                )));
            };
            let Some(cell) = render_value(
                value,
                enc,
                &mut self.recorder,
                &self.schema,
                i,
                row,
                &mut self.cell,
            )?
            else {
                return Ok(false);
            };
            match (cell, insert) {
                (Cell::Null, false) => self.row.extend_from_slice(b"\\N"),
                (Cell::Null, true) => self.row.extend_from_slice(b"NULL"),
                (Cell::Bare | Cell::Hex, false) => self.row.extend_from_slice(&self.cell),
                (Cell::Text | Cell::Binary, false) => {
                    codec::escape_infile(&self.cell, &mut self.row)
                }
                (cell, true) => push_sql_literal(cell, &self.cell, &mut self.row),
            }
        }
        self.row.push(if insert { b')' } else { b'\n' });
        Ok(true)
    }

    /// Sends the rendered rows.
    async fn flush(&mut self) -> Result<()> {
        if self.chunk_keys.is_empty() {
            return Ok(());
        }
        let rows = self.chunk_keys.len() as u64;
        let capacity = self.capacity();
        let data = Bytes::from(std::mem::replace(
            &mut self.chunk,
            Vec::with_capacity(capacity),
        ));
        match self.method {
            LoadMethod::LoadData => {
                self.conn.set_infile_handler(async move {
                    let stream = futures_util::stream::once(std::future::ready(Ok(data)));
                    Ok(Box::pin(stream) as mysql_async::InfileData)
                });
                let sql = self.load_data.clone();
                self.conn
                    .query_drop(sql)
                    .await
                    .map_err(|e| self.target.error(e, &self.context))?;
            }
            LoadMethod::Insert => {
                // The chunk holds `(..),(..),` rows; the statement is head + rows.
                let mut sql = Vec::with_capacity(self.insert_head.len() + data.len());
                sql.extend_from_slice(self.insert_head.as_bytes());
                sql.extend_from_slice(&data[..data.len().saturating_sub(1)]);
                let sql = String::from_utf8(sql).map_err(|_| {
                    Error::internal(format!("{}: INSERT statement is not UTF-8", self.context))
                })?;
                self.conn
                    .query_drop(sql)
                    .await
                    .map_err(|e| self.target.error(e, &self.context))?;
            }
        }
        let affected = self.conn.affected_rows();
        let warnings = self.conn.get_warnings();
        if warnings > 0 || affected != rows {
            return Err(self.server_complaint(rows, affected, warnings).await);
        }
        self.chunk_keys.clear();
        Ok(())
    }

    fn capacity(&self) -> usize {
        match self.method {
            LoadMethod::LoadData => LOAD_DATA_CHUNK + (1 << 20),
            LoadMethod::Insert => self.insert_chunk + (1 << 20),
        }
    }

    /// `LOAD DATA LOCAL` turns bad values into warnings (the server cannot stop the
    /// upload): every warning fails the load, naming the row it is about.
    async fn server_complaint(&mut self, rows: u64, affected: u64, warnings: u16) -> Error {
        let shown: Vec<(String, u16, String)> = self
            .conn
            .query("SHOW WARNINGS LIMIT 5")
            .await
            .unwrap_or_default();
        let mut parts = Vec::new();
        for (_, code, message) in shown {
            let row = message
                .rsplit_once("at row ")
                .and_then(|(_, n)| n.trim().parse::<usize>().ok())
                .and_then(|n| n.checked_sub(1))
                .and_then(|n| self.chunk_keys.get(n));
            let key = row
                .map(|k| {
                    let names: Vec<String> = self
                        .key_columns
                        .iter()
                        .zip(k)
                        .filter_map(|(i, v)| {
                            let c = self.schema.columns.get(*i)?;
                            Some(format!("{}={}", c.name, show_key(v)))
                        })
                        .collect();
                    format!(" (row ({}))", names.join(", "))
                })
                .unwrap_or_default();
            parts.push(format!("{message}{key} [MySQL {code}]"));
        }
        Error::new(
            ErrorKind::Conversion,
            format!(
                "{}: the server accepted {affected} of {rows} rows with {warnings} warning(s), \
                 which would change data silently, so the load stops: {}",
                self.context,
                parts.join("; ")
            ),
        )
    }
}

/// Renders `value` (column `i` of `row`) for its target column, applying the
/// table's bad-data policy; `Ok(None)` when the policy skips the row. The rendered
/// bytes are in `cell`.
pub(crate) fn render_value(
    value: &Value,
    enc: &Encode,
    recorder: &mut BadDataRecorder,
    schema: &TableSchema,
    i: usize,
    row: &[Value],
    cell: &mut Vec<u8>,
) -> Result<Option<Cell>> {
    let bad = match codec::render(value, enc, cell) {
        Ok(rendered) => return Ok(Some(rendered)),
        Err(bad) => bad,
    };
    let column = &schema.columns[i];
    match recorder.handle(column, || row_key(schema, row), &bad.problem)? {
        Action::Null => Ok(Some(Cell::Null)),
        Action::SkipRow => Ok(None),
        Action::Clamp => {
            let relaxed = Encode {
                decimal: None,
                ..enc.clone()
            };
            let clamped = bad.clamped.as_ref().ok_or_else(|| {
                fail_error(
                    &schema.id,
                    &column.name,
                    &row_key(schema, row),
                    &bad.problem,
                    "the bad-data policy is \"clamp\" but this value has no nearest valid value",
                )
            })?;
            codec::render(clamped, &relaxed, cell)
                .map(Some)
                .map_err(|b| {
                    fail_error(
                        &schema.id,
                        &column.name,
                        &row_key(schema, row),
                        &b.problem,
                        "the clamped value does not fit either",
                    )
                })
        }
        Action::Fail(reason) => Err(fail_error(
            &schema.id,
            &column.name,
            &row_key(schema, row),
            &bad.problem,
            &reason,
        )),
    }
}

/// Appends a rendered cell to `out` as an SQL literal.
pub(crate) fn push_sql_literal(cell: Cell, bytes: &[u8], out: &mut Vec<u8>) {
    match cell {
        Cell::Null => out.extend_from_slice(b"NULL"),
        Cell::Bare => out.extend_from_slice(bytes),
        Cell::Text => codec::escape_literal(bytes, out),
        Cell::Hex => {
            out.extend_from_slice(b"X'");
            out.extend_from_slice(bytes);
            out.push(b'\'');
        }
        Cell::Binary => {
            out.extend_from_slice(b"X'");
            for b in bytes {
                out.extend_from_slice(&HEX[usize::from(*b)]);
            }
            out.push(b'\'');
        }
    }
}

const HEX: [[u8; 2]; 256] = {
    let digits = *b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [digits[i >> 4], digits[i & 15]];
        i += 1;
    }
    table
};

fn show_key(v: &Value) -> String {
    let text = match v {
        Value::Null => "NULL".into(),
        Value::Int16(n) => n.to_string(),
        Value::Int32(n) => n.to_string(),
        Value::Int64(n) => n.to_string(),
        Value::UInt64(n) => n.to_string(),
        Value::Text(t) | Value::Enum(t) => format!("'{}'", t.as_str().replace('\'', "''")),
        other => format!("{other:?}"),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

impl TableWriter for MySqlTableWriter {
    async fn write(&mut self, batch: Batch) -> Result<()> {
        for event in &batch.events {
            let Some(row) = event.after.as_deref() else {
                return Err(Error::internal(format!(
                    "{}: bulk load received a {:?} event",
                    self.context, event.op
                )));
            };
            if !self.render_row(row)? {
                self.recorder.row_skipped();
                continue;
            }
            let limit = match self.method {
                LoadMethod::LoadData => LOAD_DATA_CHUNK,
                LoadMethod::Insert => self.insert_chunk,
            };
            if !self.chunk_keys.is_empty() && self.chunk.len() + self.row.len() > limit {
                self.flush().await?;
            }
            self.chunk.extend_from_slice(&self.row);
            if self.method == LoadMethod::Insert {
                self.chunk.push(b',');
            }
            self.chunk_keys.push(
                self.key_columns
                    .iter()
                    .map(|&i| row.get(i).cloned().unwrap_or(Value::Null))
                    .collect(),
            );
            self.recorder.row_delivered();
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<LoadReport> {
        self.flush().await?;
        self.conn
            .query_drop("COMMIT")
            .await
            .map_err(|e| self.target.error(e, &self.context))?;
        let _ = self.conn.disconnect().await;
        Ok(self.recorder.into_report())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::Column;

    #[test]
    fn load_data_unhexes_bit_columns() {
        let schema = TableSchema::new(
            TableId::new("d", "t"),
            vec![
                Column {
                    name: "a".into(),
                    data_type: DataType::Int32,
                    nullable: true,
                    default: None,
                    source_type: "int".into(),
                },
                Column {
                    name: "b".into(),
                    data_type: DataType::Bytes,
                    nullable: true,
                    default: None,
                    source_type: "bit(12)".into(),
                },
            ],
        );
        let encoders = vec![
            Encode::default(),
            Encode {
                bit: true,
                ..Encode::default()
            },
        ];
        assert_eq!(
            load_data_statement(&schema, &encoders),
            "LOAD DATA LOCAL INFILE 'ferry' INTO TABLE `d`.`t` CHARACTER SET utf8mb4 FIELDS \
             TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (`a`, @ferry_1) \
             SET `b` = UNHEX(@ferry_1)"
        );
        assert_eq!(
            insert_head(&schema),
            "INSERT INTO `d`.`t` (`a`, `b`) VALUES "
        );
        assert_eq!(HEX[0xab], *b"ab");
    }
}
