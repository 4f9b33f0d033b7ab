//! Turning source ranges into one flat, gap-free segment list.
//!
//! Every source (MaxMind networks, CSV rows, overrides) is first read as a
//! list of inclusive `[start, end]` ranges in a `u128` key space (IPv4 uses
//! `0..=u32::MAX`). [`sweep`] turns such a list, possibly nested or
//! overlapping, into *segments*: a sorted list of `(start, value)` pairs that
//! starts at 0 and covers the whole key space, each segment running up to the
//! next one's start. Gaps get `None`. [`zip`] combines two segment lists over
//! the same key space into one. Adjacent segments with equal values are always
//! coalesced, so the lookup table stays as small as the data allows.

/// One input range.
#[derive(Debug, Clone)]
pub(crate) struct Range<V> {
    pub start: u128,
    pub end: u128,
    pub val: V,
}

/// A segment list: sorted starts, first start is 0.
pub(crate) type Segments<V> = Vec<(u128, V)>;

fn push_coalesced<V: PartialEq>(out: &mut Segments<V>, start: u128, val: V) {
    if let Some((_, last)) = out.last() {
        if *last == val {
            return;
        }
    }
    out.push((start, val));
}

/// Flattens `ranges` over `0..=max` into segments.
///
/// Where ranges overlap, every active range contributes, oldest (earliest
/// start, then widest) first: `merge(acc, newer)` folds a newer (more
/// specific) range's value into the accumulated one. With `merge` replacing
/// the accumulator this gives "most specific / latest wins"; with a field-wise
/// overlay it gives partial overrides. Ranges reaching past `max` are clipped.
pub(crate) fn sweep<V: Clone + PartialEq>(
    mut ranges: Vec<Range<V>>,
    max: u128,
    merge: impl Fn(&mut V, &V),
) -> Segments<Option<V>> {
    // Stable sort: among equal (start, end) the later-added range wins.
    ranges.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Segments<Option<V>> = Vec::new();
    // Active ranges, innermost last: (end, index into ranges).
    let mut stack: Vec<(u128, usize)> = Vec::new();
    let mut pos: Option<u128> = Some(0);

    let advance_through = |last: u128,
                           pos: &mut Option<u128>,
                           stack: &mut Vec<(u128, usize)>,
                           out: &mut Segments<Option<V>>| {
        while let Some(p) = *pos {
            if p > last {
                break;
            }
            while matches!(stack.last(), Some(&(end, _)) if end < p) {
                stack.pop();
            }
            let (seg_end, val) = match stack.last() {
                None => (last, None),
                Some(&(top_end, _)) => {
                    let mut acc: Option<V> = None;
                    for &(end, idx) in stack.iter() {
                        if end < p {
                            continue;
                        }
                        match acc.as_mut() {
                            None => acc = Some(ranges[idx].val.clone()),
                            Some(a) => merge(a, &ranges[idx].val),
                        }
                    }
                    // The segment ends where the first active range ends.
                    let first_end = stack
                        .iter()
                        .filter(|(end, _)| *end >= p)
                        .map(|(end, _)| *end)
                        .min()
                        .unwrap_or(top_end);
                    (first_end.min(last), acc)
                }
            };
            push_coalesced(out, p, val);
            *pos = seg_end.checked_add(1);
        }
    };

    for (idx, r) in ranges.iter().enumerate() {
        if r.start > max || r.end < r.start {
            continue;
        }
        if r.start > 0 {
            advance_through(r.start - 1, &mut pos, &mut stack, &mut out);
        }
        // Drop ranges that ended before this one starts, so adjacent ranges
        // do not pile up under it.
        while matches!(stack.last(), Some(&(end, _)) if end < r.start) {
            stack.pop();
        }
        stack.push((r.end.min(max), idx));
    }
    advance_through(max, &mut pos, &mut stack, &mut out);
    out
}

/// Combines two segment lists over the same key space.
pub(crate) fn zip<A, B, C: PartialEq>(
    a: &[(u128, A)],
    b: &[(u128, B)],
    mut f: impl FnMut(&A, &B) -> C,
) -> Segments<C> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0usize, 0usize);
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        push_coalesced(&mut out, start, f(&a[i].1, &b[j].1));
        let next_a = a.get(i + 1).map(|s| s.0);
        let next_b = b.get(j + 1).map(|s| s.0);
        match (next_a, next_b) {
            (None, None) => break,
            (Some(_), None) => i += 1,
            (None, Some(_)) => j += 1,
            (Some(x), Some(y)) => {
                if x <= y {
                    i += 1;
                }
                if y <= x {
                    j += 1;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u128, end: u128, val: u32) -> Range<u32> {
        Range { start, end, val }
    }

    #[test]
    fn sweep_disjoint_with_gaps() {
        let s = sweep(
            vec![r(10, 19, 1), r(20, 29, 1), r(40, 49, 2)],
            99,
            |a, b| *a = *b,
        );
        assert_eq!(
            s,
            vec![
                (0, None),
                (10, Some(1)),
                (30, None),
                (40, Some(2)),
                (50, None)
            ]
        );
    }

    #[test]
    fn sweep_nested_most_specific_wins() {
        let s = sweep(vec![r(15, 16, 2), r(0, 99, 1)], 99, |a, b| *a = *b);
        assert_eq!(s, vec![(0, Some(1)), (15, Some(2)), (17, Some(1))]);
    }

    #[test]
    fn sweep_overlay_merges_fields() {
        let s = sweep(
            vec![r(0, 99, 1), r(10, 19, 10), r(12, 12, 100)],
            99,
            |a, b| *a += *b,
        );
        assert_eq!(
            s,
            vec![
                (0, Some(1)),
                (10, Some(11)),
                (12, Some(111)),
                (13, Some(11)),
                (20, Some(1))
            ]
        );
    }

    #[test]
    fn sweep_full_u128_space() {
        let s = sweep(vec![r(5, u128::MAX, 1)], u128::MAX, |a, b| *a = *b);
        assert_eq!(s, vec![(0, None), (5, Some(1))]);
    }

    #[test]
    fn zip_combines() {
        let a = vec![(0u128, 1u32), (10, 2)];
        let b = vec![(0u128, 'a'), (5, 'b'), (10, 'c'), (20, 'c')];
        let z = zip(&a, &b, |x, y| (*x, *y));
        assert_eq!(z, vec![(0, (1, 'a')), (5, (1, 'b')), (10, (2, 'c'))]);
    }
}
