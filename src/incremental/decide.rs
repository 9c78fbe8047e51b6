//! The incremental decision as a pure function: what the target holds and what the run
//! was asked, in; a full load, a read past a start, or a refusal, out. No database here.

use super::{same_columns, Bound, Incremental, KeyKind, TargetState};
use crate::transform::keys::pads_trailing_spaces;
use crate::transform::SourceColumn;

/// What a decision needs, as plain data.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub inc: &'a Incremental,
    /// The key column's name as the query returns it.
    pub key: &'a str,
    /// The key's kind; `None` when the fallback serves (its columns are SQLite's integers
    /// and text: the target's value tells).
    pub kind: Option<KeyKind>,
    pub fallback: bool,
    pub full_refresh: bool,
    /// The query's columns.
    pub columns: &'a [SourceColumn],
    /// The columns a merge matches rows by (empty for append).
    pub merge_key: &'a [String],
    /// The target compares text keys by the collation the state reports (SQLite): a key
    /// the source compares ignoring trailing spaces must be RTRIM there.
    pub collated_keys: bool,
    /// `None`: the target table does not exist.
    pub state: Option<&'a TargetState>,
}

/// What the run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Loads the whole table, for this reason (`warn`: a person should know).
    Full { why: String, warn: bool },
    /// Reads the rows past `start` (at it too when `inclusive`); `max` is the target's
    /// largest key, `start` the same or below it by the lookback.
    Read {
        max: Bound,
        start: Bound,
        inclusive: bool,
    },
}

/// Why the run must not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The target is kept as it is (exit 1).
    Target(String),
    /// A setting does not fit (exit 2).
    Setting {
        key: &'static str,
        value: String,
        why: String,
    },
}

fn full(why: impl Into<String>) -> Result<Decision, Refusal> {
    Ok(Decision::Full {
        why: why.into(),
        warn: false,
    })
}

/// The fallback's rows may be older than what the target got from the primary: they may
/// add to it, never replace it.
const OLDER: &str = "which may be older than those it holds: it is kept as it is; the next \
     run that reaches the primary source replaces it";

pub fn decide(f: &Facts) -> Result<Decision, Refusal> {
    let holds_rows = f.state.is_some_and(|s| s.has_rows);
    if f.fallback && f.full_refresh && holds_rows {
        return Err(Refusal::Target(
            "--full-refresh reloads it from the primary source, which is unreachable, and the \
             fallback's rows may be older than those it holds: it is kept as it is; run again \
             with --full-refresh once the primary is back (without it, a fallback run adds only \
             the fallback's rows from the target's largest key on)"
                .into(),
        ));
    }
    if f.full_refresh {
        return full("--full-refresh");
    }
    let Some(state) = f.state else {
        return full("the target table does not exist yet");
    };
    let names: Vec<String> = f.columns.iter().map(|c| c.name.clone()).collect();
    if !same_columns(&state.columns, &names) {
        return Err(Refusal::Target(format!(
            "its columns ({}) are not the query's ({}), so rows cannot be added to it: run once \
             with --full-refresh to replace it",
            state.columns.join(", "),
            names.join(", ")
        )));
    }
    let Some(max) = &state.max else {
        if !state.has_rows {
            return full("the target table has no rows");
        }
        if f.fallback {
            return Err(Refusal::Target(format!(
                "its rows all have a NULL `{}`, so nothing tells which of the fallback's rows \
                 are newer, and a full replace is not made from the fallback's rows, {OLDER}",
                f.key
            )));
        }
        return full(format!("the target's rows all have a NULL `{}`", f.key));
    };
    if let Some(why) = key_mismatch(f, state) {
        if f.fallback {
            return Err(Refusal::Target(format!(
                "{why}, and the full replace that would make it so is not made from the \
                 fallback's rows, {OLDER}"
            )));
        }
        return Ok(Decision::Full {
            why: format!("{why}: a full replace makes it so"),
            warn: true,
        });
    }
    let max = match f.kind {
        Some(k) => Bound::from_target(max, k),
        None => Bound::guess(max),
    }
    .map_err(|why| Refusal::Target(format!("{why}: run once with --full-refresh")))?;
    start(f, max)
}

/// Where the read starts. A merge reads the rows at the target's largest key again (a row
/// changed there is never lost), and from the primary also `incremental_lookback` below
/// it. The fallback's rows below the largest may be older than those the target holds, so
/// they are not read again.
fn start(f: &Facts, max: Bound) -> Result<Decision, Refusal> {
    let start = match (f.inc.merge, f.fallback) {
        (true, false) => max.back(f.inc.lookback).map_err(|why| Refusal::Setting {
            key: "incremental_lookback",
            value: f.inc.lookback_text.clone(),
            why,
        })?,
        _ => max,
    };
    Ok(Decision::Read {
        max,
        start,
        inclusive: f.inc.merge,
    })
}

/// Why the target's primary key cannot take a merge: it is not on the merge's columns, or
/// it compares a text key otherwise than the source does.
fn key_mismatch(f: &Facts, state: &TargetState) -> Option<String> {
    if !f.inc.merge {
        return None;
    }
    if !same_columns(&state.primary_key, f.merge_key) {
        return Some(format!(
            "the target table has no primary key on ({}), which a merge needs",
            f.merge_key.join(", ")
        ));
    }
    if !f.collated_keys || f.fallback {
        return None;
    }
    f.merge_key.iter().find_map(|k| {
        let col = f.columns.iter().find(|c| c.name.eq_ignore_ascii_case(k))?;
        let want = if pads_trailing_spaces(col) {
            "RTRIM"
        } else {
            "BINARY"
        };
        let have = state
            .key_collations
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(k))
            .map_or("BINARY", |(_, coll)| coll.as_str());
        (!have.eq_ignore_ascii_case(want)).then(|| {
            format!(
                "the target compares its key column `{}` by {have}, but the source compares it \
                 {}, so a merge could keep two rows for one key",
                col.name,
                match want {
                    "RTRIM" => "ignoring trailing spaces (a PAD SPACE collation)",
                    _ => "exactly",
                }
            )
        })
    })
}

/// What a run asks the source about its start (see `stall_warnings`): whether an append's
/// largest integer key is still there, and whether rows with a zero date as key are.
pub fn start_questions(
    inc: &Incremental,
    key: &str,
    kind: KeyKind,
    year: bool,
    max: Bound,
) -> super::StartQuestions {
    super::StartQuestions {
        key: key.to_string(),
        holds: match max {
            Bound::Int(n) if !inc.merge && !year => Some(n),
            _ => None,
        },
        zero_dates: kind != KeyKind::Int,
    }
}

/// Warnings when the target's largest key would keep the run from ever reading new rows:
/// a date ahead of the source's own clock (a row from the future makes every run read only
/// it), an append's integer key the source no longer has (a stray high id, deleted since,
/// hides every lower id added after it), or rows keyed by a zero date, which sort below
/// every start. `year`: the key is a YEAR column.
pub fn stall_warnings(
    inc: &Incremental,
    key: &str,
    kind: KeyKind,
    year: bool,
    max: Bound,
    view: &super::StartView,
) -> Vec<String> {
    let mut warnings: Vec<String> = stall_warning(inc, key, kind, year, max, view)
        .into_iter()
        .collect();
    if view.zero_keys == Some(true) {
        warnings.push(format!(
            "the source has rows whose `{key}` is a zero date (0000-00-00), which sorts below \
             every start: such rows are read by a full load only, and a row changed with a \
             zero `{key}` is never read again; give them a real date, or select \
             COALESCE(NULLIF(`{key}`, 0), <a date>) AS an alias and name that"
        ));
    }
    warnings
}

fn stall_warning(
    inc: &Incremental,
    key: &str,
    kind: KeyKind,
    year: bool,
    max: Bound,
    view: &super::StartView,
) -> Option<String> {
    let reads = match inc.merge {
        true => "merge reads only rows from it on (less the lookback)",
        false => "append reads only rows past it",
    };
    let ahead = |now: chrono::NaiveDateTime| {
        format!(
            "the target's largest `{key}`, {max}, lies ahead of the source's clock ({} UTC): \
             {reads}, so rows written until then are never copied; correct that row at the \
             source, then run once with --full-refresh",
            now.format("%Y-%m-%d %H:%M:%S")
        )
    };
    match (max, view.now_utc) {
        // A DATE or DATETIME carries no zone: ahead by more than the widest zone offset.
        (Bound::Instant(t), Some(now)) => {
            let margin = match kind {
                KeyKind::Timestamp => chrono::Duration::minutes(1),
                _ => chrono::Duration::hours(14),
            };
            (t > now + margin).then(|| ahead(now))
        }
        // Next year's models are on sale this year: a YEAR two ahead is from the future.
        (Bound::Int(y), Some(now)) if year => {
            let this_year = (now + chrono::Duration::hours(14)).format("%Y").to_string();
            (y > this_year.parse::<i128>().unwrap_or(i128::MAX - 1) + 1).then(|| ahead(now))
        }
        (Bound::Int(n), _) if !year && view.holds_max == Some(false) => Some(format!(
            "the target's largest `{key}`, {n}, is no longer in the source (deleted there, or a \
             stray value): {reads}, so rows added with lower keys are never copied (nothing is \
             lost while new keys keep growing past it, as AUTO_INCREMENT ids do); if it was a \
             stray, run once with --full-refresh"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Lookback, TargetMax};
    use super::*;
    use crate::transform::{Collation, SqlType};
    use std::time::Duration;

    fn column(name: &str, ty: SqlType, collation: Option<&str>) -> SourceColumn {
        SourceColumn {
            name: name.into(),
            ty,
            nullable: false,
            exact_mysql_type: None,
            collation: collation.map(|c| Collation {
                charset: "utf8mb4".into(),
                name: c.into(),
            }),
        }
    }

    fn columns() -> Vec<SourceColumn> {
        let int = SqlType::Int {
            bytes: 4,
            unsigned: false,
        };
        vec![
            column("id", int, None),
            column(
                "code",
                SqlType::Text {
                    max_chars: 9,
                    fixed: false,
                },
                Some("utf8mb4_bin"),
            ),
            column("k", SqlType::DateTime { fsp: 0 }, None),
        ]
    }

    fn state(max: Option<&str>, pk: &[&str]) -> TargetState {
        TargetState {
            columns: vec!["id".into(), "code".into(), "k".into()],
            primary_key: pk.iter().map(|s| s.to_string()).collect(),
            max: max.map(|m| TargetMax::Text(m.into())),
            has_rows: true,
            key_collations: Vec::new(),
        }
    }

    fn inc(merge: bool, lookback: Lookback) -> Incremental {
        Incremental {
            merge,
            key: "k".into(),
            lookback_text: lookback.to_string(),
            lookback,
        }
    }

    /// The decision for a merge by `k` with primary key `id` (or `key`), the primary serving.
    fn decide_with(
        inc: &Incremental,
        state: Option<&TargetState>,
        key: &[&str],
        edit: impl FnOnce(&mut Facts),
    ) -> Result<Decision, Refusal> {
        let cols = columns();
        let key: Vec<String> = key.iter().map(|s| s.to_string()).collect();
        let mut f = Facts {
            inc,
            key: "k",
            kind: Some(KeyKind::DateTime),
            fallback: false,
            full_refresh: false,
            columns: &cols,
            merge_key: &key,
            collated_keys: true,
            state,
        };
        edit(&mut f);
        decide(&f)
    }

    fn at(text: &str) -> Bound {
        Bound::from_target(&TargetMax::Text(text.into()), KeyKind::DateTime).unwrap()
    }

    fn is_full(d: Result<Decision, Refusal>) -> bool {
        matches!(d, Ok(Decision::Full { .. }))
    }

    fn refused_target(d: Result<Decision, Refusal>, words: &str) -> bool {
        matches!(d, Err(Refusal::Target(why)) if why.contains(words))
    }

    #[test]
    fn a_missing_or_empty_target_or_a_full_refresh_loads_everything() {
        let m = inc(true, Lookback::None);
        assert!(is_full(decide_with(&m, None, &["id"], |_| {})));
        let empty = TargetState {
            max: None,
            has_rows: false,
            ..state(None, &["id"])
        };
        assert!(is_full(decide_with(&m, Some(&empty), &["id"], |_| {})));
        let s = state(Some("2024-01-01 00:00:00"), &["id"]);
        assert!(is_full(decide_with(&m, Some(&s), &["id"], |f| {
            f.full_refresh = true
        })));
    }

    #[test]
    fn a_merge_reads_from_the_largest_key_less_the_lookback() {
        let m = inc(true, Lookback::Span(Duration::from_secs(3600)));
        let s = state(Some("2024-01-01 10:00:00"), &["id"]);
        assert_eq!(
            decide_with(&m, Some(&s), &["id"], |_| {}),
            Ok(Decision::Read {
                max: at("2024-01-01 10:00:00"),
                start: at("2024-01-01 09:00:00"),
                inclusive: true
            })
        );
    }

    #[test]
    fn an_append_reads_strictly_past_the_largest_key() {
        let a = inc(false, Lookback::None);
        let s = state(Some("2024-01-01 10:00:00"), &[]);
        assert_eq!(
            decide_with(&a, Some(&s), &[], |_| {}),
            Ok(Decision::Read {
                max: at("2024-01-01 10:00:00"),
                start: at("2024-01-01 10:00:00"),
                inclusive: false
            })
        );
    }

    #[test]
    fn a_fallback_merge_reads_at_the_largest_key_without_the_lookback() {
        // The same rule as the primary's at the maximum, so a row changed there is not
        // skipped; nothing below it, which the target may hold in a newer version.
        let m = inc(true, Lookback::Span(Duration::from_secs(3600)));
        let s = state(Some("2024-01-01 10:00:00"), &["id"]);
        assert_eq!(
            decide_with(&m, Some(&s), &["id"], |f| {
                f.fallback = true;
                f.kind = None;
            }),
            Ok(Decision::Read {
                max: at("2024-01-01 10:00:00"),
                start: at("2024-01-01 10:00:00"),
                inclusive: true
            })
        );
    }

    #[test]
    fn a_fallback_never_replaces_a_target_that_holds_rows() {
        let m = inc(true, Lookback::None);
        let s = state(Some("2024-01-01 10:00:00"), &["id"]);
        let fallback = |f: &mut Facts| {
            f.fallback = true;
            f.kind = None;
        };
        let refresh = decide_with(&m, Some(&s), &["id"], |f| {
            fallback(f);
            f.full_refresh = true;
        });
        assert!(refused_target(refresh, "--full-refresh"));
        let no_pk = state(Some("2024-01-01 10:00:00"), &[]);
        assert!(refused_target(
            decide_with(&m, Some(&no_pk), &["id"], fallback),
            "no primary key"
        ));
        let null_keys = state(None, &["id"]);
        assert!(refused_target(
            decide_with(&m, Some(&null_keys), &["id"], fallback),
            "NULL"
        ));
    }

    #[test]
    fn a_target_without_the_merge_key_gets_a_full_replace_that_warns() {
        let m = inc(true, Lookback::None);
        let s = state(Some("2024-01-01 10:00:00"), &[]);
        let d = decide_with(&m, Some(&s), &["id"], |_| {});
        assert!(
            matches!(&d, Ok(Decision::Full { why, warn: true }) if why.contains("(id)")),
            "{d:?}"
        );
    }

    #[test]
    fn a_sqlite_key_must_compare_trailing_spaces_as_the_source_does() {
        let m = inc(true, Lookback::None);
        let mut s = state(Some("2024-01-01 10:00:00"), &["code"]);
        let d = decide_with(&m, Some(&s), &["code"], |_| {});
        assert!(
            matches!(&d, Ok(Decision::Full { why, warn: true }) if why.contains("RTRIM") || why.contains("trailing")),
            "{d:?}"
        );
        s.key_collations = vec![("code".into(), "RTRIM".into())];
        assert!(matches!(
            decide_with(&m, Some(&s), &["code"], |_| {}),
            Ok(Decision::Read { .. })
        ));
        // A MySQL target keeps the source's collation: nothing to compare.
        s.key_collations.clear();
        assert!(matches!(
            decide_with(&m, Some(&s), &["code"], |f| f.collated_keys = false),
            Ok(Decision::Read { .. })
        ));
    }

    #[test]
    fn changed_columns_or_an_unreadable_maximum_are_refused() {
        let m = inc(true, Lookback::None);
        let mut s = state(Some("2024-01-01 10:00:00"), &["id"]);
        s.columns.pop();
        assert!(refused_target(
            decide_with(&m, Some(&s), &["id"], |_| {}),
            "--full-refresh"
        ));
        let s = state(Some("yesterday"), &["id"]);
        assert!(refused_target(
            decide_with(&m, Some(&s), &["id"], |_| {}),
            "--full-refresh"
        ));
    }

    #[test]
    fn a_lookback_of_the_wrong_kind_names_its_value() {
        let m = inc(true, Lookback::Steps(500));
        let s = state(Some("2024-01-01 10:00:00"), &["id"]);
        assert_eq!(
            decide_with(&m, Some(&s), &["id"], |_| {}),
            Err(Refusal::Setting {
                key: "incremental_lookback",
                value: "500".into(),
                why: "incremental_lookback is a number, but incremental_key is a date: give a \
                      span with a unit (e.g. 2h or 1d)"
                    .into()
            })
        );
    }

    fn now() -> chrono::NaiveDateTime {
        match at("2026-12-05 12:00:00") {
            Bound::Instant(t) => t,
            Bound::Int(_) => unreachable!(),
        }
    }

    #[test]
    fn a_largest_key_ahead_of_the_source_clock_warns() {
        let m = inc(true, Lookback::None);
        let view = super::super::StartView {
            now_utc: Some(now()),
            holds_max: None,
            zero_keys: None,
        };
        let warn = |kind, max| stall_warnings(&m, "k", kind, false, max, &view).pop();
        let future = at("2099-01-01 00:00:00");
        assert!(warn(KeyKind::DateTime, future)
            .unwrap()
            .contains("ahead of the source's clock (2026-12-05 12:00:00 UTC)"));
        // A DATETIME may be local time in a zone ahead of UTC; a TIMESTAMP is an instant.
        let in_10h = at("2026-12-05 22:00:00");
        assert_eq!(warn(KeyKind::DateTime, in_10h), None);
        assert!(warn(KeyKind::Timestamp, in_10h).is_some());
        assert_eq!(warn(KeyKind::Timestamp, at("2026-12-05 12:00:30")), None);
        let year = |y| stall_warnings(&m, "y", KeyKind::Int, true, Bound::Int(y), &view).pop();
        assert!(year(2028).is_some());
        assert_eq!(year(2027), None);
    }

    #[test]
    fn a_largest_integer_key_the_source_lost_warns() {
        let a = inc(false, Lookback::None);
        let view = |holds| super::super::StartView {
            now_utc: Some(now()),
            holds_max: holds,
            zero_keys: None,
        };
        let warn = |holds| {
            stall_warnings(&a, "id", KeyKind::Int, false, Bound::Int(9), &view(holds)).pop()
        };
        assert!(warn(Some(false))
            .unwrap()
            .contains("`id`, 9, is no longer in the source"));
        assert_eq!(warn(Some(true)), None);
        assert_eq!(warn(None), None);
    }

    #[test]
    fn rows_with_only_null_keys_reload_from_the_primary() {
        let m = inc(true, Lookback::None);
        let s = state(None, &["id"]);
        assert!(is_full(decide_with(&m, Some(&s), &["id"], |_| {})));
    }
}
