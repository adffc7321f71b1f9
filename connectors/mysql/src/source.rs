//! The MySQL/MariaDB source: discovery, one consistent snapshot shared by a pool of
//! connections, primary-key range partitions, streaming binary-protocol reads.

use crate::catalog::{self, DiscoverOptions, MyTable};
use crate::codec::{self, Decode};
use crate::connect::{Flavor, ServerInfo, Target, quote_ident, quote_table};
use crate::position::BinlogPosition;
use ferry_core::TableCache;
use ferry_core::policy::{Action, BadDataRecorder, fail_error, row_key};
use ferry_core::{
    BadDataPolicy, Batch, BatchSender, Catalog, ChangeEvent, DataType, Error, ErrorKind, Finding,
    LoadReport, Partition, PartitionRange, Position, Result, Snapshot, Source, TableFilter,
    TableId, TableSchema, Value,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Rows per batch sent down the pipeline.
const BATCH_ROWS: usize = 4096;
/// Bytes per batch sent down the pipeline.
const BATCH_BYTES: usize = 4 << 20;
/// Smallest partition worth its own worker (16 MiB of table data).
const MIN_PARTITION_BYTES: u64 = 16 << 20;
/// How long taking the snapshot lock may wait for running statements.
const LOCK_WAIT_SECS: u32 = 60;

/// Source settings (`[source.options]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOptions {
    /// Read `TINYINT(1)` columns as booleans (`tinyint1-as-bool`, default true).
    pub tinyint1_as_bool: bool,
    /// Connections that hold the snapshot, i.e. partitions read at once
    /// (`snapshot-connections`, default 4 — the task's default parallelism). They
    /// must all be opened while the snapshot lock is held, so set this to the task's
    /// `parallelism` when you raise it; more partitions than connections wait.
    pub snapshot_connections: usize,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            tinyint1_as_bool: true,
            snapshot_connections: 4,
        }
    }
}

/// Reads tables from a MySQL or MariaDB database.
pub struct MySqlSource {
    target: Target,
    server: ServerInfo,
    options: SourceOptions,
    tables: TableCache<MyTable>,
    snapshots: Mutex<HashMap<String, Arc<SnapshotPool>>>,
    next_snapshot: AtomicU64,
}

impl MySqlSource {
    /// Checks the URL and that the server answers (`mysql://user:pass@host:port/db`
    /// or `mariadb://...`), with default options.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, SourceOptions::default()).await
    }

    /// Like [`MySqlSource::connect`], with options.
    pub async fn connect_with(url: &str, options: SourceOptions) -> Result<Self> {
        let target = Target::parse(url)?;
        let mut conn = target.connect().await?;
        let server = target.server_info(&mut conn).await?;
        let _ = conn.disconnect().await;
        Ok(MySqlSource {
            target,
            server,
            options,
            tables: TableCache::default(),
            snapshots: Mutex::new(HashMap::new()),
            next_snapshot: AtomicU64::new(1),
        })
    }

    /// The source as `mysql://user@host:port/db`, without the password.
    pub fn display(&self) -> &str {
        &self.target.display
    }

    /// Whether the server is MySQL or MariaDB.
    pub fn flavor(&self) -> Flavor {
        self.server.flavor
    }

    fn discover_options(&self) -> DiscoverOptions {
        DiscoverOptions {
            tinyint1_as_bool: self.options.tinyint1_as_bool,
        }
    }

    fn remember(&self, tables: &[MyTable]) -> Result<()> {
        for t in tables {
            self.tables.insert(t.schema.id.clone(), t.clone());
        }
        Ok(())
    }

    async fn table(&self, id: &TableId) -> Result<Arc<MyTable>> {
        if let Some(t) = self.tables.get(id) {
            return Ok(t);
        }
        let mut conn = self.target.connect().await?;
        let table = catalog::discover_one(
            &mut conn,
            &self.target,
            self.server.flavor,
            id,
            self.discover_options(),
        )
        .await?
        .ok_or_else(|| {
            Error::schema(format!(
                "table {id} does not exist in {}",
                self.target.display
            ))
        })?;
        self.remember(std::slice::from_ref(&table))?;
        Ok(Arc::new(table))
    }

    fn pool(&self, snapshot: &Snapshot) -> Result<Arc<SnapshotPool>> {
        self.snapshots
            .lock()
            .map_err(|_| Error::internal("snapshot registry poisoned"))?
            .get(&snapshot.id)
            .cloned()
            .ok_or_else(|| {
                Error::internal(format!(
                    "snapshot {} is not open (begin_snapshot was not called or it ended)",
                    snapshot.id
                ))
            })
    }

    /// Takes the snapshot lock: `FLUSH TABLES WITH READ LOCK` (needs RELOAD), or else
    /// `LOCK TABLES ... READ` on every discovered table (needs LOCK TABLES).
    async fn lock(&self, lock: &mut Conn) -> Result<&'static str> {
        let ctx = "cannot take the snapshot lock";
        lock.query_drop(format!("SET SESSION lock_wait_timeout = {LOCK_WAIT_SECS}"))
            .await
            .map_err(|e| self.target.error(e, ctx))?;
        let global = match lock.query_drop("FLUSH TABLES WITH READ LOCK").await {
            Ok(()) => return Ok("FLUSH TABLES WITH READ LOCK"),
            Err(e) => self.target.error(e, "FLUSH TABLES WITH READ LOCK failed"),
        };
        if global.kind() != ErrorKind::Auth {
            return Err(global);
        }
        let tables: Vec<TableId> = self.tables.ids();
        if tables.is_empty() {
            return Err(global.context(
                "no tables were discovered to lock one by one instead; grant RELOAD to Ferry's user",
            ));
        }
        let list = tables
            .iter()
            .map(|t| format!("{} READ", quote_table(t)))
            .collect::<Vec<_>>()
            .join(", ");
        match lock.query_drop(format!("LOCK TABLES {list}")).await {
            Ok(()) => {
                tracing::warn!(
                    source = %self.target.display,
                    "no RELOAD privilege: the snapshot locks the selected tables instead of the \
                     whole server, so its binlog position is only exact for those tables"
                );
                Ok("LOCK TABLES")
            }
            Err(e) => Err(self.target.error(
                e,
                &format!(
                    "cannot lock the tables for a consistent snapshot ({}); grant RELOAD (or \
                     LOCK TABLES) to Ferry's user",
                    global.message()
                ),
            )),
        }
    }

    /// The binlog coordinates (and GTID position) now; `None` when the binary log is
    /// off or the user may not read it.
    async fn binlog_position(&self, conn: &mut Conn) -> Option<BinlogPosition> {
        let mut status: Option<mysql_async::Row> = None;
        for sql in ["SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"] {
            match conn.query_first::<mysql_async::Row, _>(sql).await {
                Ok(row) => {
                    status = row;
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, statement = sql, "cannot read the binlog position");
                }
            }
        }
        let row = status?;
        let file: String = row.get_opt(0).and_then(|r| r.ok())?;
        let offset: u64 = row.get_opt(1).and_then(|r| r.ok())?;
        let gtid = match self.server.flavor {
            Flavor::MariaDb => conn
                .query_first::<String, _>("SELECT @@GLOBAL.gtid_binlog_pos")
                .await
                .ok()
                .flatten(),
            Flavor::MySql => row.get_opt::<String, _>(4).and_then(|r| r.ok()),
        }
        .filter(|g| !g.trim().is_empty());
        Some(BinlogPosition { file, offset, gtid })
    }
}

/// The connections that hold one snapshot. A partition reader leases one; a reader
/// that fails (or is cancelled) mid-stream discards its connection instead of
/// returning it, since its result set was not read to the end.
struct SnapshotPool {
    conns: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
    alive: AtomicUsize,
}

/// One leased snapshot connection.
struct Lease {
    pool: Arc<SnapshotPool>,
    conn: Option<Conn>,
    permit: Option<OwnedSemaphorePermit>,
}

impl SnapshotPool {
    fn new(conns: Vec<Conn>) -> Self {
        let n = conns.len();
        SnapshotPool {
            conns: Mutex::new(conns),
            permits: Arc::new(Semaphore::new(n)),
            alive: AtomicUsize::new(n),
        }
    }

    async fn lease(self: &Arc<Self>) -> Result<Lease> {
        let permit = Arc::clone(&self.permits).acquire_owned().await.map_err(|_| {
            Error::new(
                ErrorKind::Connection,
                "every connection of the snapshot was lost; the snapshot cannot be read further",
            )
        })?;
        let conn = self
            .conns
            .lock()
            .map_err(|_| Error::internal("snapshot pool poisoned"))?
            .pop()
            .ok_or_else(|| Error::internal("snapshot pool is empty although a permit was free"))?;
        Ok(Lease {
            pool: Arc::clone(self),
            conn: Some(conn),
            permit: Some(permit),
        })
    }

    fn take_all(&self) -> Vec<Conn> {
        self.permits.close();
        self.conns
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

impl Lease {
    fn conn(&mut self) -> Result<&mut Conn> {
        self.conn
            .as_mut()
            .ok_or_else(|| Error::internal("snapshot lease used after release"))
    }

    /// Returns the connection to the pool (its result set was read to the end).
    fn release(mut self) {
        if let (Some(conn), Ok(mut conns)) = (self.conn.take(), self.pool.conns.lock()) {
            conns.push(conn);
        }
        drop(self.permit.take());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.conn.take().is_some() {
            // Not released: the connection may hold an unread result; it is dropped
            // (and closed) and its permit retired with it.
            if let Some(permit) = self.permit.take() {
                permit.forget();
            }
            if self.pool.alive.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.pool.permits.close();
            }
        }
    }
}

/// The `SELECT` for one partition, and its parameters.
fn select_query(table: &MyTable, schema: &TableSchema, range: &PartitionRange) -> (String, Params) {
    let columns = schema
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!("SELECT {columns} FROM {}", quote_table(&table.schema.id));
    let mut params = Vec::new();
    if let PartitionRange::Keys { lower, upper } = range
        && let Some(key) = table.schema.primary_key.first()
    {
        let mut conditions = Vec::new();
        if let Some(v) = lower.as_ref().and_then(|r| r.first()).and_then(key_param) {
            conditions.push(format!("{} >= ?", quote_ident(key)));
            params.push(v);
        }
        if let Some(v) = upper.as_ref().and_then(|r| r.first()).and_then(key_param) {
            conditions.push(format!("{} < ?", quote_ident(key)));
            params.push(v);
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
    }
    let params = if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params)
    };
    (sql, params)
}

fn key_param(v: &Value) -> Option<mysql_async::Value> {
    Some(match v {
        Value::Int16(n) => mysql_async::Value::Int(i64::from(*n)),
        Value::Int32(n) => mysql_async::Value::Int(i64::from(*n)),
        Value::Int64(n) => mysql_async::Value::Int(*n),
        Value::UInt64(n) => mysql_async::Value::UInt(*n),
        _ => return None,
    })
}

fn key_value(data_type: &DataType, n: i128) -> Option<Value> {
    Some(match data_type {
        DataType::Int16 => Value::Int16(i16::try_from(n).ok()?),
        DataType::Int32 => Value::Int32(i32::try_from(n).ok()?),
        DataType::Int64 => Value::Int64(i64::try_from(n).ok()?),
        DataType::UInt64 => Value::UInt64(u64::try_from(n).ok()?),
        _ => return None,
    })
}

/// Splits `[min, max]` into `count` ranges; the first and last are open so that rows
/// outside the bounds read earlier are still covered.
fn key_ranges(
    data_type: &DataType,
    min: i128,
    max: i128,
    count: usize,
) -> Option<Vec<PartitionRange>> {
    let span = max - min + 1;
    let count = i128::try_from(count).ok()?.min(span).max(1);
    let step = span / count;
    let mut ranges = Vec::new();
    for i in 0..count {
        let lower = (i > 0)
            .then(|| key_value(data_type, min + i * step))
            .flatten();
        let upper = (i + 1 < count)
            .then(|| key_value(data_type, min + (i + 1) * step))
            .flatten();
        if (i > 0 && lower.is_none()) || (i + 1 < count && upper.is_none()) {
            return None;
        }
        ranges.push(PartitionRange::Keys {
            lower: lower.map(|v| vec![v]),
            upper: upper.map(|v| vec![v]),
        });
    }
    Some(ranges)
}

impl Source for MySqlSource {
    fn engine(&self) -> &'static str {
        self.server.flavor.engine()
    }

    async fn discover(&self, filter: &TableFilter) -> Result<Catalog> {
        let mut conn = self.target.connect().await?;
        let tables = catalog::discover(
            &mut conn,
            &self.target,
            self.server.flavor,
            filter,
            self.discover_options(),
        )
        .await?;
        self.remember(&tables)?;
        Ok(Catalog {
            tables: tables.into_iter().map(|t| t.schema).collect(),
        })
    }

    async fn begin_snapshot(&self) -> Result<Snapshot> {
        let n = self.options.snapshot_connections.max(1);
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            let mut conn = self.target.connect().await?;
            conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .await
                .map_err(|e| self.target.error(e, "cannot prepare a snapshot connection"))?;
            conns.push(conn);
        }
        let mut lock = self.target.connect().await?;
        let how = self.lock(&mut lock).await?;
        let started = std::time::Instant::now();
        let mut begun = Ok(());
        for conn in &mut conns {
            if let Err(e) = conn
                .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
            {
                begun = Err(self
                    .target
                    .error(e, "cannot start the snapshot transaction"));
                break;
            }
        }
        let position = self.binlog_position(&mut lock).await;
        let unlocked = lock.query_drop("UNLOCK TABLES").await;
        let _ = lock.disconnect().await;
        begun?;
        unlocked.map_err(|e| self.target.error(e, "cannot release the snapshot lock"))?;
        let id = format!(
            "mysql-snapshot-{}",
            self.next_snapshot.fetch_add(1, Ordering::SeqCst)
        );
        tracing::info!(
            snapshot = %id,
            lock = how,
            lock_ms = started.elapsed().as_millis() as u64,
            connections = n,
            binlog = ?position,
            "consistent snapshot taken"
        );
        self.snapshots
            .lock()
            .map_err(|_| Error::internal("snapshot registry poisoned"))?
            .insert(id.clone(), Arc::new(SnapshotPool::new(conns)));
        Ok(Snapshot {
            id,
            position: position.map(|p| p.encode()),
        })
    }

    async fn partitions(
        &self,
        snapshot: &Snapshot,
        table: &TableSchema,
        max: usize,
    ) -> Result<Vec<Partition>> {
        let info = self.table(&table.id).await?;
        let whole = || {
            vec![Partition {
                table: table.id.clone(),
                index: 0,
                count: 1,
                range: PartitionRange::Whole,
            }]
        };
        let key_type = info
            .schema
            .primary_key
            .first()
            .and_then(|k| info.schema.column(k))
            .map(|c| c.data_type.clone());
        let integer_key = matches!(
            key_type,
            Some(DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt64)
        );
        if max <= 1 || !integer_key || info.data_length < 2 * MIN_PARTITION_BYTES {
            return Ok(whole());
        }
        let Some(key_type) = key_type else {
            return Ok(whole());
        };
        let count = usize::try_from(info.data_length / MIN_PARTITION_BYTES)
            .unwrap_or(max)
            .clamp(1, max);
        let key = quote_ident(&info.schema.primary_key[0]);
        let sql = format!(
            "SELECT MIN({key}), MAX({key}) FROM {}",
            quote_table(&table.id)
        );
        let pool = self.pool(snapshot)?;
        let mut lease = pool.lease().await?;
        let row: Option<mysql_async::Row> =
            lease.conn()?.exec_first(sql, ()).await.map_err(|e| {
                self.target
                    .error(e, &format!("cannot read the key range of {}", table.id))
            })?;
        lease.release();
        let bound = |i: usize| -> Option<i128> {
            let row = row.as_ref()?;
            match row.as_ref(i)? {
                mysql_async::Value::Int(n) => Some(i128::from(*n)),
                mysql_async::Value::UInt(n) => Some(i128::from(*n)),
                mysql_async::Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                _ => None,
            }
        };
        let (Some(min), Some(max_key)) = (bound(0), bound(1)) else {
            return Ok(whole());
        };
        let Some(ranges) = key_ranges(&key_type, min, max_key, count) else {
            return Ok(whole());
        };
        let count = ranges.len();
        Ok(ranges
            .into_iter()
            .enumerate()
            .map(|(index, range)| Partition {
                table: table.id.clone(),
                index,
                count,
                range,
            })
            .collect())
    }

    async fn read_partition(
        &self,
        snapshot: &Snapshot,
        table: Arc<TableSchema>,
        partition: Partition,
        policy: BadDataPolicy,
        out: BatchSender,
    ) -> Result<LoadReport> {
        let info = self.table(&table.id).await?;
        let context = format!(
            "reading {} (partition {}/{})",
            table.id,
            partition.index + 1,
            partition.count
        );
        let mut decoders = Vec::with_capacity(table.columns.len());
        for column in &table.columns {
            let at = info.schema.column_index(&column.name).ok_or_else(|| {
                Error::schema(format!(
                    "{context}: column {} does not exist in the source table",
                    column.name
                ))
            })?;
            decoders.push(Decode::for_column(
                &info.schema.columns[at].data_type,
                info.columns[at].to,
            ));
        }
        let (sql, params) = select_query(&info, &table, &partition.range);
        let pool = self.pool(snapshot)?;
        let mut lease = pool.lease().await?;
        let mut recorder = BadDataRecorder::new(table.id.clone(), policy);
        {
            let conn = lease.conn()?;
            let mut result = conn
                .exec_iter(sql, params)
                .await
                .map_err(|e| self.target.error(e, &context))?;
            let mut batch = Batch::with_capacity(Arc::clone(&table), BATCH_ROWS);
            let mut bad = Vec::new();
            while let Some(raw) = result
                .next()
                .await
                .map_err(|e| self.target.error(e, &context))?
            {
                let cells = raw.unwrap_raw();
                let mut row = Vec::with_capacity(cells.len());
                for (i, (cell, decoder)) in cells.into_iter().zip(&decoders).enumerate() {
                    match codec::decode(decoder, cell.unwrap_or(mysql_async::Value::NULL)) {
                        Ok(v) => row.push(v),
                        Err(b) => {
                            row.push(Value::Null);
                            bad.push((i, b));
                        }
                    }
                }
                if !bad.is_empty() {
                    let mut skip = false;
                    let key = row_key(&table, &row);
                    for (i, b) in bad.drain(..) {
                        let column = &table.columns[i];
                        match recorder.handle(column, || key.clone(), &b.problem)? {
                            Action::Null => row[i] = Value::Null,
                            Action::Clamp => match b.clamped {
                                Some(v) => row[i] = v,
                                None => {
                                    return Err(fail_error(
                                        &table.id,
                                        &column.name,
                                        &key,
                                        &b.problem,
                                        "the bad-data policy is \"clamp\" but this value has no nearest valid value",
                                    ));
                                }
                            },
                            Action::SkipRow => skip = true,
                            Action::Fail(reason) => {
                                return Err(fail_error(
                                    &table.id,
                                    &column.name,
                                    &key,
                                    &b.problem,
                                    &reason,
                                ));
                            }
                        }
                    }
                    if skip {
                        recorder.row_skipped();
                        continue;
                    }
                }
                recorder.row_delivered();
                batch.push(ChangeEvent::insert(row));
                if batch.len() >= BATCH_ROWS || batch.bytes >= BATCH_BYTES {
                    let full = std::mem::replace(
                        &mut batch,
                        Batch::with_capacity(Arc::clone(&table), BATCH_ROWS),
                    );
                    out.send(full).await?;
                }
            }
            if !batch.is_empty() {
                out.send(batch).await?;
            }
        }
        lease.release();
        Ok(recorder.into_report())
    }

    async fn end_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let pool = self
            .snapshots
            .lock()
            .map_err(|_| Error::internal("snapshot registry poisoned"))?
            .remove(&snapshot.id);
        if let Some(pool) = pool {
            for mut conn in pool.take_all() {
                let _ = conn.query_drop("COMMIT").await;
                let _ = conn.disconnect().await;
            }
        }
        Ok(())
    }

    async fn begin_capture_snapshot(&self, task: &str, catalog: &Catalog) -> Result<Snapshot> {
        let mut conn = self.target.connect().await?;
        crate::capture::check_settings(&self.target, &mut conn).await?;
        let _ = conn.disconnect().await;
        // The lock fallback (LOCK TABLES) and the stream need the tables discovered.
        for table in &catalog.tables {
            self.table(&table.id).await?;
        }
        let snapshot = self.begin_snapshot().await?;
        if snapshot.position.is_none() {
            self.end_snapshot(snapshot).await?;
            return Err(Error::config(format!(
                "task {task}: {} reports no binlog position for the snapshot: turn on the binary \
                 log (log_bin, binlog_format=ROW) and grant REPLICATION CLIENT (MariaDB: BINLOG \
                 MONITOR) to Ferry's user",
                self.target.display
            )));
        }
        tracing::info!(
            task,
            position = %snapshot.position.as_ref().map(crate::capture::describe).unwrap_or_default(),
            "capture snapshot taken"
        );
        Ok(snapshot)
    }

    async fn capture_position(&self, _task: &str, _catalog: &Catalog) -> Result<Position> {
        let mut conn = self.target.connect().await?;
        crate::capture::check_settings(&self.target, &mut conn).await?;
        let position =
            crate::capture::current_position(&self.target, &mut conn, self.server.flavor).await?;
        let _ = conn.disconnect().await;
        Ok(position.encode())
    }

    async fn start_position(&self, task: &str, catalog: &Catalog, text: &str) -> Result<Position> {
        let _now = self.capture_position(task, catalog).await?;
        let (file, offset) = text
            .trim()
            .rsplit_once(':')
            .and_then(|(file, offset)| Some((file, offset.trim().parse::<u64>().ok()?)))
            .filter(|(file, _)| !file.is_empty())
            .ok_or_else(|| {
                Error::config(format!(
                    "start-position {text:?} is not a binlog position (file:offset, like \
                     binlog.000042:1234)"
                ))
            })?;
        let mut conn = self.target.connect().await?;
        let logs: Vec<mysql_async::Row> = conn
            .query("SHOW BINARY LOGS")
            .await
            .map_err(|e| self.target.error(e, "listing the binary logs"))?;
        let _ = conn.disconnect().await;
        let known = logs
            .iter()
            .any(|row| row.get::<String, _>(0).as_deref() == Some(file));
        if !known {
            return Err(Error::config(format!(
                "start-position {text}: binary log {file} is not on the server (purged, or \
                 misspelled); SHOW BINARY LOGS lists the ones there are"
            )));
        }
        Ok(crate::position::BinlogPosition {
            file: file.to_owned(),
            offset: offset.max(4),
            gtid: None,
        }
        .encode())
    }

    async fn stream_changes(
        &self,
        task: &str,
        from: Position,
        catalog: &Catalog,
        out: BatchSender,
    ) -> Result<()> {
        let ctx = crate::capture::Ctx {
            target: &self.target,
            flavor: self.server.flavor,
            options: self.discover_options(),
            tables: &self.tables,
        };
        crate::capture::stream_changes(&ctx, task, from, catalog, out).await
    }

    fn describe_position(&self, position: &Position) -> String {
        crate::capture::describe(position)
    }

    /// Nothing to release: the server keeps binlog files by time or size
    /// (`binlog_expire_logs_seconds`, `max_binlog_total_size`), not by replica
    /// progress, so keep them longer than a task may be stopped.
    async fn acknowledge(&self, _task: &str, _durable: &Position) -> Result<()> {
        Ok(())
    }

    /// Change capture creates nothing on the server (the dump is a plain replica
    /// connection), so nothing is removed.
    async fn cleanup_capture(&self, _task: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn assess(&self, catalog: &Catalog) -> Result<Vec<Finding>> {
        let mut conn = self.target.connect().await?;
        crate::assess::assess(&mut conn, &self.target, catalog, |id| self.tables.get(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_cover_everything_once() {
        let ranges = key_ranges(&DataType::Int64, 1, 100, 4).expect("ranges");
        assert_eq!(ranges.len(), 4);
        assert_eq!(
            ranges[0],
            PartitionRange::Keys {
                lower: None,
                upper: Some(vec![Value::Int64(26)])
            }
        );
        assert_eq!(
            ranges[3],
            PartitionRange::Keys {
                lower: Some(vec![Value::Int64(76)]),
                upper: None
            }
        );
        // Fewer distinct keys than partitions.
        assert_eq!(
            key_ranges(&DataType::Int32, 0, 1, 4).map(|r| r.len()),
            Some(2)
        );
        // Unsigned beyond i64.
        let r = key_ranges(&DataType::UInt64, 0, i128::from(u64::MAX), 2).expect("ranges");
        assert_eq!(
            r[1],
            PartitionRange::Keys {
                lower: Some(vec![Value::UInt64(1 << 63)]),
                upper: None
            }
        );
    }
}
