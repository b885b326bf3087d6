//! Exact decimals in the configuration. Strings ("0.025") and integers are taken as written.
//! An unquoted float (a TOML `0.025`, or an env value, which figment parses as a number) is
//! taken through its shortest round-trip form, which is exactly what was written as long as
//! it has at most 15 significant digits; longer ones must be quoted.

use rust_decimal::Decimal;
use serde::Deserialize;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExactDecimal(pub Decimal);

const F64_EXACT_DIGITS: usize = 15;

impl<'de> Deserialize<'de> for ExactDecimal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
            Float(f64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Int(i) => return Ok(Self(Decimal::from(i))),
            Raw::Text(s) => s,
            Raw::Float(f) => {
                let s = f.to_string();
                let digits = s.chars().filter(char::is_ascii_digit).collect::<String>();
                if digits.trim_start_matches('0').len() > F64_EXACT_DIGITS {
                    return Err(serde::de::Error::custom(format!(
                        "{s} has too many digits to be exact unquoted; write it as a string"
                    )));
                }
                s
            }
        };
        Decimal::from_str(text.trim())
            .map(Self)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a decimal number")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_value: &str) -> Result<ExactDecimal, String> {
        #[derive(Deserialize)]
        struct W {
            v: ExactDecimal,
        }
        toml::from_str::<W>(&format!("v = {toml_value}")).map(|w| w.v).map_err(|e| e.to_string())
    }

    #[test]
    fn strings_integers_and_short_floats_are_exact() {
        assert_eq!(parse("\"0.025\"").unwrap().0, Decimal::from_str("0.025").unwrap());
        assert_eq!(parse("12").unwrap().0, Decimal::from(12));
        assert_eq!(parse("0.1").unwrap().0, Decimal::from_str("0.1").unwrap());
    }

    #[test]
    fn garbage_and_overlong_floats_are_refused() {
        assert!(parse("\"ten\"").unwrap_err().contains("not a decimal"));
        assert!(parse("0.12345678901234567").unwrap_err().contains("write it as a string"));
    }
}
