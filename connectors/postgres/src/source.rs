//! The PostgreSQL source: discovery, one exported snapshot, CTID-range partitions,
//! binary `COPY ... TO STDOUT`.

use crate::catalog::{self, PgTable};
use crate::connect::{Target, quote_ident, quote_literal, quote_table};
use crate::copy::CopyReader;
use crate::legacy_text::RawText;
use ferry_core::TableCache;
use ferry_core::policy::BadDataRecorder;
use ferry_core::{
    BadDataPolicy, Batch, BatchSender, Catalog, ChangeEvent, Error, Finding, LoadReport, Partition,
    PartitionRange, Position, Result, Snapshot, Source, TableFilter, TableId, TableSchema,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::Client;

/// Rows per batch sent down the pipeline.
const BATCH_ROWS: usize = 4096;
/// Bytes per batch sent down the pipeline.
const BATCH_BYTES: usize = 4 << 20;
/// Smallest partition worth its own worker, in 8 KiB pages (16 MiB).
const MIN_PARTITION_PAGES: u64 = 2048;

/// Reads tables from a PostgreSQL database.
pub struct PgSource {
    target: Target,
    tables: TableCache<PgTable>,
    snapshots: tokio::sync::Mutex<HashMap<String, Client>>,
    /// Replication connections holding a capture snapshot (slot just created).
    capture_snapshots:
        tokio::sync::Mutex<HashMap<String, crate::replication::ReplicationConnection>>,
    /// Per task, the LSN the target has made durable (acknowledged).
    durable: std::sync::Mutex<HashMap<String, Arc<std::sync::atomic::AtomicU64>>>,
    /// The database's encoding is `SQL_ASCII`: text is stored unchecked.
    unchecked_encoding: bool,
}

impl PgSource {
    /// Checks the URL and that the server answers (`postgres://user:pass@host:port/db`).
    pub async fn connect(url: &str) -> Result<Self> {
        let target = Target::parse(url)?;
        let client = target.connect().await?;
        let encoding: String = client
            .query_one("SHOW server_encoding", &[])
            .await
            .map_err(|e| target.error(e, "cannot read the server encoding"))?
            .get(0);
        drop(client);
        Ok(PgSource {
            target,
            tables: TableCache::default(),
            snapshots: tokio::sync::Mutex::new(HashMap::new()),
            capture_snapshots: tokio::sync::Mutex::new(HashMap::new()),
            durable: std::sync::Mutex::new(HashMap::new()),
            unchecked_encoding: encoding.eq_ignore_ascii_case("SQL_ASCII"),
        })
    }

    /// The source as `postgres://user@host:port/db`, without the password.
    pub fn display(&self) -> &str {
        &self.target.display
    }

    /// The durable LSN shared between `acknowledge` and the task's stream.
    fn durable_of(&self, task: &str) -> Result<Arc<std::sync::atomic::AtomicU64>> {
        let mut map = self
            .durable
            .lock()
            .map_err(|_| Error::internal("source state poisoned"))?;
        Ok(Arc::clone(map.entry(task.to_owned()).or_default()))
    }

    fn remember(&self, tables: &[PgTable]) -> Result<()> {
        for t in tables {
            self.tables.insert(t.schema.id.clone(), t.clone());
        }
        Ok(())
    }

    async fn table(&self, id: &TableId) -> Result<Arc<PgTable>> {
        if let Some(t) = self.tables.get(id) {
            return Ok(t);
        }
        let client = self.target.connect().await?;
        let table = catalog::discover_one(&client, &self.target, id)
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
}

/// Encodes an LSN (`X/Y` text) as an ordered 8-byte position.
pub(crate) fn lsn_position(text: &str) -> Option<Position> {
    let (hi, lo) = text.split_once('/')?;
    let lsn = (u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?;
    Some(Position::from_bytes(lsn.to_be_bytes().to_vec()))
}

impl Source for PgSource {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn discover(&self, filter: &TableFilter) -> Result<Catalog> {
        let client = self.target.connect().await?;
        let tables = catalog::discover(&client, &self.target, filter).await?;
        self.remember(&tables)?;
        Ok(Catalog {
            tables: tables.into_iter().map(|t| t.schema).collect(),
        })
    }

    async fn begin_snapshot(&self) -> Result<Snapshot> {
        let client = self.target.connect().await?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| self.target.error(e, "cannot open the snapshot transaction"))?;
        let row = client
            .query_one(
                "SELECT pg_export_snapshot(), (CASE WHEN pg_is_in_recovery() \
                 THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text",
                &[],
            )
            .await
            .map_err(|e| self.target.error(e, "cannot export a snapshot"))?;
        let id: String = row.get(0);
        let lsn: Option<String> = row.get(1);
        let position = lsn.as_deref().and_then(lsn_position);
        tracing::debug!(snapshot = %id, lsn = ?lsn, "exported snapshot");
        self.snapshots.lock().await.insert(id.clone(), client);
        Ok(Snapshot { id, position })
    }

    async fn partitions(
        &self,
        _snapshot: &Snapshot,
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
        if info.relkind != 'r' || max <= 1 || info.pages < 2 * MIN_PARTITION_PAGES {
            return Ok(whole());
        }
        let count = (info.pages / MIN_PARTITION_PAGES).clamp(1, max as u64);
        let step = info.pages.div_ceil(count);
        let count = count as usize;
        Ok((0..count)
            .map(|i| {
                let start = i as u64 * step;
                let end = (i + 1 < count).then(|| (i as u64 + 1) * step);
                Partition {
                    table: table.id.clone(),
                    index: i,
                    count,
                    range: PartitionRange::Pages {
                        start: if i == 0 { 0 } else { start },
                        end,
                    },
                }
            })
            .collect())
    }

    async fn read_partition(
        &self,
        snapshot: &Snapshot,
        table: Arc<TableSchema>,
        partition: Partition,
        // Everything PostgreSQL stores decodes into a valid value, except text in a
        // SQL_ASCII database, which is checked against the policy.
        policy: BadDataPolicy,
        out: BatchSender,
    ) -> Result<LoadReport> {
        let info = self.table(&table.id).await?;
        let context = format!(
            "copying {} (partition {}/{})",
            table.id,
            partition.index + 1,
            partition.count
        );
        let client = self.target.connect().await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                quote_literal(&snapshot.id)
            ))
            .await
            .map_err(|e| self.target.error(e, &context))?;
        let raw = RawText::for_table(&table, self.unchecked_encoding);
        let mut recorder = BadDataRecorder::new(table.id.clone(), policy);
        let query = copy_query(
            &table,
            info.relkind,
            info.has_generated,
            &partition.range,
            &raw,
        );
        let stream = client
            .copy_out(query.as_str())
            .await
            .map_err(|e| self.target.error(e, &context))?;
        let mut stream = std::pin::pin!(stream);
        let mut reader = CopyReader::new(raw.decode_types(&info.types));
        let mut batch = Batch::with_capacity(Arc::clone(&table), BATCH_ROWS);
        let mut rows = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.target.error(e, &context))?;
            reader.feed(chunk);
            while let Some(mut row) = reader
                .next_row()
                .map_err(|e| Error::conversion(format!("{context}: row {}: {e}", rows + 1)))?
            {
                if !raw.is_empty() && !raw.repair(&table, &mut row, &mut recorder)? {
                    recorder.row_skipped();
                    continue;
                }
                rows += 1;
                batch.push(ChangeEvent::insert(row));
                if batch.len() >= BATCH_ROWS || batch.bytes >= BATCH_BYTES {
                    let full = std::mem::replace(
                        &mut batch,
                        Batch::with_capacity(Arc::clone(&table), BATCH_ROWS),
                    );
                    out.send(full).await?;
                }
            }
        }
        if !reader.finished() {
            return Err(Error::new(
                ferry_core::ErrorKind::Connection,
                format!("{context}: the COPY stream ended early"),
            ));
        }
        if !batch.is_empty() {
            out.send(batch).await?;
        }
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| self.target.error(e, &context))?;
        let mut report = recorder.into_report();
        report.rows = rows;
        Ok(report)
    }

    async fn assess(&self, catalog: &Catalog) -> Result<Vec<Finding>> {
        let client = self.target.connect().await?;
        crate::assess::assess(&client, &self.target, catalog).await
    }

    async fn begin_capture_snapshot(&self, task: &str, catalog: &Catalog) -> Result<Snapshot> {
        let (id, position, connection) =
            crate::capture::create_slot_with_snapshot(&self.target, task, catalog).await?;
        self.capture_snapshots
            .lock()
            .await
            .insert(id.clone(), connection);
        Ok(Snapshot {
            id,
            position: Some(position),
        })
    }

    async fn capture_position(&self, task: &str, catalog: &Catalog) -> Result<Position> {
        crate::capture::capture_position(&self.target, task, catalog).await
    }

    async fn start_position(&self, task: &str, catalog: &Catalog, text: &str) -> Result<Position> {
        let wanted = crate::capture::parse_lsn(text.trim()).map_err(|_| {
            Error::config(format!(
                "start-position {text:?} is not a PostgreSQL LSN (like 0/16B3748)"
            ))
        })?;
        let slot = crate::capture::lsn(&self.capture_position(task, catalog).await?)?;
        if wanted < slot {
            return Err(Error::config(format!(
                "start-position {text} is before the task's replication slot ({}): the \
                 slot cannot stream changes from before it was created. Start at or after \
                 {}, or use mode = \"full-load-and-cdc\"",
                crate::capture::lsn_text(slot),
                crate::capture::lsn_text(slot)
            )));
        }
        Ok(crate::capture::position(wanted))
    }

    async fn stream_changes(
        &self,
        task: &str,
        from: Position,
        catalog: &Catalog,
        out: BatchSender,
    ) -> Result<()> {
        let from = crate::capture::lsn(&from)?;
        let ctx = crate::capture::StreamContext {
            target: &self.target,
            task,
            from,
            catalog,
            tables: &self.tables,
            durable: self.durable_of(task)?,
        };
        crate::capture::stream(ctx, out).await
    }

    fn describe_position(&self, position: &Position) -> String {
        match crate::capture::lsn(position) {
            Ok(lsn) => crate::capture::lsn_text(lsn),
            Err(_) => position.to_hex(),
        }
    }

    async fn acknowledge(&self, task: &str, durable: &Position) -> Result<()> {
        let lsn = crate::capture::lsn(durable)?;
        self.durable_of(task)?
            .fetch_max(lsn, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn cleanup_capture(&self, task: &str) -> Result<Vec<String>> {
        crate::capture::cleanup(&self.target, task).await
    }

    async fn end_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        if let Some(connection) = self.capture_snapshots.lock().await.remove(&snapshot.id) {
            connection.terminate().await;
        }
        if let Some(client) = self.snapshots.lock().await.remove(&snapshot.id) {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| self.target.error(e, "cannot close the snapshot"))?;
        }
        Ok(())
    }
}

/// The `COPY ... TO STDOUT (FORMAT binary)` statement for one partition. A table
/// with generated columns is read through `SELECT` (`COPY table (columns)` refuses
/// generated columns).
fn copy_query(
    table: &TableSchema,
    relkind: char,
    has_generated: bool,
    range: &PartitionRange,
    raw: &RawText,
) -> String {
    let columns = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            raw.select_expr(i, &c.name)
                .unwrap_or_else(|| quote_ident(&c.name))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let name = quote_table(&table.id);
    let select = |filter: &str| {
        let only = if relkind == 'r' { "ONLY " } else { "" };
        format!("COPY (SELECT {columns} FROM {only}{name}{filter}) TO STDOUT (FORMAT binary)")
    };
    match range {
        PartitionRange::Whole if relkind == 'r' && !has_generated && raw.is_empty() => {
            format!("COPY {name} ({columns}) TO STDOUT (FORMAT binary)")
        }
        PartitionRange::Pages { start, end } => {
            let mut filter = format!(" WHERE ctid >= '({start},0)'::tid");
            if let Some(end) = end {
                filter.push_str(&format!(" AND ctid < '({end},0)'::tid"));
            }
            select(&filter)
        }
        _ => select(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_query_plain(
        t: &TableSchema,
        relkind: char,
        has_generated: bool,
        range: &PartitionRange,
    ) -> String {
        copy_query(t, relkind, has_generated, range, &RawText::default())
    }
    use ferry_core::{Column, DataType};

    #[test]
    fn lsn_positions_order_numerically() {
        let a = lsn_position("0/16B3748").expect("valid");
        let b = lsn_position("1/0").expect("valid");
        assert!(a < b);
        assert_eq!(lsn_position("nonsense"), None);
    }

    #[test]
    fn copy_queries() {
        let t = TableSchema::new(
            TableId::new("s", "t"),
            vec![Column {
                name: "a".into(),
                data_type: DataType::Int32,
                nullable: true,
                default: None,
                source_type: "integer".into(),
            }],
        );
        assert_eq!(
            copy_query_plain(&t, 'r', false, &PartitionRange::Whole),
            "COPY \"s\".\"t\" (\"a\") TO STDOUT (FORMAT binary)"
        );
        assert_eq!(
            copy_query_plain(&t, 'r', true, &PartitionRange::Whole),
            "COPY (SELECT \"a\" FROM ONLY \"s\".\"t\") TO STDOUT (FORMAT binary)"
        );
        assert_eq!(
            copy_query_plain(
                &t,
                'r',
                false,
                &PartitionRange::Pages {
                    start: 10,
                    end: Some(20)
                }
            ),
            "COPY (SELECT \"a\" FROM ONLY \"s\".\"t\" WHERE ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid) TO STDOUT (FORMAT binary)"
        );
    }
}
