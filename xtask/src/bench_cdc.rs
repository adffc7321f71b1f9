//! The CDC section of `cargo xtask bench`: PostgreSQL → PostgreSQL change
//! capture under `pgbench` write load: the source on the kit's server, the target
//! on a second PostgreSQL of its own (as in a real migration, the source's
//! walsender then decodes only the source's WAL).
//!
//! 1. **Set-up**: `pgbench -i` source plus `bench_probe`, then `ferry run` in
//!    `full-load-and-cdc` with `--stop-at-lag-zero` (copy, slot, checkpoint).
//! 2. **Throughput**: with Ferry stopped, `pgbench` (TPC-B-like: three updates
//!    and an insert per transaction) builds a backlog; `ferry run
//!    --stop-at-lag-zero` then applies it and the report gives row changes per
//!    second of that run (start-up included), checked against the source.
//! 3. **Lag**: Ferry runs while `pgbench --rate` writes a steady
//!    `CDC_LAG_RATE` row changes per second (an update and a probe insert per
//!    transaction); each probe row's lag is its target commit time minus its source
//!    commit time (`pg_xact_commit_timestamp`, same clock, `track_commit_timestamp
//!    = on`), reported as p50 / p99 / max.
//!
//! Environment: `FERRY_BENCH_CDC_TRANSACTIONS` (backlog transactions, default
//! 100,000 = 400,000 row changes), `FERRY_BENCH_CDC_SECONDS` (length of the lag
//! phase, default 30).

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::PgService;

use super::{RunInfo, Section, SectionReport, positive};
use crate::Result;
use crate::common::{self, TaskUrls, thousands};

const SOURCE_DB: &str = "ferry_bench_cdc_source";
const TARGET_DB: &str = "ferry_bench_cdc_target";
/// The task's name: its slot and publication are `ferry_bench_cdc`.
const TASK: &str = "bench_cdc";
const SLOT: &str = "ferry_bench_cdc";
/// `pgbench -i` scale of the source (100,000 accounts per unit).
const SCALE: u64 = 10;
/// Row changes per second written during the lag phase.
const CDC_LAG_RATE: u64 = 5_000;
/// What the issue asks: applied row changes per second ...
const THROUGHPUT_TARGET: f64 = 50_000.0;
/// ... and the 99th percentile of lag at `CDC_LAG_RATE`, in seconds.
const P99_LAG_TARGET: f64 = 1.0;
/// Row changes per backlog transaction (TPC-B-like: 3 updates, 1 insert).
const CHANGES_PER_TPCB: u64 = 4;
/// Row changes per lag-phase transaction (an update and a probe insert).
const CHANGES_PER_PROBE_TXN: u64 = 2;

/// The lag phase's pgbench script.
const PROBE_SCRIPT: &str = "\\set aid random(1, 100000 * :scale)\n\
     \\set delta random(-5000, 5000)\n\
     BEGIN;\n\
     UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n\
     INSERT INTO bench_probe (aid) VALUES (:aid);\n\
     END;\n";

/// What the CDC section measured.
struct Measured {
    backlog_changes: u64,
    applied_changes: u64,
    apply_time: Duration,
    /// Wall time of the same run with nothing to apply (start-up, slot, the
    /// caught-up check): subtracted to give the apply rate.
    idle_time: Duration,
    lag_probes: usize,
    lag_rate: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// The CDC section.
pub(super) fn section(
    pg: &PgService,
    ferry: &Path,
    out_dir: &Path,
    info: RunInfo,
) -> Result<SectionReport> {
    let transactions = positive(
        "FERRY_BENCH_CDC_TRANSACTIONS",
        env::var("FERRY_BENCH_CDC_TRANSACTIONS").ok().as_deref(),
        100_000,
    )?;
    let seconds = positive(
        "FERRY_BENCH_CDC_SECONDS",
        env::var("FERRY_BENCH_CDC_SECONDS").ok().as_deref(),
        30,
    )?;
    let outcome = measure(pg, ferry, out_dir, transactions, seconds);
    // Never leave the slot behind: it would keep WAL on the kit's server.
    let _ = pg.psql(
        "postgres",
        &format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = '{SLOT}' AND NOT active"
        ),
    );
    let (text, markdown, failed) = match outcome {
        Ok(m) => {
            let throughput = rate(m.applied_changes, m.apply_time.saturating_sub(m.idle_time));
            let lag_ok = m.p99.as_secs_f64() < P99_LAG_TARGET;
            let failed = throughput < THROUGHPUT_TARGET || !lag_ok;
            (
                render_text(&m, throughput),
                render_markdown(&info, &m, throughput, transactions, seconds),
                failed,
            )
        }
        Err(e) => {
            let text = format!("CDC PostgreSQL → PostgreSQL: FAILED: {e}");
            let markdown = format!(
                "## CDC PostgreSQL → PostgreSQL\n\nMeasured {} on {}; the run failed:\n\n```\n{e}\n```\n",
                info.date, info.cpu_model
            );
            (text, markdown, true)
        }
    };
    Ok(SectionReport {
        section: Section::Cdc,
        text,
        markdown,
        failed,
    })
}

fn measure(
    pg: &PgService,
    ferry: &Path,
    out_dir: &Path,
    transactions: u64,
    seconds: u64,
) -> Result<Measured> {
    ensure_commit_timestamps(pg)?;
    let target_server = ferry_tests::private_postgres("bench-cdc-target")?;
    let tpg = &target_server.service;
    let _ = pg.psql(
        "postgres",
        &format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = '{SLOT}'"
        ),
    );
    common::recreate_database(pg, SOURCE_DB)?;
    common::recreate_database(tpg, TARGET_DB)?;
    let src = pg.url(SOURCE_DB);
    eprintln!("xtask: bench cdc: pgbench -i -s {SCALE} into {SOURCE_DB}");
    common::run_status(
        Command::new(common::pg_tool("pgbench"))
            .args(["-i", "-q", "-s", &SCALE.to_string(), &src])
            .stdout(Stdio::null()),
        "pgbench -i",
    )?;
    pg.psql(
        SOURCE_DB,
        "ALTER TABLE pgbench_history REPLICA IDENTITY FULL; \
         CREATE TABLE bench_probe (id bigserial PRIMARY KEY, aid int NOT NULL)",
    )?;

    let dir = out_dir.join("cdc");
    let state_dir = dir.join("state");
    let urls = task_urls(pg, tpg);
    let task = cdc_task(&urls, &state_dir);
    let task_path = common::write_task(&dir, &task, &state_dir)?;
    eprintln!("xtask: bench cdc: initial full load and slot");
    common::run_ferry(
        ferry,
        &task_path,
        &["--no-progress", "--stop-at-lag-zero"],
        &urls,
    )?;

    // Throughput: a backlog applied in one catch-up run.
    let clients = 2u64;
    let per_client = transactions.div_ceil(clients);
    eprintln!(
        "xtask: bench cdc: backlog of {} pgbench transactions",
        thousands(per_client * clients)
    );
    common::run_status(
        Command::new(common::pg_tool("pgbench"))
            .args([
                "-n",
                "-c",
                "2",
                "-j",
                "2",
                "-t",
                &per_client.to_string(),
                &src,
            ])
            .env("PGOPTIONS", "-c synchronous_commit=off")
            .stdout(Stdio::null()),
        "pgbench backlog",
    )?;
    let backlog_changes = per_client * clients * CHANGES_PER_TPCB;
    common::checkpoint(pg);
    eprintln!("xtask: bench cdc: applying the backlog (ferry run --stop-at-lag-zero)");
    let started = Instant::now();
    common::run_ferry(
        ferry,
        &task_path,
        &["--no-progress", "--stop-at-lag-zero"],
        &urls,
    )?;
    let apply_time = started.elapsed();
    let applied_changes = status_changes(&state_dir)?;
    verify(pg, tpg)?;
    // The same run with nothing to apply: what of the time above is not applying.
    let started = Instant::now();
    common::run_ferry(
        ferry,
        &task_path,
        &["--no-progress", "--stop-at-lag-zero"],
        &urls,
    )?;
    let idle_time = started.elapsed();

    // Lag at a steady rate.
    eprintln!(
        "xtask: bench cdc: lag at {} row changes/s for {seconds} s",
        thousands(CDC_LAG_RATE)
    );
    let script = dir.join("probe.sql");
    fs::write(&script, PROBE_SCRIPT).map_err(|e| format!("writing {}: {e}", script.display()))?;
    let mut cmd = Command::new(ferry);
    cmd.arg("run")
        .arg(&task_path)
        .arg("--no-progress")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (key, value) in &urls.env {
        cmd.env(key, value);
    }
    let mut running = cmd
        .spawn()
        .map_err(|e| format!("cannot start ferry run: {e}"))?;
    let lag = (|| -> Result<(Vec<Duration>, f64)> {
        std::thread::sleep(Duration::from_secs(3));
        let rate_tps = CDC_LAG_RATE / CHANGES_PER_PROBE_TXN;
        let started = Instant::now();
        common::run_status(
            Command::new(common::pg_tool("pgbench"))
                .args([
                    "-n",
                    "-c",
                    "2",
                    "-j",
                    "2",
                    "-R",
                    &rate_tps.to_string(),
                    "-T",
                    &seconds.to_string(),
                    "-f",
                ])
                .arg(&script)
                .arg(&src)
                .stdout(Stdio::null()),
            "pgbench at a fixed rate",
        )?;
        let wrote = started.elapsed();
        let expected = count(pg, SOURCE_DB, "bench_probe")?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while count(tpg, TARGET_DB, "bench_probe")? < expected {
            if Instant::now() > deadline {
                return Err("the target did not catch up with the probe rows within 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let achieved = rate(expected * CHANGES_PER_PROBE_TXN, wrote);
        Ok((probe_lags(pg, tpg)?, achieved))
    })();
    stop(&mut running);
    let (mut lags, lag_rate) = lag?;
    if lags.is_empty() {
        return Err("no probe row reached the target".into());
    }
    lags.sort();
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
    Ok(Measured {
        backlog_changes,
        applied_changes,
        apply_time,
        idle_time,
        lag_probes: lags.len(),
        lag_rate,
        p50: at(0.50),
        p99: at(0.99),
        max: lags[lags.len() - 1],
    })
}

/// The task's URLs: plain in the file for password-less servers (the kit's),
/// otherwise as `${VAR}` references with the URLs in the environment.
fn task_urls(pg: &PgService, tpg: &PgService) -> TaskUrls {
    let source = pg.url(SOURCE_DB);
    let target = tpg.url(TARGET_DB);
    if pg.redacted_url("") == pg.url("") && tpg.redacted_url("") == tpg.url("") {
        return TaskUrls {
            source,
            target,
            env: Vec::new(),
        };
    }
    const SOURCE: &str = "FERRY_XTASK_SOURCE_URL";
    const TARGET: &str = "FERRY_XTASK_TARGET_URL";
    TaskUrls {
        source: format!("${{{SOURCE}}}"),
        target: format!("${{{TARGET}}}"),
        env: vec![(SOURCE.to_owned(), source), (TARGET.to_owned(), target)],
    }
}

/// The task file: every `public` table, full load then CDC.
fn cdc_task(urls: &TaskUrls, state_dir: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by `cargo xtask bench`; rewritten on every run."
    );
    let _ = writeln!(s, "[source]\nurl = {}\n", common::toml_string(&urls.source));
    let _ = writeln!(s, "[target]\nurl = {}\n", common::toml_string(&urls.target));
    let _ = writeln!(s, "[task]");
    let _ = writeln!(s, "name = \"{TASK}\"");
    let _ = writeln!(s, "mode = \"full-load-and-cdc\"");
    let _ = writeln!(s, "include = [\"public.*\"]");
    let _ = writeln!(
        s,
        "state-dir = {}",
        common::toml_string(&state_dir.display().to_string())
    );
    s
}

/// Commit timestamps are what the lag is measured from (the kit turns them on).
fn ensure_commit_timestamps(pg: &PgService) -> Result<()> {
    if pg.psql("postgres", "SHOW track_commit_timestamp")?.trim() == "on" {
        return Ok(());
    }
    let fix = if pg.is_kit_managed() {
        "this kit server predates the setting: `cargo xtask services down` and run again".to_owned()
    } else {
        format!(
            "set track_commit_timestamp = on on {} and restart it",
            pg.redacted_url("")
        )
    };
    Err(format!("the CDC bench measures lag with commit timestamps: {fix}").into())
}

/// `changes_applied` of the task's last run, from its `status.json`.
fn status_changes(state_dir: &Path) -> Result<u64> {
    let path = state_dir.join("status.json");
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    value
        .get("changes_applied")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| format!("{} has no changes_applied", path.display()).into())
}

/// The target holds the source's balances and history after the catch-up.
fn verify(pg: &PgService, tpg: &PgService) -> Result<()> {
    let digest = "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || '/' || \
                  (SELECT sum(tbalance) FROM pgbench_tellers) || '/' || \
                  (SELECT sum(bbalance) FROM pgbench_branches) || '/' || \
                  (SELECT count(*) || ':' || coalesce(sum(delta), 0) FROM pgbench_history)";
    let source = pg.psql(SOURCE_DB, digest)?;
    let target = tpg.psql(TARGET_DB, digest)?;
    if source.trim() != target.trim() {
        return Err(format!(
            "after the catch-up the target differs from the source (balances/history: \
             source {}, target {})",
            source.trim(),
            target.trim()
        )
        .into());
    }
    Ok(())
}

fn count(pg: &PgService, db: &str, table: &str) -> Result<u64> {
    let out = pg.psql(db, &format!("SELECT count(*) FROM {table}"))?;
    out.trim()
        .parse()
        .map_err(|e| format!("counting {db}.{table}: {e}").into())
}

/// Each probe row's target commit time minus its source commit time.
fn probe_lags(pg: &PgService, tpg: &PgService) -> Result<Vec<Duration>> {
    let query = "SELECT id, (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::int8 \
                 FROM bench_probe ORDER BY id";
    let source = commit_times(&pg.psql(SOURCE_DB, query)?)?;
    let target = commit_times(&tpg.psql(TARGET_DB, query)?)?;
    let mut lags = Vec::with_capacity(source.len());
    let mut target = target.into_iter().peekable();
    for (id, committed) in source {
        while target.peek().is_some_and(|(t, _)| *t < id) {
            target.next();
        }
        if let Some((t, applied)) = target.peek()
            && *t == id
        {
            lags.push(Duration::from_micros(applied.saturating_sub(committed)));
        }
    }
    Ok(lags)
}

fn commit_times(out: &str) -> Result<Vec<(i64, u64)>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (id, at) = line
                .split_once('|')
                .ok_or_else(|| format!("unexpected psql line {line:?}"))?;
            let id = id
                .trim()
                .parse::<i64>()
                .map_err(|e| format!("{line:?}: {e}"))?;
            let at = at.trim().parse::<u64>().map_err(|e| {
                format!("{line:?}: {e} (is track_commit_timestamp on for this row?)")
            })?;
            Ok((id, at))
        })
        .collect()
}

/// Stops a background `ferry run` as an operator would (SIGTERM, clean stop).
fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn render_text(m: &Measured, throughput: f64) -> String {
    format!(
        "CDC PostgreSQL → PostgreSQL\n  backlog: {} row changes applied in {:.1} s ({:.1} s of it \
         start-up and caught-up check, as an idle run) = {} changes/s (target ≥ {}: {})\n  lag at {} changes/s ({} probes): p50 {}, p99 {}, max {} \
         (target p99 < {} s: {})",
        thousands(m.applied_changes),
        m.apply_time.as_secs_f64(),
        m.idle_time.as_secs_f64(),
        thousands(throughput as u64),
        thousands(THROUGHPUT_TARGET as u64),
        verdict(throughput >= THROUGHPUT_TARGET),
        thousands(m.lag_rate as u64),
        thousands(m.lag_probes as u64),
        ms(m.p50),
        ms(m.p99),
        ms(m.max),
        P99_LAG_TARGET,
        verdict(m.p99.as_secs_f64() < P99_LAG_TARGET),
    )
}

fn render_markdown(
    info: &RunInfo,
    m: &Measured,
    throughput: f64,
    transactions: u64,
    seconds: u64,
) -> String {
    let mut s = String::from("## CDC PostgreSQL → PostgreSQL\n\n");
    let _ = writeln!(
        s,
        "Measured {} on {} ({} CPUs, {}), PostgreSQL {}, commit {}; {} before the timings. \
         The source is the kit's server, the target a second server on the same machine.\n",
        info.date,
        info.cpu_model,
        info.cpus,
        info.memory,
        info.pg_version,
        info.commit,
        info.load()
    );
    let _ = writeln!(s, "| measure | result | target |");
    let _ = writeln!(s, "|---|---:|---|");
    let _ = writeln!(
        s,
        "| backlog applied (`pgbench` TPC-B-like, {} transactions = {} row changes written, {} applied) | {} changes/s: {:.1} s, less {:.1} s of start-up and caught-up check (an idle run) | ≥ {} changes/s: {} |",
        thousands(transactions),
        thousands(m.backlog_changes),
        thousands(m.applied_changes),
        thousands(throughput as u64),
        m.apply_time.as_secs_f64(),
        m.idle_time.as_secs_f64(),
        thousands(THROUGHPUT_TARGET as u64),
        verdict(throughput >= THROUGHPUT_TARGET)
    );
    let _ = writeln!(
        s,
        "| lag p50 / p99 / max, source commit → target commit, at {} changes/s for {seconds} s ({} probes) | {} / {} / {} | p99 < {} s: {} |",
        thousands(m.lag_rate as u64),
        thousands(m.lag_probes as u64),
        ms(m.p50),
        ms(m.p99),
        ms(m.max),
        P99_LAG_TARGET,
        verdict(m.p99.as_secs_f64() < P99_LAG_TARGET)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_times_parse_psql_rows() {
        let rows = commit_times("1|1700000000000000\n2|1700000000000500\n").expect("parses");
        assert_eq!(
            rows,
            vec![(1, 1_700_000_000_000_000), (2, 1_700_000_000_000_500)]
        );
        assert!(
            commit_times("1|\n").is_err(),
            "a NULL commit time is an error"
        );
    }
}
