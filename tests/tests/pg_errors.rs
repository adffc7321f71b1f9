//! Clear failures: wrong password, missing table, unreachable host.

mod common;

use common::{TempDir, ferry_run, full_load_task};
use ferry_tests::postgres_or_panic;
use std::time::{Duration, Instant};

#[test]
fn wrong_password_fails_clearly_without_printing_it() {
    let pg = postgres_or_panic();
    let db = pg.create_database("e2e_pw").expect("db");
    let role = format!("ferry_pw_{}", std::process::id());
    pg.psql(
        &db,
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'right-password-xyz'"),
    )
    .expect("create role");
    let secret = "Wr0ng-Pa55word-DoNotPrint";
    let base = format!("postgres://{role}:{secret}@127.0.0.1:{}", pg.port);
    let dir = TempDir::new("pw");
    let task = full_load_task(
        &format!("{base}/{db}"),
        &format!("{base}/{db}"),
        &["public.*"],
        "drop-and-create",
    );
    let run = ferry_run(&dir, &task, &[]);
    let out = run.all_output();
    assert!(!run.status.success(), "ferry must fail:\n{out}");
    assert!(!out.contains(secret), "the password leaked:\n{out}");
    assert!(
        out.contains("password authentication failed"),
        "no clear message:\n{out}"
    );
    // The same through ${ENV} interpolation.
    let task = full_load_task(
        &format!(
            "postgres://{role}:${{FERRY_TEST_SECRET}}@127.0.0.1:{}/{db}",
            pg.port
        ),
        &pg.url(&db),
        &["public.*"],
        "drop-and-create",
    );
    let run = ferry_run(&dir, &task, &[("FERRY_TEST_SECRET", secret)]);
    let out = run.all_output();
    assert!(!run.status.success());
    assert!(!out.contains(secret), "the password leaked:\n{out}");
}

#[test]
fn missing_table_is_named_in_the_error() {
    let pg = postgres_or_panic();
    let source = pg.create_database("e2e_missing_src").expect("db");
    let target = pg.create_database("e2e_missing_dst").expect("db");
    pg.psql(&source, "CREATE TABLE present (id int PRIMARY KEY)")
        .expect("table");
    let dir = TempDir::new("missing");
    let task = full_load_task(
        &pg.url(&source),
        &pg.url(&target),
        &["public.present", "public.no_such_table"],
        "drop-and-create",
    );
    let run = ferry_run(&dir, &task, &[]);
    let out = run.all_output();
    assert!(!run.status.success(), "ferry must fail:\n{out}");
    assert!(
        out.contains("public.no_such_table"),
        "table not named:\n{out}"
    );
    assert!(out.contains("does not exist"), "no clear message:\n{out}");
}

#[test]
fn unreachable_hosts_fail_within_bounded_time() {
    let pg = postgres_or_panic();
    let target = pg.create_database("e2e_unreach").expect("db");
    // A port where nothing listens, and a listener that never speaks.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let dir = TempDir::new("unreach");
    for port in [closed, silent_port] {
        let task = full_load_task(
            &format!("postgres://postgres@127.0.0.1:{port}/db"),
            &pg.url(&target),
            &["public.*"],
            "drop-and-create",
        );
        let started = Instant::now();
        let run = ferry_run(&dir, &task, &[]);
        let out = run.all_output();
        assert!(!run.status.success(), "ferry must fail:\n{out}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            out.contains(&format!("127.0.0.1:{port}")),
            "host not named:\n{out}"
        );
    }
    drop(silent);
}
