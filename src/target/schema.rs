//! `[general] on_schema_change`: what a replace does when the query's columns are no longer
//! the target table's (a column lost, gained, or of another type). Both targets compare
//! the table with the staging table as their server declares them, so the types compared
//! are each server's own spelling; this module names the differences and decides.

use super::staging::Declared;
use super::SinkError;

/// `allow` (say nothing), `warn` (the default: replace, and warn naming the columns), or
/// `fail` (exit 1, the target kept as it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnSchemaChange {
    Allow,
    #[default]
    Warn,
    Fail,
}

impl OnSchemaChange {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow" => Some(OnSchemaChange::Allow),
            "warn" => Some(OnSchemaChange::Warn),
            "fail" => Some(OnSchemaChange::Fail),
            _ => None,
        }
    }
}

/// How the new columns differ from the table's, each list in the order the columns come.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub lost: Vec<String>,
    pub gained: Vec<String>,
    /// Name, the type it had, the type it gets.
    pub changed: Vec<(String, String, String)>,
}

impl Change {
    /// The differences between the table's columns (`have`) and the new ones (`want`),
    /// names compared without case (as both servers do), types by their spelling without
    /// case; the order of the columns does not count. `None` when they are the same.
    pub fn between(have: &[Declared], want: &[Declared]) -> Option<Change> {
        let find = |list: &[Declared], name: &str| -> Option<String> {
            list.iter()
                .find(|d| d.name.eq_ignore_ascii_case(name))
                .map(|d| d.ty.clone())
        };
        let mut change = Change::default();
        for h in have {
            match find(want, &h.name) {
                None => change.lost.push(h.name.clone()),
                Some(ty) if !same_type(&h.ty, &ty) => {
                    change.changed.push((h.name.clone(), h.ty.clone(), ty))
                }
                Some(_) => {}
            }
        }
        for w in want {
            if find(have, &w.name).is_none() {
                change.gained.push(w.name.clone());
            }
        }
        let same = change.lost.is_empty() && change.gained.is_empty() && change.changed.is_empty();
        (!same).then_some(change)
    }

    /// `lost: a, b; gained: c; changed: d (int → varchar(10))`.
    pub fn describe(&self) -> String {
        let quoted = |names: &[String]| -> String {
            let q: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            q.join(", ")
        };
        let mut parts = Vec::new();
        if !self.lost.is_empty() {
            parts.push(format!("lost {}", quoted(&self.lost)));
        }
        if !self.gained.is_empty() {
            parts.push(format!("gained {}", quoted(&self.gained)));
        }
        if !self.changed.is_empty() {
            let c: Vec<String> = self
                .changed
                .iter()
                .map(|(n, from, to)| format!("`{n}` ({} -> {})", shown(from), shown(to)))
                .collect();
            parts.push(format!("changed {}", c.join(", ")));
        }
        parts.join("; ")
    }
}

fn same_type(a: &str, b: &str) -> bool {
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    squeeze(a).eq_ignore_ascii_case(&squeeze(b))
}

fn shown(ty: &str) -> &str {
    if ty.is_empty() {
        "no declared type"
    } else {
        ty
    }
}

/// What `policy` makes of the replace of `target` whose columns change so: nothing, a
/// warning, or a refusal that keeps the target.
pub fn judge(
    policy: OnSchemaChange,
    target: String,
    change: Option<Change>,
) -> Result<(), SinkError> {
    let Some(change) = change else {
        return Ok(());
    };
    match policy {
        OnSchemaChange::Allow => {
            log::info!("the new table's columns differ: {}", change.describe());
            Ok(())
        }
        OnSchemaChange::Warn => {
            log::warn!(
                "the query's columns are no longer the table's: {} (on_schema_change = warn: \
                 replacing it; set it to fail to keep the table instead, or allow to \
                 say nothing)",
                change.describe()
            );
            Ok(())
        }
        OnSchemaChange::Fail => Err(SinkError::Refused {
            target,
            why: format!(
                "the query's columns are no longer the table's: {}, and \
                 on_schema_change = fail (fix the query, or set on_schema_change = warn for \
                 one run to take the new columns)",
                change.describe()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str, ty: &str) -> Declared {
        Declared {
            name: name.into(),
            ty: ty.into(),
        }
    }

    #[test]
    fn lost_gained_and_changed_columns_are_named() {
        let have = [
            d("id", "int(11)"),
            d("name", "varchar(20)"),
            d("old", "text"),
        ];
        assert_eq!(Change::between(&have, &have), None);
        let reordered = [
            d("NAME", "VARCHAR(20)"),
            d("old", "text"),
            d("ID", "int(11)"),
        ];
        assert_eq!(Change::between(&have, &reordered), None);
        let want = [
            d("id", "bigint(20)"),
            d("name", "varchar(20)"),
            d("new", ""),
        ];
        let change = Change::between(&have, &want).unwrap();
        assert_eq!(
            change.describe(),
            "lost `old`; gained `new`; changed `id` (int(11) -> bigint(20))"
        );
        let e = judge(OnSchemaChange::Fail, "t".into(), Some(change))
            .unwrap_err()
            .to_string();
        assert!(e.contains("on_schema_change = fail") && e.contains("nothing was changed"));
        assert!(judge(
            OnSchemaChange::Warn,
            "t".into(),
            Change::between(&have, &want)
        )
        .is_ok());
    }

    #[test]
    fn the_setting_reads_its_three_values() {
        assert_eq!(OnSchemaChange::parse(" FAIL"), Some(OnSchemaChange::Fail));
        assert_eq!(OnSchemaChange::parse("allow"), Some(OnSchemaChange::Allow));
        assert_eq!(OnSchemaChange::parse("ignore"), None);
        assert_eq!(OnSchemaChange::default(), OnSchemaChange::Warn);
    }
}
