//! Gasless payments (EIP-3009): the payer signs a `TransferWithAuthorization` to the order's
//! deposit address and the relayer submits it, paying the gas. Checked before anything is
//! sent (the order's option, address, amount, validity by the chain's clock, the signature,
//! the nonce, the payer's balance, and the call simulated), recorded before its broadcast (one
//! transaction per authorization, whatever retries, crashes or a second process do), then
//! followed to its depth. The watcher credits the Transfer like any other payment: this adds a
//! way to send, not a way to credit.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use alloy::eips::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, Signature, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::sol_types::{Eip712Domain, SolCall, SolStruct};
use serde::Deserialize;

use super::LedgerError;
use super::order_view::OrderView;
use crate::chain::contracts::{IERC3009, IERC3009Bytes, TransferWithAuthorization};
use crate::config::Config;
use crate::store::Store;
use crate::store::columns::address_text;
use crate::store::gasless::{self, GaslessPayment};

/// A payment needs this long before its authorization lapses, to be mined in time.
const MIN_VALIDITY_SECS: u64 = 30;

/// The authorization as the payer signed it (decimal strings, as x402 and wallets write them).
#[derive(Debug, Clone, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationBody {
    pub from: String,
    pub to: String,
    /// Base units of the token.
    pub value: String,
    /// Unix seconds (the chain's clock): valid only after it.
    pub valid_after: String,
    /// Unix seconds (the chain's clock): valid only before it.
    pub valid_before: String,
    /// 0x and 64 hex digits, unique per payer and token.
    pub nonce: String,
}

/// One signed authorization for one of the order's pay options.
#[derive(Debug, Clone)]
pub struct SignedAuthorization {
    pub chain_id: u64,
    pub token: Address,
    pub authorization: AuthorizationBody,
    /// 65 bytes (r, s, v) from an EOA; a contract wallet's bytes (EIP-1271).
    pub signature: String,
}

fn invalid(field: &'static str, problem: impl Into<String>) -> LedgerError {
    LedgerError::Invalid { field, problem: problem.into() }
}

fn unavailable(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Unavailable(format!("the chain cannot be asked now: {}", crate::redact::error(&e)))
}

/// The parsed authorization.
fn parse(body: &AuthorizationBody) -> Result<TransferWithAuthorization, LedgerError> {
    let address = |field: &'static str, text: &str| {
        text.trim().parse::<Address>().map_err(|_| invalid(field, "must be 0x and 40 hex digits"))
    };
    let number = |field: &'static str, text: &str| {
        U256::from_str_radix(text.trim(), 10).map_err(|_| invalid(field, "must be a decimal integer string"))
    };
    Ok(TransferWithAuthorization {
        from: address("authorization.from", &body.from)?,
        to: address("authorization.to", &body.to)?,
        value: number("authorization.value", &body.value)?,
        validAfter: number("authorization.validAfter", &body.valid_after)?,
        validBefore: number("authorization.validBefore", &body.valid_before)?,
        nonce: body.nonce.trim().parse().map_err(|_| invalid("authorization.nonce", "must be 0x and 64 hex digits"))?,
    })
}

type NameAndVersion = (String, String);

/// The token's EIP-712 domain: `[tokens.X] eip712` where given, else what the contract says
/// (read once per process).
pub async fn domain(
    config: &Config,
    provider: &DynProvider,
    chain_id: u64,
    token: Address,
) -> Result<Eip712Domain, LedgerError> {
    static READ: OnceLock<Mutex<HashMap<(u64, Address), NameAndVersion>>> = OnceLock::new();
    let cache = READ.get_or_init(Default::default);
    let known = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&(chain_id, token)).cloned();
    let (name, version) = match known {
        Some(found) => found,
        None => {
            let given = config
                .token_book()
                .at(chain_id, token)
                .and_then(|e| config.tokens.get(&e.token))
                .map(|t| t.eip712.clone())
                .unwrap_or_default();
            let contract = IERC3009::new(token, provider);
            let name = match given.name {
                Some(n) => n,
                None => contract.name().call().await.map_err(unavailable)?,
            };
            let version = match given.version {
                Some(v) => v,
                None => contract.version().call().await.map_err(unavailable)?,
            };
            cache.lock().unwrap_or_else(|e| e.into_inner()).insert((chain_id, token), (name.clone(), version.clone()));
            (name, version)
        }
    };
    Ok(Eip712Domain::new(Some(name.into()), Some(version.into()), Some(U256::from(chain_id)), Some(token), None))
}

/// That a token configured with `authorization` takes them on `chain`: it answers
/// `authorizationState`, and its `DOMAIN_SEPARATOR` is the domain paywatch signs against
/// (`[tokens.X] eip712`, or the contract's name and version). `paywatch check` and `serve`'s
/// start run it.
pub async fn check_tokens(config: &Config, chain: crate::config::ChainRef<'_>) -> anyhow::Result<()> {
    let provider = crate::chain::rpc::provider(chain.config.rpc_http.urls())?;
    for entry in config.token_book().on_chain(chain.chain_id()) {
        if !config.takes_authorizations(entry.chain_id, entry.address) {
            continue;
        }
        let what = format!("chain {}: token {} at {:#x}", chain.name, entry.token.as_str(), entry.address);
        let token = IERC3009::new(entry.address, &provider);
        token.authorizationState(Address::ZERO, B256::ZERO).call().await.map_err(|e| {
            anyhow::anyhow!(
                "{what} does not answer authorizationState ({}): it takes no EIP-3009 authorizations; remove its `authorization`",
                crate::redact::error(&e)
            )
        })?;
        let on_chain =
            token.DOMAIN_SEPARATOR().call().await.map_err(|e| {
                anyhow::anyhow!("{what} does not answer DOMAIN_SEPARATOR ({})", crate::redact::error(&e))
            })?;
        let ours = domain(config, &provider, entry.chain_id, entry.address)
            .await
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        anyhow::ensure!(
            ours.separator() == on_chain,
            "{what}: its DOMAIN_SEPARATOR is not that of name {:?}, version {:?}: set `eip712 = {{ name, version }}` as the token has them",
            ours.name.as_deref().unwrap_or_default(),
            ours.version.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

/// Checks `signed` against the order and the chain, records the relayer's transaction and
/// broadcasts it. The same authorization again answers the payment recorded for it.
pub async fn relay(
    store: &Store,
    config: &Config,
    order: &OrderView,
    signed: &SignedAuthorization,
) -> Result<GaslessPayment, LedgerError> {
    if config.relayer.is_none() {
        return Err(LedgerError::Conflict("gasless payments are not enabled here (no [relayer] configured)".into()));
    }
    let auth = parse(&signed.authorization)?;
    let token_text = address_text(&signed.token);
    let payer_text = address_text(&auth.from);
    let nonce_text = format!("{:#x}", auth.nonce);
    if let Some(known) =
        gasless::of_authorization(store.pool(), signed.chain_id as i64, &token_text, &payer_text, &nonce_text).await?
    {
        return again(config, order, &auth, known).await;
    }
    let chain = config.chain_by_id(signed.chain_id).ok_or_else(|| invalid("chain_id", "is not a configured chain"))?;
    let provider = crate::chain::rpc::provider(chain.config.rpc_http.urls()).map_err(unavailable)?;
    check_terms(store, config, order, signed, &auth).await?;
    match send_new(store, config, &provider, order, signed, &auth).await {
        Err(refused @ (LedgerError::Invalid { .. } | LedgerError::Conflict(_))) => {
            // Refused because this very payment went ahead meanwhile: another process recorded
            // and sent it between the lookup above and the token's answer.
            let known =
                gasless::of_authorization(store.pool(), signed.chain_id as i64, &token_text, &payer_text, &nonce_text)
                    .await?;
            match known {
                Some(known) => again(config, order, &auth, known).await,
                None => Err(refused),
            }
        }
        other => other,
    }
}

/// An authorization not recorded yet: checked on chain, simulated, recorded, broadcast.
async fn send_new(
    store: &Store,
    config: &Config,
    provider: &DynProvider,
    order: &OrderView,
    signed: &SignedAuthorization,
    auth: &TransferWithAuthorization,
) -> Result<GaslessPayment, LedgerError> {
    let relayer = config.relayer.as_ref().ok_or_else(|| LedgerError::Conflict("no [relayer] configured".into()))?;
    let signer = relayer.signer().ok_or_else(|| LedgerError::Unavailable("the relayer's key is unreadable".into()))?;
    let token_text = address_text(&signed.token);
    let payer_text = address_text(&auth.from);
    let nonce_text = format!("{:#x}", auth.nonce);
    check_on_chain(config, provider, signed, auth).await?;

    // The call the relayer makes: v, r, s for an EOA's 65 bytes, the bytes overload otherwise.
    let signature = signature_bytes(&signed.signature)?;
    let input: Bytes = match Signature::from_raw(&signature) {
        Ok(sig) if signature.len() == 65 => IERC3009::transferWithAuthorizationCall {
            from: auth.from,
            to: auth.to,
            value: auth.value,
            validAfter: auth.validAfter,
            validBefore: auth.validBefore,
            nonce: auth.nonce,
            v: 27 + u8::from(sig.v()),
            r: sig.r().into(),
            s: sig.s().into(),
        }
        .abi_encode()
        .into(),
        _ => IERC3009Bytes::transferWithAuthorizationCall {
            from: auth.from,
            to: auth.to,
            value: auth.value,
            validAfter: auth.validAfter,
            validBefore: auth.validBefore,
            nonce: auth.nonce,
            signature: signature.clone().into(),
        }
        .abi_encode()
        .into(),
    };
    let from = signer.address();
    let request =
        alloy::rpc::types::TransactionRequest::default().with_from(from).with_to(signed.token).with_input(input);
    // Simulated first: whatever the checks above missed (a contract wallet's signature, a token
    // rule) is refused here, before the relayer spends anything.
    if let Err(e) = provider.call(request.clone()).await {
        return Err(refused_by_token(&e.to_string()));
    }
    let gas = provider.estimate_gas(request.clone()).await.map_err(|e| refused_by_token(&e.to_string()))?;
    let gas = gas + gas / 5;
    let fees = provider.estimate_eip1559_fees().await.map_err(unavailable)?;
    let cap =
        config.chain_by_id(signed.chain_id).map_or_else(|| relayer.max_fee_wei(), |c| relayer.max_fee_wei_on(c.config));
    if fees.max_fee_per_gas > cap {
        return Err(LedgerError::Unavailable(format!(
            "gas costs {} wei now, above the relayer's cap on this chain ({cap} wei: relayer_max_fee_gwei or [relayer] max_fee_gwei); pay with a wallet transfer or try again later",
            fees.max_fee_per_gas
        )));
    }
    let balance = provider.get_balance(from).await.map_err(unavailable)?;
    if balance < relayer.min_balance_wei().max(U256::from(gas) * U256::from(fees.max_fee_per_gas)) {
        return Err(LedgerError::Unavailable(
            "the relayer's balance is too low to pay the gas; pay with a wallet transfer instead".into(),
        ));
    }
    let wallet = EthereumWallet::from(signer);
    let relayer_text = address_text(&from);
    let on_chain = provider.get_transaction_count(from).pending().await.map_err(unavailable)? as i64;
    // The relayer's nonce: past the chain's and every recorded one. Two processes may pick the
    // same: the second insert fails on it and tries the next.
    for _ in 0..8 {
        let recorded =
            gasless::next_relayer_nonce(store.pool(), signed.chain_id as i64, &relayer_text).await?.unwrap_or(0);
        let nonce = on_chain.max(recorded);
        let envelope = request
            .clone()
            .with_nonce(nonce as u64)
            .with_chain_id(signed.chain_id)
            .with_gas_limit(gas)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas)
            .build(&wallet)
            .await
            .map_err(|e| LedgerError::Unavailable(format!("the relayer could not sign: {e}")))?;
        let payment = GaslessPayment {
            payment_id: uuid::Uuid::new_v4().simple().to_string(),
            order_id: order.order_id.clone(),
            chain_id: signed.chain_id as i64,
            token: token_text.clone(),
            payer: payer_text.clone(),
            auth_nonce: nonce_text.clone(),
            amount_base: auth.value.to_string(),
            relayer: relayer_text.clone(),
            relayer_nonce: nonce,
            raw_tx: format!("0x{}", alloy::hex::encode(envelope.encoded_2718())),
            tx_hash: format!("{:#x}", envelope.tx_hash()),
            status: "sent".into(),
            error: None,
            gas_used: None,
            created_at: crate::store::unix_now(),
        };
        match gasless::insert(store.pool(), &payment).await {
            Ok(()) => {
                tracing::info!(
                    order_id = payment.order_id,
                    tx_hash = payment.tx_hash,
                    nonce,
                    "gasless payment relayed"
                );
                broadcast(provider, &payment.raw_tx).await;
                return Ok(payment);
            }
            Err(e) if e.is_unique_violation() => {
                let known = gasless::of_authorization(
                    store.pool(),
                    signed.chain_id as i64,
                    &token_text,
                    &payer_text,
                    &nonce_text,
                )
                .await?;
                if let Some(known) = known {
                    return again(config, order, auth, known).await;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(LedgerError::Unavailable("the relayer is busy; try again".into()))
}

/// An authorization recorded before: its payment, its transaction sent again while unmined.
/// Only for the same order and amount: another authorization under a used nonce is refused.
async fn again(
    config: &Config,
    order: &OrderView,
    auth: &TransferWithAuthorization,
    known: GaslessPayment,
) -> Result<GaslessPayment, LedgerError> {
    if known.order_id != order.order_id || known.amount_base != auth.value.to_string() {
        return Err(LedgerError::Conflict(
            "authorization.nonce: this payer's nonce was used for another payment".into(),
        ));
    }
    if known.status == "sent"
        && let Some(chain) = config.chain_by_id(known.chain_id as u64)
        && let Ok(provider) = crate::chain::rpc::provider(chain.config.rpc_http.urls())
    {
        broadcast(&provider, &known.raw_tx).await;
    }
    Ok(known)
}

/// The order's side: an option of the order that takes authorizations, its deposit address,
/// at most what remains (less what gasless payments not yet seen carry), before the order's
/// expiry plus its late window.
async fn check_terms(
    store: &Store,
    config: &Config,
    order: &OrderView,
    signed: &SignedAuthorization,
    auth: &TransferWithAuthorization,
) -> Result<(), LedgerError> {
    if order.options.is_empty() {
        return Err(LedgerError::Conflict(format!("the order is {}: there is nothing to pay", order.status)));
    }
    let option = order
        .options
        .iter()
        .find(|o| o.chain_id == signed.chain_id && o.token.parse::<Address>().ok() == Some(signed.token))
        .ok_or_else(|| invalid("token", "is not one of the order's pay options on that chain"))?;
    if !config.takes_authorizations(signed.chain_id, signed.token) {
        return Err(invalid(
            "token",
            format!(
                "{} on {} does not take signed authorizations; pay with a wallet transfer",
                option.symbol, option.network
            ),
        ));
    }
    let deposit = order.address.as_deref().and_then(|a| a.parse::<Address>().ok());
    if Some(auth.to) != deposit {
        return Err(invalid("authorization.to", "must be the order's deposit address"));
    }
    let remaining: U256 = option.amount_base.parse().unwrap_or_default();
    // Sent by the relayer and not yet among the order's transfers (once there, what remains
    // counts it when confirmed; a transfer seen and not yet confirmed may let a payer overpay,
    // never underpay).
    let seen: std::collections::HashSet<&str> = order.payments.iter().map(|p| p.tx_hash.as_str()).collect();
    let on_the_way: U256 = gasless::of_order(store.pool(), &order.order_id)
        .await?
        .iter()
        .filter(|p| p.status == "sent" && !seen.contains(p.tx_hash.as_str()))
        .filter(|p| p.chain_id as u64 == signed.chain_id && p.token.parse().ok() == Some(signed.token))
        .filter_map(|p| p.amount_base.parse::<U256>().ok())
        .fold(U256::ZERO, |a, b| a + b);
    let open = remaining.saturating_sub(on_the_way);
    if auth.value.is_zero() || auth.value > open {
        return Err(invalid(
            "authorization.value",
            format!("must be more than 0 and at most what remains to pay: {open} base units"),
        ));
    }
    let last = order.expires_at + config.orders.late_window_secs();
    if auth.validBefore > U256::from(last.max(0)) {
        return Err(invalid(
            "authorization.validBefore",
            format!("must not be past the order's expiry plus its late window ({last})"),
        ));
    }
    Ok(())
}

/// The chain's side, by its clock: the validity window, the signature (an EOA's recovered;
/// a contract wallet's left to the token's EIP-1271 check in the simulation), the nonce not
/// used, the payer's balance.
async fn check_on_chain(
    config: &Config,
    provider: &DynProvider,
    signed: &SignedAuthorization,
    auth: &TransferWithAuthorization,
) -> Result<(), LedgerError> {
    let head = provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| LedgerError::Unavailable("the chain has no head block".into()))?;
    let now = U256::from(head.header.timestamp);
    if auth.validBefore <= now + U256::from(MIN_VALIDITY_SECS) {
        return Err(invalid(
            "authorization.validBefore",
            format!("is expired or too close (the chain's time is {now}; allow at least {MIN_VALIDITY_SECS} s)"),
        ));
    }
    if auth.validAfter >= now {
        return Err(invalid("authorization.validAfter", format!("is not reached yet (the chain's time is {now})")));
    }
    let signature = signature_bytes(&signed.signature)?;
    let is_contract = !provider.get_code_at(auth.from).await.map_err(unavailable)?.is_empty();
    if !is_contract {
        let domain = domain(config, provider, signed.chain_id, signed.token).await?;
        let digest = auth.eip712_signing_hash(&domain);
        let sig = Signature::from_raw(&signature).map_err(|_| invalid("signature", "must be 65 bytes (r, s, v)"))?;
        // High s is refused as tokens do (EIP-2): a malleable twin is not a second signature.
        if sig.normalize_s().is_some() || sig.recover_address_from_prehash(&digest).ok() != Some(auth.from) {
            return Err(invalid("signature", "was not made by authorization.from for this token and chain"));
        }
    }
    let token = IERC3009::new(signed.token, provider);
    if token.authorizationState(auth.from, auth.nonce).call().await.map_err(unavailable)? {
        return Err(LedgerError::Conflict("authorization.nonce: this authorization was used or cancelled".into()));
    }
    let balance = token.balanceOf(auth.from).call().await.map_err(unavailable)?;
    if balance < auth.value {
        return Err(invalid(
            "authorization.from",
            format!("holds {balance} base units of the token, less than the {} authorized", auth.value),
        ));
    }
    Ok(())
}

fn signature_bytes(text: &str) -> Result<Vec<u8>, LedgerError> {
    let bytes = alloy::hex::decode(text.trim()).map_err(|_| invalid("signature", "must be 0x and hex digits"))?;
    if bytes.is_empty() || bytes.len() > 4096 {
        return Err(invalid("signature", "must be 65 bytes from an EOA, or a contract wallet's signature"));
    }
    Ok(bytes)
}

/// The token refused the simulated call: its reason, named.
fn refused_by_token(message: &str) -> LedgerError {
    let reason = crate::chain::rpc::describe(message);
    invalid("authorization", format!("the token refuses this transfer: {reason}"))
}

async fn broadcast(provider: &DynProvider, raw: &str) {
    let Ok(bytes) = alloy::hex::decode(raw.trim_start_matches("0x")) else { return };
    if let Err(e) = provider.send_raw_transaction(&bytes).await {
        tracing::debug!(error = crate::redact::error(&e), "gasless broadcast refused; its receipt decides");
    }
}

/// Why the relayer cannot pay on a chain, by the chain's endpoints, as the last look found it.
static LOW: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// What `/readyz` says about the relayer on `config`'s chains (read by the job, not on each
/// poll: readiness polls make no RPC calls).
pub fn relayer_warnings(config: &Config) -> Vec<String> {
    let low = LOW.lock().unwrap_or_else(|e| e.into_inner());
    let ours: Vec<String> = config.chains().iter().map(|c| c.config.rpc_http.urls().join(",")).collect();
    low.iter().filter(|(endpoints, _)| ours.contains(endpoints)).map(|(_, why)| why.clone()).collect()
}

/// Reads the relayer's balance on every chain with a token that takes authorizations: a metric,
/// and a warning while it is too low to relay.
pub async fn look_at_relayer(config: &Config) -> anyhow::Result<()> {
    let (Some(relayer), Some(signer)) = (&config.relayer, config.relayer.as_ref().and_then(|r| r.signer())) else {
        return Ok(());
    };
    for chain in config.chains() {
        let gasless =
            config.token_book().on_chain(chain.chain_id()).any(|e| config.takes_authorizations(e.chain_id, e.address));
        if !gasless {
            continue;
        }
        let provider = crate::chain::rpc::provider(chain.config.rpc_http.urls())?;
        let balance = provider.get_balance(signer.address()).await?;
        let whole = crate::money::format_base_units(balance, 18);
        metrics::gauge!(crate::telemetry::RELAYER_BALANCE, "chain_id" => chain.chain_id().to_string())
            .set(whole.parse::<f64>().unwrap_or(0.0));
        let endpoints = chain.config.rpc_http.urls().join(",");
        let mut low = LOW.lock().unwrap_or_else(|e| e.into_inner());
        low.retain(|(e, _)| *e != endpoints);
        if balance < relayer.min_balance_wei() {
            low.push((endpoints, format!(
                "chain {} ({}): the relayer {:#x} holds {whole} of the chain's coin, below [relayer] min_balance ({}): gasless payments are refused until it is funded",
                chain.name,
                chain.chain_id(),
                signer.address(),
                relayer.min_balance.0
            )));
        }
    }
    Ok(())
}

/// Follows each sent payment: sent again while the chain does not know it; at its chain's depth
/// `confirmed` (with its gas) or `failed` (the chain refused it: the payer's balance or the
/// authorization changed since), which the order then shows.
pub async fn follow(store: &Store, config: &Config) -> anyhow::Result<()> {
    let mut failed = 0;
    for payment in gasless::sent(store.pool(), 100).await? {
        if let Err(e) = follow_one(store, config, &payment).await {
            failed += 1;
            tracing::warn!(
                payment_id = payment.payment_id,
                error = crate::redact::error(&e),
                "a gasless payment's step failed; the next pass retries it"
            );
        }
    }
    anyhow::ensure!(failed == 0, "{failed} gasless payment steps failed");
    Ok(())
}

async fn follow_one(store: &Store, config: &Config, payment: &GaslessPayment) -> anyhow::Result<()> {
    let chain = config
        .chain_by_id(payment.chain_id as u64)
        .ok_or_else(|| anyhow::anyhow!("chain {} is no longer configured", payment.chain_id))?;
    let provider = crate::chain::rpc::provider(chain.config.rpc_http.urls())?;
    let hash: B256 = payment.tx_hash.parse()?;
    let Some(receipt) = provider.get_transaction_receipt(hash).await? else {
        broadcast(&provider, &payment.raw_tx).await;
        return Ok(());
    };
    let Some(block) = receipt.block_number else { return Ok(()) };
    let head = provider.get_block_number().await?;
    let deep = crate::chain::rpc::confirmed_block(&provider, chain.config.confirmations, head)
        .await?
        .is_some_and(|d| block <= d);
    if !deep {
        return Ok(());
    }
    let gas = Some(receipt.gas_used as i64);
    if receipt.status() {
        gasless::settle(store.pool(), &payment.payment_id, "confirmed", None, gas).await?;
    } else {
        let why =
            "the chain refused the transfer (the payer's balance or the authorization changed since it was checked)";
        if gasless::settle(store.pool(), &payment.payment_id, "failed", Some(why), gas).await? {
            tracing::warn!(order_id = payment.order_id, tx_hash = payment.tx_hash, "a gasless payment failed on chain");
        }
    }
    Ok(())
}
