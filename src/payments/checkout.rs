//! Quoting and opening orders. A quote is computed from the configuration; an order locks it
//! in (USD, token amount, the price used, expiry) and, for tokens, gets its own deposit
//! address derived from its id. Apps, extensions and catalog items all open orders here.

use rust_decimal::Decimal;

use super::prices::{PriceBook, PriceError};
use super::pricing::{PricingError, Resources, quote_usd, token_amount};
use crate::chain::deposit_address::{DepositAddresses, salt_for_order};
use crate::config::Config;
use crate::money::{PayMethod, Token, to_base_units};
use crate::store::orders::{self, CryptoTerms, NewOrder, Order, OrderKind};
use crate::store::{StoreError, Tx, unix_now};

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Pricing(#[from] PricingError),
    #[error(transparent)]
    Price(#[from] PriceError),
    #[error("token payments are not available: [deposits] factory is not configured")]
    NoDepositFactory,
    #[error("{0} is not configured under [tokens]")]
    TokenNotConfigured(Token),
    #[error("amount {0} cannot be paid in whole base units")]
    Amount(String),
    #[error("these resources price to 0 USD: there is nothing to pay")]
    NothingToPay,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a quote answers: the USD and the amount in the pay method's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub usd: Decimal,
    pub amount: Decimal,
    /// USD per token, for token quotes.
    pub token_price_usd: Option<Decimal>,
}

pub async fn quote(
    config: &Config,
    prices: &PriceBook,
    pay_method: PayMethod,
    resources: &Resources<'_>,
) -> Result<Quote, CheckoutError> {
    let usd = quote_usd(&config.pricing, resources)?;
    price_usd_in(config, prices, pay_method, usd).await
}

/// Converts a USD total into the pay method's amount (cards: the same USD).
pub async fn price_usd_in(
    config: &Config,
    prices: &PriceBook,
    pay_method: PayMethod,
    usd: Decimal,
) -> Result<Quote, CheckoutError> {
    let Some(token) = pay_method.token() else {
        return Ok(Quote { usd, amount: usd, token_price_usd: None });
    };
    let decimals = config.tokens.get(&token).ok_or(CheckoutError::TokenNotConfigured(token))?.decimals;
    let price = prices.usd_price(config, token, unix_now()).await?;
    Ok(Quote { usd, amount: token_amount(usd, price, decimals), token_price_usd: Some(price) })
}

/// An order must ask for something: a zero amount could never be paid (nor charged).
pub fn ensure_payable(quote: &Quote) -> Result<(), CheckoutError> {
    if quote.usd <= Decimal::ZERO || quote.amount <= Decimal::ZERO {
        return Err(CheckoutError::NothingToPay);
    }
    Ok(())
}

/// The parts of an order that are not about money.
#[derive(Debug, Clone)]
pub struct OrderFor<'a> {
    pub team_id: &'a str,
    pub app_id: Option<&'a str>,
    pub kind: OrderKind,
    pub period_months: i64,
}

/// Opens a token order with its own deposit address, inside the caller's transaction.
pub async fn open_token_order(
    tx: &mut Tx,
    config: &Config,
    what: OrderFor<'_>,
    token: Token,
    quote: Quote,
    chain_now: impl Fn(u64) -> i64,
) -> Result<Order, CheckoutError> {
    ensure_payable(&quote)?;
    let factory = config.deposits.as_ref().ok_or(CheckoutError::NoDepositFactory)?.factory;
    let token_config = config.token_book().get(token).ok_or(CheckoutError::TokenNotConfigured(token))?;
    let amount_base = to_base_units(quote.amount, token_config.decimals)
        .map_err(|_| CheckoutError::Amount(quote.amount.to_string()))?;
    let order_id = orders::new_order_id();
    let salt = salt_for_order(&order_id);
    let new = NewOrder {
        team_id: what.team_id.to_string(),
        app_id: what.app_id.map(str::to_string),
        kind: what.kind,
        pay_method: pay_method_of(token),
        period_months: what.period_months,
        usd: quote.usd,
        amount: quote.amount,
        crypto: Some(CryptoTerms {
            amount_base,
            token_price_usd: quote.token_price_usd.unwrap_or(Decimal::ONE),
            token_address: token_config.address,
            // The pay method's chain; the address is the same on every chain.
            chain_id: token_config.chain_id,
            salt,
            deposit_address: DepositAddresses::new(factory).address_of(salt),
        }),
        card_id: None,
        // By the clock of the chain it is paid on (its newest block's timestamp plus the time
        // since), never the host's: a host clock hours off would expire it early or late.
        expires_at: chain_now(token_config.chain_id) + (config.orders.ttl_minutes * 60) as i64,
    };
    Ok(orders::insert_order(&mut **tx, &order_id, &new).await?)
}

pub fn pay_method_of(token: Token) -> PayMethod {
    PayMethod::Token(token)
}

/// Records a successful card charge as a paid order, inside the caller's transaction: the
/// order, the app's activation or extension, the deposit row and the events.
pub async fn record_card_payment(
    tx: &mut Tx,
    what: OrderFor<'_>,
    quote: Quote,
    card_id: &str,
    order_id: &str,
) -> Result<Order, CheckoutError> {
    let now = unix_now();
    let new = NewOrder {
        team_id: what.team_id.to_string(),
        app_id: what.app_id.map(str::to_string),
        kind: what.kind,
        pay_method: PayMethod::CreditCard,
        period_months: what.period_months,
        usd: quote.usd,
        amount: quote.usd,
        crypto: None,
        card_id: Some(card_id.to_string()),
        expires_at: now,
    };
    let mut order = orders::insert_order(&mut **tx, order_id, &new).await?;
    let update = orders::PaymentProgress {
        status: orders::OrderStatus::Paid,
        seen_base: alloy::primitives::U256::ZERO,
        confirmed_base: alloy::primitives::U256::ZERO,
        overpaid_base: alloy::primitives::U256::ZERO,
        late: false,
        paid_at: Some(now),
    };
    orders::update_progress(&mut **tx, order_id, orders::OrderStatus::AwaitingPayment, &update).await?;
    order.progress = update;
    let paid = super::credit::Paid {
        amount: quote.usd.normalize().to_string(),
        late: false,
        address: None,
        transaction_hash: None,
        card_id: Some(card_id.to_string()),
    };
    super::credit::record_paid(tx, &order, &paid, now).await?;
    Ok(order)
}
