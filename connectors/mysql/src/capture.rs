//! Change capture from the row-based binary log: the CDC methods of
//! [`crate::MySqlSource`].
//!
//! The stream registers as a replica with a server id derived from the task name
//! (so a restarted task replaces its own old dump thread and two tasks never clash)
//! and dumps the binlog from the file and offset of the start position. Each
//! source transaction (MariaDB GTID event / `BEGIN` … `XID` or `COMMIT`, or one DDL
//! statement) ends with the position after its last event; rows of the selected
//! tables go out in batches of at most [`MAX_EVENTS`] events / [`MAX_BYTES`] bytes,
//! so a transaction of any size streams through in bounded memory.
//!
//! `acknowledge` does nothing: the server keeps binlog files by time or size
//! (`binlog_expire_logs_seconds` / `expire_logs_days`, `max_binlog_total_size`), not
//! by replica progress; keep them longer than a task may stop.

use crate::binlog::{self, Ddl, GtidPos, MariaGtid, RowCodec, TableMap};
use crate::catalog::{self, DiscoverOptions, MyTable};
use crate::connect::{Flavor, Target};
use crate::position::BinlogPosition;
use ferry_core::{
    Batch, BatchSender, Catalog, ChangeEvent, Error, ErrorKind, Operation, Position, Result,
    TableCache, TableId, TableSchema,
};
use futures_util::StreamExt;
use mysql_async::binlog::events::{Event, EventData};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most events in one batch.
pub(crate) const MAX_EVENTS: usize = 1000;
/// About the most bytes in one batch.
pub(crate) const MAX_BYTES: usize = 1 << 20;
/// Heartbeat period asked of the server.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Without any event for this long, a marker goes out anyway.
const IDLE: Duration = Duration::from_millis(1500);
/// Least time between markers for transactions that touch no selected table.
const SKIP_MARKER_EVERY: Duration = Duration::from_secs(1);

/// MariaDB event types mysql_common does not know.
const MARIA_ANNOTATE_ROWS: u8 = 160;
const MARIA_GTID: u8 = 162;
const MARIA_START_ENCRYPTION: u8 = 164;

/// What the capture code needs of the source.
pub(crate) struct Ctx<'a> {
    /// Where the server is.
    pub(crate) target: &'a Target,
    /// MySQL or MariaDB.
    pub(crate) flavor: Flavor,
    /// Discovery settings (to re-read altered tables the same way).
    pub(crate) options: DiscoverOptions,
    /// The source's table cache.
    pub(crate) tables: &'a TableCache<MyTable>,
}

/// The server id the dump registers with for `task`: stable per task, never 0 or 1,
/// and not the server's own.
pub(crate) fn server_id(task: &str, own: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in task.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let id = 1_000_000 + h % 2_000_000_000;
    if id == own { id + 1 } else { id }
}

/// Checks that the server writes a binlog change capture can read; the error names
/// the setting to change.
pub(crate) async fn check_settings(target: &Target, conn: &mut Conn) -> Result<()> {
    let row: Option<(Option<String>, Option<String>, Option<String>)> = conn
        .query_first("SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_row_image")
        .await
        .map_err(|e| target.error(e, "cannot read the binlog settings"))?;
    let (log_bin, format, image) = row.unwrap_or_default();
    let log_bin = log_bin.unwrap_or_default();
    if !(log_bin == "1" || log_bin.eq_ignore_ascii_case("ON")) {
        return Err(Error::config(format!(
            "binary logging is off on {}: start the server with log_bin (e.g. --log-bin) and \
             binlog_format=ROW to capture changes",
            target.display
        )));
    }
    let format = format.unwrap_or_default();
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(Error::config(format!(
            "binlog_format is {format} on {}: change capture needs binlog_format=ROW (SET GLOBAL \
             binlog_format = 'ROW' and in the server configuration)",
            target.display
        )));
    }
    let image = image.unwrap_or_default();
    if !image.eq_ignore_ascii_case("FULL") {
        return Err(Error::config(format!(
            "binlog_row_image is {image} on {}: change capture needs binlog_row_image=FULL (SET \
             GLOBAL binlog_row_image = 'FULL' and in the server configuration)",
            target.display
        )));
    }
    if let Ok(Some(Some(meta))) = conn
        .query_first::<Option<String>, _>("SELECT @@GLOBAL.binlog_row_metadata")
        .await
        && !meta.eq_ignore_ascii_case("FULL")
    {
        tracing::warn!(
            source = %target.display,
            binlog_row_metadata = %meta,
            "binlog_row_metadata is not FULL: column renames and reorders cannot be detected \
             from the binlog; set binlog_row_metadata = FULL"
        );
    }
    Ok(())
}

/// The binlog position now (`SHOW MASTER STATUS` and the GTID position).
pub(crate) async fn current_position(
    target: &Target,
    conn: &mut Conn,
    flavor: Flavor,
) -> Result<BinlogPosition> {
    let mut last_error = None;
    let mut status: Option<mysql_async::Row> = None;
    for sql in ["SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"] {
        match conn.query_first::<mysql_async::Row, _>(sql).await {
            Ok(row) => {
                status = row;
                last_error = None;
                break;
            }
            Err(e) => last_error = Some(target.error(e, "cannot read the binlog position")),
        }
    }
    if let Some(e) = last_error {
        return Err(e.context("grant REPLICATION CLIENT (MariaDB: BINLOG MONITOR) to Ferry's user"));
    }
    let row = status.ok_or_else(|| {
        Error::config(format!(
            "{} reports no binlog position (binary logging is off): start the server with \
             log_bin and binlog_format=ROW",
            target.display
        ))
    })?;
    let file: Option<String> = row.get_opt(0).and_then(|r| r.ok());
    let offset: Option<u64> = row.get_opt(1).and_then(|r| r.ok());
    let (Some(file), Some(offset)) = (file, offset) else {
        return Err(Error::new(
            ErrorKind::Source,
            format!(
                "{}: SHOW MASTER STATUS returned no file/position",
                target.display
            ),
        ));
    };
    let gtid = match flavor {
        Flavor::MariaDb => conn
            .query_first::<String, _>("SELECT @@GLOBAL.gtid_binlog_pos")
            .await
            .map_err(|e| target.error(e, "cannot read gtid_binlog_pos"))?,
        Flavor::MySql => row.get_opt::<String, _>(4).and_then(|r| r.ok()),
    }
    .filter(|g| !g.trim().is_empty());
    Ok(BinlogPosition { file, offset, gtid })
}

/// `position` as `file:offset` (with the GTID position when known).
pub(crate) fn describe(position: &Position) -> String {
    match BinlogPosition::decode(position) {
        Some(p) => match &p.gtid {
            Some(g) => format!("{}:{} (GTID {g})", p.file, p.offset),
            None => format!("{}:{}", p.file, p.offset),
        },
        None => position.to_hex(),
    }
}

fn at(p: &BinlogPosition) -> String {
    format!("{}:{}", p.file, p.offset)
}

/// The stream's state between events.
struct Stream<'a> {
    ctx: &'a Ctx<'a>,
    out: BatchSender,
    /// `(database, table)` → id, for the selected tables.
    selected: HashMap<(String, String), TableId>,
    /// The tables as last discovered.
    tables: HashMap<TableId, MyTable>,
    /// Decoders by table, for the last table map shape seen.
    codecs: HashMap<TableId, RowCodec>,
    /// The schema batches of a table carry (changes only with a schema change).
    schemas: HashMap<TableId, Arc<TableSchema>>,
    /// Table map ids → selected table (or `None` for other tables).
    maps: HashMap<u64, Option<TableId>>,
    file: String,
    /// The position of the last event read (for messages).
    here: BinlogPosition,
    /// Where the last complete transaction ended.
    last_end: BinlogPosition,
    gtid: GtidPos,
    flavor: Flavor,
    in_txn: bool,
    standalone: bool,
    /// A batch of the current transaction was already sent.
    txn_sent: bool,
    pending: Option<Batch>,
    last_marker: Instant,
    /// Selected tables altered since their last table map.
    altered: HashSet<TableId>,
    /// The server writes event checksums.
    checksum: bool,
    /// A format description event was read (event checksums are known).
    fde_seen: bool,
}

impl Stream<'_> {
    fn position(&self, offset: u64) -> BinlogPosition {
        BinlogPosition {
            file: self.file.clone(),
            offset,
            gtid: match self.flavor {
                Flavor::MariaDb => self.gtid.render(),
                Flavor::MySql => None,
            },
        }
    }

    /// Sends `batch`; `false` when the pipeline stopped.
    async fn send(&self, batch: Batch) -> bool {
        self.out.send(batch).await.is_ok()
    }

    async fn flush(&mut self) -> bool {
        match self.pending.take() {
            Some(batch) if !batch.is_empty() => {
                self.txn_sent = true;
                self.send(batch).await
            }
            _ => true,
        }
    }

    /// Adds one event of `table` to the current transaction.
    async fn push(&mut self, schema: &Arc<TableSchema>, event: ChangeEvent) -> bool {
        let full = self.pending.as_ref().is_some_and(|b| {
            !Arc::ptr_eq(&b.schema, schema) || b.len() >= MAX_EVENTS || b.bytes >= MAX_BYTES
        });
        if full && !self.flush().await {
            return false;
        }
        self.pending
            .get_or_insert_with(|| Batch::with_capacity(Arc::clone(schema), 64))
            .push(event);
        true
    }

    /// Ends the current transaction at `offset`; `force` sends a marker even when
    /// the transaction had no rows (a DDL of a selected table).
    async fn end_txn(&mut self, offset: u64, timestamp: u32, force: bool) -> bool {
        let end = self.position(offset);
        let time = Some(binlog::binlog_time(timestamp));
        let ok = match self.pending.take() {
            Some(mut batch) if !batch.is_empty() => {
                batch.end_position = Some(end.encode());
                batch.source_time = time;
                self.send(batch).await
            }
            _ if self.txn_sent || force => {
                self.send(Batch::marker(end.encode(), time, false)).await
            }
            _ if self.last_marker.elapsed() >= SKIP_MARKER_EVERY => {
                self.last_marker = Instant::now();
                self.send(Batch::marker(end.encode(), time, false)).await
            }
            _ => true,
        };
        self.last_end = end;
        self.in_txn = false;
        self.standalone = false;
        self.txn_sent = false;
        ok
    }

    async fn caught_up(&mut self) -> Result<bool> {
        if self.in_txn || self.pending.is_some() {
            return Ok(true);
        }
        // Altered tables without rows since: information_schema is as current as
        // the stream now.
        let altered: Vec<TableId> = self.altered.drain().collect();
        for id in altered {
            let old = self.schema_of(&id)?;
            let table = self.rediscover(&id).await?;
            if !binlog::same_shape(&table.schema, &old) {
                let end = self.last_end.encode();
                let schema = Arc::new(table.schema.clone());
                self.schemas.insert(id.clone(), Arc::clone(&schema));
                self.codecs.remove(&id);
                let mut batch = Batch::new(schema);
                batch.push(ChangeEvent {
                    op: Operation::SchemaChange,
                    before: None,
                    after: None,
                    commit_time: None,
                });
                batch.end_position = Some(end);
                batch.source_time = Some(binlog::now_micros());
                if !self.send(batch).await {
                    return Ok(false);
                }
            }
        }
        self.last_marker = Instant::now();
        let marker = Batch::marker(self.last_end.encode(), Some(binlog::now_micros()), true);
        Ok(self.send(marker).await)
    }

    /// Re-reads `id` from information_schema.
    async fn rediscover(&mut self, id: &TableId) -> Result<MyTable> {
        let mut conn = self.ctx.target.connect().await?;
        let found = catalog::discover_one(
            &mut conn,
            self.ctx.target,
            self.ctx.flavor,
            id,
            self.ctx.options,
        )
        .await?;
        let _ = conn.disconnect().await;
        let table = found.ok_or_else(|| {
            Error::schema(format!(
                "table {id} no longer exists (binlog {}); restart the task with a full load, \
                 or remove the table from the task",
                at(&self.here)
            ))
            .retryable(false)
        })?;
        self.ctx.tables.insert(id.clone(), table.clone());
        self.tables.insert(id.clone(), table.clone());
        Ok(table)
    }

    fn gone(&self, id: &TableId, what: &str) -> Error {
        Error::schema(format!(
            "table {id} was {what} at binlog position {}; Ferry cannot follow it: restart the \
             task with a full load (mode full-load-and-cdc), or remove the table from the task",
            at(&self.here)
        ))
        .retryable(false)
    }

    fn lookup(&self, db: Option<&str>, name: &str, default_db: &str) -> Option<TableId> {
        let db = db.unwrap_or(default_db);
        self.selected
            .get(&(db.to_string(), name.to_string()))
            .cloned()
    }

    /// A schema change event for `id` in a batch of its new schema, inside the
    /// current transaction (before the rows that need it).
    async fn schema_change(&mut self, id: &TableId, table: &MyTable) -> bool {
        let schema = Arc::new(table.schema.clone());
        self.schemas.insert(id.clone(), Arc::clone(&schema));
        self.codecs.remove(id);
        if !self.flush().await {
            return false;
        }
        let mut batch = Batch::new(schema);
        batch.push(ChangeEvent {
            op: Operation::SchemaChange,
            before: None,
            after: None,
            commit_time: None,
        });
        self.txn_sent = true;
        self.send(batch).await
    }

    /// Handles one query event; `Ok(false)` when the pipeline stopped.
    async fn query(
        &mut self,
        sql: &str,
        default_db: &str,
        offset: u64,
        timestamp: u32,
    ) -> Result<bool> {
        let standalone = self.standalone || !self.in_txn;
        match binlog::parse_ddl(sql) {
            Ddl::Begin => {
                self.in_txn = true;
                return Ok(true);
            }
            Ddl::Commit | Ddl::Rollback => return Ok(self.end_txn(offset, timestamp, false).await),
            Ddl::Truncate((db, name)) => {
                if let Some(id) = self.lookup(db.as_deref(), &name, default_db) {
                    let schema = self.schema_of(&id)?;
                    if !self.flush().await {
                        return Ok(false);
                    }
                    let mut batch = Batch::new(schema);
                    batch.push(ChangeEvent {
                        op: Operation::Truncate,
                        before: None,
                        after: None,
                        commit_time: Some(binlog::binlog_time(timestamp)),
                    });
                    self.pending = Some(batch);
                    return Ok(self.end_txn(offset, timestamp, false).await);
                }
            }
            Ddl::Alter((db, name)) => {
                if let Some(id) = self.lookup(db.as_deref(), &name, default_db) {
                    // The table's shape at this point shows in its next table map
                    // (information_schema may already be ahead of the stream); when
                    // the stream catches up first, information_schema tells.
                    tracing::info!(table = %id, binlog = %at(&self.here), "table altered");
                    if !self.flush().await {
                        return Ok(false);
                    }
                    self.altered.insert(id);
                    return Ok(self.end_txn(offset, timestamp, true).await);
                }
            }
            Ddl::Rename(names) => {
                for (db, name) in names {
                    if let Some(id) = self.lookup(db.as_deref(), &name, default_db) {
                        return Err(self.gone(&id, "renamed"));
                    }
                }
            }
            Ddl::Drop(names) => {
                for (db, name) in names {
                    if let Some(id) = self.lookup(db.as_deref(), &name, default_db) {
                        return Err(self.gone(&id, "dropped"));
                    }
                }
            }
            Ddl::DropDatabase(db) => {
                if let Some(id) = self.selected.values().find(|id| id.namespace == db) {
                    return Err(self.gone(id, "dropped (with its database)"));
                }
            }
            Ddl::Other => {}
        }
        if standalone {
            return Ok(self.end_txn(offset, timestamp, false).await);
        }
        Ok(true)
    }

    fn schema_of(&self, id: &TableId) -> Result<Arc<TableSchema>> {
        self.schemas
            .get(id)
            .cloned()
            .ok_or_else(|| Error::internal(format!("no schema for selected table {id}")))
    }

    /// Handles a table map of a selected table: makes sure a decoder for its shape
    /// exists. When the shape changed, the table is re-read (and, with column names
    /// in the table map, matched by name against the table now and as last seen),
    /// and a schema change goes out before its rows.
    async fn table_map(&mut self, id: &TableId, map: TableMap) -> Result<bool> {
        self.altered.remove(id);
        if self.codecs.get(id).is_some_and(|c| c.fits(&map)) {
            return Ok(true);
        }
        let known =
            self.tables.get(id).cloned().ok_or_else(|| {
                Error::internal(format!("selected table {id} was not discovered"))
            })?;
        let (table, codec) = match RowCodec::new(&known, &map) {
            Ok(codec) => (known, codec),
            Err(first) => {
                let latest = self.rediscover(id).await?;
                let merged = binlog::merge_by_names(&map, &latest, &known);
                let attempt = match merged {
                    Some(m) => RowCodec::new(&m, &map).map(|c| (m, c)),
                    None => RowCodec::new(&latest, &map).map(|c| (latest.clone(), c)),
                };
                attempt.map_err(|why| {
                    Error::schema(format!(
                        "rows of {id} at binlog {} do not match the table ({first}; as it is \
                         now: {why}): the table was altered in a way Ferry cannot reconstruct \
                         (set binlog_row_metadata = FULL so that columns are matched by name); \
                         restart the task with a full load",
                        at(&self.here)
                    ))
                    .retryable(false)
                })?
            }
        };
        self.tables.insert(id.clone(), table.clone());
        let sent = self.schema_of(id)?;
        if !binlog::same_shape(&sent, &table.schema) && !self.schema_change(id, &table).await {
            return Ok(false);
        }
        self.codecs.insert(id.clone(), codec);
        Ok(true)
    }

    /// Handles one event; `Ok(false)` when the pipeline stopped.
    async fn event(&mut self, event: Event) -> Result<bool> {
        let header = event.header();
        let kind = header.event_type_raw();
        let log_pos = u64::from(header.log_pos());
        let timestamp = header.timestamp();
        if log_pos != 0 {
            self.here = BinlogPosition {
                file: self.file.clone(),
                offset: log_pos,
                gtid: None,
            };
        }
        match kind {
            MARIA_GTID => {
                if let Some(g) = MariaGtid::parse(event.data()) {
                    self.gtid.update(g.domain, header.server_id(), g.seq);
                    self.in_txn = true;
                    self.standalone = g.standalone;
                    self.txn_sent = false;
                }
                return Ok(true);
            }
            MARIA_START_ENCRYPTION => {
                return Err(Error::unsupported(format!(
                    "the binlog of {} is encrypted (encrypt_binlog = ON); change capture cannot \
                     read it",
                    self.ctx.target.display
                )));
            }
            k if (MARIA_ANNOTATE_ROWS..=MARIA_ANNOTATE_ROWS + 3).contains(&k) => return Ok(true),
            166..=171 => {
                return Err(Error::unsupported(format!(
                    "{} writes compressed binlog events (log_bin_compress = ON); set \
                     log_bin_compress = OFF to capture changes",
                    self.ctx.target.display
                )));
            }
            _ => {}
        }
        let data = match event.read_data() {
            Ok(Some(data)) => data,
            Ok(None) => return Ok(true),
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Source,
                    format!(
                        "cannot parse binlog event {kind} at {}: {e}",
                        at(&self.here)
                    ),
                ));
            }
        };
        match data {
            EventData::RotateEvent(r) => {
                // The first (fake) rotate comes before the format description, so
                // the reader did not strip its checksum yet.
                let raw = r.name_raw();
                let raw = if !self.fde_seen && self.checksum && raw.len() > 4 {
                    &raw[..raw.len() - 4]
                } else {
                    raw
                };
                self.file = String::from_utf8_lossy(raw).into_owned();
                if !self.in_txn {
                    self.last_end = self.position(r.position());
                }
                self.here = self.position(r.position());
                Ok(true)
            }
            EventData::QueryEvent(q) => {
                let sql = q.query();
                let db = q.schema();
                self.query(&sql, &db, log_pos, timestamp).await
            }
            EventData::XidEvent(_) => Ok(self.end_txn(log_pos, timestamp, false).await),
            EventData::TableMapEvent(tme) => {
                let table_id = tme.table_id();
                let key = (
                    tme.database_name().into_owned(),
                    tme.table_name().into_owned(),
                );
                let Some(id) = self.selected.get(&key).cloned() else {
                    self.maps.insert(table_id, None);
                    return Ok(true);
                };
                self.maps.insert(table_id, Some(id.clone()));
                let map = TableMap::parse(&tme)?;
                self.table_map(&id, map).await
            }
            EventData::RowsEvent(rows) => {
                let Some(Some(id)) = self.maps.get(&rows.table_id()).cloned() else {
                    return Ok(true);
                };
                let schema = self.schema_of(&id)?;
                let codec = self
                    .codecs
                    .get(&id)
                    .ok_or_else(|| Error::internal(format!("rows of {id} without a table map")))?;
                let mut events = Vec::new();
                codec.decode_rows(
                    &rows,
                    Some(binlog::binlog_time(timestamp)),
                    &self.here,
                    |e| events.push(e),
                )?;
                for e in events {
                    if !self.push(&schema, e).await {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            EventData::HeartbeatEvent => self.caught_up().await,
            EventData::FormatDescriptionEvent(_) => {
                self.fde_seen = true;
                Ok(true)
            }
            _ => Ok(true),
        }
    }
}

/// Streams the changes after `from` to `catalog`'s tables into `out`.
pub(crate) async fn stream_changes(
    ctx: &Ctx<'_>,
    task: &str,
    from: Position,
    catalog: &Catalog,
    out: BatchSender,
) -> Result<()> {
    let start = BinlogPosition::decode(&from).ok_or_else(|| {
        Error::config(format!(
            "task {task}: the start position {} is not a MySQL/MariaDB binlog position (was the \
             checkpoint written by another source?)",
            from.to_hex()
        ))
    })?;
    let target = ctx.target;
    let mut conn = target.connect().await?;
    check_settings(target, &mut conn).await?;
    let mut tables = HashMap::new();
    let mut schemas = HashMap::new();
    let mut selected = HashMap::new();
    for schema in &catalog.tables {
        let id = schema.id.clone();
        let table = match ctx.tables.get(&id) {
            Some(t) => (*t).clone(),
            None => catalog::discover_one(&mut conn, target, ctx.flavor, &id, ctx.options)
                .await?
                .ok_or_else(|| {
                    Error::schema(format!("table {id} does not exist in {}", target.display))
                })?,
        };
        for (column, my) in table.schema.columns.iter().zip(&table.columns) {
            if let Some(cs) = my.charset.as_deref()
                && !matches!(
                    cs.to_ascii_lowercase().as_str(),
                    "utf8mb4" | "utf8mb3" | "utf8" | "ascii" | "latin1" | "binary"
                )
            {
                tracing::warn!(
                    table = %id,
                    column = %column.name,
                    charset = cs,
                    "the binlog carries this column in its own character set, which change \
                     capture only converts for utf8/ascii/latin1: values that are not valid \
                     UTF-8 arrive as NULL; convert the column to utf8mb4"
                );
            }
        }
        schemas.insert(id.clone(), Arc::new(table.schema.clone()));
        tables.insert(id.clone(), table);
        selected.insert((id.namespace.clone(), id.name.clone()), id);
    }
    let own: u32 = conn
        .query_first::<u32, _>("SELECT @@GLOBAL.server_id")
        .await
        .map_err(|e| target.error(e, "cannot read server_id"))?
        .unwrap_or(0);
    let id = server_id(task, own);
    let checksum = conn
        .query_first::<String, _>("SELECT @@GLOBAL.binlog_checksum")
        .await
        .map_err(|e| target.error(e, "cannot read binlog_checksum"))?
        .is_some_and(|c| !c.eq_ignore_ascii_case("NONE"));
    let period_ns = HEARTBEAT.as_nanos();
    let mut setup = vec![format!("SET @master_heartbeat_period = {period_ns}")];
    if ctx.flavor == Flavor::MariaDb {
        setup.push("SET @mariadb_slave_capability = 4".into());
    }
    for sql in setup {
        conn.query_drop(&sql)
            .await
            .map_err(|e| target.error(e, "cannot prepare the binlog dump"))?;
    }
    tracing::info!(
        task,
        server_id = id,
        binlog = %describe(&from),
        tables = catalog.tables.len(),
        "binlog stream starting"
    );
    let request = BinlogStreamRequest::new(id)
        .with_filename(start.file.as_bytes())
        .with_pos(start.offset);
    let mut events = conn
        .get_binlog_stream(request)
        .await
        .map_err(|e| stream_error(target, e, &start))?;
    let mut stream = Stream {
        ctx,
        out,
        selected,
        tables,
        codecs: HashMap::new(),
        schemas,
        maps: HashMap::new(),
        file: start.file.clone(),
        here: start.clone(),
        last_end: start.clone(),
        gtid: start
            .gtid
            .as_deref()
            .map(GtidPos::parse)
            .unwrap_or_default(),
        flavor: ctx.flavor,
        in_txn: false,
        standalone: false,
        txn_sent: false,
        pending: None,
        last_marker: Instant::now(),
        altered: HashSet::new(),
        checksum,
        fde_seen: false,
    };
    loop {
        let next = tokio::time::timeout(IDLE, events.next()).await;
        let keep_going = match next {
            Err(_) => {
                if stream.out.is_closed() {
                    return Ok(());
                }
                stream.caught_up().await?
            }
            Ok(None) => {
                if stream.out.is_closed() {
                    return Ok(());
                }
                return Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "the binlog stream of {} ended at {} (server shut down or killed the dump)",
                        target.display,
                        at(&stream.here)
                    ),
                ));
            }
            Ok(Some(Err(e))) => return Err(stream_error(target, e, &stream.here)),
            Ok(Some(Ok(event))) => stream.event(event).await?,
        };
        if !keep_going {
            tracing::debug!(task, "pipeline stopped; binlog stream ends");
            return Ok(());
        }
    }
}

/// A dump error with the kind it deserves.
fn stream_error(target: &Target, e: mysql_async::Error, here: &BinlogPosition) -> Error {
    if let mysql_async::Error::Server(s) = &e
        && s.code == 4052
    {
        return Error::new(
            ErrorKind::Source,
            format!(
                "another binlog stream of the same task (same replica server id) connected to \
                 {} and replaced this one at {}: is the task running twice? ({})",
                target.display,
                at(here),
                s.message
            ),
        )
        .retryable(false);
    }
    if let mysql_async::Error::Server(s) = &e
        && s.code == 1236
    {
        return Error::new(
            ErrorKind::Source,
            format!(
                "the server cannot send the binlog from {} ({}: {}): the file was probably \
                 purged; restart the task with a full load, and keep binlogs longer \
                 (binlog_expire_logs_seconds)",
                at(here),
                target.display,
                s.message
            ),
        )
        .retryable(false);
    }
    let error = target.error(e, &format!("binlog stream at {}", at(here)));
    match error.kind() {
        ErrorKind::Auth | ErrorKind::Config | ErrorKind::Schema => error,
        ErrorKind::Connection => error,
        _ if error.is_retryable() => error,
        _ => Error::new(ErrorKind::Source, error.message().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_are_stable_and_not_the_servers() {
        let a = server_id("task-a", 1);
        assert_eq!(a, server_id("task-a", 1));
        assert_ne!(a, server_id("task-b", 1));
        assert!(a > 1);
        assert_eq!(server_id("task-a", a), a + 1);
    }

    #[test]
    fn positions_are_described() {
        let p = BinlogPosition {
            file: "mysql-bin.000003".into(),
            offset: 1234,
            gtid: Some("0-1-9".into()),
        };
        assert_eq!(describe(&p.encode()), "mysql-bin.000003:1234 (GTID 0-1-9)");
    }
}
