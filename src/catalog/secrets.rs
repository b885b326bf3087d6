//! Hostnames and passwords for new products, generated to the product's rules with the
//! thread-local CSPRNG (ChaCha, seeded from the OS), and the validator they must pass.

use rand::Rng;
use rand::seq::SliceRandom;

use super::products::CharRule;

const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
const SPECIAL: &[u8] = b"!@#$%^&*-_+=?";

fn classes(rule: &CharRule) -> Vec<&'static [u8]> {
    [(rule.upper, UPPER), (rule.lower, LOWER), (rule.num, DIGITS), (rule.special, SPECIAL)]
        .into_iter()
        .filter_map(|(on, set)| on.then_some(set))
        .collect()
}

/// `len_num` characters: one from each class the rule asks for, the rest from all of them,
/// shuffled. The rule must be valid (see `products::validate_rule`).
pub fn generate(rule: &CharRule) -> String {
    let sets = classes(rule);
    let all: Vec<u8> = sets.concat();
    let mut rng = rand::rng(); // ThreadRng: a CSPRNG reseeded from the OS
    let mut chars: Vec<u8> = sets.iter().map(|set| set[rng.random_range(0..set.len())]).collect();
    while chars.len() < rule.len_num as usize {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    String::from_utf8(chars).expect("ASCII")
}

/// A hostname: the prefix, then generated characters.
pub fn generate_host(prefix: &str, rule: &CharRule) -> String {
    format!("{prefix}{}", generate(rule))
}

/// True when `value` has exactly `len_num` characters, each from an allowed class, and at
/// least one from every class the rule asks for.
pub fn satisfies(value: &str, rule: &CharRule) -> bool {
    let sets = classes(rule);
    value.chars().count() == rule.len_num as usize
        && value.bytes().all(|b| sets.iter().any(|set| set.contains(&b)))
        && sets.iter().all(|set| value.bytes().any(|b| set.contains(&b)))
}

pub fn host_satisfies(host: &str, prefix: &str, rule: &CharRule) -> bool {
    host.strip_prefix(prefix).is_some_and(|rest| satisfies(rest, rule))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::catalog::products::{MAX_GENERATED_LEN, validate_rule};

    fn rules(special_allowed: bool) -> impl Strategy<Value = CharRule> {
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), 0u32..3)
            .prop_filter("at least one class", move |(u, l, n, s, _)| *u || *l || *n || (*s && special_allowed))
            .prop_map(move |(upper, lower, num, special, at)| {
                let special = special && special_allowed;
                let min = [upper, lower, num, special].iter().filter(|c| **c).count() as u32;
                // The bounds themselves and one length between them.
                let len_num = match at {
                    0 => min,
                    1 => MAX_GENERATED_LEN,
                    _ => (min + MAX_GENERATED_LEN) / 2,
                };
                CharRule { upper, lower, num, special, len_num }
            })
    }

    proptest! {
        #[test]
        fn every_generated_password_passes_the_validator(rule in rules(true)) {
            prop_assert!(validate_rule("password.rule", &rule, true).is_ok());
            for _ in 0..20 {
                let password = generate(&rule);
                prop_assert!(satisfies(&password, &rule), "{password:?} breaks {rule:?}");
            }
        }

        #[test]
        fn every_generated_hostname_passes_the_validator(rule in rules(false), prefix in "[a-z]{0,6}") {
            prop_assert!(validate_rule("host.rule", &rule, false).is_ok());
            for _ in 0..20 {
                let host = generate_host(&prefix, &rule);
                prop_assert!(host_satisfies(&host, &prefix, &rule), "{host:?} breaks {rule:?}");
            }
        }
    }

    #[test]
    fn the_validator_refuses_what_breaks_a_rule() {
        let rule = CharRule { upper: true, lower: false, num: true, special: false, len_num: 4 };
        assert!(satisfies("AB23", &rule));
        assert!(!satisfies("ABCD", &rule), "a required class is missing");
        assert!(!satisfies("AB2c", &rule), "a class the rule does not allow");
        assert!(!satisfies("AB234", &rule), "too long");
        assert!(!host_satisfies("xyAB23", "ser", &rule), "wrong prefix");
    }

    #[test]
    fn rules_out_of_bounds_are_refused() {
        let none = CharRule { upper: false, lower: false, num: false, special: false, len_num: 8 };
        assert!(validate_rule("r", &none, true).is_err());
        let short = CharRule { upper: true, lower: true, num: true, special: false, len_num: 2 };
        assert!(validate_rule("r", &short, true).is_err(), "three classes need three characters");
        let long = CharRule { upper: true, lower: false, num: false, special: false, len_num: MAX_GENERATED_LEN + 1 };
        assert!(validate_rule("r", &long, true).is_err());
        let special_host = CharRule { upper: true, lower: false, num: false, special: true, len_num: 8 };
        assert!(validate_rule("r", &special_host, false).is_err());
    }
}
