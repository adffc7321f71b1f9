//! `[target.options]` of a PostgreSQL target.

use ferry_core::{Error, Result};

/// How enumerated columns are created on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnumAs {
    /// A PostgreSQL enum type per enumeration (`CREATE TYPE ... AS ENUM`).
    #[default]
    Type,
    /// A `text` column with a `CHECK (column IN (...))` constraint.
    TextCheck,
}

/// Settings of a PostgreSQL sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SinkOptions {
    /// `enum-as`: `"type"` (default) or `"text-check"`.
    pub enum_as: EnumAs,
}

impl SinkOptions {
    /// The option names a PostgreSQL target accepts.
    pub const KEYS: &'static [&'static str] = &["enum-as"];

    /// Sets option `key` from its text value; unknown keys and values are errors.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match (key, value) {
            ("enum-as", "type") => self.enum_as = EnumAs::Type,
            ("enum-as", "text-check") => self.enum_as = EnumAs::TextCheck,
            ("enum-as", other) => {
                return Err(Error::config(format!(
                    "target.options.enum-as: {other:?} is not one of \"type\", \"text-check\""
                )));
            }
            (other, _) => {
                return Err(Error::config(format!(
                    "target.options.{other}: the postgres connector has no such option \
                     (it knows: {})",
                    Self::KEYS.join(", ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_refuse_what_they_do_not_know() {
        let mut o = SinkOptions::default();
        assert_eq!(o.enum_as, EnumAs::Type);
        o.set("enum-as", "text-check").expect("valid");
        assert_eq!(o.enum_as, EnumAs::TextCheck);
        assert!(o.set("enum-as", "nope").is_err());
        assert!(o.set("colour", "blue").is_err());
    }
}
