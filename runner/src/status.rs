//! A running task's live state: per-table phase and counts, source position, lag.
//! Kept in memory by the pipeline, written every second to
//! `<state-dir>/status.json` (atomically), and read back by `ferry status`.

use ferry_core::{Error, Operation, Position, Result, TableId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from 1970-01-01 to 2000-01-01 (the epoch of source times).
const EPOCH_2000_UNIX_SECS: i64 = 946_684_800;
/// File name of the status inside the state directory.
pub const STATUS_FILE: &str = "status.json";

/// Where one table stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TablePhase {
    /// Waiting for its full load.
    Queued,
    /// Its snapshot is being copied; its changes wait at the source.
    Loading,
    /// Copied; its changes since the snapshot wait until every table is copied.
    CachedChanges,
    /// Its changes are being applied.
    Applying,
    /// Copied (full-load task).
    Loaded,
}

impl TablePhase {
    /// The name shown by `ferry status`.
    pub fn as_str(self) -> &'static str {
        match self {
            TablePhase::Queued => "queued",
            TablePhase::Loading => "loading",
            TablePhase::CachedChanges => "cached changes",
            TablePhase::Applying => "applying",
            TablePhase::Loaded => "loaded",
        }
    }
}

/// One table's state and counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStatus {
    /// The table at the source.
    pub source: String,
    /// The table at the target.
    pub target: String,
    /// Where it stands.
    pub phase: TablePhase,
    /// Rows copied by the full load.
    pub full_load_rows: u64,
    /// Inserts applied by CDC.
    pub inserts: u64,
    /// Updates applied.
    pub updates: u64,
    /// Deletes applied.
    pub deletes: u64,
    /// Truncates applied.
    pub truncates: u64,
    /// Schema changes applied.
    pub ddls: u64,
}

/// A task's state as `ferry status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The task's name.
    pub task: String,
    /// `full-load`, `cdc` or `full-load-and-cdc`.
    pub mode: String,
    /// `starting`, `full-load`, `cdc`, `stopped` or `failed`.
    pub phase: String,
    /// The process running the task.
    pub pid: u32,
    /// When the run started (seconds since 1970).
    pub started_at: i64,
    /// When this status was written (seconds since 1970).
    pub updated_at: i64,
    /// The last source position durable at the target (hex, as in checkpoints).
    pub position: Option<String>,
    /// The same position as the source shows it.
    pub position_text: Option<String>,
    /// Source time of that position (seconds since 1970, fractional).
    pub source_time: Option<f64>,
    /// Seconds between the source committing what was last applied and now (0
    /// when caught up with an idle source).
    pub lag_seconds: Option<f64>,
    /// Whether the last commit reached everything the source had.
    pub caught_up: bool,
    /// Changes applied by CDC in this run.
    pub changes_applied: u64,
    /// Target transactions committed by CDC in this run.
    pub commits: u64,
    /// Reconnections after dropped connections in this run.
    pub reconnects: u64,
    /// The last error met (retried or final).
    pub last_error: Option<String>,
    /// Per table.
    pub tables: Vec<TableStatus>,
}

/// The shared, live [`TaskStatus`] of a run.
#[derive(Debug, Clone)]
pub struct StatusBoard {
    inner: Arc<Mutex<TaskStatus>>,
    path: Option<PathBuf>,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Source time (µs since 2000-01-01) in seconds since 1970.
pub fn source_time_unix(micros: i64) -> f64 {
    micros as f64 / 1e6 + EPOCH_2000_UNIX_SECS as f64
}

impl StatusBoard {
    /// A board for `task`, written to `<state_dir>/status.json` when a directory is
    /// given.
    pub fn new(task: &str, mode: &str, state_dir: Option<&Path>) -> Self {
        let now = now_secs() as i64;
        StatusBoard {
            inner: Arc::new(Mutex::new(TaskStatus {
                task: task.into(),
                mode: mode.into(),
                phase: "starting".into(),
                pid: std::process::id(),
                started_at: now,
                updated_at: now,
                position: None,
                position_text: None,
                source_time: None,
                lag_seconds: None,
                caught_up: false,
                changes_applied: 0,
                commits: 0,
                reconnects: 0,
                last_error: None,
                tables: Vec::new(),
            })),
            path: state_dir.map(|d| d.join(STATUS_FILE)),
        }
    }

    /// A board that is never written.
    pub fn hidden() -> Self {
        StatusBoard::new("", "", None)
    }

    fn with<R>(&self, f: impl FnOnce(&mut TaskStatus) -> R) -> R {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// A copy of the current state, with the lag brought up to now.
    pub fn snapshot(&self) -> TaskStatus {
        self.with(|s| {
            let mut out = s.clone();
            out.updated_at = now_secs() as i64;
            out.lag_seconds = out.source_time.map(|t| (now_secs() - t).max(0.0));
            out
        })
    }

    /// Sets the task's phase.
    pub fn set_phase(&self, phase: &str) {
        self.with(|s| s.phase = phase.into());
    }

    /// Records an error (the run goes on when it is retried).
    pub fn note_error(&self, message: &str) {
        self.with(|s| s.last_error = Some(message.into()));
    }

    /// Records a reconnection after `message`.
    pub fn note_reconnect(&self, message: &str) {
        self.with(|s| {
            s.reconnects += 1;
            s.last_error = Some(message.into());
        });
    }

    fn table_mut<'a>(s: &'a mut TaskStatus, source: &TableId) -> Option<&'a mut TableStatus> {
        let name = source.to_string();
        s.tables.iter_mut().find(|t| t.source == name)
    }

    /// Sets a table's phase, adding the table when new.
    pub fn table_phase(&self, source: &TableId, target: &TableId, phase: TablePhase) {
        self.with(|s| match Self::table_mut(s, source) {
            Some(t) => t.phase = phase,
            None => s.tables.push(TableStatus {
                source: source.to_string(),
                target: target.to_string(),
                phase,
                full_load_rows: 0,
                inserts: 0,
                updates: 0,
                deletes: 0,
                truncates: 0,
                ddls: 0,
            }),
        });
    }

    /// Sets a table's full-load row count.
    pub fn full_load_rows(&self, source: &TableId, rows: u64) {
        self.with(|s| {
            if let Some(t) = Self::table_mut(s, source) {
                t.full_load_rows = rows;
            }
        });
    }

    /// Counts one applied change of `op` on `source`.
    pub fn count(&self, source: &TableId, op: Operation) {
        self.with(|s| {
            if let Some(t) = Self::table_mut(s, source) {
                match op {
                    Operation::Insert => t.inserts += 1,
                    Operation::Update => t.updates += 1,
                    Operation::Delete => t.deletes += 1,
                    Operation::Truncate => t.truncates += 1,
                    Operation::SchemaChange => {}
                }
            }
        });
    }

    /// Counts one schema change applied to `source`.
    pub fn count_ddl(&self, source: &TableId) {
        self.with(|s| {
            if let Some(t) = Self::table_mut(s, source) {
                t.ddls += 1;
            }
        });
    }

    /// Records the position durable at the target.
    pub fn set_position(&self, position: &Position, text: String, source_time: Option<i64>) {
        self.with(|s| {
            s.position = Some(position.to_hex());
            s.position_text = Some(text);
            if let Some(t) = source_time {
                s.source_time = Some(source_time_unix(t));
            }
        });
    }

    /// Records a target commit of `changes` changes.
    pub fn committed(&self, changes: u64, caught_up: bool) {
        self.with(|s| {
            s.commits += 1;
            s.changes_applied += changes;
            s.caught_up = caught_up;
        });
    }

    /// Writes the status file now (atomically: a temporary file renamed over it).
    pub fn write(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let status = self.snapshot();
        let text = serde_json::to_string_pretty(&status)
            .map_err(|e| Error::internal(format!("cannot encode the task status: {e}")))?;
        let io = |e: std::io::Error| {
            Error::config(format!(
                "cannot write the task status to {}: {e}",
                path.display()
            ))
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Writes the status file every second until the returned handle is dropped
    /// or aborted.
    pub fn spawn_writer(&self) -> tokio::task::JoinHandle<()> {
        let board = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Err(e) = board.write() {
                    tracing::warn!(error = %e, "cannot write the task status");
                }
            }
        })
    }
}

/// Reads the status file of a task's state directory.
pub fn read_status(state_dir: &Path) -> Result<TaskStatus> {
    let path = state_dir.join(STATUS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::config(format!(
            "no status for this task at {} ({e}): the task has not run from this directory, \
             or its state-dir differs",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::config(format!(
            "cannot read the task status {}: {e}",
            path.display()
        ))
    })
}

/// Whether the process that wrote `status` is still running (Linux: `/proc/<pid>`).
pub fn is_running(status: &TaskStatus) -> bool {
    Path::new("/proc").join(status.pid.to_string()).exists()
        && !matches!(status.phase.as_str(), "stopped" | "failed")
}

/// `ferry status` as text: the task line, then a row per table.
pub fn render_status(status: &TaskStatus, running: bool) -> String {
    let mut out = String::new();
    let age = (now_secs() as i64 - status.updated_at).max(0);
    let state = if running || matches!(status.phase.as_str(), "stopped" | "failed") {
        status.phase.clone()
    } else {
        format!("not running (last: {}, {age} s ago)", status.phase)
    };
    out.push_str(&format!(
        "task {} ({}): {state}\n",
        status.task, status.mode
    ));
    out.push_str(&format!(
        "position: {}\n",
        status.position_text.as_deref().unwrap_or("-")
    ));
    let lag = match (running, status.lag_seconds) {
        (true, Some(l)) => format!(
            "{l:.1} s{}",
            if status.caught_up { " (caught up)" } else { "" }
        ),
        (false, Some(l)) => format!("{l:.1} s when last written"),
        (_, None) => "-".into(),
    };
    out.push_str(&format!("lag: {lag}\n"));
    out.push_str(&format!(
        "changes applied: {} in {} commits, reconnects: {}\n",
        status.changes_applied, status.commits, status.reconnects
    ));
    if let Some(e) = &status.last_error {
        out.push_str(&format!("last error: {e}\n"));
    }
    let header = [
        "table",
        "target",
        "state",
        "full load",
        "inserts",
        "updates",
        "deletes",
        "truncates",
        "ddl",
    ];
    let rows: Vec<[String; 9]> = status
        .tables
        .iter()
        .map(|t| {
            [
                t.source.clone(),
                t.target.clone(),
                t.phase.as_str().to_string(),
                t.full_load_rows.to_string(),
                t.inserts.to_string(),
                t.updates.to_string(),
                t.deletes.to_string(),
                t.truncates.to_string(),
                t.ddls.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i < 3 {
                l.push_str(&format!("{cell:<w$}  "));
            } else {
                l.push_str(&format!("{cell:>w$}  "));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(header.to_vec()));
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders_per_table() {
        let board = StatusBoard::hidden();
        let a = TableId::new("shop", "orders");
        board.table_phase(&a, &TableId::new("public", "orders"), TablePhase::Applying);
        board.count(&a, Operation::Insert);
        board.count(&a, Operation::Insert);
        board.count(&a, Operation::Update);
        board.count(&a, Operation::Delete);
        board.count_ddl(&a);
        board.full_load_rows(&a, 10);
        board.set_position(&Position::from_bytes(vec![1u8]), "0/1".into(), Some(0));
        board.committed(4, true);
        let status = board.snapshot();
        assert_eq!(status.tables[0].inserts, 2);
        assert_eq!(status.tables[0].updates, 1);
        assert_eq!(status.tables[0].deletes, 1);
        assert_eq!(status.tables[0].ddls, 1);
        assert_eq!(status.changes_applied, 4);
        assert_eq!(status.position.as_deref(), Some("01"));
        assert!(status.lag_seconds.is_some_and(|l| l > 0.0));
        let text = render_status(&status, true);
        assert!(text.contains("position: 0/1"), "{text}");
        assert!(text.contains("shop.orders"), "{text}");
        assert!(text.contains("applying"), "{text}");
    }

    #[test]
    fn status_file_round_trips() {
        let dir = std::env::temp_dir().join(format!("ferry-status-{}", std::process::id()));
        let board = StatusBoard::new("t1", "cdc", Some(&dir));
        board.set_phase("cdc");
        board.write().expect("write");
        let read = read_status(&dir).expect("read");
        assert_eq!(read.task, "t1");
        assert_eq!(read.phase, "cdc");
        assert!(is_running(&read));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
