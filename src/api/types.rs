//! Small request types shared by several endpoints.

use serde::{Deserialize, Deserializer};

use super::error::ApiError;
use crate::config::Config;
use crate::money::PayMethod;

/// The request's `field` as a pay method of this config (422 naming the choices otherwise).
pub fn pay_method(config: &Config, field: &str, value: &str) -> Result<PayMethod, ApiError> {
    config
        .pay_method(value)
        .ok_or_else(|| ApiError::invalid(field, format!("must be one of CREDIT_CARD, {}", config.token_names())))
}

/// A period in months, sent as a number (`3`) or, as in the extend seeds, a string (`"3"`).
/// Its range (1..=12) is checked by the pricing rules, which name the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period(pub u32);

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let n = match Raw::deserialize(d)? {
            Raw::Number(n) => n,
            Raw::Text(s) => {
                s.trim().parse::<i64>().map_err(|_| serde::de::Error::custom("period must be a number of months"))?
            }
        };
        // Out-of-range values become 0, which the pricing rules refuse with the field's name.
        Ok(Period(u32::try_from(n).ok().filter(|m| *m <= 12).unwrap_or(0)))
    }
}

/// Checks a free-text field's length; `required` also refuses empty text.
pub fn text_field(field: &str, value: &str, max: usize, required: bool) -> Result<(), super::error::ApiError> {
    if required && value.trim().is_empty() {
        return Err(super::error::ApiError::invalid(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(super::error::ApiError::invalid(field, format!("is longer than {max} characters")));
    }
    Ok(())
}
