//! Table mapping rules, read from an AWS DMS table-mapping JSON file as it is:
//! selection rules (which tables) and transformation rules that rename schemas,
//! tables and columns. A rule Ferry does not carry out yet is an error naming its
//! rule id and action, never ignored.

use crate::error::{Error, Result};
use crate::filter::wildcard_match;
use crate::schema::{IndexPart, TableId, TableSchema, UniqueKey};
use serde_json::Value as Json;

/// What a transformation rule applies to (`rule-target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleTarget {
    /// The schema (MySQL: database) name.
    Schema,
    /// The table name.
    Table,
    /// A column name.
    Column,
}

/// A name change (`rule-action` of a transformation rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameChange {
    /// `rename` to `value`.
    Rename(String),
    /// `convert-lowercase`.
    Lowercase,
    /// `convert-uppercase`.
    Uppercase,
    /// `add-prefix` `value`.
    AddPrefix(String),
    /// `remove-prefix` `value` (when present).
    RemovePrefix(String),
    /// `replace-prefix`: `old-value` becomes `value`.
    ReplacePrefix(String, String),
    /// `add-suffix` `value`.
    AddSuffix(String),
    /// `remove-suffix` `value` (when present).
    RemoveSuffix(String),
    /// `replace-suffix`: `old-value` becomes `value`.
    ReplaceSuffix(String, String),
    /// `remove-column` (column rules): the column is not migrated.
    Remove,
    /// `include-column` (column rules): the column is migrated even when a
    /// `remove-column` rule matches it too.
    Include,
}

impl NameChange {
    /// `name` after the change.
    pub fn apply(&self, name: &str) -> String {
        match self {
            NameChange::Rename(to) => to.clone(),
            NameChange::Lowercase => name.to_lowercase(),
            NameChange::Uppercase => name.to_uppercase(),
            NameChange::AddPrefix(p) => format!("{p}{name}"),
            NameChange::RemovePrefix(p) => name.strip_prefix(p.as_str()).unwrap_or(name).to_owned(),
            NameChange::ReplacePrefix(old, new) => match name.strip_prefix(old.as_str()) {
                Some(rest) => format!("{new}{rest}"),
                None => name.to_owned(),
            },
            NameChange::AddSuffix(s) => format!("{name}{s}"),
            NameChange::RemoveSuffix(s) => name.strip_suffix(s.as_str()).unwrap_or(name).to_owned(),
            NameChange::ReplaceSuffix(old, new) => match name.strip_suffix(old.as_str()) {
                Some(rest) => format!("{rest}{new}"),
                None => name.to_owned(),
            },
            NameChange::Remove | NameChange::Include => name.to_owned(),
        }
    }
}

/// One selection rule: tables whose schema and name match are included or
/// excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `rule-id`.
    pub id: String,
    /// `schema-name` pattern (`%` wildcards).
    pub schema: String,
    /// `table-name` pattern (`%` wildcards).
    pub table: String,
    /// `include` / `explicit` (true) or `exclude` (false).
    pub include: bool,
}

/// One transformation rule that changes a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transformation {
    /// `rule-id`.
    pub id: String,
    /// What it renames.
    pub target: RuleTarget,
    /// `schema-name` pattern of the source table.
    pub schema: String,
    /// `table-name` pattern of the source table (`%` for schema rules).
    pub table: String,
    /// `column-name` pattern (column rules).
    pub column: String,
    /// The change.
    pub change: NameChange,
}

/// A `define-primary-key` rule: the key (or unique index) the target table gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDefinition {
    /// `rule-id`.
    pub id: String,
    /// `schema-name` pattern of the source table.
    pub schema: String,
    /// `table-name` pattern of the source table.
    pub table: String,
    /// `primary-key-def.name`, if given.
    pub name: Option<String>,
    /// The key's columns (source names), in order.
    pub columns: Vec<String>,
    /// `origin: "unique-index"`: a unique key rather than the primary key.
    pub unique_index: bool,
}

/// The rules of a table-mapping file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableMapping {
    /// Selection rules, in file order.
    pub selections: Vec<Selection>,
    /// Name transformations, in file order.
    pub transformations: Vec<Transformation>,
    /// Keys defined by `define-primary-key` rules, in file order.
    pub keys: Vec<KeyDefinition>,
}

fn text<'a>(rule: &'a Json, key: &str) -> Option<&'a str> {
    rule.get(key).and_then(Json::as_str)
}

fn rule_id(rule: &Json) -> String {
    match rule.get("rule-id") {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Number(n)) => n.to_string(),
        _ => "?".to_owned(),
    }
}

impl TableMapping {
    /// Parses an AWS DMS table-mapping document (`{"rules": [...]}`). `origin`
    /// names the file in errors.
    pub fn from_dms_json(json: &str, origin: &str) -> Result<Self> {
        let doc: Json = serde_json::from_str(json)
            .map_err(|e| Error::config(format!("{origin}: not valid JSON: {e}")))?;
        let rules = doc.get("rules").and_then(Json::as_array).ok_or_else(|| {
            Error::config(format!(
                "{origin}: a DMS table mapping has a top-level \"rules\" array"
            ))
        })?;
        let mut mapping = TableMapping::default();
        for rule in rules {
            let id = rule_id(rule);
            let kind = text(rule, "rule-type").unwrap_or("");
            let action = text(rule, "rule-action").unwrap_or("");
            let at = |what: String| {
                Error::config(format!("{origin}: rule {id} ({kind}, {action}): {what}"))
            };
            let locator = rule.get("object-locator");
            let locate = |key: &str| -> Option<String> {
                locator
                    .and_then(|l| l.get(key))
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            };
            match kind {
                "selection" => {
                    let include = match action {
                        "include" | "explicit" => true,
                        "exclude" => false,
                        _ => return Err(at("unknown selection action".into())),
                    };
                    if rule
                        .get("filters")
                        .and_then(Json::as_array)
                        .is_some_and(|f| !f.is_empty())
                    {
                        return Err(at(
                            "row filters are not supported by Ferry yet; remove the filters \
                             or the rule"
                                .into(),
                        ));
                    }
                    let schema = locate("schema-name")
                        .ok_or_else(|| at("object-locator has no schema-name".into()))?;
                    let table = locate("table-name")
                        .ok_or_else(|| at("object-locator has no table-name".into()))?;
                    mapping.selections.push(Selection {
                        id,
                        schema,
                        table,
                        include,
                    });
                }
                "transformation" if action == "define-primary-key" => {
                    let def = rule
                        .get("primary-key-def")
                        .ok_or_else(|| at("needs a \"primary-key-def\"".into()))?;
                    let columns: Vec<String> = def
                        .get("columns")
                        .and_then(Json::as_array)
                        .map(|c| {
                            c.iter()
                                .filter_map(Json::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default();
                    if columns.is_empty() {
                        return Err(at("primary-key-def needs a list of \"columns\"".into()));
                    }
                    let unique_index = match def.get("origin").and_then(Json::as_str) {
                        None | Some("primary-key") => false,
                        Some("unique-index") => true,
                        Some(other) => {
                            return Err(at(format!(
                                "primary-key-def origin {other:?} is neither \"primary-key\" \
                                 nor \"unique-index\""
                            )));
                        }
                    };
                    let schema = locate("schema-name")
                        .ok_or_else(|| at("object-locator has no schema-name".into()))?;
                    let table = locate("table-name")
                        .ok_or_else(|| at("object-locator has no table-name".into()))?;
                    mapping.keys.push(KeyDefinition {
                        id: id.clone(),
                        schema,
                        table,
                        name: def.get("name").and_then(Json::as_str).map(str::to_owned),
                        columns,
                        unique_index,
                    });
                }
                "transformation" => {
                    let target = match text(rule, "rule-target") {
                        Some("schema") => RuleTarget::Schema,
                        Some("table") => RuleTarget::Table,
                        Some("column") => RuleTarget::Column,
                        Some(other) => {
                            return Err(at(format!(
                                "rule-target {other:?} is not supported by Ferry yet"
                            )));
                        }
                        None => return Err(at("has no rule-target".into())),
                    };
                    let value = || {
                        text(rule, "value")
                            .map(str::to_owned)
                            .ok_or_else(|| at("needs a \"value\"".into()))
                    };
                    let old = || {
                        text(rule, "old-value")
                            .map(str::to_owned)
                            .ok_or_else(|| at("needs an \"old-value\"".into()))
                    };
                    let change = match action {
                        "rename" => NameChange::Rename(value()?),
                        "convert-lowercase" => NameChange::Lowercase,
                        "convert-uppercase" => NameChange::Uppercase,
                        "add-prefix" => NameChange::AddPrefix(value()?),
                        "remove-prefix" => NameChange::RemovePrefix(value()?),
                        "replace-prefix" => NameChange::ReplacePrefix(old()?, value()?),
                        "add-suffix" => NameChange::AddSuffix(value()?),
                        "remove-suffix" => NameChange::RemoveSuffix(value()?),
                        "replace-suffix" => NameChange::ReplaceSuffix(old()?, value()?),
                        "remove-column" if target == RuleTarget::Column => NameChange::Remove,
                        "include-column" if target == RuleTarget::Column => NameChange::Include,
                        _ => {
                            return Err(at(
                                "this rule-action is not supported by Ferry yet; remove the rule"
                                    .into(),
                            ));
                        }
                    };
                    let schema = locate("schema-name")
                        .ok_or_else(|| at("object-locator has no schema-name".into()))?;
                    let table = locate("table-name").unwrap_or_else(|| "%".to_owned());
                    let column = locate("column-name").unwrap_or_else(|| "%".to_owned());
                    if target == RuleTarget::Column && locate("column-name").is_none() {
                        return Err(at("object-locator has no column-name".into()));
                    }
                    mapping.transformations.push(Transformation {
                        id,
                        target,
                        schema,
                        table,
                        column,
                        change,
                    });
                }
                _ => {
                    return Err(at(
                        "this rule-type is not supported by Ferry yet; remove the rule".into(),
                    ));
                }
            }
        }
        if mapping.selections.iter().all(|s| !s.include) {
            return Err(Error::config(format!(
                "{origin}: no selection rule includes a table (DMS needs at least one \
                 \"include\" selection rule)"
            )));
        }
        Ok(mapping)
    }

    /// `schema.table` include and exclude patterns of the selection rules.
    pub fn patterns(&self) -> (Vec<String>, Vec<String>) {
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        for s in &self.selections {
            let pattern = format!("{}.{}", s.schema, s.table);
            if s.include {
                include.push(pattern);
            } else {
                exclude.push(pattern);
            }
        }
        (include, exclude)
    }

    /// Whether any rule changes a name.
    pub fn renames(&self) -> bool {
        !self.transformations.is_empty()
    }

    /// The target name of source table `source` (schema and table rules).
    pub fn table_id(&self, source: &TableId) -> TableId {
        let mut namespace = source.namespace.clone();
        let mut name = source.name.clone();
        for t in &self.transformations {
            if !wildcard_match(&t.schema, &source.namespace)
                || !wildcard_match(&t.table, &source.name)
            {
                continue;
            }
            match t.target {
                RuleTarget::Schema => namespace = t.change.apply(&namespace),
                RuleTarget::Table => name = t.change.apply(&name),
                RuleTarget::Column => {}
            }
        }
        TableId::new(namespace, name)
    }

    /// Whether column `column` of source table `source` is left out: a
    /// `remove-column` rule matches it and no `include-column` rule does.
    pub fn removes(&self, source: &TableId, column: &str) -> bool {
        let matches = |change: &NameChange| {
            self.transformations.iter().any(|t| {
                t.change == *change
                    && wildcard_match(&t.schema, &source.namespace)
                    && wildcard_match(&t.table, &source.name)
                    && wildcard_match(&t.column, column)
            })
        };
        matches(&NameChange::Remove) && !matches(&NameChange::Include)
    }

    /// The positions of the columns of `source` that are migrated, when a
    /// `remove-column` rule drops any (`None`: all of them).
    pub fn kept_columns(&self, source: &TableSchema) -> Option<Vec<usize>> {
        let kept: Vec<usize> = (0..source.columns.len())
            .filter(|&i| !self.removes(&source.id, &source.columns[i].name))
            .collect();
        (kept.len() != source.columns.len()).then_some(kept)
    }

    /// The target name of column `column` of source table `source`.
    pub fn column_name(&self, source: &TableId, column: &str) -> String {
        let mut name = column.to_owned();
        for t in &self.transformations {
            if t.target == RuleTarget::Column
                && wildcard_match(&t.schema, &source.namespace)
                && wildcard_match(&t.table, &source.name)
                && wildcard_match(&t.column, column)
            {
                name = t.change.apply(&name);
            }
        }
        name
    }

    /// Renames `target` (the converted schema of source table `source`): its
    /// table, columns, and the columns and tables its keys, indexes and foreign
    /// keys name. Fails when two columns would get the same name.
    pub fn rename(&self, source: &TableId, target: &mut TableSchema) -> Result<()> {
        if let Some(key) = self.keys.iter().find(|k| {
            wildcard_match(&k.schema, &source.namespace) && wildcard_match(&k.table, &source.name)
        }) {
            if let Some(missing) = key.columns.iter().find(|c| target.column(c).is_none()) {
                return Err(Error::config(format!(
                    "table mapping rule {} (define-primary-key) names column {missing}, which \
                     {source} does not have",
                    key.id
                )));
            }
            if key.unique_index {
                target.unique_keys.push(UniqueKey {
                    name: key.name.clone().unwrap_or_else(|| {
                        format!("{}_{}_key", source.name, key.columns.join("_"))
                    }),
                    columns: key.columns.clone(),
                });
            } else {
                target.primary_key = key.columns.clone();
                target.primary_key_name = key.name.clone();
            }
        }
        let removed: Vec<String> = target
            .columns
            .iter()
            .filter(|c| self.removes(source, &c.name))
            .map(|c| c.name.clone())
            .collect();
        if let Some(key) = target.primary_key.iter().find(|k| removed.contains(k)) {
            return Err(Error::config(format!(
                "table mapping removes column {key} of {source}, which is part of its primary \
                 key: keep it (updates and deletes find rows by their key)"
            )));
        }
        if !removed.is_empty() {
            let gone = |c: &String| removed.contains(c);
            target.columns.retain(|c| !self.removes(source, &c.name));
            target.unique_keys.retain(|u| !u.columns.iter().any(gone));
            target.indexes.retain(|i| {
                !i.parts
                    .iter()
                    .any(|p| matches!(p, IndexPart::Column(c) if gone(c)))
            });
            target.foreign_keys.retain(|f| !f.columns.iter().any(gone));
        }
        let column = |c: &str| self.column_name(source, c);
        target.id = self.table_id(source);
        let mut seen = std::collections::HashSet::new();
        for c in &mut target.columns {
            c.name = column(&c.name);
            if !seen.insert(c.name.clone()) {
                return Err(Error::config(format!(
                    "table mapping gives two columns of {source} the name {:?}",
                    c.name
                )));
            }
        }
        for k in &mut target.primary_key {
            *k = column(k);
        }
        for u in &mut target.unique_keys {
            for c in &mut u.columns {
                *c = column(c);
            }
        }
        for i in &mut target.indexes {
            for p in &mut i.parts {
                if let IndexPart::Column(c) = p {
                    *c = column(c);
                }
            }
        }
        for f in &mut target.foreign_keys {
            for c in &mut f.columns {
                *c = column(c);
            }
            let referenced = f.referenced_table.clone();
            for c in &mut f.referenced_columns {
                *c = self.column_name(&referenced, c);
            }
            f.referenced_table = self.table_id(&referenced);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DMS: &str = r#"{
      "rules": [
        {"rule-type": "selection", "rule-id": "1", "rule-name": "1",
         "object-locator": {"schema-name": "shop", "table-name": "%"}, "rule-action": "include", "filters": []},
        {"rule-type": "selection", "rule-id": 2, "rule-name": "2",
         "object-locator": {"schema-name": "shop", "table-name": "tmp_%"}, "rule-action": "exclude"},
        {"rule-type": "transformation", "rule-id": "3", "rule-name": "3", "rule-target": "schema",
         "object-locator": {"schema-name": "shop"}, "rule-action": "rename", "value": "sales"},
        {"rule-type": "transformation", "rule-id": "4", "rule-name": "4", "rule-target": "table",
         "object-locator": {"schema-name": "shop", "table-name": "%"}, "rule-action": "add-prefix", "value": "old_"},
        {"rule-type": "transformation", "rule-id": "5", "rule-name": "5", "rule-target": "column",
         "object-locator": {"schema-name": "shop", "table-name": "orders", "column-name": "qty"},
         "rule-action": "rename", "value": "quantity"},
        {"rule-type": "transformation", "rule-id": "6", "rule-name": "6", "rule-target": "column",
         "object-locator": {"schema-name": "%", "table-name": "%", "column-name": "%"},
         "rule-action": "convert-uppercase"}
      ]
    }"#;

    #[test]
    fn dms_rules_select_and_rename() {
        let m = TableMapping::from_dms_json(DMS, "m.json").expect("parses");
        assert_eq!(
            m.patterns(),
            (vec!["shop.%".to_owned()], vec!["shop.tmp_%".to_owned()])
        );
        let orders = TableId::new("shop", "orders");
        assert_eq!(m.table_id(&orders), TableId::new("sales", "old_orders"));
        assert_eq!(m.column_name(&orders, "qty"), "QUANTITY");
        assert_eq!(m.column_name(&orders, "id"), "ID");
    }

    #[test]
    fn removed_columns_leave_the_target_and_keys_stay() {
        use crate::schema::Column;
        use crate::types::DataType;
        let json = r#"{"rules": [
          {"rule-type": "selection", "rule-id": "1", "object-locator": {"schema-name": "s", "table-name": "%"}, "rule-action": "include"},
          {"rule-type": "transformation", "rule-id": "2", "rule-target": "column",
           "object-locator": {"schema-name": "s", "table-name": "t", "column-name": "secret%"}, "rule-action": "remove-column"}]}"#;
        let m = TableMapping::from_dms_json(json, "m.json").expect("parses");
        let col = |name: &str| Column::nullable(name, DataType::Int32, "integer");
        let mut t = TableSchema::new(
            TableId::new("s", "t"),
            vec![col("id"), col("secret_a"), col("v")],
        );
        t.primary_key = vec!["id".into()];
        assert_eq!(m.kept_columns(&t), Some(vec![0, 2]));
        let keep_v = r#"{"rules": [
          {"rule-type": "selection", "rule-id": "1", "object-locator": {"schema-name": "s", "table-name": "%"}, "rule-action": "include"},
          {"rule-type": "transformation", "rule-id": "2", "rule-target": "column",
           "object-locator": {"schema-name": "s", "table-name": "t", "column-name": "%"}, "rule-action": "remove-column"},
          {"rule-type": "transformation", "rule-id": "3", "rule-target": "column",
           "object-locator": {"schema-name": "s", "table-name": "t", "column-name": "id"}, "rule-action": "include-column"}]}"#;
        let only_id = TableMapping::from_dms_json(keep_v, "m.json").expect("parses");
        assert_eq!(only_id.kept_columns(&t), Some(vec![0]));
        let mut target = t.clone();
        m.rename(&t.id, &mut target).expect("renames");
        let names: Vec<&str> = target.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "v"]);
        t.primary_key = vec!["secret_a".into()];
        let mut target = t.clone();
        let e = m.rename(&t.id, &mut target).expect_err("key column");
        assert!(e.message().contains("primary"), "{e}");
    }

    #[test]
    fn defined_keys_replace_the_primary_key_or_add_a_unique_one() {
        use crate::schema::Column;
        use crate::types::DataType;
        let rules = |origin: &str, column: &str| {
            format!(
                r#"{{"rules": [
                  {{"rule-type": "selection", "rule-id": "1", "object-locator": {{"schema-name": "s", "table-name": "%"}}, "rule-action": "include"}},
                  {{"rule-type": "transformation", "rule-id": "5", "rule-target": "table",
                    "object-locator": {{"schema-name": "s", "table-name": "t"}}, "rule-action": "define-primary-key",
                    "primary-key-def": {{"name": "t_key", "origin": "{origin}", "columns": ["{column}"]}}}}]}}"#
            )
        };
        let t = TableSchema::new(
            TableId::new("s", "t"),
            vec![Column::nullable("a", DataType::Int32, "integer")],
        );
        let pk = TableMapping::from_dms_json(&rules("primary-key", "a"), "m.json").expect("parses");
        let mut target = t.clone();
        pk.rename(&t.id, &mut target).expect("keyed");
        assert_eq!(target.primary_key, ["a"]);
        assert_eq!(target.primary_key_name.as_deref(), Some("t_key"));
        let unique =
            TableMapping::from_dms_json(&rules("unique-index", "a"), "m.json").expect("parses");
        let mut target = t.clone();
        unique.rename(&t.id, &mut target).expect("unique");
        assert!(target.primary_key.is_empty());
        assert_eq!(target.unique_keys[0].columns, ["a"]);
        let wrong =
            TableMapping::from_dms_json(&rules("primary-key", "zz"), "m.json").expect("parses");
        let e = wrong
            .rename(&t.id, &mut t.clone())
            .expect_err("no such column");
        assert!(
            e.message().contains("rule 5") && e.message().contains("zz"),
            "{e}"
        );
    }

    #[test]
    fn name_changes() {
        assert_eq!(NameChange::RemovePrefix("t_".into()).apply("t_a"), "a");
        assert_eq!(NameChange::RemovePrefix("t_".into()).apply("a"), "a");
        assert_eq!(
            NameChange::ReplaceSuffix("_v1".into(), "_v2".into()).apply("x_v1"),
            "x_v2"
        );
        assert_eq!(NameChange::Lowercase.apply("AbC"), "abc");
    }

    #[test]
    fn unsupported_rules_name_their_id_and_action() {
        let json = r#"{"rules": [
          {"rule-type": "selection", "rule-id": "1", "object-locator": {"schema-name": "s", "table-name": "%"}, "rule-action": "include"},
          {"rule-type": "transformation", "rule-id": "9", "rule-target": "column",
           "object-locator": {"schema-name": "s", "table-name": "t"}, "rule-action": "add-column", "value": "c"}]}"#;
        let e = TableMapping::from_dms_json(json, "m.json").expect_err("unsupported");
        assert!(
            e.message().contains("rule 9") && e.message().contains("add-column"),
            "{e}"
        );
        let json = r#"{"rules": [
          {"rule-type": "selection", "rule-id": "7", "object-locator": {"schema-name": "s", "table-name": "%"},
           "rule-action": "include", "filters": [{"filter-type": "source", "column-name": "a",
           "filter-conditions": [{"filter-operator": "eq", "value": "1"}]}]}]}"#;
        let e = TableMapping::from_dms_json(json, "m.json").expect_err("filters");
        assert!(
            e.message().contains("rule 7") && e.message().contains("filters"),
            "{e}"
        );
        let e = TableMapping::from_dms_json("{}", "m.json").expect_err("no rules");
        assert!(e.message().contains("rules"), "{e}");
    }
}
