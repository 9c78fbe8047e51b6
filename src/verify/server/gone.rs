//! A merge's deletes into a MySQL target (`deletes = apply`): the target's keys the source
//! no longer has. A single integer key whose values are dense is compared by the set of
//! values each group of 64 holds, as bits, on both servers: exact, so no key is read again.
//! Any other key by checksums of the keys alone, reading only the chunks whose sums differ.

use super::{both, chunked, chunking, extent, int_key, servers, text, Server};
use crate::incremental::Filter;
use crate::plan::Plan;
use crate::source::mysql::MySqlSource;
use crate::source::Source;
use crate::target::MySqlTarget;
use crate::transform::{quote_mysql, SourceColumn, SqlType};
use crate::verify::sql::{self, Chunking, CHUNK_ROWS};
use crate::verify::{in_lists, Vanished, VerifyError};
use std::collections::HashMap;

/// Rows a chunk of a merge's key checksums aims at (`deletes = apply`, a single integer
/// key too sparse for bits): a chunk's sum is a line of about 30 bytes, and its keys are
/// read when one of its rows is gone, so deletes spread over the table (0.1% of the rows,
/// every thousandth) read about an eighth of the keys, where chunks of `CHUNK_ROWS` read
/// them all. The server's work is the same (measured: 1.08–1.10 s a side for 1M keys, at
/// 128 to 33,000 rows a chunk).
const KEY_CHUNK_ROWS: u64 = 128;
/// An integer key is compared by bits when its values span at most this many times its
/// rows (at least 8 of each group's 64 values held, on average): each group is a line of
/// the answer, so a sparser key would send about a line per key.
const BITS_SPAN_PER_ROW: u64 = 8;

/// The target's keys the source no longer has: a dense single integer key by the bits of
/// its values, any other by checksums of the keys.
pub(in crate::verify) fn vanished(
    plan: &Plan,
    target: &MySqlTarget,
    source: &MySqlSource,
    key: &[String],
    read: Option<&Filter>,
) -> Result<Vanished, VerifyError> {
    let keys: Vec<SourceColumn> = key
        .iter()
        .filter_map(|k| source.columns().iter().find(|c| &c.name == k).cloned())
        .collect();
    let (mut src, mut tgt) = servers(plan, target, source)?;
    // The source's rows the merge did not read are flagged (the target's never are).
    if let Some(f) = read {
        src.flag = sql::unread(f, sql::SOURCE_ALIAS);
        src.flag_all = true;
    }
    let Some(k) = int_key(&keys, Some(key)) else {
        // Hash buckets are read by a scan of the table, one per statement: large chunks.
        let chunking = chunking(&mut tgt, &keys, Some(key), CHUNK_ROWS)?;
        return by_sums(&mut src, &mut tgt, &chunking, &keys);
    };
    let (rows, lo, hi) = extent(&mut tgt, Some(k), KEY_CHUNK_ROWS)?;
    if let (Some(lo), Some(hi)) = (lo, hi) {
        if hi - lo < i128::from(rows.max(1)) * i128::from(BITS_SPAN_PER_ROW) {
            return by_bits(&mut src, &mut tgt, k);
        }
    }
    // Small chunks: a range of an integer key is read through its index.
    let chunking = chunked((rows, lo, hi), Some(k), Some(key), KEY_CHUNK_ROWS);
    by_sums(&mut src, &mut tgt, &chunking, &keys)
}

/// Per group of 64 values of an integer key (NULL for a NULL key).
#[derive(Debug, Default, Clone, Copy)]
struct Group {
    rows: u64,
    /// The values held, as bits.
    held: u64,
}

type Groups = HashMap<Option<u64>, Group>;

impl Server {
    /// The answer of `sql::key_bits`.
    fn groups(&mut self, column: &str) -> Result<Groups, VerifyError> {
        self.groups_of(&sql::key_bits(column, &self.side))
    }

    /// Groups as `sql::key_bits` and `sql::unread_bits` answer them. A number that does
    /// not parse is an error: read as 0 it would hide values.
    fn groups_of(&mut self, sql: &str) -> Result<Groups, VerifyError> {
        let groups = self.parsed(sql, |row| {
            let number = |i: usize| match text(row, i) {
                None => Ok(None),
                Some(v) => v
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| format!("a key group's figure is not a number: {v}")),
            };
            let group = Group {
                rows: number(1)?.unwrap_or(0),
                held: number(2)?.unwrap_or(0),
            };
            Ok(Some((number(0)?, group)))
        })?;
        Ok(groups.into_iter().collect())
    }

    /// The rows of `sql`, each made a `T` by `each` as it comes (`None`: skipped). A row
    /// `each` refuses ends the read, an error naming why.
    fn parsed<T>(
        &mut self,
        sql: &str,
        mut each: impl FnMut(&mysql::Row) -> Result<Option<T>, String>,
    ) -> Result<Vec<T>, VerifyError> {
        let mut refused = None;
        let out = self.run(sql, |rows| {
            let mut out = Vec::new();
            for row in rows {
                match each(&row?) {
                    Ok(Some(t)) => out.push(t),
                    Ok(None) => {}
                    Err(why) => {
                        refused = Some(why);
                        break;
                    }
                }
            }
            Ok(out)
        })?;
        match refused {
            Some(message) => Err(VerifyError::Query {
                side: self.name,
                message,
            }),
            None => Ok(out),
        }
    }

    /// A single integer key's values of `chunks`: all of them, and those whose rows are
    /// all flagged, each sorted once.
    fn key_values(
        &mut self,
        chunking: &Chunking,
        chunks: &[i128],
    ) -> Result<(Vec<i128>, Vec<i128>), VerifyError> {
        let sql = chunking
            .key_values(&self.side, chunks, &self.flag)
            .unwrap_or_default();
        // A value that does not parse is an error: dropped, a source's value would make the
        // target's row look gone.
        let mut rows = self.parsed(&sql, |row| match text(row, 0) {
            None => Ok(None),
            Some(v) => match v.parse::<i128>() {
                Ok(v) => Ok(Some((v, text(row, 1) == Some("1")))),
                Err(_) => Err(format!("a key's value is not a number: {v}")),
            },
        })?;
        // Unflagged first among a value's rows, once sorted.
        rows.sort_unstable();
        let all: Vec<i128> = rows.iter().map(|r| r.0).collect();
        let mut flagged: Vec<i128> = Vec::new();
        for (i, (v, flag)) in rows.iter().enumerate() {
            let first = i == 0 || rows[i - 1].0 != *v;
            if *flag && first {
                flagged.push(*v);
            }
        }
        Ok((all, flagged))
    }
}

/// The target's values of an integer key that the source lacks, from both sides' bits
/// (the source's above the target's largest, new rows, are a few lines more).
fn by_bits(src: &mut Server, tgt: &mut Server, k: &SourceColumn) -> Result<Vanished, VerifyError> {
    let (s, t) = both(src, tgt, |side| side.groups(&k.name))?;
    let signed = !matches!(k.ty, SqlType::Int { unsigned: true, .. });
    let (gone, differing) = only_in(&t, &s, signed);
    let unread_lacking = match src.flag.as_str() {
        "0" => 0,
        _ => unread_lacking(src, &k.name, &s, &t, signed)?,
    };
    Ok(Vanished {
        rows: gone.len() as u64,
        conditions: in_lists(&quote_mysql(&k.name), &gone),
        source_rows: s.values().map(|g| g.rows).sum(),
        target_rows: t.values().map(|g| g.rows).sum(),
        how: "bits of the key's values",
        chunks: t.len() as u64,
        differing_chunks: differing,
        seconds: 0.0,
        unread_lacking,
    })
}

/// Source values only ever on rows the merge did not read (`src.flag`) that the target
/// lacks, asked of the source among the values it holds and the target lacks: the rows
/// this run read above the target's largest key, most nights one run of values, and any
/// that are not (`sql::among`; past its runs of values, by a pass over every row).
fn unread_lacking(
    src: &mut Server,
    column: &str,
    s: &Groups,
    t: &Groups,
    signed: bool,
) -> Result<u64, VerifyError> {
    let (lacking, _) = only_in(s, t, signed);
    if lacking.is_empty() {
        return Ok(0);
    }
    let held = by_value(t, signed);
    let within = sql::among(column, &lacking, |a, b| holds_between(&held, a, b));
    let sql = sql::unread_bits(column, &src.side, &within, &src.flag);
    let unread = src.groups_of(&sql)?;
    Ok(unread
        .iter()
        .map(|(group, g)| {
            let held = t.get(group).map_or(0, |t| t.held);
            u64::from((g.held & !held).count_ones())
        })
        .sum())
}

/// The groups' first values (as the key's type reads them: a group's 64 values are
/// consecutive either way) and bits, sorted by value: a few bytes per 64 keys, where the
/// values themselves would take 16 bytes each.
fn by_value(groups: &Groups, signed: bool) -> Vec<(i128, u64)> {
    let mut out: Vec<(i128, u64)> = groups
        .iter()
        .filter_map(|(group, g)| Some((value((*group)? << 6, signed), g.held)))
        .collect();
    out.sort_unstable();
    out
}

/// Whether any value `held` (see `by_value`) holds lies strictly between `a` and `b`.
fn holds_between(held: &[(i128, u64)], a: i128, b: i128) -> bool {
    let mut i = held.partition_point(|(first, _)| first + 63 <= a);
    // A group has a value (or it would not be there): at most the first two tell.
    while let Some(&(first, bits)) = held.get(i) {
        if first >= b {
            return false;
        }
        let (lo, hi) = ((a + 1 - first).max(0), (b - 1 - first).min(63));
        if lo <= hi && bits & (u64::MAX >> (63 - hi) & u64::MAX << lo) != 0 {
            return true;
        }
        i += 1;
    }
    false
}

/// The values `a`'s groups hold that `b`'s lack (sorted), and the groups that have any.
fn only_in(a: &Groups, b: &Groups, signed: bool) -> (Vec<i128>, u64) {
    let (mut values, mut groups) = (Vec::new(), 0);
    for (group, g) in a {
        let Some(group) = group else { continue };
        let only = g.held & !b.get(&Some(*group)).map_or(0, |g| g.held);
        groups += u64::from(only != 0);
        for bit in (0..64).filter(|b| only >> b & 1 == 1) {
            values.push(value(group << 6 | bit, signed));
        }
    }
    values.sort_unstable();
    (values, groups)
}

/// A key's value from its 64 bits, as the server's `>>` and `&` saw them.
fn value(bits: u64, signed: bool) -> i128 {
    match signed {
        true => i128::from(bits as i64),
        false => i128::from(bits),
    }
}

/// The target's keys the source no longer has, found by checksums of the keys alone: only
/// the chunks whose key sums differ are read, on both sides.
fn by_sums(
    src: &mut Server,
    tgt: &mut Server,
    chunking: &Chunking,
    keys: &[SourceColumn],
) -> Result<Vanished, VerifyError> {
    let (source_rows, target_rows, chunks, differing) = super::differing(src, tgt, chunking, keys)?;
    let mut found = Found::default();
    for part in differing.chunks(super::CHUNKS_PER_READ) {
        match chunking {
            Chunking::Range { column, .. } => {
                gone_numbers(src, tgt, chunking, column, part, &mut found)?
            }
            _ => gone_hashed(src, tgt, chunking, keys, part, &mut found)?,
        };
    }
    Ok(Vanished {
        rows: found.rows,
        conditions: found.conditions,
        source_rows,
        target_rows,
        how: "checksums of the keys",
        chunks,
        differing_chunks: differing.len() as u64,
        seconds: 0.0,
        unread_lacking: found.unread_lacking,
    })
}

/// What the differing chunks' keys tell, added up.
#[derive(Default)]
struct Found {
    /// The target's rows the source lacks, and the DELETE conditions naming them.
    rows: u64,
    conditions: Vec<String>,
    /// The source's rows flagged unread whose key the target lacks.
    unread_lacking: u64,
}

/// The target's integer keys in `chunks` that the source lacks: their values, sorted on
/// both sides (16 bytes each).
fn gone_numbers(
    src: &mut Server,
    tgt: &mut Server,
    chunking: &Chunking,
    column: &str,
    chunks: &[i128],
    found: &mut Found,
) -> Result<(), VerifyError> {
    let ((s, unread), (t, _)) = both(src, tgt, |side| side.key_values(chunking, chunks))?;
    let gone = crate::verify::sorted::absent(&s, &t);
    found.rows += gone.len() as u64;
    found
        .conditions
        .extend(in_lists(&quote_mysql(column), &gone));
    found.unread_lacking += crate::verify::sorted::absent(&t, &unread).len() as u64;
    Ok(())
}

/// As `gone_numbers`, for any other key: by its canonical text.
fn gone_hashed(
    src: &mut Server,
    tgt: &mut Server,
    chunking: &Chunking,
    keys: &[SourceColumn],
    chunks: &[i128],
    found: &mut Found,
) -> Result<(), VerifyError> {
    let (s, t) = both(src, tgt, |side| side.keyed(chunking, keys, chunks))?;
    let unread = s
        .iter()
        .filter(|(k, (_, flagged))| *flagged && !t.contains_key(*k));
    found.unread_lacking += unread.count() as u64;
    let gone: Vec<Vec<u8>> = t.into_keys().filter(|k| !s.contains_key(k)).collect();
    found.rows += gone.len() as u64;
    found.conditions.extend(
        gone.chunks(crate::verify::DELETE_KEYS)
            .map(|part| chunking.key_in(keys, &tgt.side, part)),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{by_value, holds_between, Group, Groups};

    #[test]
    fn a_held_value_between_two_is_found_strictly() {
        // Values -5, 2, 7 and 200 (signed): groups -1 (bit 59), 0 (bits 2, 7), 3 (bit 8).
        let mut groups = Groups::new();
        let mut add = |group: u64, held: u64| groups.insert(Some(group), Group { rows: 1, held });
        add(u64::MAX >> 6, 1 << 59);
        add(0, 1 << 2 | 1 << 7);
        add(3, 1 << 8);
        let held = by_value(&groups, true);
        assert!(holds_between(&held, 1, 3));
        assert!(!holds_between(&held, 2, 7));
        assert!(!holds_between(&held, 3, 6));
        assert!(holds_between(&held, -6, 0));
        assert!(!holds_between(&held, -5, 2));
        assert!(holds_between(&held, 7, 201));
        assert!(!holds_between(&held, 7, 200));
        assert!(!holds_between(&held, 200, i128::from(u64::MAX)));
        let held = by_value(&groups, false);
        // Unsigned, the first group holds 2^64 - 5.
        assert!(holds_between(&held, 300, i128::from(u64::MAX)));
        assert!(!holds_between(&[], 0, 10));
    }
}
