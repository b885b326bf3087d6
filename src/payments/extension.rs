//! Extending an app: by card at once (through `card_payment`), or by token through an extend
//! order paid at its own deposit address. ExtendApp, do_extend_app and create_extend_order read
//! their request and answer; what may be extended, for how long and at what price is here.

use std::sync::Arc;

use super::card_payment::{self, CardPayError, CardPayment, Recorded};
use super::cards::CardProcessor;
use super::checkout::{self, CheckoutError, OrderFor, Quote};
use super::prices::PriceBook;
use super::pricing::Resources;
use crate::config::Config;
use crate::money::PayMethod;
use crate::store::apps::{self, App, AppSpec, AppStatus};
use crate::store::card_charges::Purpose;
use crate::store::orders::OrderKind;
use crate::store::{Store, StoreError, StoreResult};

#[derive(Debug, thiserror::Error)]
pub enum ExtendError {
    #[error("app not found")]
    NotFound,
    #[error("an app that is {} cannot be extended", .0.as_str())]
    NotExtendable(AppStatus),
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    #[error(transparent)]
    Card(#[from] CardPayError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an app's resources cost for `period` months.
pub fn resources_of(spec: &AppSpec, period: u32) -> Resources<'_> {
    Resources {
        cluster_id: &spec.cluster_id,
        chart_name: &spec.chart_name,
        cpu_limit: spec.cpu_limit,
        mem_limit: spec.mem_limit,
        storage_limit: spec.storage_limit,
        period,
    }
}

/// The team's app, which must be running, suspended or expired to be extended.
pub async fn extendable_app(store: &Store, team_id: &str, app_id: &str) -> Result<App, ExtendError> {
    let app = apps::get_app(store.pool(), team_id, app_id).await?.ok_or(ExtendError::NotFound)?;
    if matches!(app.status, AppStatus::PendingPayment | AppStatus::Cancelled) {
        return Err(ExtendError::NotExtendable(app.status));
    }
    Ok(app)
}

/// The period of the app's first order: what ExtendApp extends by when the seed sends none.
pub async fn first_period(store: &Store, app: &App) -> StoreResult<u32> {
    let period: Option<i64> =
        sqlx::query_scalar("SELECT period_months FROM orders WHERE app_id = $1 AND kind = 'create'")
            .bind(&app.app_id)
            .fetch_optional(store.pool())
            .await?;
    Ok(period.and_then(|p| u32::try_from(p).ok()).unwrap_or(1))
}

/// The quote for extending `app` by `period` months in `pay_method`.
pub async fn quote(
    config: &Config,
    prices: &PriceBook,
    pay_method: PayMethod,
    app: &App,
    period: u32,
) -> Result<Quote, CheckoutError> {
    checkout::quote(config, prices, pay_method, &resources_of(&app.spec, period)).await
}

/// Where a card extension is charged and under which key.
pub struct CardExtension<'a> {
    pub store: &'a Store,
    pub cards: &'a Arc<dyn CardProcessor>,
    pub config: &'a Config,
    pub prices: &'a PriceBook,
    /// The Idempotency-Key's reference, when the call carried one.
    pub request_key: Option<String>,
}

/// Charges the card for `period` more months and extends the app (once: see `card_payment`).
pub async fn by_card(
    with: CardExtension<'_>,
    team_id: &str,
    app: &App,
    period: u32,
    card_id: &str,
) -> Result<Recorded, ExtendError> {
    let quote = quote(with.config, with.prices, PayMethod::CreditCard, app, period).await?;
    let payment = CardPayment {
        team_id: team_id.to_string(),
        card_id: card_id.to_string(),
        usd: quote.usd,
        purpose: Purpose::Extend { app_id: app.app_id.clone(), period: period as i64 },
        request_key: with.request_key,
        dedupe_without_key: true,
    };
    Ok(card_payment::pay(with.store, with.cards, payment).await?)
}

/// What a token extend order for `app` is for (`checkout::open_token_order` opens it).
pub fn extend_order_for<'a>(team_id: &'a str, app: &'a App, period: u32) -> OrderFor<'a> {
    OrderFor { team_id, app_id: Some(&app.app_id), kind: OrderKind::Extend, period_months: period as i64 }
}
