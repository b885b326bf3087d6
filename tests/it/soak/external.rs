//! The sent-hash path of refunds: with no refund key configured (odd seeds, or
//! `SOAK_REFUNDS=external`), the soak is the operator's external signer. It sends each approved
//! refund's transfer from its own wallet (`[refunds] external_sender`), gives paywatch the hash
//! and, as a wallet's node would, broadcasts its signed bytes again when a reorg took them.

use std::collections::{BTreeMap, BTreeSet};

use alloy::eips::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use serde_json::json;

use super::Soak;
use crate::support::chain::TestChain;

/// The operator's wallet and what it signed.
pub struct ExternalSigner {
    pub wallet: PrivateKeySigner,
    /// Its next nonce per chain: never reused, so a transaction a reorg took can go out again.
    nonces: BTreeMap<u64, u64>,
    /// Every transaction it signed, to broadcast again and to give paywatch the hash again.
    sent: Vec<Signed>,
    /// Destinations it paid for a refund that had ended before its hash was recorded (a reorg
    /// took the fund meanwhile): the operator's own double payment, which the audit expects.
    pub paid_after_end: BTreeSet<Address>,
}

struct Signed {
    chain_id: u64,
    refund_id: String,
    raw: Bytes,
    hash: B256,
}

/// Whether this run's refunds go through an external signer.
pub fn chosen(seed: u64) -> bool {
    match std::env::var("SOAK_REFUNDS").as_deref() {
        Ok("external") => true,
        Ok("key") => false,
        _ => seed % 2 == 1,
    }
}

impl ExternalSigner {
    pub fn new(wallet: PrivateKeySigner) -> Self {
        Self { wallet, nonces: BTreeMap::new(), sent: Vec::new(), paid_after_end: BTreeSet::new() }
    }

    /// How many transactions it signed on `chain_id` (its nonce count once all are mined).
    pub fn signed_on(&self, chain_id: u64) -> u64 {
        self.nonces.get(&chain_id).copied().unwrap_or(0)
    }
}

fn chain_of(soak: &Soak, chain_id: u64) -> &TestChain {
    if chain_id == paywatch::devnet::CHAIN_ID { &soak.app.chain } else { soak.app.l2() }
}

/// Sends an approved refund's transfer and records its hash.
pub async fn pay(soak: &mut Soak, refund_id: &str, chain_id: u64, token: Address, to: Address, amount: U256) {
    let signer = soak.external.as_mut().expect("an external signer");
    let nonce = *signer.nonces.entry(chain_id).or_default();
    signer.nonces.insert(chain_id, nonce + 1);
    let wallet = EthereumWallet::from(signer.wallet.clone());
    let data = paywatch::chain::contracts::IERC20::transferCall { to, value: amount }.abi_encode();
    let request = TransactionRequest::default()
        .with_to(token)
        .with_input(Bytes::from(data))
        .with_nonce(nonce)
        .with_chain_id(chain_id)
        .with_gas_limit(150_000)
        .with_max_fee_per_gas(100_000_000_000)
        .with_max_priority_fee_per_gas(1_000_000_000);
    let envelope = request.build(&wallet).await.unwrap();
    let raw = Bytes::from(envelope.encoded_2718());
    let hash = *envelope.tx_hash();
    soak.external.as_mut().unwrap().sent.push(Signed { chain_id, refund_id: refund_id.to_string(), raw, hash });
    rebroadcast(soak).await;
    record(soak, refund_id, hash, to).await;
}

/// Gives paywatch the hash; a refusal because the chain cannot be asked now is retried at the
/// next quiet point (`catch_up`).
async fn record(soak: &mut Soak, refund_id: &str, hash: B256, to: Address) {
    let path = format!("/admin/refunds/{refund_id}/sent");
    let (status, body) =
        soak.call(reqwest::Method::POST, &path, Some(&json!({"tx_hash": format!("{hash:#x}")})), true).await;
    match status {
        200 => soak.count("refund: sent by the external signer (hash recorded)"),
        503 => soak.count("refund: external hash refused while its chain is down (given again later)"),
        // Recorded already (given again at a quiet point), or the refund ended meanwhile.
        409 => {
            let (_, detail) = soak.call(reqwest::Method::GET, &format!("/admin/refunds/{refund_id}"), None, true).await;
            let now = &detail["refund"];
            let recorded = now["tx_hash"].as_str().is_some_and(|h| h.parse::<B256>().ok() == Some(hash));
            if !recorded && matches!(now["status"].as_str(), Some("failed")) {
                soak.external.as_mut().unwrap().paid_after_end.insert(to);
                soak.count("refund: external signer paid a refund that ended meanwhile");
            } else if !recorded {
                panic!("sent answered 409 for refund {refund_id} now {now}: {body}");
            }
        }
        other => panic!("sent answered {other} for refund {refund_id}: {body}"),
    }
}

/// Every signed transaction its chain no longer knows goes out again (in nonce order: one a
/// reorg took holds back the later ones).
async fn rebroadcast(soak: &Soak) {
    let Some(signer) = &soak.external else { return };
    for tx in &signer.sent {
        let chain = chain_of(soak, tx.chain_id);
        if chain.deployer.get_transaction_by_hash(tx.hash).await.unwrap().is_none() {
            // "Already known" and "nonce too low" (mined meanwhile) are fine: the receipt decides.
            let _ = chain.deployer.send_raw_transaction(&tx.raw).await;
        }
    }
}

/// At a quiet point: lost transactions out again, and hashes paywatch could not check then
/// given again (a refund still approved).
pub async fn catch_up(soak: &mut Soak) {
    if soak.external.is_none() {
        return;
    }
    rebroadcast(soak).await;
    let (status, listed) = soak.call(reqwest::Method::GET, "/admin/refunds?status=approved", None, true).await;
    assert_eq!(status, 200, "{listed}");
    let approved: BTreeMap<String, Address> = listed["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| Some((r["refund_id"].as_str()?.to_string(), r["to_address"].as_str()?.parse().ok()?)))
        .collect();
    let waiting: Vec<(String, B256, Address)> = soak
        .external
        .as_ref()
        .unwrap()
        .sent
        .iter()
        .filter_map(|tx| approved.get(&tx.refund_id).map(|to| (tx.refund_id.clone(), tx.hash, *to)))
        .collect();
    for (refund_id, hash, to) in waiting {
        record(soak, &refund_id, hash, to).await;
    }
}
