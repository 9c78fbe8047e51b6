//! Which of a merge's source keys only rows it did not read hold (`deletes = apply`): the
//! mark of such a row, and the statements that ask the source about some values alone.

use super::Side;
use crate::incremental::Filter;
use crate::source::mysql::filter::condition;
use crate::transform::quote_mysql;

/// The values of a single integer key that `unread` marks on every row that has them
/// (a value with a row the merge read is in the target after it), among those `within`
/// selects (see `among`).
pub fn unread_keys(column: &str, side: &Side, within: &str, unread: &str) -> String {
    let q = quote_mysql(column);
    side.select(
        &format!("{q} AS k"),
        Some(&format!("{within} GROUP BY {q} HAVING MIN({unread}) = 1")),
    )
}

/// `unread_keys` as `key_bits` gives them: per group of 64, the values and the bits.
pub fn unread_bits(column: &str, side: &Side, within: &str, unread: &str) -> String {
    super::bits_of(&unread_keys(column, side, within, unread))
}

/// Runs of values a statement names, at most; past them, every row is looked at.
const RUNS: usize = 1000;

/// A condition on `column` that holds for `values` (sorted), as runs of them that no value
/// the target holds falls in (`holds_between(a, b)`: one does strictly between): the
/// values between two of them that neither side holds do not break a run (gaps in an
/// AUTO_INCREMENT, an increment of 2 or more), and the target's are told apart by the
/// caller anyway. Most nights one run: the new rows. Past `RUNS` runs, `TRUE`.
pub fn among(column: &str, values: &[i128], holds_between: impl Fn(i128, i128) -> bool) -> String {
    let runs = runs(values, holds_between);
    match runs.len() {
        0 => return "FALSE".into(),
        n if n > RUNS => return "TRUE".into(),
        _ => {}
    }
    let q = quote_mysql(column);
    let each: Vec<String> = runs
        .iter()
        .map(|(a, b)| match a == b {
            true => format!("{q} = {a}"),
            false => format!("{q} BETWEEN {a} AND {b}"),
        })
        .collect();
    format!("({})", each.join(" OR "))
}

/// Sorted values as runs (first, last) that `holds_between` says nothing breaks.
fn runs(values: &[i128], holds_between: impl Fn(i128, i128) -> bool) -> Vec<(i128, i128)> {
    let mut out: Vec<(i128, i128)> = Vec::new();
    for &v in values {
        match out.last_mut() {
            Some(last) if !holds_between(last.1, v) => last.1 = v,
            _ => out.push((v, v)),
        }
    }
    out
}

/// 1 for a source row a merge did not read (outside `filter`), else 0, evaluated on the
/// rows of `Side::Source`'s select, or those of a query wrapped as `alias`.
pub fn unread(filter: &Filter, alias: &str) -> String {
    format!("IF({}, 0, 1)", condition(filter, alias))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_make_runs_broken_only_by_held_values() {
        let held = |h: &'static [i128]| move |a: i128, b: i128| h.iter().any(|v| a < *v && *v < b);
        assert_eq!(runs(&[], held(&[])), vec![]);
        let values = [-1, 0, 1, 3, 5, 6, 9];
        assert_eq!(runs(&values, held(&[])), vec![(-1, 9)]);
        // 4 and 7 are held: 3..5 and 6..9 are apart; 2 is not held, so -1..3 is one run.
        let apart = runs(&values, held(&[-5, 4, 7, 20]));
        assert_eq!(apart, vec![(-1, 3), (5, 6), (9, 9)]);
        assert_eq!(
            among("id", &values, held(&[-5, 4, 7, 20])),
            "(`id` BETWEEN -1 AND 3 OR `id` BETWEEN 5 AND 6 OR `id` = 9)"
        );
        let many: Vec<i128> = (0..2002).step_by(2).collect();
        let every_odd = |a: i128, b: i128| b - a > 1;
        assert_eq!(among("id", &many, every_odd), "TRUE");
        assert_eq!(among("id", &[], every_odd), "FALSE");
    }
}
