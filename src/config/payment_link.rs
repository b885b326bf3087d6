//! The link a chain's payers open in their wallet (and its QR code), per `[chain]
//! payment_link`: EIP-681 by default, the plain address for wallets that read no payment
//! request, or a template for wallets with their own scheme. Checked when the config loads, so
//! a broken template stops the start with one line naming the chain.

use alloy::primitives::{Address, U256};

use crate::money::format_base_units;

/// What a template may hold.
const PLACEHOLDERS: [&str; 5] = ["{address}", "{token}", "{chain_id}", "{amount_base}", "{amount}"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentLink {
    /// `ethereum:<token>@<chain id>/transfer?address=<to>&uint256=<base units>`.
    Eip681,
    /// The deposit address alone.
    Address,
    /// Text with placeholders: `{address}` (required), `{token}`, `{chain_id}`,
    /// `{amount_base}` (integer base units), `{amount}` (token units, e.g. `20.5`).
    Template(String),
}

/// What one link is made of.
pub struct LinkParts {
    pub token: Address,
    pub chain_id: u64,
    pub to: Address,
    pub amount_base: U256,
    pub decimals: u8,
}

impl PaymentLink {
    /// The config's text: `eip681`, `address`, or a template; why it is refused otherwise.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "eip681" => return Ok(Self::Eip681),
            "address" => return Ok(Self::Address),
            _ => {}
        }
        if !text.contains("{address}") {
            return Err("is neither \"eip681\" nor \"address\", and a template must hold {address}".into());
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '<' || c == '>') {
            return Err("must not hold spaces, quotes or angle brackets (it becomes a link)".into());
        }
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').map(|i| open + i).ok_or("has a { without its }")?;
            let placeholder = &rest[open..=close];
            if !PLACEHOLDERS.contains(&placeholder) {
                return Err(format!("has an unknown placeholder {placeholder} (known: {})", PLACEHOLDERS.join(", ")));
            }
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err("has a } without its {".into());
        }
        Ok(Self::Template(text.to_string()))
    }

    pub fn render(&self, p: &LinkParts) -> String {
        match self {
            Self::Eip681 => payment_uri(p.token, p.chain_id, p.to, p.amount_base),
            Self::Address => p.to.to_string(),
            Self::Template(t) => t
                .replace("{address}", &p.to.to_string())
                .replace("{token}", &p.token.to_string())
                .replace("{chain_id}", &p.chain_id.to_string())
                .replace("{amount_base}", &p.amount_base.to_string())
                .replace("{amount}", &format_base_units(p.amount_base, p.decimals)),
        }
    }
}

/// EIP-681: `ethereum:<token>@<chain_id>/transfer?address=<deposit>&uint256=<base units>`.
pub fn payment_uri(token: Address, chain_id: u64, deposit: Address, amount_base: U256) -> String {
    format!("ethereum:{token}@{chain_id}/transfer?address={deposit}&uint256={amount_base}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> LinkParts {
        LinkParts {
            token: Address::repeat_byte(0x11),
            chain_id: 42161,
            to: Address::repeat_byte(0x22),
            amount_base: U256::from(20_500_000u64),
            decimals: 6,
        }
    }

    #[test]
    fn eip681_and_the_plain_address() {
        let p = parts();
        assert_eq!(
            PaymentLink::parse("eip681").unwrap().render(&p),
            format!("ethereum:{}@42161/transfer?address={}&uint256=20500000", p.token, p.to)
        );
        assert_eq!(PaymentLink::parse("address").unwrap().render(&p), p.to.to_string());
    }

    #[test]
    fn a_template_fills_every_placeholder() {
        let link = PaymentLink::parse(
            "safepal://send?to={address}&contract={token}&chain={chain_id}&amount={amount}&raw={amount_base}",
        )
        .unwrap();
        let p = parts();
        assert_eq!(
            link.render(&p),
            format!("safepal://send?to={}&contract={}&chain=42161&amount=20.5&raw=20500000", p.to, p.token)
        );
    }

    #[test]
    fn broken_templates_say_why() {
        for (text, why) in [
            ("wallet://pay?amount={amount}", "must hold {address}"),
            ("wallet://{address}?x={amont}", "unknown placeholder {amont}"),
            ("wallet://{address}?x={amount", "without its }"),
            ("wallet://{address}?x=amount}", "} without its {"),
            ("wallet://{address} now", "must not hold spaces"),
            ("", "must hold {address}"),
        ] {
            let err = PaymentLink::parse(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
