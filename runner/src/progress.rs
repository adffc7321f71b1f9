//! Progress while a task runs, logging, and the final summary.
//!
//! On a terminal each table being copied gets an `indicatif` bar (rows against the
//! source's estimate, with the rate); elsewhere a `tracing` line per table every few
//! seconds with the structured fields `table`, `rows`, `rows_per_sec`. Logs go to
//! stderr as text or JSON, through a [`Scrubber`] so no known secret is ever printed.

use crate::pipeline::{Summary, rate};
use crate::scrub::Scrubber;
use crate::status::StatusBoard;
use ferry_core::TableId;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::AbortHandle;

/// Default interval of progress log lines when stderr is not a terminal.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar per table on stderr (a terminal).
    Bars,
    /// A `tracing::info!` line per active table at this interval.
    Log(Duration),
    /// Nothing but the per-table start and end log lines.
    Off,
}

impl ProgressMode {
    /// Bars on a terminal with text logs, log lines elsewhere, nothing if disabled.
    pub fn detect(no_progress: bool, format: LogFormat) -> Self {
        if no_progress {
            ProgressMode::Off
        } else if format == LogFormat::Text && io::stderr().is_terminal() {
            ProgressMode::Bars
        } else {
            ProgressMode::Log(LOG_INTERVAL)
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

struct Counter {
    id: TableId,
    estimated_rows: Option<u64>,
    rows: AtomicU64,
    bytes: AtomicU64,
    started: Instant,
    done: AtomicBool,
    bar: Option<ProgressBar>,
}

type Active = Arc<Mutex<Vec<Arc<Counter>>>>;

/// Progress reporting for one task run.
pub struct Progress {
    mode: ProgressMode,
    multi: Option<MultiProgress>,
    active: Active,
    ticker: Mutex<Option<AbortHandle>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Progress {
    /// Progress in `mode`.
    pub fn new(mode: ProgressMode) -> Self {
        Progress {
            mode,
            multi: (mode == ProgressMode::Bars).then(MultiProgress::new),
            active: Arc::default(),
            ticker: Mutex::new(None),
        }
    }

    /// No progress output (for tests and embedding).
    pub fn hidden() -> Self {
        Self::new(ProgressMode::Off)
    }

    /// The mode.
    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    /// The bars' container, for log output that must not tear the bars.
    pub fn multi(&self) -> Option<MultiProgress> {
        self.multi.clone()
    }

    /// Starts reporting a table.
    pub fn table(&self, id: &TableId, estimated_rows: Option<u64>) -> TableProgress {
        let estimate = estimated_rows.filter(|n| *n > 0);
        let bar = self.multi.as_ref().map(|multi| {
            let bar = match estimate {
                Some(n) => ProgressBar::new(n).with_style(bar_style()),
                None => ProgressBar::new_spinner().with_style(spinner_style()),
            };
            let bar = multi.add(bar.with_prefix(id.to_string()));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let counter = Arc::new(Counter {
            id: id.clone(),
            estimated_rows: estimate,
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
            done: AtomicBool::new(false),
            bar,
        });
        if let ProgressMode::Log(interval) = self.mode {
            lock(&self.active).push(Arc::clone(&counter));
            self.start_ticker(interval);
        }
        TableProgress { counter }
    }

    fn start_ticker(&self, interval: Duration) {
        let mut ticker = lock(&self.ticker);
        if ticker.is_some() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let active = Arc::clone(&self.active);
            *ticker = Some(handle.spawn(tick(active, interval)).abort_handle());
        }
    }

    /// Shows the change stream's state from `board` (position, lag, changes
    /// applied): one live line on a terminal, a log line per interval otherwise.
    /// Runs until the returned handle is aborted.
    pub fn follow_cdc(&self, board: StatusBoard) -> Option<AbortHandle> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let interval = match self.mode {
            ProgressMode::Bars => Duration::from_secs(1),
            ProgressMode::Log(interval) => interval,
            ProgressMode::Off => return None,
        };
        Some(
            handle
                .spawn(async move {
                    let mut tick = tokio::time::interval(interval);
                    let mut last = (Instant::now(), 0u64);
                    loop {
                        tick.tick().await;
                        let s = board.snapshot();
                        let secs = last.0.elapsed().as_secs_f64().max(0.001);
                        let per_sec = (s.changes_applied.saturating_sub(last.1)) as f64 / secs;
                        last = (Instant::now(), s.changes_applied);
                        let lag = s
                            .lag_seconds
                            .map_or("-".to_string(), |l| format!("{l:.1} s"));
                        let position = s.position_text.clone().unwrap_or_else(|| "-".into());
                        match &bar {
                            Some(bar) => bar.set_message(format!(
                                "CDC at {position}  lag {lag}  {} changes applied ({per_sec:.0}/s)",
                                s.changes_applied
                            )),
                            None => tracing::info!(
                                position = %position,
                                lag = %lag,
                                changes = s.changes_applied,
                                per_sec = per_sec.round(),
                                "cdc progress"
                            ),
                        }
                    }
                })
                .abort_handle(),
        )
    }

    /// Stops the periodic output and removes any bars left.
    pub fn finish(&self) {
        if let Some(t) = lock(&self.ticker).take() {
            t.abort();
        }
        if let Some(multi) = &self.multi {
            // Bars are removed as their tables finish; clear whatever is left.
            let _ = multi.clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.ticker).take() {
            t.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:32!} [{bar:30}] {human_pos:>11}/{human_len:11} rows {rate:>12} eta {eta}",
    )
    .map(|s| s.progress_chars("=> ").with_key("rate", write_rate))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:32!} {spinner} {human_pos:>11} rows {rate:>12}")
        .map(|s| s.with_key("rate", write_rate))
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn write_rate(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = write!(w, "{:.0} rows/s", state.per_sec());
}

async fn tick(active: Active, interval: Duration) {
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer.tick().await;
    let mut last: std::collections::HashMap<TableId, (u64, Instant)> = Default::default();
    loop {
        timer.tick().await;
        let now = Instant::now();
        let tables: Vec<Arc<Counter>> = {
            let mut list = lock(&active);
            list.retain(|c| !c.done.load(Ordering::Relaxed));
            list.clone()
        };
        last.retain(|id, _| tables.iter().any(|c| &c.id == id));
        for c in tables {
            let rows = c.rows.load(Ordering::Relaxed);
            let (prev_rows, prev_at) = last.get(&c.id).copied().unwrap_or((0, c.started));
            let rows_per_sec = rate(rows.saturating_sub(prev_rows), now - prev_at).round() as u64;
            last.insert(c.id.clone(), (rows, now));
            tracing::info!(
                table = %c.id,
                rows,
                rows_per_sec,
                bytes = c.bytes.load(Ordering::Relaxed),
                estimated_rows = c.estimated_rows,
                "progress"
            );
        }
    }
}

/// Progress of one table; cheap to clone into every partition worker.
#[derive(Clone)]
pub struct TableProgress {
    counter: Arc<Counter>,
}

impl std::fmt::Debug for TableProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableProgress({})", self.counter.id)
    }
}

impl TableProgress {
    /// Counts rows and bytes written.
    pub fn add(&self, rows: u64, bytes: u64) {
        let c = &self.counter;
        let total = c.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &c.bar {
            if bar.length().is_some_and(|len| total > len) {
                bar.set_length(total);
            }
            bar.inc(rows);
        }
    }

    /// Rows counted so far.
    pub fn rows(&self) -> u64 {
        self.counter.rows.load(Ordering::Relaxed)
    }

    /// The table is copied: removes its bar.
    pub fn finish(&self) {
        self.counter.done.store(true, Ordering::Relaxed);
        if let Some(bar) = &self.counter.bar {
            bar.finish_and_clear();
        }
    }

    /// The copy was cancelled: removes its bar.
    pub fn abandon(&self) {
        self.finish();
    }
}

/// A `tracing-subscriber` writer to stderr that scrubs secrets and, when bars are
/// shown, prints above them instead of through them.
#[derive(Clone)]
pub struct LogWriter {
    multi: Option<MultiProgress>,
    scrubber: Scrubber,
    #[cfg(test)]
    capture: Option<Arc<Mutex<Vec<u8>>>>,
}

impl LogWriter {
    /// A writer for `multi`'s terminal (or plain stderr), scrubbing with `scrubber`.
    pub fn new(multi: Option<MultiProgress>, scrubber: Scrubber) -> Self {
        LogWriter {
            multi,
            scrubber,
            #[cfg(test)]
            capture: None,
        }
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = self.scrubber.scrub(&String::from_utf8_lossy(buf));
        #[cfg(test)]
        if let Some(capture) = &self.capture {
            lock(capture).extend_from_slice(text.as_bytes());
            return Ok(buf.len());
        }
        let emit = || io::stderr().lock().write_all(text.as_bytes());
        match &self.multi {
            Some(multi) => multi.suspend(emit)?,
            None => emit()?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs the global `tracing` subscriber: `RUST_LOG` filter (default `info`,
/// `tokio_postgres=warn`),
/// text or JSON to stderr through [`LogWriter`]. A second call does nothing.
pub fn init_logging(format: LogFormat, multi: Option<MultiProgress>, scrubber: Scrubber) {
    use tracing_subscriber::EnvFilter;
    // Server notices ("schema already exists, skipping") are noise at info level.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn"));
    let writer = LogWriter::new(multi, scrubber);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The final summary table: table, rows, seconds, rows/s, MiB, a total line, then
/// passed-through columns and other findings.
pub fn render_summary(summary: &Summary) -> String {
    let mut out = String::new();
    let total_label = format!("total ({} tables)", summary.tables.len());
    let width = summary
        .tables
        .iter()
        .map(|t| t.source.to_string().len())
        .chain([total_label.len()])
        .max()
        .unwrap_or(5);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let _ = writeln!(
        out,
        "{:<width$}  {:>12}  {:>9}  {:>12}  {:>10}",
        "table", "rows", "seconds", "rows/s", "MiB"
    );
    for t in &summary.tables {
        let _ = writeln!(
            out,
            "{:<width$}  {:>12}  {:>9.2}  {:>12.0}  {:>10.1}",
            t.source.to_string(),
            t.rows,
            t.copy_time.as_secs_f64(),
            t.rows_per_sec(),
            mib(t.bytes)
        );
    }
    let rows = summary.total_rows();
    let _ = writeln!(
        out,
        "{:<width$}  {:>12}  {:>9.2}  {:>12.0}  {:>10.1}",
        total_label,
        rows,
        summary.elapsed.as_secs_f64(),
        rate(rows, summary.elapsed),
        mib(summary.total_bytes())
    );
    if !summary.passed_through.is_empty() {
        let _ = writeln!(
            out,
            "\npassed through (types Ferry does not map, copied as the source gives them):"
        );
        for p in &summary.passed_through {
            let _ = writeln!(out, "  {}.{}  {}", p.table, p.column, p.source_type);
        }
    }
    if !summary.findings.is_empty() {
        let _ = writeln!(out, "\nfindings:");
        for f in &summary.findings {
            let _ = writeln!(out, "  {f}");
        }
    }
    render_bad_data(summary, &mut out);
    if let Some(cdc) = &summary.cdc {
        let end = match cdc.end {
            crate::cdc::CdcEnd::CaughtUp => "caught up with the source",
            crate::cdc::CdcEnd::Shutdown => "stopped on request",
            crate::cdc::CdcEnd::SourceEnded => "the source ended the stream",
        };
        let _ = writeln!(
            out,
            "
change capture: {end}; {} changes applied in {} target transactions, {} reconnects; checkpoint {}",
            cdc.changes,
            cdc.commits,
            cdc.reconnects,
            cdc.position
                .as_ref()
                .map_or("-".to_string(), |p| p.to_hex())
        );
    }
    out
}

/// How many bad-row keys the summary shows per table.
const SUMMARY_BAD_KEYS: usize = 5;

/// The bad-data section: per table with bad values, the policy, the count of bad
/// values and skipped rows, and the first keys; then where all of them are.
fn render_bad_data(summary: &Summary, out: &mut String) {
    let tables: Vec<_> = summary
        .tables
        .iter()
        .filter(|t| t.bad_row_count > 0)
        .collect();
    if tables.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nbad data (values the target cannot hold, handled by the bad-data policy):"
    );
    for t in tables {
        let skipped = if t.skipped_rows > 0 {
            format!(", {} rows skipped", t.skipped_rows)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {}  policy {}: {} bad values{skipped}",
            t.source, t.policy, t.bad_row_count
        );
        for bad in t.bad_rows.iter().take(SUMMARY_BAD_KEYS) {
            let _ = writeln!(
                out,
                "    row {} column {}: {} ({})",
                bad.key, bad.column, bad.problem, bad.action
            );
        }
        let shown = t.bad_rows.len().min(SUMMARY_BAD_KEYS) as u64;
        if t.bad_row_count > shown {
            let _ = writeln!(out, "    ... and {} more", t.bad_row_count - shown);
        }
    }
    let recorded = summary.bad_rows_recorded;
    match &summary.bad_rows_file {
        Some(path) => {
            let _ = writeln!(out, "  every recorded bad value: {}", path.display());
        }
        None => {
            let _ = writeln!(
                out,
                "  set [task] state-dir to have every bad value written to <state-dir>/bad-rows.jsonl"
            );
        }
    }
    if recorded < summary.total_bad_rows() {
        let _ = writeln!(
            out,
            "  ({} bad values were counted but not recorded: at most {} are kept per partition)",
            summary.total_bad_rows() - recorded,
            ferry_core::policy::MAX_BAD_ROWS
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{PassedThrough, TableStats};
    use ferry_core::{BadDataPolicy, Finding, FindingLevel};

    #[test]
    fn summary_has_a_line_per_table_a_total_and_findings() {
        let summary = Summary {
            tables: vec![
                TableStats {
                    source: TableId::new("shop", "orders"),
                    target: TableId::new("shop", "orders"),
                    partitions: 4,
                    rows: 1000,
                    bytes: 2 * 1024 * 1024,
                    copy_time: Duration::from_secs(2),
                    finish_time: Duration::from_secs(1),
                    policy: BadDataPolicy::Fail,
                    skipped_rows: 0,
                    bad_row_count: 0,
                    bad_rows: vec![],
                },
                TableStats {
                    source: TableId::new("shop", "empty"),
                    target: TableId::new("shop", "empty"),
                    partitions: 0,
                    rows: 0,
                    bytes: 0,
                    copy_time: Duration::ZERO,
                    finish_time: Duration::ZERO,
                    policy: BadDataPolicy::Fail,
                    skipped_rows: 0,
                    bad_row_count: 0,
                    bad_rows: vec![],
                },
            ],
            snapshot_position: None,
            cdc: None,
            findings: vec![
                Finding::new(
                    FindingLevel::Warning,
                    ferry_core::finding_code::TYPE_MAPPING,
                    "varchar(10) widened",
                )
                .table(&TableId::new("shop", "orders"))
                .column("note"),
            ],
            passed_through: vec![PassedThrough {
                table: TableId::new("shop", "orders"),
                column: "path".into(),
                source_type: "ltree".into(),
            }],
            elapsed: Duration::from_secs(4),
            bad_rows_file: None,
            bad_rows_recorded: 0,
        };
        let text = render_summary(&summary);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("table"), "{text}");
        assert!(lines[1].starts_with("shop.orders"), "{text}");
        assert!(
            lines[1].contains(" 1000 ") && lines[1].contains(" 500 "),
            "{text}"
        );
        assert!(lines[2].starts_with("shop.empty"), "{text}");
        assert!(lines[3].starts_with("total (2 tables)"), "{text}");
        assert!(
            lines[3].contains(" 250 ") && lines[3].contains("4.00"),
            "{text}"
        );
        assert!(text.contains("passed through"), "{text}");
        assert!(text.contains("shop.orders.path  ltree"), "{text}");
        assert!(
            text.contains("warning shop.orders.note: varchar(10) widened"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn table_progress_counts() {
        let progress = Progress::new(ProgressMode::Log(Duration::from_millis(5)));
        let t = progress.table(&TableId::new("a", "b"), Some(10));
        t.clone().add(3, 30);
        t.add(4, 40);
        assert_eq!(t.rows(), 7);
        t.finish();
        progress.finish();
        assert_eq!(Progress::hidden().mode(), ProgressMode::Off);
    }

    #[test]
    fn log_writer_scrubs() {
        let scrubber = Scrubber::new();
        scrubber.add(["hunter2"]);
        let capture = Arc::new(Mutex::new(Vec::new()));
        let mut w = LogWriter::new(None, scrubber);
        w.capture = Some(Arc::clone(&capture));
        assert_eq!(w.write(b"password hunter2\n").ok(), Some(17));
        assert_eq!(lock(&capture).as_slice(), b"password ***\n");
    }
}
