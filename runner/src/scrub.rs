//! Defense in depth against leaking secrets: every error text and log line passes
//! through a [`Scrubber`] that replaces the known secret strings with `***`.
//!
//! An occurrence of a secret is replaced when it stands where secrets stand
//! (`:secret@`, `=secret`, `'secret'`, `"secret"`), and anywhere else too unless the
//! secret is very short or also appears in public text (a redacted URL, a scheme
//! name): replacing `postgres` everywhere would mangle every message *and* give the
//! password away by the gaps it leaves.

use std::sync::{Arc, RwLock};

/// Secrets shorter than this are only replaced in secret-like positions.
const MIN_BARE_LEN: usize = 4;

#[derive(Debug, Default)]
struct Lists {
    /// Longest first.
    secrets: Vec<String>,
    public: Vec<String>,
}

/// A shared, growable set of secret strings to remove from output.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    lists: Arc<RwLock<Lists>>,
}

impl Scrubber {
    /// An empty scrubber.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds secrets (empty strings are ignored).
    pub fn add<I, S>(&self, secrets: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut lists = self.lists.write().unwrap_or_else(|e| e.into_inner());
        for s in secrets {
            let s = s.into();
            if !s.is_empty() && !lists.secrets.contains(&s) {
                lists.secrets.push(s);
            }
        }
        lists.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Adds text that is shown anyway (redacted URLs, scheme and engine names): a
    /// secret contained in it is replaced only in secret-like positions.
    pub fn add_public<I, S>(&self, texts: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut lists = self.lists.write().unwrap_or_else(|e| e.into_inner());
        lists.public.extend(texts.into_iter().map(Into::into));
    }

    /// `text` with the known secrets replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let lists = self.lists.read().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for s in &lists.secrets {
            if !out.contains(s.as_str()) {
                continue;
            }
            let bare = s.len() >= MIN_BARE_LEN
                && !lists.public.iter().any(|p| p.contains(s.as_str()))
                && !crate::endpoint::SCHEMES
                    .iter()
                    .any(|(p, _)| p.contains(s.as_str()));
            out = replace_secret(&out, s, bare);
        }
        out
    }

    /// Whether no secret is known.
    pub fn is_empty(&self) -> bool {
        self.lists
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .secrets
            .is_empty()
    }
}

/// Replaces occurrences of `secret` in secret-like positions, or all if `bare`.
fn replace_secret(text: &str, secret: &str, bare: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, _) in text.match_indices(secret) {
        if start < last {
            continue;
        }
        let end = start + secret.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        let boundary_after = after.is_none_or(|c| !c.is_alphanumeric());
        let positioned = (before == Some(':') && after == Some('@'))
            || (before == Some('=') && boundary_after && secret_key_before(&text[..start - 1]))
            || (matches!(before, Some('\'' | '"')) && before == after);
        if bare || positioned {
            out.push_str(&text[last..start]);
            out.push_str("***");
            last = end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// Whether the key that ends `text` (as in `password=`) names a secret.
fn secret_key_before(text: &str) -> bool {
    let mut key: Vec<char> = text
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect();
    key.reverse();
    let key = key.into_iter().collect::<String>().to_lowercase();
    crate::config::SECRET_PARAMS.iter().any(|p| key.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_every_known_secret_longest_first() {
        let s = Scrubber::new();
        assert_eq!(s.scrub("nothing"), "nothing");
        s.add(["pw12", "", "pw12-long"]);
        assert_eq!(
            s.scrub("password pw12-long rejected (pw12)"),
            "password *** rejected (***)"
        );
        let clone = s.clone();
        clone.add(["x1y2z3"]);
        assert_eq!(s.scrub("x1y2z3"), "***");
        assert!(!s.is_empty());
    }

    #[test]
    fn short_or_public_secrets_only_in_secret_positions() {
        let s = Scrubber::new();
        s.add(["b", "postgres"]);
        s.add_public(["postgres://postgres:***@h/db"]);
        assert_eq!(
            s.scrub("mariadb: postgres://postgres:postgres@h/db?password=b&x='b' db"),
            "mariadb: postgres://postgres:***@h/db?password=***&x='***' db"
        );
        assert_eq!(s.scrub("a:b@c password=postgres"), "a:***@c password=***");
        assert_eq!(
            s.scrub("source=postgres://u@h x=b"),
            "source=postgres://u@h x=b"
        );
    }
}
