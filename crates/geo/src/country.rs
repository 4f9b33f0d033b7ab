//! ISO 3166-1 alpha-2 country codes.

use std::fmt;

/// A two-letter country code, always upper-case ASCII (`"DE"`).
///
/// Besides the ISO 3166-1 codes, the registries use a few pseudo-codes
/// (`EU`, `AP`, `ZZ`); any two ASCII letters are accepted. Serialises as the
/// string `"DE"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(pub [u8; 2]);

impl Country {
    /// Parses two ASCII letters, any case: `Country::parse("de")` is `DE`.
    pub fn parse(s: &str) -> Option<Country> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    /// The code as a string slice; `"??"` for a value not built by
    /// [`Country::parse`] that is not ASCII.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        assert_eq!(Country::parse("de"), Some(Country(*b"DE")));
        assert_eq!(
            Country::parse("Nl").map(|c| c.to_string()),
            Some("NL".to_string())
        );
        assert_eq!(Country::parse("D"), None);
        assert_eq!(Country::parse("DEU"), None);
        assert_eq!(Country::parse("1A"), None);
        assert_eq!(Country::parse("Äa"), None);
        assert_eq!(Country(*b"US").as_str(), "US");
    }
}
