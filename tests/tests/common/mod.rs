//! Helpers shared by the end-to-end tests: run the `ferry` binary on a task file.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Path of the `ferry` binary of this workspace, built if missing.
pub fn ferry_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // Test executables live in <target>/<profile>/deps/.
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target profile directory")
            .to_path_buf();
        let bin = profile_dir.join("ferry");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "--package", "ferry", "--bin", "ferry"]);
        if release {
            build.arg("--release");
        }
        // Always ask cargo: it is a no-op when the binary is fresh, and it rebuilds
        // a stale one left by an earlier run.
        let status = build.status().expect("run cargo build for ferry");
        assert!(status.success(), "building the ferry binary failed");
        assert!(bin.exists(), "ferry binary not found at {}", bin.display());
        bin
    })
    .clone()
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "ferry-e2e-{prefix}-{}-{n}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Result of one `ferry` invocation.
pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything the process printed.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Writes `task_toml` to a file and runs `ferry run` on it.
pub fn ferry_run(dir: &TempDir, task_toml: &str, extra_env: &[(&str, &str)]) -> Run {
    let task = dir.join("task.toml");
    std::fs::write(&task, task_toml).expect("write task file");
    let mut cmd = Command::new(ferry_binary());
    cmd.arg("run").arg(&task).arg("--no-progress");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run ferry");
    Run {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A full-load task file between two URLs.
pub fn full_load_task(source: &str, target: &str, include: &[&str], prep: &str) -> String {
    let include = include
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[source]\nurl = {source:?}\n\n[target]\nurl = {target:?}\n\n[task]\nmode = \"full-load\"\n\
         table-prep = {prep:?}\ninclude = [{include}]\nparallelism = 4\n"
    )
}
