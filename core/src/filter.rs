//! Include/exclude patterns over `schema.table` names, with `%` or `*` wildcards.

use crate::error::{Error, Result};
use crate::schema::TableId;

/// Which tables a task selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    text: String,
    namespace: String,
    name: String,
}

impl Pattern {
    fn parse(text: &str) -> Result<Self> {
        let (namespace, name) = text.split_once('.').ok_or_else(|| {
            Error::config(format!(
                "table pattern {text:?} must have the form schema.table (wildcards % or *)"
            ))
        })?;
        if namespace.is_empty() || name.is_empty() {
            return Err(Error::config(format!(
                "table pattern {text:?} has an empty schema or table part"
            )));
        }
        Ok(Pattern {
            text: text.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    fn matches(&self, id: &TableId) -> bool {
        wildcard_match(&self.namespace, &id.namespace) && wildcard_match(&self.name, &id.name)
    }

    fn has_wildcard(&self) -> bool {
        self.text.contains(['%', '*'])
    }
}

impl TableFilter {
    /// Builds a filter; an empty include list selects every table.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        Ok(TableFilter {
            include: include
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<_>>()?,
            exclude: exclude
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<_>>()?,
        })
    }

    /// Whether the table is selected.
    pub fn matches(&self, id: &TableId) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(id)))
            && !self.exclude.iter().any(|p| p.matches(id))
    }

    /// Whether a table in `namespace` could be selected (for pruning discovery).
    pub fn may_match_namespace(&self, namespace: &str) -> bool {
        self.include.is_empty()
            || self
                .include
                .iter()
                .any(|p| wildcard_match(&p.namespace, namespace))
    }

    /// Include patterns without wildcards that matched none of `found`: tables the
    /// task names explicitly but the source does not have.
    pub fn missing_explicit<'a>(&'a self, found: &[TableId]) -> Vec<&'a str> {
        self.include
            .iter()
            .filter(|p| !p.has_wildcard() && !found.iter().any(|id| p.matches(id)))
            .map(|p| p.text.as_str())
            .collect()
    }
}

/// Matches `text` against `pattern`, where `%` and `*` match any run of characters.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('%' | '*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| matches!(c, '%' | '*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> TableFilter {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        TableFilter::new(&own(include), &own(exclude)).expect("valid patterns")
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("%", ""));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a%", "a"));
        assert!(!wildcard_match("a%b", "ac"));
        assert!(wildcard_match("%_log", "x_log"));
        assert!(!wildcard_match("abc", "abcd"));
    }

    #[test]
    fn include_and_exclude() {
        let f = filter(&["shop.*"], &["shop.tmp_%"]);
        assert!(f.matches(&TableId::new("shop", "orders")));
        assert!(!f.matches(&TableId::new("shop", "tmp_x")));
        assert!(!f.matches(&TableId::new("other", "orders")));
        assert!(filter(&[], &[]).matches(&TableId::new("a", "b")));
    }

    #[test]
    fn explicit_names_that_match_nothing_are_reported() {
        let f = filter(&["shop.orders", "shop.nope", "x.%"], &[]);
        let missing = f.missing_explicit(&[TableId::new("shop", "orders")]);
        assert_eq!(missing, vec!["shop.nope"]);
    }

    #[test]
    fn bad_pattern_is_a_config_error() {
        assert!(TableFilter::new(&["orders".into()], &[]).is_err());
    }
}
