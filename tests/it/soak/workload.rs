//! The soak's workload: each step draws one action and all its parameters from the workload's
//! generator first (so the payments a seed issues never depend on timing), then does it.

use alloy::primitives::U256;
use paywatch::devnet::anvil::accounts;
use paywatch::money::Token;
use rand::Rng;
use serde_json::json;

use super::{Soak, SoakOrder};
use crate::support::app::{create_app_body, pay_on};
use crate::support::chain::Mined;

const PAY_METHODS: [&str; 2] = ["ANKR_ERC20", "USDT_ERC20"];

fn percent(amount: U256, pct: u64) -> U256 {
    amount * U256::from(pct) / U256::from(100u64)
}

/// The other token on the first chain: a wrong-token payment.
fn other_token(pay_method: &str) -> Token {
    if pay_method == "ANKR_ERC20" { Token::UsdtErc20 } else { Token::AnkrErc20 }
}

fn own_token(pay_method: &str) -> Token {
    if pay_method == "ANKR_ERC20" { Token::AnkrErc20 } else { Token::UsdtErc20 }
}

pub async fn act(soak: &mut Soak) {
    let action = soak.work.random_range(0..100u8);
    let pick: u64 = soak.work.random();
    let pct = soak.work.random_range(1..100u64);
    let payer = if soak.work.random_bool(0.5) { accounts::PAYER_KEY } else { accounts::OTHER_PAYER_KEY };
    if soak.orders.is_empty() || action < 25 {
        let pay_method = PAY_METHODS[(pick % 2) as usize];
        let period = (pct % 3 + 1) as u32;
        create_order(soak, pay_method, period).await;
        return;
    }
    let index = (pick % soak.orders.len() as u64) as usize;
    let order = soak.orders[index].clone();
    let own = own_token(order.pay_method);
    let l2 = order.pay_method == "USDT_ERC20";
    // (kind, [(on the second chain, token, amount)])
    let (kind, transfers): (&str, Vec<(bool, Token, U256)>) = match action {
        42..=44 if !l2 => ("several in one transaction", Vec::new()),
        25..=44 => ("exact", vec![(false, own, order.owed)]),
        45..=54 => ("partial", vec![(false, own, percent(order.owed, pct.min(90)))]),
        55..=62 => ("over", vec![(false, own, order.owed + percent(order.owed, pct / 3 + 1))]),
        63..=69 => {
            ("wrong token", vec![(false, other_token(order.pay_method), percent(order.owed, pct) + U256::from(1u8))])
        }
        70..=79 => {
            let first = percent(order.owed, pct.clamp(10, 90));
            let rest = order.owed - first;
            if l2 {
                ("split across chains", vec![(false, own, first), (true, paywatch::devnet::L2_USDT, rest)])
            } else {
                ("split in two transactions", vec![(false, own, first), (false, own, rest)])
            }
        }
        80..=84 if l2 => ("on the second chain", vec![(true, paywatch::devnet::L2_USDT, order.owed)]),
        80..=86 => ("apply a stray fund", Vec::new()),
        87..=89 => ("refund a stray fund", Vec::new()),
        90..=93 => ("card", Vec::new()),
        94..=95 => ("sweep", Vec::new()),
        96..=97 if !soak.card_apps.is_empty() => ("card extension", Vec::new()),
        98..=99 if !order.extension => ("token extension", Vec::new()),
        _ => ("mine", Vec::new()),
    };
    match kind {
        "apply a stray fund" => apply_fund(soak, pick).await,
        "refund a stray fund" => refund_fund(soak, pick).await,
        "several in one transaction" => several_in_one_transaction(soak, index, pick, payer).await,
        "card" => card_order(soak, card(pct), (pct % 3 + 1) as u32).await,
        "token extension" => token_extension(soak, &order, (pct % 2 + 1) as u32).await,
        "card extension" => {
            let app_id = soak.card_apps[(pick % soak.card_apps.len() as u64) as usize].clone();
            card_extension(soak, &app_id, card(pct), (pct % 2 + 1) as u32).await;
        }
        "sweep" => {
            // Now and then a deposit address of the first chain's USDT may no longer send.
            let usdt_orders: Vec<&SoakOrder> = soak.orders.iter().filter(|o| o.pay_method == "USDT_ERC20").collect();
            if pct < 30 && !usdt_orders.is_empty() {
                let address = usdt_orders[(pick % usdt_orders.len() as u64) as usize].address;
                blacklist(soak, address, true).await;
                soak.blacklisted.push(address);
                soak.count("sweep: a deposit address blacklisted first");
            } else if pct > 80 && !soak.blacklisted.is_empty() {
                let address = soak.blacklisted.remove(0);
                blacklist(soak, address, false).await;
                soak.count("sweep: a deposit address taken off the blacklist first");
            }
            sweep(soak, false).await;
        }
        "mine" => {
            soak.app.mine(pct % 4 + 1).await;
            soak.count("mined blocks");
        }
        _ => {
            soak.issued.push(format!("{kind} to order #{index}: {transfers:?}"));
            for (second_chain, token, amount) in transfers {
                let chain = if second_chain { soak.app.l2() } else { &soak.app.chain };
                pay_on(chain, payer, token, order.address, amount).await;
            }
            soak.count(&format!("payment: {kind}"));
        }
    }
}

/// Stripe-like test cards (the sandbox processor): most succeed; some are declined, fail for
/// funds, answer slowly, or charge and then fail as if the connection dropped.
fn card(pct: u64) -> &'static str {
    match pct % 10 {
        0 => "pm_card_chargeDeclined",
        1 => "pm_card_chargeDeclinedInsufficientFunds",
        2 => "pm_card_visa_chargedThenError",
        3 => "pm_card_visa_slow_1",
        _ => "pm_card_visa",
    }
}

/// What a card request may answer: paid (200), refused (402), or unresolved (503: the
/// recovery job settles it). Anything else is a defect.
fn card_answer(soak: &mut Soak, what: &str, card_id: &str, status: u16, body: &serde_json::Value) {
    let outcome = match status {
        200 => "paid",
        402 => "refused",
        503 => "unresolved (the recovery job settles it)",
        other => panic!("{what} with {card_id} answered {other}: {body}"),
    };
    soak.count(&format!("{what}: {outcome}"));
}

async fn card_order(soak: &mut Soak, card_id: &'static str, period: u32) {
    let mut body = create_app_body("CREDIT_CARD", period);
    body["pre_pay_info"]["card_id"] = json!(card_id);
    let (status, created) =
        soak.call_with(reqwest::Method::POST, "/v2alpha/app/v2/app", Some(&body), false, false).await;
    card_answer(soak, "card order", card_id, status, &created);
    if status == 200 {
        soak.card_apps.push(created["app_id"].as_str().unwrap().to_string());
    }
}

async fn card_extension(soak: &mut Soak, app_id: &str, card_id: &'static str, period: u32) {
    let body = json!({"app_id": app_id, "period": period, "pay_method": "CREDIT_CARD", "card_id": card_id});
    let path = "/v2alpha/after_create_extend_order/do_extend_app";
    let (status, answer) = soak.call_with(reqwest::Method::POST, path, Some(&body), false, false).await;
    card_answer(soak, "card extension", card_id, status, &answer);
}

/// An extension order of a paid app, in its own token: a new order the later payments may pay
/// (its status and money audited like any order's, its app's end across its orders).
async fn token_extension(soak: &mut Soak, order: &SoakOrder, period: u32) {
    let path = format!("/v2alpha/teams/{}/orders/{}", soak.app.team_id, order.order_id);
    let (status, view) = soak.call(reqwest::Method::GET, &path, None, false).await;
    assert_eq!(status, 200, "{view}");
    if view["status"] != "paid" {
        return soak.count("token extension: the app is not paid");
    }
    let body = json!({"app_id": order.app_id, "period": period.to_string(), "pay_method": order.pay_method});
    let (status, created) = soak.call(reqwest::Method::POST, "/v2alpha/create_extend_order", Some(&body), false).await;
    if status != 200 {
        // An open extension order already, say: the API says why.
        assert!(status == 409 || status == 422, "create_extend_order answered {status}: {created}");
        return soak.count("token extension: refused");
    }
    let path =
        format!("/v2alpha/teams/{}/eth_order/{}?pay_method={}", soak.app.team_id, order.app_id, order.pay_method);
    let (status, eth) = soak.call(reqwest::Method::GET, &path, None, false).await;
    assert_eq!(status, 200, "GetEthOrder: {eth}");
    assert_eq!(eth["order_id"], created["order_id"], "the extension is the app's open order");
    soak.orders.push(SoakOrder {
        order_id: eth["order_id"].as_str().unwrap().to_string(),
        app_id: order.app_id.clone(),
        extension: true,
        pay_method: order.pay_method,
        address: eth["address"].as_str().unwrap().parse().unwrap(),
        owed: eth["payment_uri"].as_str().unwrap().rsplit("uint256=").next().unwrap().parse().unwrap(),
    });
    soak.extended_apps.insert(order.app_id.clone());
    soak.count("token extension: order opened");
}

/// `paywatch sweep` (every chain), as an operator or the scheduled job runs it. Under a fault
/// (the RPC down, say) it may fail and the next run goes on; at a quiet point it must not.
pub async fn sweep(soak: &mut Soak, must: bool) {
    let config = soak.app.config_path.to_str().unwrap().to_string();
    let out = crate::support::paywatch_beside_server(&["sweep", "--config", &config]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || !must, "sweep failed at a quiet point: {stderr}");
    soak.count(if out.status.success() { "sweep: runs" } else { "sweep: failed under a fault" });
}

async fn blacklist(soak: &Soak, address: alloy::primitives::Address, on: bool) {
    let owner = paywatch::chain::rpc::signing_provider(
        &soak.app.chain.anvil.rpc_url(),
        accounts::PAYER_KEY.parse::<alloy::signers::local::PrivateKeySigner>().unwrap(),
    )
    .unwrap();
    let usdt = paywatch::chain::contracts::MockUSDT::new(soak.app.chain.token(Token::UsdtErc20), owner);
    let sent = if on { usdt.addBlackList(address).send().await } else { usdt.removeBlackList(address).send().await };
    sent.unwrap().get_receipt().await.unwrap();
}

async fn create_order(soak: &mut Soak, pay_method: &'static str, period: u32) {
    let (status, created) = soak
        .call(reqwest::Method::POST, "/v2alpha/app/v2/app", Some(&create_app_body(pay_method, period)), false)
        .await;
    assert_eq!(status, 200, "CreateApp: {created}");
    let app_id = created["app_id"].as_str().unwrap().to_string();
    let path = format!("/v2alpha/teams/{}/eth_order/{app_id}?pay_method={pay_method}", soak.app.team_id);
    let (status, eth) = soak.call(reqwest::Method::GET, &path, None, false).await;
    assert_eq!(status, 200, "GetEthOrder: {eth}");
    let owed = eth["payment_uri"].as_str().unwrap().rsplit("uint256=").next().unwrap().parse().unwrap();
    soak.orders.push(SoakOrder {
        order_id: eth["order_id"].as_str().unwrap().to_string(),
        app_id,
        extension: false,
        pay_method,
        address: eth["address"].as_str().unwrap().parse().unwrap(),
        owed,
    });
    soak.count(&format!("order: {pay_method}"));
}

/// One ANKR transaction paying this order and up to two other ANKR orders (their exact amounts):
/// several Transfer logs in one transaction, each its own payment.
async fn several_in_one_transaction(soak: &mut Soak, index: usize, pick: u64, payer: &str) {
    let ankr: Vec<usize> =
        (0..soak.orders.len()).filter(|i| *i != index && soak.orders[*i].pay_method == "ANKR_ERC20").collect();
    let mut paid = vec![index];
    for k in 0..(pick % 3) as usize {
        if !ankr.is_empty() {
            paid.push(ankr[(pick as usize / (k + 2)) % ankr.len()]);
        }
    }
    let to: Vec<_> = paid.iter().map(|i| soak.orders[*i].address).collect();
    let amounts: Vec<U256> = paid.iter().map(|i| soak.orders[*i].owed).collect();
    soak.issued.push(format!("several in one transaction to orders {paid:?}: {amounts:?}"));
    let signer = paywatch::chain::rpc::signing_provider(
        &soak.app.chain.anvil.rpc_url(),
        payer.parse::<alloy::signers::local::PrivateKeySigner>().unwrap(),
    )
    .unwrap();
    let token = paywatch::chain::contracts::MockERC20::new(soak.app.chain.token(Token::AnkrErc20), signer);
    let receipt = token.multiTransfer(to, amounts).mined().await;
    assert!(receipt.status(), "multiTransfer succeeded");
    soak.count("payment: several in one transaction");
}

/// An unattributed fund recorded as refunded by hand (the operator sent it back and gives the
/// transaction's hash); a fund taken meanwhile is a refusal, counted.
async fn refund_fund(soak: &mut Soak, pick: u64) {
    let Some(fund) = unattributed_fund(soak, pick).await else { return };
    let fund_id = fund["fund_id"].as_str().unwrap();
    if pick.is_multiple_of(2) {
        let path = format!("/admin/funds/{fund_id}/refunded");
        let hash = format!("{:#x}", alloy::primitives::B256::from(U256::from(pick)));
        let (status, body) = soak.call(reqwest::Method::POST, &path, Some(&json!({"tx_hash": hash})), true).await;
        match status {
            200 => soak.count("refund: recorded by hand"),
            404 | 409 => soak.count("refund: refused (fund taken or gone)"),
            other => panic!("refunded answered {other}: {body}"),
        }
        return;
    }
    // Sent by paywatch: a part or all of it, claimed by a payer address of its own (approved
    // at once under the soak's auto-approval).
    let held: U256 = fund["amount_base"].as_str().unwrap().parse().unwrap();
    let part = if pick.is_multiple_of(3) { held / U256::from(2u8) } else { held };
    if part.is_zero() {
        return;
    }
    let token: alloy::primitives::Address = fund["token"].as_str().unwrap().parse().unwrap();
    let ankr = fund["chain_id"] == paywatch::devnet::CHAIN_ID && token == soak.app.chain.token(Token::AnkrErc20);
    let decimals = if ankr { 18 } else { 6 };
    let amount = paywatch::money::format_base_units(part, decimals);
    let path = format!("/admin/funds/{fund_id}/refunds");
    let (status, body) = soak.call(reqwest::Method::POST, &path, Some(&json!({"amount": amount})), true).await;
    match status {
        200 => {}
        // Taken meanwhile, or gone with the money a reorg took.
        404 | 409 => return soak.count("refund: refused (fund taken or gone)"),
        other => panic!("refunds answered {other}: {body}"),
    }
    let refund_id = body["refund"]["refund_id"].as_str().unwrap().to_string();
    // Now and then the operator cancels it before the payer claims it, or the payer never
    // opens the link (it expires with the clock faults, and its money is open again).
    match pick % 5 {
        1 => return end_refund(soak, &refund_id, "cancel", None).await,
        3 => return soak.count("refund: link left unclaimed (to expire)"),
        _ => {}
    }
    let to = alloy::primitives::Address::from_word(alloy::primitives::keccak256(format!("soak refund {pick}")));
    let claim = json!({"address": format!("{to:#x}"), "confirm": true});
    let (status, body) = soak.call(reqwest::Method::POST, &format!("/refund/{refund_id}"), Some(&claim), false).await;
    match status {
        200 if soak.external.is_none() => soak.count("refund: sent by paywatch (claimed)"),
        200 => soak.count("refund: claimed (for the external signer)"),
        // A reorg took its money (the refund was cancelled) between creation and claim.
        409 => return soak.count("refund: claim refused (cancelled meanwhile)"),
        other => panic!("claim answered {other}: {body}"),
    }
    // Or rejects the claim: too late once the job sent it (auto-approved), a refusal, counted.
    if pick % 5 == 2 {
        return end_refund(soak, &refund_id, "reject", Some(json!({"reason": "soak: rejected"}))).await;
    }
    if soak.external.is_some() && body["status"] == "approved" {
        let chain_id = body["chain_id"].as_u64().unwrap();
        super::external::pay(soak, &refund_id, chain_id, token, to, part).await;
    }
}

/// The operator ends a refund not sent yet (`cancel` or `reject`): its money is open again.
/// One already sent (or ended by a reorg) answers 409, counted.
async fn end_refund(soak: &mut Soak, refund_id: &str, how: &str, body: Option<serde_json::Value>) {
    let path = format!("/admin/refunds/{refund_id}/{how}");
    let (status, answer) = soak.call(reqwest::Method::POST, &path, body.as_ref(), true).await;
    match status {
        200 => soak.count(if how == "cancel" { "refund: cancelled" } else { "refund: rejected" }),
        409 => soak.count("refund: too late to end (sent or ended)"),
        other => panic!("{how} answered {other}: {answer}"),
    }
}

/// One unattributed fund (chosen by `pick`), if any.
async fn unattributed_fund(soak: &mut Soak, pick: u64) -> Option<serde_json::Value> {
    let (status, listed) = soak.call(reqwest::Method::GET, "/admin/funds?status=unattributed", None, true).await;
    assert_eq!(status, 200, "{listed}");
    let funds = listed["funds"].as_array().cloned().unwrap_or_default();
    if funds.is_empty() {
        soak.count("apply or refund: no fund");
        return None;
    }
    Some(funds[(pick % funds.len() as u64) as usize].clone())
}

/// An unattributed fund applied to an open order of its token (chosen by `pick`); the API's
/// refusals (the order closed meanwhile, the fund taken) are counted, not errors.
async fn apply_fund(soak: &mut Soak, pick: u64) {
    let Some(fund) = unattributed_fund(soak, pick).await else { return };
    let token: alloy::primitives::Address = fund["token"].as_str().unwrap().parse().unwrap();
    let on_first_chain = fund["chain_id"] == paywatch::devnet::CHAIN_ID;
    let targets: Vec<&SoakOrder> = soak
        .orders
        .iter()
        .filter(|o| on_first_chain && soak.app.chain.token(own_token(o.pay_method)) == token)
        .filter(|o| fund["order_id"] != o.order_id.as_str())
        .collect();
    if targets.is_empty() {
        soak.count("apply: no order of its token");
        return;
    }
    let target = targets[(pick / 7 % targets.len() as u64) as usize].order_id.clone();
    let path = format!("/admin/funds/{}/apply", fund["fund_id"].as_str().unwrap());
    let (status, body) = soak.call(reqwest::Method::POST, &path, Some(&json!({"order_id": target})), true).await;
    match status {
        200 => soak.count("apply: applied"),
        404 | 409 | 422 => soak.count("apply: refused (order closed, fund taken or gone)"),
        other => panic!("apply answered {other}: {body}"),
    }
}
