//! A merge's deletes into a MySQL target (`deletes = apply`): the target's keys the source
//! no longer has. A single integer key whose values are dense is compared by the set of
//! values each group of 64 holds, as bits, on both servers: exact, so no key is read again.
//! Any other key by checksums of the keys alone, reading only the chunks whose sums differ.

use super::{both, chunked, chunking, extent, int_key, servers, text, Server};
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
) -> Result<Vanished, VerifyError> {
    let keys: Vec<SourceColumn> = key
        .iter()
        .filter_map(|k| source.columns().iter().find(|c| &c.name == k).cloned())
        .collect();
    let (mut src, mut tgt) = servers(plan, target, source)?;
    let Some(k) = int_key(&keys, Some(key)) else {
        // Hash buckets are read by a scan of the table, one per statement: large chunks.
        let chunking = chunking(&mut tgt, &keys, Some(key), CHUNK_ROWS)?;
        return by_sums(&mut src, &mut tgt, &chunking, &keys);
    };
    let (rows, lo, hi) = extent(&mut tgt, Some(k), KEY_CHUNK_ROWS)?;
    if let (Some(lo), Some(hi)) = (lo, hi) {
        if hi - lo < i128::from(rows.max(1)) * i128::from(BITS_SPAN_PER_ROW) {
            return by_bits(&mut src, &mut tgt, k, (lo, hi));
        }
    }
    // Small chunks: a range of an integer key is read through its index.
    let chunking = chunked((rows, lo, hi), Some(k), Some(key), KEY_CHUNK_ROWS);
    by_sums(&mut src, &mut tgt, &chunking, &keys)
}

/// Per group of 64 values of an integer key (NULL for a NULL key): rows, values held.
type Groups = HashMap<Option<u64>, (u64, u64)>;

impl Server {
    /// The answer of `sql::key_bits`.
    fn groups(&mut self, sql: &str) -> Result<Groups, VerifyError> {
        self.run(sql, |rows| {
            let mut out = Groups::new();
            for row in rows {
                let row = row?;
                let number = |i| text(&row, i).and_then(|v| v.parse::<u64>().ok());
                let group = number(0);
                out.insert(group, (number(1).unwrap_or(0), number(2).unwrap_or(0)));
            }
            Ok(out)
        })
    }
}

/// The target's values of an integer key that the source lacks, from both sides' bits.
/// The source's keys outside the target's `extent` are new: only counted.
fn by_bits(
    src: &mut Server,
    tgt: &mut Server,
    k: &SourceColumn,
    extent: (i128, i128),
) -> Result<Vanished, VerifyError> {
    let (s, t) = both(src, tgt, |side| {
        side.groups(&sql::key_bits(&k.name, &side.side, extent))
    })?;
    let signed = !matches!(k.ty, SqlType::Int { unsigned: true, .. });
    let (mut gone, mut differing) = (Vec::new(), 0);
    for (group, (_, held)) in &t {
        let Some(group) = group else { continue };
        let lost = held & !s.get(&Some(*group)).map_or(0, |g| g.1);
        differing += u64::from(lost != 0);
        for bit in (0..64).filter(|b| lost >> b & 1 == 1) {
            // The value's 64 bits, as the server's `>>` and `&` saw them.
            let value = group << 6 | bit;
            gone.push(match signed {
                true => i128::from(value as i64),
                false => i128::from(value),
            });
        }
    }
    gone.sort_unstable();
    Ok(Vanished {
        rows: gone.len() as u64,
        conditions: in_lists(&quote_mysql(&k.name), &gone),
        source_rows: s.values().map(|g| g.0).sum(),
        target_rows: t.values().map(|g| g.0).sum(),
        how: "bits of the key's values",
        chunks: t.len() as u64,
        differing_chunks: differing,
        seconds: 0.0,
    })
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
    let (mut rows, mut conditions) = (0, Vec::new());
    for part in differing.chunks(super::CHUNKS_PER_READ) {
        let (n, found) = match chunking {
            Chunking::Range { column, .. } => gone_numbers(src, tgt, chunking, column, part)?,
            _ => gone_hashed(src, tgt, chunking, keys, part)?,
        };
        rows += n;
        conditions.extend(found);
    }
    Ok(Vanished {
        rows: rows as u64,
        conditions,
        source_rows,
        target_rows,
        how: "checksums of the keys",
        chunks,
        differing_chunks: differing.len() as u64,
        seconds: 0.0,
    })
}

/// The target's integer keys in `chunks` that the source lacks: their values, sorted on
/// both sides (16 bytes each); how many, and the DELETE conditions naming them.
fn gone_numbers(
    src: &mut Server,
    tgt: &mut Server,
    chunking: &Chunking,
    column: &str,
    chunks: &[i128],
) -> Result<(usize, Vec<String>), VerifyError> {
    let (s, t) = both(src, tgt, |side| {
        let sql = chunking.key_values(&side.side, chunks).unwrap_or_default();
        side.numbers(&sql)
    })?;
    let gone = crate::verify::sorted::absent(&s, &t);
    Ok((gone.len(), in_lists(&quote_mysql(column), &gone)))
}

/// As `gone_numbers`, for any other key: by its canonical text.
fn gone_hashed(
    src: &mut Server,
    tgt: &mut Server,
    chunking: &Chunking,
    keys: &[SourceColumn],
    chunks: &[i128],
) -> Result<(usize, Vec<String>), VerifyError> {
    let (s, t) = both(src, tgt, |side| side.keyed(chunking, keys, chunks))?;
    let gone: Vec<Vec<u8>> = t.into_keys().filter(|k| !s.contains_key(k)).collect();
    let conditions = gone
        .chunks(crate::verify::DELETE_KEYS)
        .map(|part| chunking.key_in(keys, &tgt.side, part))
        .collect();
    Ok((gone.len(), conditions))
}
