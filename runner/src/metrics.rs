//! The monitoring endpoint of a running task (`ferry run --metrics-addr`):
//! Prometheus metrics at `/metrics`, the live status as JSON at `/status.json`
//! and a small read-only status page at `/`. A minimal HTTP/1.1 server: `GET`
//! only, one response per connection.

use crate::status::{StatusBoard, TaskStatus};
use ferry_core::{Error, ErrorKind, Result};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head accepted.
const MAX_REQUEST: usize = 8 << 10;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Listens on `addr` and serves `board` until the returned task is aborted.
/// Returns the address actually bound (port 0 picks a free port).
pub async fn serve(
    addr: SocketAddr,
    board: StatusBoard,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!("cannot serve metrics on {addr}: {e} (choose another --metrics-addr)"),
        )
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(address = %bound, "serving metrics at /metrics and the status page at /");
    let handle = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let board = board.clone();
            tokio::spawn(async move {
                if let Err(e) = respond(stream, &board).await {
                    tracing::debug!(error = %e, "metrics request failed");
                }
            });
        }
    });
    Ok((bound, handle))
}

async fn respond(mut stream: TcpStream, board: &StatusBoard) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = if method != "GET" && method != "HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_owned(),
        )
    } else {
        let snapshot = board.snapshot();
        match path {
            "/metrics" => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                prometheus(&snapshot),
            ),
            "/status.json" => (
                "200 OK",
                "application/json",
                serde_json::to_string_pretty(&snapshot).unwrap_or_default(),
            ),
            "/" | "/index.html" => ("200 OK", "text/html; charset=utf-8", page(&snapshot)),
            _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        }
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// A Prometheus label value, escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics in Prometheus' text exposition format (names in the README).
pub fn prometheus(s: &TaskStatus) -> String {
    let task = label(&s.task);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let t = format!("task=\"{task}\"");
    metric(
        "ferry_task_info",
        "gauge",
        "The task: its mode and current phase (starting, full-load, cdc, stopped, failed).",
        vec![(
            format!(
                "{t},mode=\"{}\",phase=\"{}\"",
                label(&s.mode),
                label(&s.phase)
            ),
            1.0,
        )],
    );
    metric(
        "ferry_task_start_time_seconds",
        "gauge",
        "When the run started, seconds since 1970.",
        vec![(t.clone(), s.started_at as f64)],
    );
    if let Some(lag) = s.lag_seconds {
        metric(
            "ferry_cdc_lag_seconds",
            "gauge",
            "Seconds between the source commit of the last applied change and now.",
            vec![(t.clone(), lag)],
        );
    }
    metric(
        "ferry_cdc_caught_up",
        "gauge",
        "1 when the last target commit reached everything the source had.",
        vec![(t.clone(), if s.caught_up { 1.0 } else { 0.0 })],
    );
    metric(
        "ferry_cdc_changes_applied_total",
        "counter",
        "Row changes applied by CDC in this run.",
        vec![(t.clone(), s.changes_applied as f64)],
    );
    metric(
        "ferry_cdc_commits_total",
        "counter",
        "Target transactions committed by CDC in this run.",
        vec![(t.clone(), s.commits as f64)],
    );
    metric(
        "ferry_cdc_reconnects_total",
        "counter",
        "Reconnections after dropped connections in this run.",
        vec![(t.clone(), s.reconnects as f64)],
    );
    let table = |source: &str, target: &str| {
        format!(
            "{t},table=\"{}\",target=\"{}\"",
            label(source),
            label(target)
        )
    };
    metric(
        "ferry_table_full_load_rows",
        "gauge",
        "Rows copied by the table's full load.",
        s.tables
            .iter()
            .map(|x| (table(&x.source, &x.target), x.full_load_rows as f64))
            .collect(),
    );
    let mut changes = Vec::new();
    for x in &s.tables {
        for (op, n) in [
            ("insert", x.inserts),
            ("update", x.updates),
            ("delete", x.deletes),
            ("truncate", x.truncates),
            ("ddl", x.ddls),
        ] {
            changes.push((
                format!("{},operation=\"{op}\"", table(&x.source, &x.target)),
                n as f64,
            ));
        }
    }
    metric(
        "ferry_table_changes_applied_total",
        "counter",
        "Changes applied to the table by CDC in this run, by operation.",
        changes,
    );
    metric(
        "ferry_table_state",
        "gauge",
        "The table's state (queued, loading, cached changes, applying, loaded): 1 for the current one.",
        s.tables
            .iter()
            .map(|x| {
                (
                    format!(
                        "{},state=\"{}\"",
                        table(&x.source, &x.target),
                        x.phase.as_str()
                    ),
                    1.0,
                )
            })
            .collect(),
    );
    out
}

/// HTML-escapes `text`.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The status page: the task and a row per table, refreshed every 2 seconds.
pub fn page(s: &TaskStatus) -> String {
    let mut rows = String::new();
    for t in &s.tables {
        let _ = writeln!(
            rows,
            "<tr data-table=\"{src}\"><td>{src}</td><td>{dst}</td><td class=\"state\">{state}</td>\
             <td class=\"full-load-rows\">{full}</td><td class=\"inserts\">{i}</td>\
             <td class=\"updates\">{u}</td><td class=\"deletes\">{d}</td>\
             <td class=\"truncates\">{tr}</td><td class=\"ddls\">{ddl}</td></tr>",
            src = html(&t.source),
            dst = html(&t.target),
            state = t.phase.as_str(),
            full = t.full_load_rows,
            i = t.inserts,
            u = t.updates,
            d = t.deletes,
            tr = t.truncates,
            ddl = t.ddls,
        );
    }
    let lag = s
        .lag_seconds
        .map_or_else(|| "-".to_owned(), |l| format!("{l:.1} s"));
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>ferry: {task}</title><style>body{{font-family:sans-serif;margin:2em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         td:first-child,td:nth-child(2),td:nth-child(3){{text-align:left}}</style></head><body>\n\
         <h1>ferry task <span id=\"task\">{task}</span></h1>\n\
         <p>mode <b id=\"mode\">{mode}</b>, phase <b id=\"phase\">{phase}</b>, position \
         <b id=\"position\">{position}</b>, lag <b id=\"lag\">{lag}</b>{caught}</p>\n\
         <p>changes applied <b id=\"changes\">{changes}</b> in <b id=\"commits\">{commits}</b> \
         commits, reconnects <b id=\"reconnects\">{reconnects}</b></p>\n{error}\
         <table id=\"tables\"><tr><th>table</th><th>target</th><th>state</th><th>full load rows</th>\
         <th>inserts</th><th>updates</th><th>deletes</th><th>truncates</th><th>DDL</th></tr>\n{rows}</table>\n\
         </body></html>\n",
        task = html(&s.task),
        mode = html(&s.mode),
        phase = html(&s.phase),
        position = html(s.position_text.as_deref().unwrap_or("-")),
        caught = if s.caught_up { " (caught up)" } else { "" },
        changes = s.changes_applied,
        commits = s.commits,
        reconnects = s.reconnects,
        error = s
            .last_error
            .as_deref()
            .map(|e| format!("<p id=\"error\">last error: {}</p>\n", html(e)))
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{TablePhase, TableStatus};

    fn status() -> TaskStatus {
        TaskStatus {
            task: "shop".into(),
            mode: "cdc".into(),
            phase: "cdc".into(),
            pid: 1,
            started_at: 100,
            updated_at: 101,
            position: None,
            position_text: Some("0/16B3748".into()),
            source_time: None,
            lag_seconds: Some(0.5),
            caught_up: true,
            changes_applied: 7,
            commits: 2,
            reconnects: 0,
            last_error: Some("<oops>".into()),
            tables: vec![TableStatus {
                source: "public.a\"b".into(),
                target: "public.ab".into(),
                phase: TablePhase::Applying,
                full_load_rows: 10,
                inserts: 3,
                updates: 2,
                deletes: 1,
                truncates: 0,
                ddls: 1,
            }],
        }
    }

    #[test]
    fn metrics_have_help_type_and_escaped_labels() {
        let text = prometheus(&status());
        assert!(
            text.contains("# TYPE ferry_cdc_changes_applied_total counter"),
            "{text}"
        );
        assert!(
            text.contains("ferry_cdc_changes_applied_total{task=\"shop\"} 7"),
            "{text}"
        );
        assert!(
            text.contains(
                "ferry_table_changes_applied_total{task=\"shop\",table=\"public.a\\\"b\",target=\"public.ab\",operation=\"update\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("ferry_cdc_lag_seconds{task=\"shop\"} 0.5"),
            "{text}"
        );
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let html = page(&status());
        assert!(
            html.contains("&lt;oops&gt;") && !html.contains("<oops>"),
            "{html}"
        );
        assert!(html.contains("<td class=\"inserts\">3</td>"), "{html}");
    }
}
