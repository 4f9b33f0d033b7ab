//! Helpers shared by the unit tests.

/// Every string of up to `max_len` characters over `alphabet`, shortest first: the exhaustive
/// inputs the tests hold a fast function to its plain version with.
pub(crate) fn strings_over(alphabet: &[char], max_len: u32) -> impl Iterator<Item = String> + '_ {
    (0..=max_len).flat_map(move |len| {
        (0..alphabet.len().pow(len)).map(move |code| {
            let mut c = code;
            (0..len)
                .map(|_| {
                    let ch = alphabet[c % alphabet.len()];
                    c /= alphabet.len();
                    ch
                })
                .collect()
        })
    })
}
