//! Both sides' rows as lists of (key hash, row hash), sorted and merged: what the target
//! lacks, what it has extra, what differs. 16 bytes a row, where a hash map takes about
//! twice that: a million rows on each side stay near 32 MB.

/// A source row: its key's hash, its own, and whether it was written after the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub key: u64,
    pub hash: u64,
    pub newer: bool,
}

/// The key hashes of each kind of difference.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Differences {
    pub missing: Vec<u64>,
    pub extra: Vec<u64>,
    pub changed: Vec<u64>,
    /// Newer than the load: held otherwise by the target, or not at all (`newer_added`).
    pub newer: Vec<u64>,
    pub newer_added: Vec<u64>,
}

/// Merges the sides (sorting them first). Without a key, `key` is the row's own hash and
/// the rows are a multiset: equal hashes pair off one for one.
pub fn merge(source: &mut [Row], target: &mut [(u64, u64)]) -> Differences {
    source.sort_unstable();
    target.sort_unstable();
    let mut d = Differences::default();
    let (mut i, mut j, mut left) = (0, 0, Vec::new());
    while i < source.len() || j < target.len() {
        let key = match (source.get(i), target.get(j)) {
            (Some(s), Some(t)) => s.key.min(t.0),
            (Some(s), None) => s.key,
            (None, Some(t)) => t.0,
            (None, None) => unreachable!("the loop ends when both sides are done"),
        };
        let i2 = i + source[i..].iter().take_while(|s| s.key == key).count();
        let j2 = j + target[j..].iter().take_while(|t| t.0 == key).count();
        one_key(key, &source[i..i2], &target[j..j2], &mut left, &mut d);
        (i, j) = (i2, j2);
    }
    d
}

/// The rows of one key on each side, sorted by hash: equal hashes pair off first, so
/// pairs taken out beforehand (`pair`) change nothing; the rest pair by place, as changed
/// rows, and those left over are missing or extra. `left_s`: room for the source's.
fn one_key(
    key: u64,
    source: &[Row],
    target: &[(u64, u64)],
    left_s: &mut Vec<bool>,
    d: &mut Differences,
) {
    left_s.clear();
    let mut left_t = 0;
    let (mut i, mut j) = (0, 0);
    while i < source.len() || j < target.len() {
        match (source.get(i), target.get(j)) {
            (Some(s), Some(t)) if s.hash == t.1 => (i, j) = (i + 1, j + 1),
            (Some(s), t) if t.is_none_or(|t| s.hash < t.1) => {
                left_s.push(s.newer);
                i += 1;
            }
            _ => {
                left_t += 1;
                j += 1;
            }
        }
    }
    for (m, newer) in left_s.iter().enumerate() {
        let kind = match (m < left_t, newer) {
            (true, true) => &mut d.newer,
            (true, false) => &mut d.changed,
            (false, true) => &mut d.newer_added,
            (false, false) => &mut d.missing,
        };
        kind.push(key);
    }
    d.extra.extend(std::iter::repeat_n(
        key,
        left_t.saturating_sub(left_s.len()),
    ));
}

/// The values of sorted `held` that sorted `present` lacks.
pub fn absent<T: Ord + Copy>(present: &[T], held: &[T]) -> Vec<T> {
    let mut i = 0;
    let mut out = Vec::new();
    for &k in held {
        while i < present.len() && present[i] < k {
            i += 1;
        }
        if present.get(i) != Some(&k) {
            out.push(k);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: u64, hash: u64) -> Row {
        Row {
            key,
            hash,
            newer: false,
        }
    }

    #[test]
    fn each_kind_is_found() {
        let mut s = vec![row(3, 30), row(1, 10), row(2, 20), row(5, 51)];
        s.push(Row {
            key: 9,
            hash: 90,
            newer: true,
        });
        let mut t = vec![(4, 40), (1, 10), (2, 21), (5, 50)];
        let d = merge(&mut s, &mut t);
        assert_eq!(d.missing, vec![3]);
        assert_eq!(d.extra, vec![4]);
        assert_eq!(d.changed, vec![2, 5]);
        assert_eq!(d.newer_added, vec![9]);
    }

    #[test]
    fn repeated_keys_pair_by_their_hashes() {
        // A repeated key whose rows come in another order is no difference.
        let mut s = vec![row(7, 1), row(7, 2)];
        let mut t = vec![(7, 2), (7, 1)];
        assert_eq!(merge(&mut s, &mut t), Differences::default());
        let mut s = vec![row(1, 10), row(2, 21)];
        let mut t = vec![(1, 10), (2, 20)];
        assert_eq!(merge(&mut s, &mut t).changed, vec![2]);
    }

    #[test]
    fn a_repeated_key_pairs_equal_rows_first() {
        // Either way round, the row held alike on both sides is no difference.
        for (h1, h3) in [(1, 3), (3, 1)] {
            let mut s = vec![row(7, h1), row(7, 2)];
            let mut t = vec![(7, 2), (7, h3 + 10)];
            assert_eq!(merge(&mut s, &mut t).changed, vec![7]);
        }
        let mut s = vec![row(7, 1), row(7, 2), row(7, 2)];
        let mut t = vec![(7, 2)];
        assert_eq!(merge(&mut s, &mut t).missing, vec![7, 7]);
    }

    #[test]
    fn absent_keys_are_those_held_only() {
        assert_eq!(absent(&[1, 3, 5], &[1, 2, 3, 6]), vec![2, 6]);
        assert_eq!(absent::<i32>(&[], &[4]), vec![4]);
    }

    #[test]
    fn a_multiset_pairs_equal_hashes_one_for_one() {
        let mut s = vec![row(7, 7), row(7, 7), row(8, 8)];
        let mut t = vec![(7, 7), (8, 8), (8, 8)];
        let d = merge(&mut s, &mut t);
        assert_eq!((d.missing, d.extra), (vec![7], vec![8]));
    }
}
