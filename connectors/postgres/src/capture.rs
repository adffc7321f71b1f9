//! PostgreSQL change capture: the task's publication and logical replication
//! slot (`ferry_<task>`), the snapshot exported at the slot's consistent point,
//! and the `pgoutput` stream turned into ordered batches.

use crate::catalog::{self, PgTable};
use crate::codec::{self, PgColumnType};
use crate::connect::{Target, quote_ident, quote_literal, quote_table};
use crate::pgoutput::{self, Logical, RelationColumn, StreamMessage, TupleValue};
use crate::replication::ReplicationConnection;
use bytes::Bytes;
use ferry_core::{
    Batch, BatchSender, Catalog, ChangeEvent, Error, ErrorKind, Operation, Position, Result,
    TableCache, TableId, TableSchema, Value,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Events per batch, at most.
const BATCH_EVENTS: usize = 4096;
/// Bytes per batch, at most.
const BATCH_BYTES: usize = 4 << 20;
/// How often a status update goes to the server (and, when idle, a keepalive is
/// asked for, which becomes a caught-up marker).
const STATUS_INTERVAL: Duration = Duration::from_millis(1000);

/// The slot and publication name of `task`: `ferry_` and the task name in lower
/// case with `-` as `_` (slot names allow `[a-z0-9_]` only).
pub(crate) fn object_name(task: &str) -> String {
    format!("ferry_{}", task.to_ascii_lowercase().replace('-', "_"))
}

/// An LSN as an ordered 8-byte position.
pub(crate) fn position(lsn: u64) -> Position {
    Position::from_bytes(lsn.to_be_bytes().to_vec())
}

/// The LSN of a position Ferry made.
pub(crate) fn lsn(position: &Position) -> Result<u64> {
    let bytes: [u8; 8] = position.as_bytes().try_into().map_err(|_| {
        Error::config(format!(
            "position {} is not a PostgreSQL LSN (8 bytes): the checkpoint was written by \
             another source; remove it with `ferry cleanup`",
            position.to_hex()
        ))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// `X/Y` text of an LSN.
pub(crate) fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Parses `X/Y` LSN text.
pub(crate) fn parse_lsn(text: &str) -> Result<u64> {
    text.split_once('/')
        .and_then(|(hi, lo)| {
            Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
        })
        .ok_or_else(|| Error::internal(format!("the server returned an invalid LSN {text:?}")))
}

/// Checks what logical replication of `catalog`'s tables needs, before anything
/// is created: `wal_level`, the REPLICATION attribute, a replica identity that
/// identifies rows.
pub(crate) async fn check_prerequisites(
    client: &Client,
    target: &Target,
    catalog: &Catalog,
) -> Result<()> {
    let wal_level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(|e| target.error(e, "reading wal_level"))?
        .get(0);
    if wal_level != "logical" {
        return Err(Error::config(format!(
            "change capture from {} needs wal_level = logical (it is {wal_level}): set it in \
             postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart the server",
            target.display
        )));
    }
    let may_replicate: bool = client
        .query_one(
            "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| target.error(e, "reading the user's attributes"))?
        .get(0);
    if !may_replicate {
        return Err(Error::new(
            ErrorKind::Auth,
            format!(
                "change capture from {} needs a user with the REPLICATION attribute: \
                 ALTER ROLE <user> REPLICATION",
                target.display
            ),
        ));
    }
    for table in &catalog.tables {
        let generated: Vec<String> = client
            .query(
                "SELECT a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 \
                 AND NOT a.attisdropped AND a.attgenerated <> '' ORDER BY a.attnum",
                &[&table.id.namespace, &table.id.name],
            )
            .await
            .map_err(|e| target.error(e, "reading generated columns"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !generated.is_empty() {
            return Err(Error::schema(format!(
                "table {} has generated column(s) {}, whose values logical replication does \
                 not send: its changes cannot be replicated exactly. Exclude the table from \
                 the CDC task (and copy it with a full-load task), or make the column(s) \
                 plain columns at the source",
                table.id,
                generated.join(", ")
            )));
        }
        let identity: Option<i8> = client
            .query_opt(
                "SELECT c.relreplident::\"char\" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&table.id.namespace, &table.id.name],
            )
            .await
            .map_err(|e| target.error(e, "reading replica identities"))?
            .map(|r| r.get(0));
        let identity = identity.map(|c| c as u8 as char);
        let keyless = table.primary_key.is_empty();
        let refuse = match identity {
            Some('n') => true,
            Some('d') => keyless,
            _ => false,
        };
        if refuse {
            return Err(Error::schema(format!(
                "table {} has {} and REPLICA IDENTITY {}: its updates and deletes cannot be \
                 replicated (PostgreSQL would reject them once the table is published). Run \
                 ALTER TABLE {} REPLICA IDENTITY FULL; or add a primary key, or exclude the table",
                table.id,
                if keyless {
                    "no primary key"
                } else {
                    "a primary key"
                },
                if identity == Some('n') {
                    "NOTHING"
                } else {
                    "DEFAULT"
                },
                quote_table(&table.id)
            )));
        }
    }
    Ok(())
}

/// Creates the task's publication for `catalog`'s tables, or sets its tables.
pub(crate) async fn ensure_publication(
    client: &Client,
    target: &Target,
    name: &str,
    catalog: &Catalog,
) -> Result<()> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await
        .map_err(|e| target.error(e, "looking for the publication"))?
        .is_some();
    let tables = catalog
        .tables
        .iter()
        .map(|t| quote_table(&t.id))
        .collect::<Vec<_>>()
        .join(", ");
    if tables.is_empty() {
        return Err(Error::config(
            "change capture needs at least one selected table",
        ));
    }
    // Changes of a partitioned table's partitions are published as the
    // partitioned table's (the one the task selected), not as the partitions'.
    let sql = if exists {
        format!(
            "ALTER PUBLICATION {name} SET TABLE {tables}; \
             ALTER PUBLICATION {name} SET (publish_via_partition_root = true)",
            name = quote_ident(name)
        )
    } else {
        format!(
            "CREATE PUBLICATION {} FOR TABLE {tables} WITH (publish_via_partition_root = true)",
            quote_ident(name)
        )
    };
    client.batch_execute(&sql).await.map_err(|e| {
        target.error(
            e,
            &format!(
                "cannot {} publication {name} (the user must own the selected tables)",
                if exists { "alter" } else { "create" }
            ),
        )
    })
}

/// The slot's database and confirmed position, if it exists.
async fn slot(
    client: &Client,
    target: &Target,
    name: &str,
) -> Result<Option<(String, Option<String>, Option<i32>)>> {
    let row = client
        .query_opt(
            "SELECT coalesce(database::text, ''), confirmed_flush_lsn::text, active_pid \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await
        .map_err(|e| target.error(e, "looking for the replication slot"))?;
    Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
}

/// Drops slot `name` if it exists, ending the session that holds it first.
async fn drop_slot(client: &Client, target: &Target, name: &str) -> Result<bool> {
    for attempt in 0..20 {
        let Some((_, _, active)) = slot(client, target, name).await? else {
            return Ok(attempt > 0);
        };
        if let Some(pid) = active {
            let _ = client
                .execute("SELECT pg_terminate_backend($1)", &[&pid])
                .await;
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        match client
            .execute("SELECT pg_drop_replication_slot($1)", &[&name])
            .await
        {
            Ok(_) => return Ok(true),
            Err(e) if attempt < 19 => {
                tracing::debug!(error = %e, "retrying to drop the replication slot");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(target.error(e, &format!("cannot drop replication slot {name}"))),
        }
    }
    Ok(false)
}

/// `cdc` without a checkpoint: publication and slot (kept when they exist), and
/// the slot's confirmed position.
pub(crate) async fn capture_position(
    target: &Target,
    task: &str,
    catalog: &Catalog,
) -> Result<Position> {
    let client = target.connect().await?;
    check_prerequisites(&client, target, catalog).await?;
    let name = object_name(task);
    ensure_publication(&client, target, &name, catalog).await?;
    let database = target.config().get_dbname().unwrap_or_default().to_owned();
    if let Some((db, confirmed, _)) = slot(&client, target, &name).await? {
        if db != database {
            return Err(Error::config(format!(
                "replication slot {name} exists for database {db}, not {database}: give the task \
                 another name, or drop the slot"
            )));
        }
        if let Some(lsn) = confirmed {
            return Ok(position(parse_lsn(&lsn)?));
        }
    }
    let mut repl = ReplicationConnection::connect(target).await?;
    let rows = repl
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput NOEXPORT_SNAPSHOT",
            quote_ident(&name)
        ))
        .await?;
    repl.terminate().await;
    let lsn = rows
        .first()
        .and_then(|r| r.get(1).cloned().flatten())
        .ok_or_else(|| Error::internal("CREATE_REPLICATION_SLOT returned no consistent point"))?;
    tracing::info!(slot = %name, lsn = %lsn, "created the replication slot");
    Ok(position(parse_lsn(&lsn)?))
}

/// `full-load-and-cdc`: a fresh slot whose snapshot is exported for the load.
/// Returns the snapshot name, the consistent point and the connection that must
/// stay open (and idle) while the snapshot is in use.
pub(crate) async fn create_slot_with_snapshot(
    target: &Target,
    task: &str,
    catalog: &Catalog,
) -> Result<(String, Position, ReplicationConnection)> {
    let client = target.connect().await?;
    check_prerequisites(&client, target, catalog).await?;
    let name = object_name(task);
    ensure_publication(&client, target, &name, catalog).await?;
    if drop_slot(&client, target, &name).await? {
        tracing::info!(slot = %name, "dropped the task's earlier replication slot for a new full load");
    }
    let mut repl = ReplicationConnection::connect(target).await?;
    let rows = repl
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT",
            quote_ident(&name)
        ))
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::internal("CREATE_REPLICATION_SLOT returned no row"))?;
    let lsn =
        row.get(1).cloned().flatten().ok_or_else(|| {
            Error::internal("CREATE_REPLICATION_SLOT returned no consistent point")
        })?;
    let snapshot = row
        .get(2)
        .cloned()
        .flatten()
        .ok_or_else(|| Error::internal("CREATE_REPLICATION_SLOT exported no snapshot"))?;
    tracing::info!(slot = %name, lsn = %lsn, snapshot = %snapshot, "created the replication slot");
    Ok((snapshot, position(parse_lsn(&lsn)?), repl))
}

/// Removes the task's slot and publication; a line per object removed.
pub(crate) async fn cleanup(target: &Target, task: &str) -> Result<Vec<String>> {
    let client = target.connect().await?;
    let name = object_name(task);
    let mut removed = Vec::new();
    if drop_slot(&client, target, &name).await? {
        removed.push(format!("replication slot {name} at {}", target.display));
    }
    let n = client
        .execute("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await
        .map_err(|e| target.error(e, "looking for the publication"))?;
    if n > 0 {
        client
            .batch_execute(&format!(
                "DROP PUBLICATION IF EXISTS {}",
                quote_ident(&name)
            ))
            .await
            .map_err(|e| target.error(e, &format!("cannot drop publication {name}")))?;
        removed.push(format!("publication {name} at {}", target.display));
    }
    Ok(removed)
}

/// One relation of the stream.
struct Relation {
    /// `None` when the table is not selected.
    id: Option<TableId>,
    schema: Arc<TableSchema>,
    types: Vec<PgColumnType>,
}

/// What [`stream`] needs from the source.
pub(crate) struct StreamContext<'a> {
    pub(crate) target: &'a Target,
    pub(crate) task: &'a str,
    pub(crate) from: u64,
    pub(crate) catalog: &'a Catalog,
    pub(crate) tables: &'a TableCache<PgTable>,
    pub(crate) durable: Arc<AtomicU64>,
}

/// The state of the stream between messages.
struct Stream<'a> {
    ctx: &'a StreamContext<'a>,
    out: BatchSender,
    relations: HashMap<u32, Relation>,
    /// The selected tables' current schemas and codec types.
    current: HashMap<TableId, (Arc<TableSchema>, Vec<PgColumnType>)>,
    client: Option<Client>,
    batch: Option<Batch>,
    in_transaction: bool,
    skipping: bool,
    commit_time: i64,
    /// The highest position sent.
    sent: u64,
}

/// Streams changes after `ctx.from` into `out` until `out` closes.
pub(crate) async fn stream(ctx: StreamContext<'_>, out: BatchSender) -> Result<()> {
    let name = object_name(ctx.task);
    let mut current = HashMap::new();
    for table in &ctx.catalog.tables {
        let known = ctx.tables.get(&table.id).ok_or_else(|| {
            Error::internal(format!(
                "table {} was not discovered before streaming",
                table.id
            ))
        })?;
        current.insert(
            table.id.clone(),
            (Arc::new(table.clone()), known.types.clone()),
        );
    }
    let mut repl = ReplicationConnection::connect(ctx.target).await?;
    repl.start_replication(&format!(
        "START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', publication_names {}, binary 'true')",
        quote_ident(&name),
        lsn_text(ctx.from),
        quote_literal(&quote_ident(&name))
    ))
    .await
    .map_err(|e| {
        if e.message().contains("does not exist") {
            Error::config(format!(
                "{}; the task's replication slot is gone (dropped, or lost by the server), so \
                 the changes since the task's checkpoint cannot be read: run `ferry cleanup` \
                 on the task, then run it again with mode = \"full-load-and-cdc\" (a new full \
                 load)",
                e.message()
            ))
        } else if e.message().contains("is active for PID") {
            Error::new(
                ErrorKind::Source,
                format!(
                    "{}: another process streams from the task's slot (is the task already \
                     running?)",
                    e.message()
                ),
            )
        } else {
            e
        }
    })?;
    tracing::info!(slot = %name, from = %lsn_text(ctx.from), "streaming changes");
    ctx.durable.fetch_max(ctx.from, Ordering::SeqCst);
    let mut s = Stream {
        ctx: &ctx,
        out,
        relations: HashMap::new(),
        current,
        client: None,
        batch: None,
        in_transaction: false,
        skipping: false,
        commit_time: 0,
        sent: ctx.from,
    };
    let mut last_status = Instant::now();
    let mut reported = 0u64;
    let mut server_flush = flush_lsn(&mut s).await?;
    let mut tick = tokio::time::interval(STATUS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if s.out.is_closed() {
            repl.terminate().await;
            return Ok(());
        }
        tokio::select! {
            data = repl.next_copy_data() => {
                let Some(data) = data? else {
                    return Err(Error::new(ErrorKind::Connection, "the server ended the replication stream").retryable(true));
                };
                match pgoutput::parse_stream(data).map_err(|m| malformed(&m))? {
                    Some(StreamMessage::XLogData { body, .. }) => {
                        let message = pgoutput::parse_logical(body).map_err(|m| malformed(&m))?;
                        if !s.handle(message).await? {
                            repl.terminate().await;
                            return Ok(());
                        }
                    }
                    Some(StreamMessage::Keepalive { wal_end, clock, reply }) => {
                        if !s.in_transaction && wal_end > s.sent {
                            s.sent = wal_end;
                            // Caught up only once the stream has passed the end of WAL
                            // the server had flushed at the last look (a keepalive
                            // also comes in the middle of a backlog).
                            let caught_up = wal_end >= server_flush;
                            if s.out.send(Batch::marker(position(wal_end), Some(clock), caught_up)).await.is_err() {
                                repl.terminate().await;
                                return Ok(());
                            }
                        }
                        if reply {
                            let durable = s.ctx.durable.load(Ordering::SeqCst);
                            repl.send_status(durable, false).await?;
                            reported = durable;
                            last_status = Instant::now();
                        }
                    }
                    None => {}
                }
            }
            _ = tick.tick() => {
                server_flush = flush_lsn(&mut s).await?;
                let durable = s.ctx.durable.load(Ordering::SeqCst);
                if durable != reported || last_status.elapsed() >= STATUS_INTERVAL {
                    // When idle, ask for a keepalive: it becomes a caught-up marker.
                    repl.send_status(durable, !s.in_transaction).await?;
                    reported = durable;
                    last_status = Instant::now();
                }
            }
        }
    }
}

/// The server's end of flushed WAL, read on the stream's catalog connection.
async fn flush_lsn(s: &mut Stream<'_>) -> Result<u64> {
    if s.client.is_none() {
        s.client = Some(s.ctx.target.connect().await?);
    }
    let Some(client) = s.client.as_ref() else {
        return Err(Error::internal("no catalog connection"));
    };
    let text: String = client
        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
        .await
        .map_err(|e| s.ctx.target.error(e, "reading the server's WAL position"))?
        .get(0);
    parse_lsn(&text)
}

fn malformed(m: &pgoutput::Malformed) -> Error {
    Error::new(
        ErrorKind::Source,
        format!("malformed replication message from the server: {}", m.0),
    )
}

impl Stream<'_> {
    /// Acts on one pgoutput message; `false` when `out` is closed.
    async fn handle(&mut self, message: Logical) -> Result<bool> {
        match message {
            Logical::Begin {
                final_lsn,
                commit_time,
            } => {
                self.in_transaction = true;
                // Everything before `from` is at the target already.
                self.skipping = final_lsn < self.ctx.from;
                self.commit_time = commit_time;
            }
            Logical::Commit {
                end_lsn,
                commit_time,
            } => {
                self.in_transaction = false;
                if self.skipping {
                    self.skipping = false;
                    return Ok(true);
                }
                let mut batch = match self.batch.take() {
                    Some(b) => b,
                    None => Batch::marker(position(end_lsn), None, false),
                };
                batch.end_position = Some(position(end_lsn));
                batch.source_time = Some(commit_time);
                self.sent = self.sent.max(end_lsn);
                return Ok(self.out.send(batch).await.is_ok());
            }
            Logical::Relation {
                oid,
                namespace,
                name,
                columns,
            } => return self.relation(oid, namespace, name, columns).await,
            Logical::Insert { oid, new } => {
                if let Some((schema, row)) = self.row(oid, &new, "insert")? {
                    return self
                        .push(
                            schema,
                            ChangeEvent {
                                op: Operation::Insert,
                                before: None,
                                after: Some(row),
                                commit_time: Some(self.commit_time),
                            },
                        )
                        .await;
                }
            }
            Logical::Update { oid, old, new } => {
                let before = match &old {
                    Some(old) => self.row(oid, old, "update")?.map(|(_, r)| r),
                    None => None,
                };
                if let Some((schema, row)) = self.row(oid, &new, "update")? {
                    return self
                        .push(
                            schema,
                            ChangeEvent {
                                op: Operation::Update,
                                before,
                                after: Some(row),
                                commit_time: Some(self.commit_time),
                            },
                        )
                        .await;
                }
            }
            Logical::Delete { oid, old } => {
                if let Some((schema, row)) = self.row(oid, &old, "delete")? {
                    return self
                        .push(
                            schema,
                            ChangeEvent {
                                op: Operation::Delete,
                                before: Some(row),
                                after: None,
                                commit_time: Some(self.commit_time),
                            },
                        )
                        .await;
                }
            }
            Logical::Truncate { oids } => {
                for oid in oids {
                    if self.skipping {
                        break;
                    }
                    let Some(schema) = self
                        .relations
                        .get(&oid)
                        .filter(|r| r.id.is_some())
                        .map(|r| Arc::clone(&r.schema))
                    else {
                        continue;
                    };
                    let event = ChangeEvent {
                        op: Operation::Truncate,
                        before: None,
                        after: None,
                        commit_time: Some(self.commit_time),
                    };
                    if !self.push(schema, event).await? {
                        return Ok(false);
                    }
                }
            }
            Logical::Other => {}
        }
        Ok(true)
    }

    /// Sends the open batch (not at a transaction boundary).
    async fn flush(&mut self) -> Result<bool> {
        match self.batch.take() {
            Some(batch) => Ok(self.out.send(batch).await.is_ok()),
            None => Ok(true),
        }
    }

    async fn push(&mut self, schema: Arc<TableSchema>, event: ChangeEvent) -> Result<bool> {
        let same = self
            .batch
            .as_ref()
            .is_some_and(|b| Arc::ptr_eq(&b.schema, &schema));
        let full = self
            .batch
            .as_ref()
            .is_some_and(|b| b.len() >= BATCH_EVENTS || b.bytes >= BATCH_BYTES);
        if (!same || full) && !self.flush().await? {
            return Ok(false);
        }
        self.batch
            .get_or_insert_with(|| Batch::with_capacity(schema, 256))
            .push(event);
        Ok(true)
    }

    /// A tuple of relation `oid` decoded into a row, with the schema it follows;
    /// `None` when the table is not selected or the transaction is skipped.
    fn row(
        &self,
        oid: u32,
        tuple: &[TupleValue],
        what: &str,
    ) -> Result<Option<(Arc<TableSchema>, Vec<Value>)>> {
        if self.skipping {
            return Ok(None);
        }
        let Some(relation) = self.relations.get(&oid) else {
            return Err(Error::new(
                ErrorKind::Source,
                format!("the server sent a {what} of relation {oid} before describing it"),
            ));
        };
        let Some(id) = &relation.id else {
            return Ok(None);
        };
        if tuple.len() != relation.types.len() {
            return Err(Error::new(
                ErrorKind::Source,
                format!(
                    "a {what} of {id} has {} columns, its relation message {}",
                    tuple.len(),
                    relation.types.len()
                ),
            ));
        }
        let mut row = Vec::with_capacity(tuple.len());
        for (i, value) in tuple.iter().enumerate() {
            row.push(match value {
                TupleValue::Null => Value::Null,
                TupleValue::Unchanged => Value::Unchanged,
                TupleValue::Binary(raw) => {
                    codec::decode(&relation.types[i], raw.clone()).map_err(|e| {
                        Error::conversion(format!(
                            "decoding a {what} of {id}, column {}: {e}",
                            relation.schema.columns[i].name
                        ))
                    })?
                }
                TupleValue::Text(raw) => decode_text(&relation.types[i], raw).map_err(|e| {
                    Error::conversion(format!(
                        "decoding a {what} of {id}, column {}: {e}",
                        relation.schema.columns[i].name
                    ))
                })?,
            });
        }
        Ok(Some((Arc::clone(&relation.schema), row)))
    }

    /// A relation message: maps it to a selected table and notices shape changes.
    async fn relation(
        &mut self,
        oid: u32,
        namespace: String,
        name: String,
        columns: Vec<RelationColumn>,
    ) -> Result<bool> {
        let id = TableId::new(namespace, name);
        let Some((schema, types)) = self.current.get(&id).cloned() else {
            self.relations.insert(
                oid,
                Relation {
                    id: None,
                    schema: Arc::new(TableSchema::new(id, Vec::new())),
                    types: Vec::new(),
                },
            );
            return Ok(true);
        };
        let same = columns.len() == schema.columns.len()
            && columns
                .iter()
                .zip(schema.columns.iter().zip(&types))
                .all(|(r, (c, t))| r.name == c.name && r.type_oid == t.oid);
        if same {
            self.relations.insert(
                oid,
                Relation {
                    id: Some(id),
                    schema,
                    types,
                },
            );
            return Ok(true);
        }
        // The table changed shape. The catalog may already be ahead of the stream
        // (more changes made since), so the new shape is the relation message's:
        // a column keeps its known definition when its name and type are unchanged,
        // and is described from its type otherwise.
        if self.client.is_none() {
            self.client = Some(self.ctx.target.connect().await?);
        }
        let Some(client) = self.client.as_ref() else {
            return Err(Error::internal("no catalog connection"));
        };
        let found = catalog::discover_one(client, self.ctx.target, &id).await?;
        let wanted: Vec<(String, u32, i32)> = columns
            .iter()
            .map(|c| (c.name.clone(), c.type_oid, c.typmod))
            .collect();
        let described = catalog::describe_columns(client, self.ctx.target, &wanted).await?;
        let mut new_columns = Vec::with_capacity(columns.len());
        let mut new_types = Vec::with_capacity(columns.len());
        for (column, (fresh, fresh_type)) in columns.iter().zip(described) {
            let known = schema
                .column_index(&column.name)
                .map(|i| (schema.columns[i].clone(), types[i].clone()))
                .or_else(|| {
                    let f = found.as_ref()?;
                    let i = f.schema.column_index(&column.name)?;
                    Some((f.schema.columns[i].clone(), f.types[i].clone()))
                })
                .filter(|(c, t)| {
                    t.data_type == fresh_type.data_type && c.data_type == fresh.data_type
                });
            let (c, t) = known.unwrap_or((fresh, fresh_type));
            new_columns.push(c);
            new_types.push(t);
        }
        let mut new_schema = (*schema).clone();
        new_schema.columns = new_columns;
        if let Some(found) = &found {
            new_schema.primary_key = found.schema.primary_key.clone();
        }
        let new_schema = Arc::new(new_schema);
        let changed = new_schema.columns != schema.columns;
        self.current
            .insert(id.clone(), (Arc::clone(&new_schema), new_types.clone()));
        self.relations.insert(
            oid,
            Relation {
                id: Some(id),
                schema: Arc::clone(&new_schema),
                types: new_types,
            },
        );
        if changed && !self.skipping {
            tracing::info!(table = %new_schema.id, "source table changed shape");
            return self
                .push(
                    new_schema,
                    ChangeEvent {
                        op: Operation::SchemaChange,
                        before: None,
                        after: None,
                        commit_time: Some(self.commit_time),
                    },
                )
                .await;
        }
        Ok(true)
    }
}

/// A value the server sent as text (types without a binary output function):
/// kept as text for text-like columns, an error otherwise.
fn decode_text(ty: &PgColumnType, raw: &Bytes) -> std::result::Result<Value, String> {
    match &ty.data_type {
        ferry_core::DataType::Text { .. } => ferry_core::Text::from_utf8(raw.clone())
            .map(Value::Text)
            .map_err(|e| e.to_string()),
        ferry_core::DataType::Json { .. } => ferry_core::Text::from_utf8(raw.clone())
            .map(Value::Json)
            .map_err(|e| e.to_string()),
        other => Err(format!(
            "the server sent a {other:?} value as text, which Ferry cannot decode"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lsns() {
        assert_eq!(object_name("Shop-Sync_1"), "ferry_shop_sync_1");
        assert_eq!(lsn_text(0x1_0000_00A0), "1/A0");
        assert_eq!(parse_lsn("1/A0").expect("lsn"), 0x1_0000_00A0);
        assert_eq!(lsn(&position(42)).expect("lsn"), 42);
        assert!(lsn(&Position::from_bytes(vec![1, 2])).is_err());
    }
}
