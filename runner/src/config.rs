//! The task file (DESIGN.md §5a): TOML, `${ENV}` interpolation in string values,
//! unknown keys rejected, secrets held in [`SecretString`] and shown redacted.
//!
//! ```toml
//! [source]
//! url = "postgres://user:${PG_PASSWORD}@db1:5432/shop"
//! [target]
//! url = "postgres://user:${PG_PASSWORD}@db2:5432/shop"
//! [task]
//! mode = "full-load"
//! table-prep = "drop-and-create"
//! include = ["shop.*"]
//! exclude = []
//! parallelism = 4
//! state-dir = ".ferry/shop"
//! bad-data = "fail"               # fail | null | clamp | skip-row
//! [task.bad-data-tables]
//! "shop.legacy" = "null"
//! ```

use ferry_core::{BadDataPolicy, TableFilter, TablePrep};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Default number of concurrent snapshot partitions.
pub const DEFAULT_PARALLELISM: usize = 4;
/// Longest task name.
pub const MAX_TASK_NAME: usize = 40;

/// Where in the task file something is: file, line (1-based) and dotted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The task file.
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// Dotted key path (`task.mode`, `source.options.sslmode`), where known.
    pub key: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        Ok(())
    }
}

/// Everything that can be wrong with a task file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read task file {}: {source}", file.display())]
    Read {
        /// The task file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{at}: invalid TOML: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// What the parser said.
        message: String,
    },
    /// A key is unknown, missing, or has a value of the wrong type or range.
    #[error("{at}: {message}")]
    Invalid {
        /// Where.
        at: Location,
        /// What is wrong and what is expected.
        message: String,
    },
    /// `${NAME}` names an environment variable that is not set.
    #[error("{at}: environment variable `{var}` is not set (referenced as ${{{var}}})")]
    MissingEnv {
        /// Where.
        at: Location,
        /// The variable's name.
        var: String,
    },
    /// A `${...}` reference is malformed.
    #[error("{at}: {message} (write $${{ for a literal ${{)")]
    Interpolation {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
    },
    /// The key is part of the task file format but Ferry cannot do it yet.
    #[error("{at}: {what} is not supported yet; remove it from the task file")]
    NotSupported {
        /// Where.
        at: Location,
        /// The feature.
        what: String,
    },
}

impl ConfigError {
    /// Where in the task file the error is, if it is about the file's content.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { at, .. }
            | ConfigError::Invalid { at, .. }
            | ConfigError::MissingEnv { at, .. }
            | ConfigError::Interpolation { at, .. }
            | ConfigError::NotSupported { at, .. } => Some(at),
        }
    }
}

/// What a task does (DESIGN.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskMode {
    /// Copy the selected tables as they are now.
    #[default]
    FullLoad,
    /// Stream changes from a start position.
    Cdc,
    /// Copy a consistent snapshot, then apply every change made since.
    FullLoadAndCdc,
}

impl fmt::Display for TaskMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskMode::FullLoad => "full-load",
            TaskMode::Cdc => "cdc",
            TaskMode::FullLoadAndCdc => "full-load-and-cdc",
        })
    }
}

/// A parsed, interpolated and validated task file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TaskConfig {
    /// `[source]`: where data is read from.
    pub source: EndpointConfig,
    /// `[target]`: where data is written to.
    pub target: EndpointConfig,
    /// `[task]`: what to do; every key has a default.
    #[serde(default)]
    pub task: TaskSettings,
    /// `[[rules]]`: table mapping rules (select, rename, transform). Accepted by the
    /// parser so the file format is stable, rejected until rules are implemented.
    #[serde(default)]
    rules: Option<Vec<toml::Table>>,
    /// `mapping = "dms-table-mappings.json"`: an AWS DMS table-mapping file, used
    /// as it is (relative to the task file). Its selection rules replace
    /// `include`/`exclude`; its transformation rules rename schemas, tables and
    /// columns.
    #[serde(default)]
    mapping: Option<String>,
    /// The rules read from `mapping`.
    #[serde(skip)]
    table_mapping: Option<std::sync::Arc<ferry_core::TableMapping>>,
    /// Values of environment variables interpolated into `[source]` / `[target]`.
    #[serde(skip)]
    env_secrets: Vec<SecretString>,
    /// The task file this was read from.
    #[serde(skip)]
    file: PathBuf,
}

/// `[source]` or `[target]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EndpointConfig {
    /// Connection URL; its scheme picks the connector (`postgres://`,
    /// `postgresql://`, `mysql://`, `mariadb://`, `sqlite://`, `mongodb://`, `s3://`,
    /// `kinesis://`, `dynamodb://`, `kafka://`). Put secrets in the environment:
    /// `postgres://user:${PG_PASSWORD}@host:5432/db`. Never logged unredacted.
    #[serde(deserialize_with = "secret_string")]
    pub url: SecretString,
    /// `[source.options]` / `[target.options]`: connector-specific settings.
    #[serde(default)]
    pub options: toml::Table,
}

impl EndpointConfig {
    /// The URL with its password (and secret query parameters) replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }

    /// The URL's scheme in lower case, or `""` when it has none.
    pub fn scheme(&self) -> String {
        url_scheme(self.url.expose_secret()).to_ascii_lowercase()
    }
}

/// `[task]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TaskSettings {
    /// `full-load` (default) | `cdc` | `full-load-and-cdc`.
    #[serde(default)]
    pub mode: TaskMode,
    /// What to do to each target table before loading: `drop-and-create` (default)
    /// | `truncate` | `do-nothing`.
    #[serde(default)]
    pub table_prep: TablePrep,
    /// `schema.table` patterns (`%` or `*` wildcards) of the tables to copy; empty
    /// (default) selects every table. A pattern without wildcards must match a table.
    #[serde(default)]
    pub include: Vec<String>,
    /// `schema.table` patterns of tables to leave out, applied after `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Number of table partitions copied at once (default 4, at least 1).
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
    /// Directory for checkpoints and statistics when the target cannot hold them.
    /// When set, every bad value met under a bad-data policy is also written to
    /// `<state-dir>/bad-rows.jsonl`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// What to do with a value the target cannot hold (NUL bytes in text for
    /// PostgreSQL, text longer than `varchar(n)`, numbers out of range, MySQL zero
    /// dates, invalid UTF-8): `fail` (default: stop, naming table, column and row
    /// key) | `null` (load NULL; fails on a NOT NULL column) | `clamp` (nearest
    /// value the target holds: NULs stripped, text truncated, numbers set to the
    /// type's bound) | `skip-row` (leave the row out). Every value changed and every
    /// row left out is listed in the run summary.
    #[serde(default)]
    pub bad_data: BadDataPolicy,
    /// `[task.bad-data-tables]`: per-table overrides of `bad-data`, keyed by source
    /// `schema.table` (`%` or `*` wildcards allowed), e.g. `"shop.legacy" = "null"`.
    /// An exact name wins over patterns, a longer pattern over a shorter one; a key
    /// without wildcards must name a selected table.
    #[serde(default)]
    pub bad_data_tables: BTreeMap<String, BadDataPolicy>,
    /// The task's name (letters, digits, `_`, `-`; at most 40): names its
    /// replication slot and publication (`ferry_<name>`) and its checkpoint row in
    /// the target. Default: the task file's name without extension. Two tasks
    /// reading one source must have different names.
    #[serde(default)]
    pub name: Option<String>,
    /// What a change-data-capture task does when a selected source table changes
    /// shape (ADD/DROP COLUMN, type change): `apply` (default: alter the target
    /// table the same way and go on) | `stop` (stop the task, naming the table and
    /// the change, before applying anything after it).
    #[serde(default)]
    pub ddl_policy: DdlPolicy,
    /// CDC: a target transaction is committed (with the checkpoint) once it holds
    /// this many changes, at the next source transaction boundary (default 10000).
    #[serde(default = "default_commit_rows")]
    pub commit_rows: usize,
    /// CDC: ... or once its first change is this many milliseconds old (default
    /// 200), so lag stays low under a light load.
    #[serde(default = "default_commit_delay_ms")]
    pub commit_delay_ms: u64,
    /// `cdc` mode: where the change stream starts when the task has no checkpoint
    /// yet, in the source's own notation (PostgreSQL LSN `0/16B3748`, MySQL
    /// `binlog.000042:1234`). Default: now.
    #[serde(default)]
    pub start_position: Option<String>,
}

/// What CDC does on a source schema change (`[task] ddl-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DdlPolicy {
    /// Alter the target table the same way and go on.
    #[default]
    Apply,
    /// Stop the task with a message naming the table and the change.
    Stop,
}

fn default_commit_rows() -> usize {
    10_000
}

fn default_commit_delay_ms() -> u64 {
    200
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings {
            mode: TaskMode::default(),
            table_prep: TablePrep::default(),
            include: Vec::new(),
            exclude: Vec::new(),
            parallelism: DEFAULT_PARALLELISM,
            state_dir: None,
            bad_data: BadDataPolicy::default(),
            bad_data_tables: BTreeMap::new(),
            name: None,
            ddl_policy: DdlPolicy::default(),
            commit_rows: default_commit_rows(),
            commit_delay_ms: default_commit_delay_ms(),
            start_position: None,
        }
    }
}

fn default_parallelism() -> usize {
    DEFAULT_PARALLELISM
}

fn secret_string<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::from)
}

impl TaskConfig {
    /// Reads, interpolates (from the process environment) and validates a task file.
    pub fn load(path: &Path) -> Result<TaskConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path, |name| std::env::var(name).ok())
    }

    /// Parses task file text; `file` is used in messages only, `env` resolves `${NAME}`.
    pub fn parse(
        text: &str,
        file: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<TaskConfig, ConfigError> {
        let doc = Doc { text, file };
        let mut root = DeTable::parse(text).map_err(|e| ConfigError::Syntax {
            at: doc.location(e.span(), None),
            message: e.message().trim().to_string(),
        })?;
        let mut keys = Vec::new();
        index_table(root.get_ref(), "", &mut keys);
        let mut env_secrets = Vec::new();
        interpolate_table(root.get_mut(), "", &doc, &env, &mut env_secrets)?;
        let mut config = TaskConfig::deserialize(toml::de::Deserializer::from(root))
            .map_err(|e| doc.invalid(&keys, e))?;
        config.env_secrets = env_secrets.into_iter().map(SecretString::from).collect();
        config.file = file.to_path_buf();
        config.validate(&doc, &keys)?;
        if let Some(name) = config.mapping.clone() {
            let at = || doc.at_key(&keys, "mapping");
            if !config.task.include.is_empty() || !config.task.exclude.is_empty() {
                return Err(ConfigError::Invalid {
                    at: at(),
                    message: "the mapping's selection rules choose the tables: remove \
                              task.include and task.exclude"
                        .into(),
                });
            }
            let base = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let path = base.join(&name);
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Invalid {
                at: at(),
                message: format!("cannot read the table-mapping file {}: {e}", path.display()),
            })?;
            let mapping =
                ferry_core::TableMapping::from_dms_json(&text, &path.display().to_string())
                    .map_err(|e| ConfigError::Invalid {
                        at: at(),
                        message: e.message().to_string(),
                    })?;
            config.table_mapping = Some(std::sync::Arc::new(mapping));
        }
        Ok(config)
    }

    /// The table mapping of `mapping`, if any.
    pub fn table_mapping(&self) -> Option<&std::sync::Arc<ferry_core::TableMapping>> {
        self.table_mapping.as_ref()
    }

    /// The task's name: `[task] name`, else the task file's name without extension
    /// (characters other than letters, digits, `_` and `-` become `_`).
    pub fn task_name(&self) -> String {
        if let Some(name) = &self.task.name {
            return name.clone();
        }
        let stem = self
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(MAX_TASK_NAME)
            .collect();
        if name.is_empty() { "task".into() } else { name }
    }

    /// Where the task keeps its state: `[task] state-dir`, else `.ferry/<name>`
    /// next to the task file.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.task.state_dir {
            return dir.clone();
        }
        let base = self
            .file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        base.join(".ferry").join(self.task_name())
    }

    fn validate(&self, doc: &Doc<'_>, keys: &[KeyEntry]) -> Result<(), ConfigError> {
        if self.rules.is_some() {
            return Err(ConfigError::NotSupported {
                at: doc.at_key(keys, "rules"),
                what: "[[rules]] (table mapping rules)".into(),
            });
        }

        for (name, patterns) in [
            ("include", &self.task.include),
            ("exclude", &self.task.exclude),
        ] {
            for (i, pattern) in patterns.iter().enumerate() {
                if let Err(e) = TableFilter::new(std::slice::from_ref(pattern), &[]) {
                    return Err(ConfigError::Invalid {
                        at: doc.at_key(keys, &format!("task.{name}[{i}]")),
                        message: e.message().to_string(),
                    });
                }
            }
        }
        for pattern in self.task.bad_data_tables.keys() {
            if let Err(e) = TableFilter::new(std::slice::from_ref(pattern), &[]) {
                return Err(ConfigError::Invalid {
                    at: doc.at_key(keys, &format!("task.bad-data-tables.{pattern}")),
                    message: e.message().to_string(),
                });
            }
        }
        if let Some(name) = &self.task.name {
            let valid = !name.is_empty()
                && name.len() <= MAX_TASK_NAME
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(ConfigError::Invalid {
                    at: doc.at_key(keys, "task.name"),
                    message: format!(
                        "name must be 1 to {MAX_TASK_NAME} letters, digits, `_` or `-`"
                    ),
                });
            }
        }
        if self.task.start_position.is_some() && self.task.mode != TaskMode::Cdc {
            return Err(ConfigError::Invalid {
                at: doc.at_key(keys, "task.start-position"),
                message: "start-position only applies to mode = \"cdc\" (full-load-and-cdc \
                          starts where its snapshot was taken)"
                    .into(),
            });
        }
        if self.task.commit_rows == 0 {
            return Err(ConfigError::Invalid {
                at: doc.at_key(keys, "task.commit-rows"),
                message: "commit-rows must be at least 1".into(),
            });
        }
        if self.task.parallelism == 0 {
            return Err(ConfigError::Invalid {
                at: doc.at_key(keys, "task.parallelism"),
                message: "parallelism must be at least 1".into(),
            });
        }
        for (name, endpoint) in [("source", &self.source), ("target", &self.target)] {
            if endpoint.url.expose_secret().trim().is_empty() {
                return Err(ConfigError::Invalid {
                    at: doc.at_key(keys, &format!("{name}.url")),
                    message: "url is empty".into(),
                });
            }
        }
        Ok(())
    }

    /// Every secret of the task (URL passwords and secret query parameters, raw and
    /// percent-decoded, and the values of environment variables interpolated into
    /// `[source]` and `[target]`), for scrubbing error texts and logs.
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .env_secrets
            .iter()
            .map(|s| s.expose_secret().to_string())
            .collect();
        out.extend(url_secrets(self.source.url.expose_secret()));
        out.extend(url_secrets(self.target.url.expose_secret()));
        out.sort();
        out.dedup();
        out
    }
}

/// The task file text and name, for error locations.
struct Doc<'a> {
    text: &'a str,
    file: &'a Path,
}

/// A key of the document with the spans of the key and its value.
#[derive(Debug)]
struct KeyEntry {
    path: String,
    key: Range<usize>,
    value: Range<usize>,
}

impl Doc<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn location(&self, span: Option<Range<usize>>, key: Option<String>) -> Location {
        Location {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.line_of(s.start)),
            key,
        }
    }

    fn at_key(&self, keys: &[KeyEntry], path: &str) -> Location {
        let span = keys.iter().find(|k| k.path == path).map(|k| k.key.clone());
        self.location(span, Some(path.to_string()))
    }

    /// Turns a deserialization error into [`ConfigError::Invalid`], naming the
    /// innermost key whose key or value span contains the error's span.
    fn invalid(&self, keys: &[KeyEntry], e: toml::de::Error) -> ConfigError {
        // An empty span is the document itself (e.g. a missing top-level table).
        let span = e.span().filter(|s| !s.is_empty());
        let key = span.as_ref().and_then(|s| {
            keys.iter()
                .filter(|k| contains(&k.key, s) || contains(&k.value, s))
                .min_by_key(|k| k.value.len() + k.key.len())
                .map(|k| k.path.clone())
        });
        ConfigError::Invalid {
            at: self.location(span, key),
            message: e.message().trim().to_string(),
        }
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn index_table(table: &DeTable<'_>, prefix: &str, out: &mut Vec<KeyEntry>) {
    for (key, value) in table.iter() {
        let path = join(prefix, key.get_ref());
        index_value(value, &path, Some(key.span()), out);
    }
}

fn index_value(
    value: &Spanned<DeValue<'_>>,
    path: &str,
    key: Option<Range<usize>>,
    out: &mut Vec<KeyEntry>,
) {
    out.push(KeyEntry {
        path: path.to_string(),
        key: key.unwrap_or_else(|| value.span()),
        value: value.span(),
    });
    match value.get_ref() {
        DeValue::Table(t) => index_table(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                index_value(item, &format!("{path}[{i}]"), None, out);
            }
        }
        _ => {}
    }
}

fn interpolate_table(
    table: &mut DeTable<'_>,
    prefix: &str,
    doc: &Doc<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        let path = join(prefix, key.get_ref());
        interpolate_value(value, &path, doc, env, secrets)?;
    }
    Ok(())
}

fn interpolate_value(
    value: &mut Spanned<DeValue<'_>>,
    path: &str,
    doc: &Doc<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) => {
            // Values interpolated into an endpoint (URL, options) count as secrets.
            let used = std::cell::RefCell::new(Vec::new());
            let record = path.starts_with("source.") || path.starts_with("target.");
            let lookup = |name: &str| {
                let value = env(name);
                if let (true, Some(v)) = (record, &value) {
                    used.borrow_mut().push(v.clone());
                }
                value
            };
            let replaced = interpolate(s, &lookup).map_err(|e| {
                let at = doc.location(Some(span), Some(path.to_string()));
                match e {
                    InterpolationError::Missing(var) => ConfigError::MissingEnv { at, var },
                    InterpolationError::Malformed(message) => {
                        ConfigError::Interpolation { at, message }
                    }
                }
            })?;
            if let Cow::Owned(new) = replaced {
                *s = Cow::Owned(new);
            }
            secrets.extend(used.into_inner().into_iter().filter(|v| !v.is_empty()));
        }
        DeValue::Table(t) => interpolate_table(t, path, doc, env, secrets)?,
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{path}[{i}]"), doc, env, secrets)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
enum InterpolationError {
    /// The variable is not set (or not valid UTF-8).
    Missing(String),
    /// Unterminated `${` or an invalid variable name.
    Malformed(String),
}

/// Replaces `${NAME}` with `env(NAME)`; `$${` is a literal `${`; any other `$` stays.
fn interpolate<'s>(
    s: &'s str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Cow<'s, str>, InterpolationError> {
    if !s.contains("${") {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or_else(|| {
                InterpolationError::Malformed("unterminated ${ (missing })".into())
            })?;
            let name = &tail[..end];
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(InterpolationError::Malformed(format!(
                    "${{{name}}} is not a valid environment variable reference"
                )));
            }
            let value = env(name).ok_or_else(|| InterpolationError::Missing(name.into()))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The scheme of a URL (`postgres` in `postgres://...`), as written; `""` if none.
pub fn url_scheme(url: &str) -> &str {
    match url.split_once("://") {
        Some((scheme, _)) if is_scheme(scheme) => scheme,
        _ => "",
    }
}

fn is_scheme(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Query parameters whose value is a secret (substring match, case-insensitive).
pub(crate) const SECRET_PARAMS: &[&str] = &["password", "passwd", "secret", "token", "credential"];

/// Byte ranges of the secret parts of a URL: the user-info password and the values
/// of secret query parameters.
fn secret_ranges(url: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return out;
    };
    let rest = &url[start..];
    let port_like = |after_colon: &str| {
        after_colon
            .split(['/', '?', '#'])
            .next()
            .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    };
    // The user info ends at the last `@` before the query (or at the last `@` at
    // all, for a password with a raw `?`), unless what precedes it is `host:port/...`.
    // Raw `@`, `/`, `?` in a password are invalid but common: redact them whole.
    let before_query = rest.find('?').map_or(rest, |q| &rest[..q]);
    let userinfo_end = before_query
        .rfind('@')
        .or_else(|| rest.rfind('@'))
        .filter(|&at| {
            rest[..at]
                .split_once(':')
                .is_none_or(|(_, after)| !port_like(after))
        })
        .or_else(|| {
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            rest[..authority_end].rfind('@')
        });
    let mut query_from = start;
    if let Some(at) = userinfo_end {
        if let Some(colon) = rest[..at].find(':') {
            out.push(start + colon + 1..start + at);
        }
        query_from = start + at + 1;
    }
    if let Some(q) = url[query_from..].find('?') {
        let qstart = query_from + q + 1;
        let qend = url[qstart..].find('#').map_or(url.len(), |i| qstart + i);
        let mut pos = qstart;
        for pair in url[qstart..qend].split('&') {
            if let Some((name, _)) = pair.split_once('=') {
                let lname = name.to_ascii_lowercase();
                if SECRET_PARAMS.iter().any(|p| lname.contains(p)) {
                    out.push(pos + name.len() + 1..pos + pair.len());
                }
            }
            pos += pair.len() + 1;
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

/// The URL with its password and secret query parameter values replaced by `***`.
/// Use it for every display of a URL.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut last = 0;
    for r in secret_ranges(url) {
        out.push_str(&url[last..r.start]);
        out.push_str("***");
        last = r.end;
    }
    out.push_str(&url[last..]);
    out
}

/// The secrets of a URL, as written and percent-decoded.
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    for r in secret_ranges(url) {
        let raw = &url[r];
        out.push(raw.to_string());
        let decoded = percent_decode(raw);
        if decoded != raw {
            out.push(decoded);
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn parse(text: &str) -> Result<TaskConfig, ConfigError> {
        TaskConfig::parse(text, Path::new("task.toml"), env_of(&[("PW", "s3cr3t")]))
    }

    const MINIMAL: &str = r#"
[source]
url = "postgres://u@a/db"
[target]
url = "postgres://u@b/db"
"#;

    #[test]
    fn full_example_parses() {
        let text = r#"
[source]
url = "postgres://user:${PW}@db1:5432/shop"
[source.options]
sslmode = "disable"
[target]
url = "postgresql://user:${PW}@db2:5432/shop"

[task]
mode = "full-load"
table-prep = "truncate"
include = ["shop.*"]
exclude = ["shop.tmp_%"]
parallelism = 8
state-dir = ".ferry/shop"
"#;
        let c = parse(text).expect("valid");
        assert_eq!(
            c.source.url.expose_secret(),
            "postgres://user:s3cr3t@db1:5432/shop"
        );
        assert_eq!(
            c.source.options.get("sslmode").and_then(|v| v.as_str()),
            Some("disable")
        );
        assert_eq!(c.target.scheme(), "postgresql");
        assert_eq!(c.task.mode, TaskMode::FullLoad);
        assert_eq!(c.task.table_prep, TablePrep::Truncate);
        assert_eq!(c.task.include, vec!["shop.*"]);
        assert_eq!(c.task.exclude, vec!["shop.tmp_%"]);
        assert_eq!(c.task.parallelism, 8);
        assert_eq!(c.task.state_dir, Some(PathBuf::from(".ferry/shop")));
        assert_eq!(c.secrets(), vec!["s3cr3t".to_string()]);
    }

    #[test]
    fn bad_data_policies_parse_with_per_table_overrides() {
        let text = format!(
            "{MINIMAL}[task]\nbad-data = \"clamp\"\n[task.bad-data-tables]\n\
             \"shop.legacy\" = \"null\"\n\"shop.tmp_%\" = \"skip-row\"\n"
        );
        let c = parse(&text).expect("valid");
        assert_eq!(c.task.bad_data, BadDataPolicy::Clamp);
        assert_eq!(
            c.task.bad_data_tables.get("shop.legacy"),
            Some(&BadDataPolicy::Null)
        );
        assert_eq!(
            c.task.bad_data_tables.get("shop.tmp_%"),
            Some(&BadDataPolicy::SkipRow)
        );
        assert_eq!(
            parse(MINIMAL).expect("valid").task.bad_data,
            BadDataPolicy::Fail
        );

        let e =
            parse(&format!("{MINIMAL}[task]\nbad-data = \"skip\"\n")).expect_err("unknown policy");
        let msg = e.to_string();
        assert!(
            msg.contains("task.bad-data") && msg.contains("skip-row"),
            "{msg}"
        );
        assert_eq!(e.location().and_then(|l| l.line), Some(7));

        let e = parse(&format!(
            "{MINIMAL}[task.bad-data-tables]\n\"legacy\" = \"null\"\n"
        ))
        .expect_err("no schema part");
        assert_eq!(
            e.location().and_then(|l| l.key.clone()).as_deref(),
            Some("task.bad-data-tables.legacy")
        );
        assert_eq!(e.location().and_then(|l| l.line), Some(7));
        let e = parse(&format!(
            "{MINIMAL}[task.bad-data-tables]\n\"s.t\" = \"zero\"\n"
        ))
        .expect_err("unknown policy");
        assert!(e.to_string().contains("zero"), "{e}");
    }

    #[test]
    fn start_position_belongs_to_cdc_mode() {
        let c = parse(&format!(
            "{MINIMAL}[task]\nmode = \"cdc\"\nstart-position = \"0/16B3748\"\n"
        ))
        .expect("valid");
        assert_eq!(c.task.start_position.as_deref(), Some("0/16B3748"));
        let e = parse(&format!(
            "{MINIMAL}[task]\nmode = \"full-load-and-cdc\"\nstart-position = \"0/1\"\n"
        ))
        .expect_err("only cdc");
        assert!(e.to_string().contains("task.start-position"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = parse(MINIMAL).expect("valid");
        assert_eq!(c.task, TaskSettings::default());
        assert_eq!(c.task.parallelism, 4);
        assert_eq!(c.task.mode, TaskMode::FullLoad);
        assert_eq!(c.task.table_prep, TablePrep::DropAndCreate);
        assert!(c.task.include.is_empty() && c.task.exclude.is_empty());
        assert!(c.source.options.is_empty());
        let c = parse(&format!("{MINIMAL}[task]\nmode = \"cdc\"\n")).expect("valid");
        assert_eq!(c.task.parallelism, 4);
        assert_eq!(c.task.mode, TaskMode::Cdc);
    }

    #[test]
    fn unknown_key_is_rejected_with_key_and_line() {
        let text = format!("{MINIMAL}[task]\nmode = \"full-load\"\nparalelism = 3\n");
        let e = parse(&text).expect_err("unknown key");
        let msg = e.to_string();
        assert!(msg.contains("paralelism"), "{msg}");
        assert!(msg.starts_with("task.toml:8"), "{msg}");
        let at = e.location().expect("located");
        assert_eq!(at.line, Some(8));
        assert_eq!(at.key.as_deref(), Some("task.paralelism"));

        let e = parse(&format!("{MINIMAL}[extra]\nx = 1\n")).expect_err("unknown table");
        assert!(e.to_string().contains("extra"), "{e}");

        let text = "[source]\nurl = \"postgres://a/b\"\nuser = \"x\"\n[target]\nurl = \"postgres://b/c\"\n";
        let e = parse(text).expect_err("unknown endpoint key");
        assert!(e.to_string().contains("user"), "{e}");
        assert_eq!(e.location().and_then(|l| l.line), Some(3));
    }

    #[test]
    fn bad_mode_names_key_line_and_choices() {
        let text = format!("{MINIMAL}[task]\nmode = \"full-lod\"\n");
        let e = parse(&text).expect_err("bad mode");
        let msg = e.to_string();
        assert!(msg.contains("full-lod"), "{msg}");
        assert!(msg.contains("full-load-and-cdc"), "{msg}");
        assert!(msg.contains("task.mode"), "{msg}");
        assert_eq!(e.location().and_then(|l| l.line), Some(7));

        let e = parse(&format!("{MINIMAL}[task]\ntable-prep = \"wipe\"\n")).expect_err("bad prep");
        assert!(e.to_string().contains("do-nothing"), "{e}");
        assert!(e.to_string().contains("task.table-prep"), "{e}");
    }

    #[test]
    fn parallelism_must_be_positive() {
        let e = parse(&format!("{MINIMAL}[task]\nparallelism = 0\n")).expect_err("zero");
        assert!(matches!(e, ConfigError::Invalid { .. }));
        assert!(e.to_string().contains("task.parallelism"), "{e}");
        assert!(e.to_string().contains("at least 1"), "{e}");
        assert_eq!(e.location().and_then(|l| l.line), Some(7));
        assert!(parse(&format!("{MINIMAL}[task]\nparallelism = -2\n")).is_err());
    }

    #[test]
    fn missing_section_and_wrong_type() {
        let e = parse("[source]\nurl = \"postgres://a/b\"\n").expect_err("no target");
        assert_eq!(e.to_string(), "task.toml: missing field `target`");
        let e = parse("[source]\n[target]\nurl = \"postgres://a/b\"\n").expect_err("no url");
        assert!(e.to_string().contains("url"), "{e}");
        let e = parse(&format!("{MINIMAL}[task]\ninclude = \"shop.*\"\n")).expect_err("type");
        assert!(e.to_string().contains("task.include"), "{e}");
    }

    #[test]
    fn bad_table_pattern_is_located() {
        let text = format!("{MINIMAL}[task]\ninclude = [\"shop.*\",\n  \"orders\"]\n");
        let e = parse(&text).expect_err("bad pattern");
        let msg = e.to_string();
        assert!(
            msg.starts_with("task.toml:8: key `task.include[1]`"),
            "{msg}"
        );
        assert!(msg.contains("schema.table"), "{msg}");
    }

    #[test]
    fn syntax_error_names_line() {
        let e = parse("[source]\nurl = \"postgres://a/b\n").expect_err("syntax");
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
        assert_eq!(e.location().and_then(|l| l.line), Some(2));
    }

    #[test]
    fn env_interpolation_everywhere_and_escapes() {
        let env = env_of(&[("PW", "p@ss"), ("SCHEMA", "shop"), ("MODE", "full-load")]);
        let text = r#"
[source]
url = "postgres://u:${PW}@a/db"
options = { note = "cost $5, literal $${PW}, ${SCHEMA}" }
[target]
url = "postgres://u@b/db"
[task]
mode = "${MODE}"
include = ["${SCHEMA}.*"]
"#;
        let c = TaskConfig::parse(text, Path::new("t.toml"), env).expect("valid");
        assert_eq!(c.source.url.expose_secret(), "postgres://u:p@ss@a/db");
        assert_eq!(
            c.source.options.get("note").and_then(|v| v.as_str()),
            Some("cost $5, literal ${PW}, shop")
        );
        assert_eq!(c.task.include, vec!["shop.*"]);
    }

    #[test]
    fn env_values_in_endpoints_are_secrets() {
        let env = env_of(&[("PW", "p@ss/w:rd"), ("SCHEMA", "shop")]);
        let text = "[source]\nurl = \"postgres://u:${PW}@a/db\"\n[target]\nurl = \"postgres://b/c\"\n[task]\ninclude = [\"${SCHEMA}.*\"]\n";
        let c = TaskConfig::parse(text, Path::new("t.toml"), env).expect("valid");
        let secrets = c.secrets();
        assert!(secrets.contains(&"p@ss/w:rd".to_string()), "{secrets:?}");
        assert!(!secrets.contains(&"shop".to_string()), "{secrets:?}");
        assert_eq!(c.source.redacted_url(), "postgres://u:***@a/db");
    }

    #[test]
    fn missing_env_var_is_named() {
        let text = "[source]\nurl = \"postgres://u:${NOPE_PW}@a/db\"\n[target]\nurl = \"postgres://b/c\"\n";
        let e = parse(text).expect_err("missing var");
        assert!(matches!(e, ConfigError::MissingEnv { ref var, .. } if var == "NOPE_PW"));
        let msg = e.to_string();
        assert!(
            msg.contains("NOPE_PW") && msg.contains("source.url"),
            "{msg}"
        );
        assert_eq!(e.location().and_then(|l| l.line), Some(2));
    }

    #[test]
    fn malformed_references() {
        let env = env_of(&[]);
        assert!(matches!(
            interpolate("a${B", &env),
            Err(InterpolationError::Malformed(_))
        ));
        assert!(matches!(
            interpolate("${1X}", &env),
            Err(InterpolationError::Malformed(_))
        ));
        assert!(matches!(
            interpolate("${}", &env),
            Err(InterpolationError::Malformed(_))
        ));
        assert_eq!(interpolate("a$b$", &env).ok(), Some(Cow::Borrowed("a$b$")));
        assert_eq!(
            interpolate("$${X}$$", &env).ok().map(Cow::into_owned),
            Some("${X}$$".to_string())
        );
    }

    #[test]
    fn toml_rules_are_rejected_and_a_mapping_file_is_read() {
        let e = parse(&format!("{MINIMAL}[[rules]]\naction = \"rename\"\n")).expect_err("rules");
        assert!(matches!(e, ConfigError::NotSupported { .. }));
        assert!(e.to_string().contains("not supported yet"), "{e}");
        assert!(e.to_string().contains("rules"), "{e}");
        let text = format!("mapping = \"no-such-dms.json\"\n{MINIMAL}");
        let e = parse(&text).expect_err("mapping");
        assert!(
            e.to_string().contains("cannot read the table-mapping file"),
            "{e}"
        );
        assert_eq!(e.location().and_then(|l| l.line), Some(1));

        let dir = std::env::temp_dir().join(format!("ferry-mapping-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("m.json"),
            r#"{"rules": [{"rule-type": "selection", "rule-id": "1",
                "object-locator": {"schema-name": "s", "table-name": "%"}, "rule-action": "include"}]}"#,
        )
        .expect("mapping file");
        let text = format!("mapping = \"m.json\"\n{MINIMAL}");
        let c = TaskConfig::parse(&text, &dir.join("t.toml"), |_| None).expect("valid");
        assert_eq!(
            c.table_mapping().map(|m| m.patterns().0),
            Some(vec!["s.%".to_owned()])
        );
        let text = format!("mapping = \"m.json\"\n{MINIMAL}[task]\ninclude = [\"s.t\"]\n");
        let e = TaskConfig::parse(&text, &dir.join("t.toml"), |_| None).expect_err("both");
        assert!(e.to_string().contains("remove task.include"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgres://user:secret@host:5432/db"),
            "postgres://user:***@host:5432/db"
        );
        assert_eq!(
            redact_url("postgres://user@host:5432/db"),
            "postgres://user@host:5432/db"
        );
        assert_eq!(
            redact_url("postgres://host:5432/db"),
            "postgres://host:5432/db"
        );
        assert_eq!(
            redact_url("postgres://u:p%40ss@h/db?sslmode=require&password=x2&user=u"),
            "postgres://u:***@h/db?sslmode=require&password=***&user=u"
        );
        assert_eq!(
            redact_url("postgres://u:pa/ss?#@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss/w:rd@h:1/db"),
            "postgres://u:***@h:1/db"
        );
        assert_eq!(
            redact_url("postgres://u:pw@h/db?application_name=a@b"),
            "postgres://u:***@h/db?application_name=a@b"
        );
        assert_eq!(
            redact_url("kafka://h:9092/topic@x"),
            "kafka://h:9092/topic@x"
        );
        assert_eq!(redact_url("s3://bucket/path@x"), "s3://bucket/path@x");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("postgres://u:@h/db"), "postgres://u:@h/db");
        assert_eq!(
            url_secrets("postgres://u:p%40ss@h/db?token=t"),
            vec!["p%40ss".to_string(), "p@ss".to_string(), "t".to_string()]
        );
    }

    #[test]
    fn url_is_never_in_debug_output() {
        let c = parse(
            "[source]\nurl = \"postgres://u:${PW}@a/db\"\n[target]\nurl = \"postgres://b/c\"\n",
        )
        .expect("valid");
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert_eq!(c.source.redacted_url(), "postgres://u:***@a/db");
    }

    #[test]
    fn schemes() {
        assert_eq!(url_scheme("postgresql://x"), "postgresql");
        assert_eq!(url_scheme("x"), "");
        assert_eq!(url_scheme("a b://x"), "");
    }
}
