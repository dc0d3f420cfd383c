//! Codes: the pattern a campaign's unique codes are made from, and the shape
//! any code must have to be looked up. Making them takes a random source
//! (a CSPRNG in production) as an argument.

use rand::RngCore;

use super::InvalidInput;

/// The symbols a `#` stands for (API.md): no 0/O or 1/I to misread. 32 of
/// them, so each is exactly 5 bits.
pub const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Fewer random symbols than this is under 50 bits: guessable.
pub const MIN_RANDOM_SYMBOLS: usize = 10;
/// The default pattern: 12 random symbols, 60 bits.
pub const DEFAULT_PATTERN: &str = "############";
/// The longest code (and pattern), in characters.
pub const MAX_CODE_LEN: usize = 64;

/// A parsed pattern: literal upper-case characters, `#` for a random symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// 1 to 64 of `A-Z 0-9 -` and `#` (letters made upper-case), with at
    /// least ten `#`.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let pattern = raw.trim().to_ascii_uppercase();
        if pattern.is_empty()
            || pattern.len() > MAX_CODE_LEN
            || !pattern.bytes().all(|b| b == b'#' || is_code_byte(b))
        {
            return Err(InvalidInput::new(
                "pattern",
                "must be 1 to 64 of A-Z, 0-9, - and # (one random symbol each)",
            ));
        }
        let random = pattern.bytes().filter(|&b| b == b'#').count();
        if random < MIN_RANDOM_SYMBOLS {
            return Err(InvalidInput::new(
                "pattern",
                format!(
                    "needs at least {MIN_RANDOM_SYMBOLS} # (5 bits each: at least 50 bits per code); it has {random}"
                ),
            ));
        }
        Ok(Self(pattern))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// One code: every `#` an independent, uniform symbol of [`ALPHABET`].
    pub fn generate(&self, rng: &mut impl RngCore) -> String {
        self.0
            .bytes()
            .map(|b| {
                if b == b'#' {
                    // 32 symbols: the low five bits are uniform, no bias.
                    ALPHABET[(rng.next_u32() & 31) as usize] as char
                } else {
                    b as char
                }
            })
            .collect()
    }
}

impl Default for Pattern {
    fn default() -> Self {
        Self(DEFAULT_PATTERN.to_owned())
    }
}

fn is_code_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-'
}

/// A code as a shopper typed it, made comparable: trimmed, upper-case, 1 to
/// 64 of `A-Z 0-9 -`. Anything else cannot be a code of ours.
pub fn normalize(raw: &str) -> Result<String, InvalidInput> {
    let code = raw.trim().to_ascii_uppercase();
    if code.is_empty() || code.len() > MAX_CODE_LEN || !code.bytes().all(is_code_byte) {
        return Err(InvalidInput::new(
            "code",
            "must be 1 to 64 of A-Z, 0-9 and -",
        ));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn the_alphabet_has_32_distinct_unambiguous_symbols() {
        let mut seen = std::collections::HashSet::new();
        for &b in ALPHABET {
            assert!(seen.insert(b));
            assert!(!b"01OI".contains(&b), "{}", b as char);
        }
        assert_eq!(seen.len(), 32);
    }

    #[test]
    fn patterns_need_fifty_bits_and_a_code_shape() {
        assert_eq!(Pattern::parse("FC-####-####").unwrap_err().field, "pattern");
        assert!(Pattern::parse("fc-#####-#####").is_ok());
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("FC ##########").is_err());
        assert!(Pattern::parse(&"#".repeat(65)).is_err());
        let err = Pattern::parse("#########").unwrap_err();
        assert!(err.message.contains("it has 9"), "{}", err.message);
    }

    #[test]
    fn a_code_follows_its_pattern_and_normalizes_to_itself() {
        let p = Pattern::parse("FC-#####-#####").unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let mut codes = std::collections::HashSet::new();
        for _ in 0..1_000 {
            let code = p.generate(&mut rng);
            assert_eq!(code.len(), 14);
            assert!(code.starts_with("FC-") && code.as_bytes()[8] == b'-');
            assert_eq!(normalize(&code.to_lowercase()).unwrap(), code);
            codes.insert(code);
        }
        // 50 bits: a thousand draws never collide in practice.
        assert_eq!(codes.len(), 1_000);
    }

    #[test]
    fn every_symbol_is_drawn_about_equally_often() {
        let p = Pattern::default();
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0u32; 32];
        for _ in 0..10_000 {
            for b in p.generate(&mut rng).bytes() {
                counts[ALPHABET.iter().position(|&a| a == b).unwrap()] += 1;
            }
        }
        // 120,000 draws: 3,750 expected per symbol; 10% either way is > 6 sigma.
        for (i, &n) in counts.iter().enumerate() {
            assert!(
                (3_375..=4_125).contains(&n),
                "{} drawn {n} times",
                ALPHABET[i] as char
            );
        }
    }

    #[test]
    fn only_code_shaped_input_is_looked_up() {
        assert_eq!(normalize("  blackfriday ").unwrap(), "BLACKFRIDAY");
        assert!(normalize("").is_err());
        assert!(normalize("BLACK FRIDAY").is_err());
        assert!(normalize("ÄBC").is_err());
        assert!(normalize(&"A".repeat(65)).is_err());
    }
}
