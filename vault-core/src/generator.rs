//! The password generator: uniform over every password of the requested
//! length that contains at least one character of each enabled class.

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::{StdRng, SysRng};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
const SPECIAL: &str = "!@#$%^&*()-_=+[]{};:,.?/~";

/// Shortest generated password.
pub const MIN_LENGTH: usize = 4;
/// Longest generated password.
pub const MAX_LENGTH: usize = 1024;
/// Default length.
pub const DEFAULT_LENGTH: usize = 16;

/// Options of the generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratorOptions {
    /// Number of characters.
    pub length: usize,
    /// Include the special-character class.
    pub special: bool,
    /// Include the digit class.
    pub digits: bool,
    /// Characters never to use.
    pub exclude: String,
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        GeneratorOptions {
            length: DEFAULT_LENGTH,
            special: true,
            digits: true,
            exclude: String::new(),
        }
    }
}

/// Generates a password from the OS random number generator.
///
/// Every character is drawn uniformly from the union of the enabled classes
/// (minus excluded characters); a draw that misses a class is thrown away
/// and redrawn, so the result is uniform over all valid passwords.
///
/// # Errors
/// [`Error::InvalidInput`] when the length is out of range or exclusions
/// leave a class (or everything) empty.
pub fn generate_password(opts: &GeneratorOptions) -> Result<Zeroizing<String>> {
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&opts.length) {
        return Err(Error::invalid(format!(
            "password length must be between {MIN_LENGTH} and {MAX_LENGTH}"
        )));
    }
    let mut classes: Vec<Vec<char>> = Vec::new();
    for (enabled, set, name) in [
        (true, LOWER, "lowercase letters"),
        (true, UPPER, "uppercase letters"),
        (opts.digits, DIGITS, "digits"),
        (opts.special, SPECIAL, "special characters"),
    ] {
        if !enabled {
            continue;
        }
        let chars: Vec<char> = set.chars().filter(|c| !opts.exclude.contains(*c)).collect();
        if chars.is_empty() {
            return Err(Error::invalid(format!(
                "the excluded characters remove all {name}; disable the class or exclude fewer"
            )));
        }
        classes.push(chars);
    }
    let alphabet: Vec<char> = classes.iter().flatten().copied().collect();
    // A ChaCha generator seeded from the OS, as rand's ThreadRng is: an OS
    // failure is an error here, once, instead of a panic mid-draw.
    let mut rng = StdRng::try_from_rng(&mut SysRng).map_err(|e| Error::Rng(Box::new(e)))?;
    // The chance that a draw misses a class is far below 1 in 2 for every
    // allowed length, so this loop ends in a handful of rounds.
    loop {
        let candidate: Zeroizing<String> = Zeroizing::new(
            (0..opts.length)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect(),
        );
        if classes
            .iter()
            .all(|class| candidate.chars().any(|c| class.contains(&c)))
        {
            return Ok(candidate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_has_every_class() {
        for _ in 0..200 {
            let p = generate_password(&GeneratorOptions::default()).unwrap();
            assert_eq!(p.chars().count(), 16);
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            assert!(p.chars().any(|c| SPECIAL.contains(c)));
        }
    }

    #[test]
    fn options_are_honoured() {
        let opts = GeneratorOptions {
            length: 40,
            special: false,
            digits: false,
            exclude: "aeiouAEIOU".into(),
        };
        for _ in 0..50 {
            let p = generate_password(&opts).unwrap();
            assert_eq!(p.len(), 40);
            assert!(
                p.chars()
                    .all(|c| c.is_ascii_alphabetic() && !"aeiouAEIOU".contains(c))
            );
        }
        let min = GeneratorOptions {
            length: 4,
            ..Default::default()
        };
        let p = generate_password(&min).unwrap();
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn bad_options_are_errors() {
        for opts in [
            GeneratorOptions {
                length: 3,
                ..Default::default()
            },
            GeneratorOptions {
                length: 5000,
                ..Default::default()
            },
            GeneratorOptions {
                exclude: DIGITS.into(),
                ..Default::default()
            },
            GeneratorOptions {
                exclude: format!("{LOWER}{UPPER}"),
                ..Default::default()
            },
        ] {
            assert!(generate_password(&opts).is_err(), "{opts:?}");
        }
    }

    /// A coarse uniformity check: over 20k characters of a 4-char-class
    /// alphabet no character is drawn wildly more or less than expected.
    #[test]
    fn roughly_uniform() {
        let opts = GeneratorOptions {
            length: 100,
            ..Default::default()
        };
        let mut counts = std::collections::HashMap::new();
        for _ in 0..200 {
            for c in generate_password(&opts).unwrap().chars() {
                *counts.entry(c).or_insert(0u32) += 1;
            }
        }
        let n = (LOWER.len() + UPPER.len() + DIGITS.len() + SPECIAL.len()) as f64;
        let expected = 20_000.0 / n;
        assert_eq!(counts.len() as f64, n);
        for (c, k) in counts {
            let k = f64::from(k);
            assert!(
                k > expected * 0.6 && k < expected * 1.4,
                "{c}: {k} vs {expected}"
            );
        }
    }
}
