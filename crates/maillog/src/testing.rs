//! Helpers of the parsers' tests.

/// Every text made of up to `max` of `pieces` one after another (each piece any number of
/// times, the empty text first): the inputs an exhaustive test of a scanner walks.
pub(crate) fn joins(pieces: &[&str], max: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut layer = vec![String::new()];
    for _ in 0..max {
        layer = layer
            .iter()
            .flat_map(|t| pieces.iter().map(move |p| format!("{t}{p}")))
            .collect();
        all.extend(layer.iter().cloned());
    }
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn joins_are_every_sequence_of_pieces() {
        let j = super::joins(&["a", "b"], 2);
        assert_eq!(j, ["", "a", "b", "aa", "ab", "ba", "bb"]);
    }
}
