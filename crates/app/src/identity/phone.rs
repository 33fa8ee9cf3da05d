//! Phone numbers, parsed at the edge into E.164 (P4). Chinese mobile numbers are the
//! primary case: `13912345678`, `139 1234 5678`, `+86 139-1234-5678` and
//! `0086 13912345678` all become `+8613912345678`; a `+86` number must be a mobile number
//! (11 digits starting with 1, second digit 3 to 9), since only those receive SMS.
//! Other countries are accepted in international form (`+` and 8 to 15 digits).

use custos_core::Personal;

use crate::{AppError, AppResult};

/// A validated phone number in E.164 form. The value is personal: it only leaves this
/// type through [`PhoneNumber::e164`], and `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber(Personal<String>);

impl std::fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneNumber(<redacted>)")
    }
}

fn invalid() -> AppError {
    AppError::bad(
        "invalid_phone",
        "give a mobile phone number, e.g. 13912345678 or +8613912345678",
    )
}

fn is_cn_mobile(national: &str) -> bool {
    let b = national.as_bytes();
    b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1])
}

impl PhoneNumber {
    /// Parses user input; separators (spaces, `-`, `.`, parentheses) are ignored.
    pub fn parse(input: &str) -> AppResult<PhoneNumber> {
        if input.len() > 32 {
            return Err(invalid());
        }
        let mut plus = false;
        let mut digits = String::with_capacity(16);
        for (i, c) in input.trim().chars().enumerate() {
            match c {
                '+' if i == 0 => plus = true,
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(invalid()),
            }
        }
        let international = if plus {
            digits
        } else if let Some(rest) = digits.strip_prefix("00") {
            rest.to_owned()
        } else if is_cn_mobile(&digits) {
            format!("86{digits}")
        } else {
            return Err(invalid());
        };
        if let Some(national) = international.strip_prefix("86") {
            if !is_cn_mobile(national) {
                return Err(invalid());
            }
        }
        if !(8..=15).contains(&international.len()) || international.starts_with('0') {
            return Err(invalid());
        }
        Ok(PhoneNumber(Personal::new(format!("+{international}"))))
    }

    /// The number in E.164 (`+8613912345678`): personal, use it only where needed.
    pub fn e164(&self) -> &str {
        self.0.expose()
    }

    /// The bytes the blind index and the encrypted field are made from.
    pub fn personal_bytes(&self) -> Personal<Vec<u8>> {
        Personal::new(self.0.expose().as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_mobile_numbers_in_every_usual_spelling_become_one_e164_number() {
        for input in [
            "13912345678",
            "139 1234 5678",
            "139-1234-5678",
            "+86 139 1234 5678",
            "+8613912345678",
            "008613912345678",
            " (+86) 13912345678 ",
        ] {
            let p = PhoneNumber::parse(input);
            // "(+86)" puts the plus after a parenthesis: refused, not guessed.
            if input.contains("(+") {
                assert!(p.is_err(), "{input:?}");
                continue;
            }
            assert_eq!(p.unwrap().e164(), "+8613912345678", "{input:?}");
        }
    }

    #[test]
    fn numbers_that_cannot_receive_a_text_or_are_malformed_are_refused() {
        for input in [
            "",
            "12345",
            "+86 10 1234 5678",        // Beijing landline
            "+86 129 1234 5678",       // not a mobile range
            "1391234567",              // ten digits
            "139123456789",            // twelve digits
            "+1 555 0100 1234 5678 9", // longer than E.164 allows
            "+0 123 4567",
            "1391234567a",
            "+86+13912345678",
            "tel:13912345678",
        ] {
            let e = PhoneNumber::parse(input).unwrap_err();
            assert_eq!(e.code(), "invalid_phone", "{input:?}");
        }
    }

    #[test]
    fn international_numbers_are_kept_in_e164() {
        assert_eq!(
            PhoneNumber::parse("+44 7700 900123").unwrap().e164(),
            "+447700900123"
        );
        assert_eq!(
            PhoneNumber::parse("00852 6123 4567").unwrap().e164(),
            "+85261234567"
        );
    }

    #[test]
    fn debug_output_never_shows_the_number() {
        let p = PhoneNumber::parse("13912345678").unwrap();
        assert!(!format!("{p:?}").contains("1391234"));
        let e = PhoneNumber::parse("1597654321x").unwrap_err();
        assert!(!e.to_string().contains("1597654"));
    }
}
