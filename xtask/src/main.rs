//! `cargo xtask`: Ferry's developer and CI tasks.
//!
//! ```text
//! cargo xtask test [-- ARGS]         install prerequisites, start services, run the
//!                                    whole workspace's tests, stop services
//! cargo xtask services up|down|env   manage the shared test services by hand
//! cargo xtask demo                   end-to-end demonstration
//! cargo xtask bench                  benchmarks against the reference tools
//! ```
//!
//! The alias in `.cargo/config.toml` builds this into `target/xtask`, so it never
//! invalidates the main build. Dependencies: `ferry-tests` (the test-service kit)
//! and std only.

use std::env;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use ferry_tests::{KitError, PG_INSTALL_HINT, PG_URL_ENV, PgService};

mod bench;
mod common;
mod demo;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [-- ARGS]        install missing prerequisites (as root), start the test
                        services, run every test of the workspace (doc tests, then
                        cargo nextest if installed, else cargo test), stop the
                        services it started; exits with the tests' exit code.
                        ARGS go to the runner (and skip the doc tests), e.g.
                        `cargo xtask test -- -p ferry-tests`
  services up           start the shared test services and print their environment
  services env          print the environment of the running test services
  services down         stop the test services and remove their directory
  demo                  run the end-to-end demonstration
  bench                 run the benchmarks (report in target/bench/report.md)
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["test", rest @ ..] => test(rest),
        ["services", "up"] => services_up(),
        ["services", "env"] => services_env(),
        ["services", "down"] => services_down(),
        ["demo"] => demo::demo(),
        ["bench"] => bench::bench(),
        [] | ["help" | "-h" | "--help"] => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprint!("unknown command: {}\n\n{USAGE}", args.join(" "));
            Ok(ExitCode::from(2))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Errors of xtask itself (the tests' own failures are an exit code, not an error).
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------
// cargo xtask test
// ---------------------------------------------------------------------------

/// Prerequisites, services, the whole workspace's tests, then services down
/// (also when the tests fail). Extra arguments go to the test runner.
fn test(extra: &[&str]) -> Result<ExitCode> {
    let extra: Vec<&str> = match extra {
        ["--", rest @ ..] => rest.to_vec(),
        other => other.to_vec(),
    };

    ensure_prerequisites(&[])?;

    let pg = ferry_tests::postgres()?;
    eprintln!(
        "xtask: PostgreSQL for tests at {}{}",
        pg.redacted_url(""),
        if pg.started_here() {
            " (started for this run)"
        } else {
            " (already running; left running afterwards)"
        }
    );

    let status = run_tests(&pg, &extra);

    // Stop what this run started, whatever the tests did.
    if pg.started_here()
        && let Err(e) = pg.stop()
    {
        eprintln!("xtask: warning: could not stop PostgreSQL: {e}");
    }

    let code = status?;
    Ok(ExitCode::from(code))
}

/// Makes sure the PostgreSQL server binaries and the client programs in `tools`
/// (`pg_dump`, `pgbench`...) are installed: installs the packages when something
/// is missing and we run as root; otherwise prints the one `apt-get` line needed
/// and fails. `test`, `demo` and `bench` all start here.
pub(crate) fn ensure_prerequisites(tools: &[&str]) -> Result<()> {
    let missing_tools = || -> Vec<&str> {
        tools
            .iter()
            .copied()
            .filter(|t| !common::has_pg_tool(t))
            .collect()
    };
    let hint = if env::var_os(PG_URL_ENV).is_some_and(|v| !v.is_empty()) {
        // An external server was named: only the clients are needed (the kit
        // checks `psql` when it builds the service handle).
        let missing = missing_tools();
        if missing.is_empty() {
            return Ok(());
        }
        format!(
            "{} not found; install PostgreSQL 15 with: {PG_INSTALL_HINT}",
            missing.join(", ")
        )
    } else {
        match ferry_tests::check_postgres_binaries() {
            Ok(()) => {
                let missing = missing_tools();
                if missing.is_empty() {
                    return Ok(());
                }
                format!(
                    "{} not found; install PostgreSQL 15 with: {PG_INSTALL_HINT}",
                    missing.join(", ")
                )
            }
            Err(KitError::Missing { hint }) => hint,
            Err(e) => return Err(e.into()),
        }
    };
    eprintln!("xtask: {hint}");
    if !ferry_tests::running_as_root() {
        return Err(format!("missing prerequisites; run as root: {PG_INSTALL_HINT}").into());
    }
    eprintln!("xtask: installing: {PG_INSTALL_HINT}");
    for args in [
        &["update"][..],
        &["install", "-y", "--no-install-recommends", "postgresql"][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("running apt-get: {e}"))?;
        if !status.success() {
            return Err(format!("`apt-get {}` failed ({status})", args.join(" ")).into());
        }
    }
    if env::var_os(PG_URL_ENV).is_none_or(|v| v.is_empty()) {
        ferry_tests::check_postgres_binaries()?;
    }
    let missing = missing_tools();
    if !missing.is_empty() {
        return Err(format!("still missing after installing: {}", missing.join(", ")).into());
    }
    Ok(())
}

/// Runs the workspace's tests with `FERRY_TEST_PG_URL` set; returns their exit code.
fn run_tests(pg: &PgService, extra: &[&str]) -> Result<u8> {
    let root = ferry_tests::workspace_root();
    let use_nextest = cargo(&root)
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());

    // Doc tests run only for the full run: extra arguments select tests, and
    // they mean the runner's selection.
    let run_doc = extra.is_empty();
    // `-p NAME` in ARGS narrows the run; otherwise it is the whole workspace.
    let scope: &[&str] = if extra
        .iter()
        .any(|a| *a == "-p" || a.starts_with("--package"))
    {
        &[]
    } else {
        &["--workspace"]
    };
    if use_nextest {
        // nextest does not run doc tests: run them first, so that nextest's
        // summary is the closing line of the run.
        let doc = if run_doc {
            run_cargo(&root, pg, &["test", "--workspace", "--doc"])?
        } else {
            0
        };
        let mut args = vec!["nextest", "run", "--no-fail-fast"];
        args.extend_from_slice(scope);
        args.extend_from_slice(extra);
        let code = run_cargo(&root, pg, &args)?;
        Ok(if code != 0 { code } else { doc })
    } else {
        let mut args = vec!["test", "--all-targets", "--no-fail-fast"];
        args.extend_from_slice(scope);
        args.extend_from_slice(extra);
        let code = run_cargo(&root, pg, &args)?;
        if code != 0 || !run_doc {
            return Ok(code);
        }
        run_cargo(&root, pg, &["test", "--workspace", "--doc"])
    }
}

fn run_cargo(root: &Path, pg: &PgService, args: &[&str]) -> Result<u8> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = cargo(root)
        .args(args)
        .env(PG_URL_ENV, &pg.base_url)
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    // Killed by a signal (no code), or an out-of-range code: report a failure.
    Ok(match status.code() {
        Some(c) => u8::try_from(c).unwrap_or(1),
        None => 1,
    })
}

/// `cargo` (the one that runs us) in the workspace root, without the package
/// variables `cargo run` set for xtask itself. `CI` and everything else pass through.
fn cargo(root: &Path) -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.current_dir(root);
    for (key, _) in env::vars_os() {
        let key_str = key.to_string_lossy();
        if key_str.starts_with("CARGO_PKG_")
            || matches!(
                key_str.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

// ---------------------------------------------------------------------------
// cargo xtask services
// ---------------------------------------------------------------------------

/// Starts the kit's own instances (ignoring any `FERRY_TEST_PG_URL`) and prints
/// `export` lines for a shell: `eval "$(cargo xtask services up)"`.
fn services_up() -> Result<ExitCode> {
    ensure_prerequisites_or_hint()?;
    let pg = ferry_tests::local_postgres()?;
    print_env(&pg);
    Ok(ExitCode::SUCCESS)
}

/// Prints `export` lines for the running instances; fails if none runs.
fn services_env() -> Result<ExitCode> {
    match ferry_tests::running_postgres()? {
        Some(pg) => {
            print_env(&pg);
            Ok(ExitCode::SUCCESS)
        }
        None => Err(KitError::NotRunning {
            service: "PostgreSQL",
        }
        .into()),
    }
}

/// Stops the kit's instances and removes their directory.
fn services_down() -> Result<ExitCode> {
    ferry_tests::stop_all()?;
    eprintln!("xtask: test services stopped");
    Ok(ExitCode::SUCCESS)
}

/// Like [`ensure_prerequisites`] but never installs: `services up` only tells.
fn ensure_prerequisites_or_hint() -> Result<()> {
    match ferry_tests::check_postgres_binaries() {
        Err(KitError::Missing { hint }) => Err(hint.into()),
        other => Ok(other?),
    }
}

fn print_env(pg: &PgService) {
    // The kit's own instance has no password (trust auth on loopback); the URL is
    // safe to print. Never echo one that carries a password.
    if pg.redacted_url("") != pg.url("") {
        println!("# {PG_URL_ENV} holds a password and is not printed");
    } else {
        println!("export {PG_URL_ENV}={}", pg.base_url);
    }
}
