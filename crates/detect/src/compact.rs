//! Growing per-entity collections without their standard minimum capacity.
//!
//! `Vec` and `VecDeque` grow to a capacity of at least 4 on their first push and double after:
//! a detector keeping two addresses of an account in a 72-byte struct paid for four. An ISP's
//! state is mostly accounts with one to three of everything, so the pushes here grow exactly
//! (one more slot) while a collection is small, and double as usual past [`SMALL`], which keeps
//! the cost of a long collection's pushes amortized constant (issue 12; docs/PERFORMANCE.md,
//! "Memory per tracked account").

use std::collections::VecDeque;

/// Length up to which a collection grows one slot at a time.
pub const SMALL: usize = 8;

/// `v.push(x)`, growing exactly while `v` is short.
pub fn push<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() && v.len() < SMALL {
        v.reserve_exact(1);
    }
    v.push(x);
}

/// `d.push_back(x)`, growing exactly while `d` is short.
pub fn push_back<T>(d: &mut VecDeque<T>, x: T) {
    if d.len() == d.capacity() && d.len() < SMALL {
        d.reserve_exact(1);
    }
    d.push_back(x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exactly_while_small_then_doubles() {
        let mut v = Vec::new();
        let mut d = VecDeque::new();
        for i in 0..SMALL {
            push(&mut v, i as u64);
            push_back(&mut d, i as u64);
            assert_eq!(v.capacity(), i + 1);
            assert_eq!(d.capacity(), i + 1);
        }
        for i in SMALL..100 {
            push(&mut v, i as u64);
            push_back(&mut d, i as u64);
        }
        assert!(v.capacity() >= 100 && v.capacity() < 200);
        assert!(d.capacity() >= 100 && d.capacity() < 200);
        assert_eq!(v, (0..100).collect::<Vec<u64>>());
        assert_eq!(
            d.iter().copied().collect::<Vec<_>>(),
            (0..100).collect::<Vec<u64>>()
        );
    }
}
