//! `ferry run --metrics-addr`: Prometheus metrics, the live status as JSON and
//! the status page of a running CDC task, read over HTTP and checked against the
//! changes made.

mod cdc;
mod common;
mod cross_engine;

use cdc::{Ferry, cdc_task, wait_for};
use common::TempDir;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// `GET path` on `addr`: (status line, body).
fn get(addr: &str, path: &str) -> Result<(String, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {response:?}"))?;
    Ok((
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    ))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn metrics_status_json_and_page_show_the_running_task() {
    let (pg, src, dst) = cdc::pg_databases_with(
        "mon_src",
        "mon_dst",
        "CREATE TABLE items (id int PRIMARY KEY, v text);
         INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 25) g;",
    );
    let dir = TempDir::new("monitoring");
    let addr = format!("127.0.0.1:{}", free_port());
    let task = cdc_task(
        &pg.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &["public.items"],
        "",
    );
    let ferry = Ferry::start(&dir, "mon", &task, &["--metrics-addr", &addr]);
    cdc::wait_for_cdc(&ferry);
    pg.psql(
        &src,
        "INSERT INTO items VALUES (100, 'a'), (101, 'b'), (102, 'c');
         UPDATE items SET v = 'x' WHERE id = 1;
         DELETE FROM items WHERE id = 2;",
    )
    .expect("changes");
    let line = |table_op: &str, n: u64| {
        format!(
            "ferry_table_changes_applied_total{{task=\"mon\",table=\"public.items\",target=\"public.items\",operation=\"{table_op}\"}} {n}"
        )
    };
    wait_for("the changes in /metrics", Duration::from_secs(60), || {
        let (status, body) = get(&addr, "/metrics")?;
        if !status.contains("200") {
            return Err(status);
        }
        let committed = "ferry_cdc_changes_applied_total{task=\"mon\"} 5".to_string();
        for expected in [
            line("insert", 3),
            line("update", 1),
            line("delete", 1),
            committed,
        ] {
            if !body.contains(&expected) {
                return Err(format!("no {expected:?} in\n{body}"));
            }
        }
        Ok(())
    });
    let (_, body) = get(&addr, "/metrics").expect("metrics");
    assert!(
        body.contains("ferry_cdc_changes_applied_total{task=\"mon\"} 5"),
        "{body}"
    );
    assert!(
        body.contains("ferry_table_full_load_rows{task=\"mon\",table=\"public.items\",target=\"public.items\"} 25"),
        "{body}"
    );
    assert!(
        body.contains("ferry_task_info{task=\"mon\",mode=\"full-load-and-cdc\",phase=\"cdc\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE ferry_cdc_lag_seconds gauge"),
        "{body}"
    );

    let (_, json) = get(&addr, "/status.json").expect("status.json");
    let status: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(status["changes_applied"], 5, "{status}");

    let (status, page) = get(&addr, "/").expect("page");
    assert!(status.contains("200"), "{status}");
    assert!(page.contains("<td class=\"inserts\">3</td>"), "{page}");
    assert!(
        page.contains("<td class=\"full-load-rows\">25</td>"),
        "{page}"
    );
    assert!(page.contains("<b id=\"changes\">5</b>"), "{page}");
    let (status, _) = get(&addr, "/nope").expect("404");
    assert!(status.contains("404"), "{status}");

    cdc::stop_and_clean_up(ferry);
    let _ = pg.drop_database(&src);
    let _ = pg.drop_database(&dst);
}

/// Debian's Chromium, or `None` (then the test is skipped, except under `CI=true`,
/// where it fails: `cargo xtask test` installs it).
fn chromium() -> Option<std::path::PathBuf> {
    match ferry_tests::find_program("chromium") {
        Some(path) => Some(path),
        None if ferry_tests::is_ci() => {
            panic!("chromium is not installed (cargo xtask test installs it)")
        }
        None => {
            eprintln!("SKIPPED: chromium is not installed (cargo xtask test installs it)");
            None
        }
    }
}

/// The page's DOM after Chromium loaded it headless.
fn rendered(chromium: &std::path::Path, url: &str, profile: &std::path::Path) -> String {
    let mut child = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish loading {url} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut dom = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut dom);
    }
    dom
}

#[test]
fn the_status_page_shows_the_numbers_in_a_real_browser() {
    let Some(chromium) = chromium() else {
        return;
    };
    let (pg, src, dst) = cdc::pg_databases_with(
        "page_src",
        "page_dst",
        "CREATE TABLE things (id int PRIMARY KEY, v text);
         INSERT INTO things SELECT g, 'v' || g FROM generate_series(1, 40) g;",
    );
    let dir = TempDir::new("status-page");
    let addr = format!("127.0.0.1:{}", free_port());
    let task = cdc_task(
        &pg.url(&src),
        &pg.url(&dst),
        "full-load-and-cdc",
        &["public.things"],
        "",
    );
    let ferry = Ferry::start(&dir, "page", &task, &["--metrics-addr", &addr]);
    cdc::wait_for_cdc(&ferry);
    pg.psql(
        &src,
        "INSERT INTO things VALUES (41, 'x'), (42, 'y');
         UPDATE things SET v = 'z' WHERE id < 4;
         DELETE FROM things WHERE id = 40;",
    )
    .expect("changes");
    let url = format!("http://{addr}/");
    let profile = dir.join("chromium-profile");
    wait_for(
        "the page to show the changes",
        Duration::from_secs(90),
        || {
            let dom = rendered(&chromium, &url, &profile);
            for expected in [
                "<span id=\"task\">page</span>",
                "<b id=\"phase\">cdc</b>",
                "<b id=\"changes\">6</b>",
                "<td class=\"full-load-rows\">40</td>",
                "<td class=\"inserts\">2</td>",
                "<td class=\"updates\">3</td>",
                "<td class=\"deletes\">1</td>",
                "<td class=\"state\">applying</td>",
            ] {
                if !dom.contains(expected) {
                    return Err(format!("no {expected:?} in the rendered page:\n{dom}"));
                }
            }
            Ok(())
        },
    );
    cdc::stop_and_clean_up(ferry);
    let _ = pg.drop_database(&src);
    let _ = pg.drop_database(&dst);
}
