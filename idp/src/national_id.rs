//! Taiwan's national identification number, as a type that is known good once built and that
//! never prints itself in full.

use std::fmt;

/// A validated national ID: one letter, then `1`/`2` (or `8`/`9` for the newer resident
/// format), then eight digits, the last being the official check digit.
///
/// `Display` masks it (`A12*****89`) and `Debug` prints nothing of it, so it cannot leak into
/// logs or pages by accident; [`NationalId::expose`] is the one explicit way to the full value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NationalId(String);

/// Why a string is not a national ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NationalIdError {
    #[error("must be 10 characters: a letter followed by 9 digits")]
    Format,
    #[error("the second character must be 1, 2, 8 or 9")]
    Gender,
    #[error("the check digit does not match")]
    CheckDigit,
}

/// The two-digit value each leading letter stands for in the checksum.
fn letter_value(c: u8) -> Option<u32> {
    const TABLE: &[u8; 26] = b"ABCDEFGHJKLMNPQRSTUVXYWZIO";
    TABLE.iter().position(|&l| l == c).map(|p| p as u32 + 10)
}

impl NationalId {
    /// Parses and validates; lower-case letters are accepted and normalised.
    pub fn parse(input: &str) -> Result<Self, NationalIdError> {
        let s = input.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        if b.len() != 10 || !b[0].is_ascii_uppercase() || !b[1..].iter().all(u8::is_ascii_digit) {
            return Err(NationalIdError::Format);
        }
        if !matches!(b[1], b'1' | b'2' | b'8' | b'9') {
            return Err(NationalIdError::Gender);
        }
        let v = letter_value(b[0]).ok_or(NationalIdError::Format)?;
        let mut sum = v / 10 + (v % 10) * 9;
        for (i, d) in b[1..9].iter().enumerate() {
            sum += u32::from(d - b'0') * (8 - i as u32);
        }
        sum += u32::from(b[9] - b'0');
        if sum % 10 != 0 {
            return Err(NationalIdError::CheckDigit);
        }
        Ok(Self(s))
    }

    /// Whether a string is shaped like a national ID (letter + 9 digits), valid or not; such
    /// strings may not become custom account names.
    pub fn looks_like(input: &str) -> bool {
        let b = input.trim().as_bytes();
        b.len() == 10 && b[0].is_ascii_alphabetic() && b[1..].iter().all(u8::is_ascii_digit)
    }

    /// The full value, for storage (encrypted) and comparisons. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last four characters, as citizen certificates carry them.
    pub fn last_four(&self) -> &str {
        &self.0[6..]
    }

    /// Computes the check digit for the first nine characters; used by fixtures and demo data.
    pub fn with_check_digit(first_nine: &str) -> Option<Self> {
        (0..10).find_map(|d| Self::parse(&format!("{first_nine}{d}")).ok())
    }
}

impl fmt::Display for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}*****{}", &self.0[..3], &self.0[8..])
    }
}

impl fmt::Debug for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NationalId(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ids_and_masks_them() {
        let id = NationalId::parse("a123456789").unwrap();
        assert_eq!(id.expose(), "A123456789");
        assert_eq!(id.to_string(), "A12*****89");
        assert_eq!(format!("{id:?}"), "NationalId(<redacted>)");
        assert_eq!(id.last_four(), "6789");
        assert!(NationalId::parse("F131104093").is_ok());
    }

    #[test]
    fn refuses_bad_format_gender_and_check_digit() {
        assert_eq!(NationalId::parse("A12345678"), Err(NationalIdError::Format));
        assert_eq!(NationalId::parse("1123456789"), Err(NationalIdError::Format));
        assert_eq!(NationalId::parse("A323456789"), Err(NationalIdError::Gender));
        assert_eq!(NationalId::parse("A123456788"), Err(NationalIdError::CheckDigit));
    }

    /// Valid IDs worked out from the published rule (the letter's two-digit code, then weights
    /// 1 9 8 7 6 5 4 3 2 1 1, sum divisible by 10), not from this module: letters whose codes
    /// start with 1, 2 and 3, including the out-of-order I, O and W, and both resident formats.
    const VALID: [&str; 10] = [
        "A123456789",
        "F131104093",
        "B222222228",
        "D102030402",
        "K200000002",
        "I287654327",
        "O199999992",
        "W812345671",
        "Z100000002",
        "Y911111118",
    ];

    #[test]
    fn the_check_digit_is_the_published_rule_for_every_kind_of_letter() {
        for id in VALID {
            assert!(NationalId::parse(id).is_ok(), "{id} is valid");
            for d in (0..10).map(|d| char::from(b'0' + d)).filter(|&d| !id.ends_with(d)) {
                let wrong = format!("{}{d}", &id[..9]);
                assert_eq!(NationalId::parse(&wrong), Err(NationalIdError::CheckDigit), "{wrong}");
            }
        }
    }

    #[test]
    fn any_character_out_of_place_is_a_format_error() {
        for bad in ["A12345678X", "A1234567-9", "AB23456789", "A1234567890", "", "王123456789"] {
            assert_eq!(NationalId::parse(bad), Err(NationalIdError::Format), "{bad:?}");
        }
        assert_eq!(NationalId::parse("A023456789"), Err(NationalIdError::Gender));
    }

    #[test]
    fn looks_like_is_the_shape_whatever_the_check_digit() {
        for shaped in ["A123456789", "a123456788", "Z999999999", " B000000000 "] {
            assert!(NationalId::looks_like(shaped), "{shaped:?}");
        }
        for not in ["A12345678", "A1234567890", "AB23456789", "1123456789", "A12345678X", "ming.wang"] {
            assert!(!NationalId::looks_like(not), "{not:?}");
        }
    }

    #[test]
    fn check_digit_helper_produces_valid_ids() {
        for prefix in ["B22222222", "Z10000000", "I28765432", "O19999999", "W81234567"] {
            let id = NationalId::with_check_digit(prefix).unwrap();
            assert!(NationalId::parse(id.expose()).is_ok());
        }
    }
}
