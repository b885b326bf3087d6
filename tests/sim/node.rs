//! Simulated providers behind one endpoint: an alloy transport (a tower service) that answers
//! JSON-RPC from the simulated chain, in process, with no socket and no sleep. Each backend
//! sees the chain `age` ticks ago and `lag` blocks short; calls reach backends one per batch
//! or each on its own (as aggregators route them); some calls fail, ranges are capped, and
//! some answers carry `removed` copies of their logs. Every decision comes from the seeded
//! generator, so a seed replays the same run.

use std::sync::{Arc, Mutex};
use std::task::Poll;

use alloy::primitives::{Address, B256};
use alloy::rpc::json_rpc::{
    ErrorPayload, Id, RequestPacket, Response, ResponsePacket, ResponsePayload, SerializedRequest,
};
use alloy::rpc::types::Log;
use alloy::transports::{TransportError, TransportErrorKind, TransportFut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::chain::{Block, Chain};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// Ticks behind the chain's history (a node still on a fork the chain left).
    pub age: usize,
    /// Blocks short of the head of what it saw.
    pub lag: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub backends: Vec<Backend>,
    /// Each call of a batch routed to its own backend (else the whole batch to one).
    pub per_call: bool,
    /// The chance that a call answers an error, and that a whole request fails.
    pub call_errors: f64,
    pub request_errors: f64,
    /// The widest `eth_getLogs` range answered.
    pub range_cap: Option<u64>,
    /// Every log answered twice, the copy marked `removed` (another tx hash).
    pub removed_logs: bool,
    /// `eth_getBlockReceipts` refused, as some providers do (receipts one by one instead).
    pub no_block_receipts: bool,
}

impl Faults {
    pub fn honest() -> Self {
        Self {
            backends: vec![Backend { age: 0, lag: 0 }],
            per_call: false,
            call_errors: 0.0,
            request_errors: 0.0,
            range_cap: None,
            removed_logs: false,
            no_block_receipts: false,
        }
    }
}

pub struct Shared {
    pub chain: Chain,
    pub faults: Faults,
    pub rng: StdRng,
    pub chain_id: u64,
    pub calls: u64,
}

#[derive(Clone)]
pub struct SimTransport(pub Arc<Mutex<Shared>>);

impl SimTransport {
    pub fn new(chain: Chain, chain_id: u64, seed: u64) -> Self {
        Self(Arc::new(Mutex::new(Shared {
            chain,
            faults: Faults::honest(),
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            chain_id,
            calls: 0,
        })))
    }
}

impl tower::Service<RequestPacket> for SimTransport {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, packet: RequestPacket) -> Self::Future {
        let answer = answer_packet(&mut self.0.lock().unwrap(), packet);
        Box::pin(async move { answer })
    }
}

fn answer_packet(s: &mut Shared, packet: RequestPacket) -> Result<ResponsePacket, TransportError> {
    let faults = s.faults.clone();
    if faults.request_errors > 0.0 && s.rng.random_bool(faults.request_errors) {
        return Err(TransportErrorKind::custom_str("simulated: connection reset"));
    }
    let whole = pick(s, &faults);
    let one = |s: &mut Shared, r: &SerializedRequest| {
        let backend = if faults.per_call { pick(s, &faults) } else { whole };
        answer_call(s, &faults, backend, r)
    };
    Ok(match packet {
        RequestPacket::Single(r) => ResponsePacket::Single(one(s, &r)),
        RequestPacket::Batch(rs) => ResponsePacket::Batch(rs.iter().map(|r| one(s, r)).collect()),
    })
}

fn pick(s: &mut Shared, faults: &Faults) -> Backend {
    faults.backends[s.rng.random_range(0..faults.backends.len())]
}

fn answer_call(s: &mut Shared, faults: &Faults, backend: Backend, r: &SerializedRequest) -> Response {
    s.calls += 1;
    let id = r.id().clone();
    if faults.call_errors > 0.0 && s.rng.random_bool(faults.call_errors) {
        return failure(id, -32000, "simulated: internal error");
    }
    let params: Value = r.params().map(|p| serde_json::from_str(p.get()).unwrap()).unwrap_or(Value::Null);
    let view = s.chain.view(backend.age, backend.lag);
    let chain = &s.chain;
    let block_json = |b: Option<Arc<Block>>| b.map_or(Value::Null, |b| header_json(&b));
    let result = match r.method() {
        "eth_chainId" => json!(format!("{:#x}", s.chain_id)),
        "eth_blockNumber" => json!(format!("{:#x}", view.head_number())),
        "eth_getBlockByNumber" => {
            let n = match params[0].as_str() {
                Some("latest") | Some("safe") | Some("finalized") => Some(view.head_number()),
                Some(q) => quantity(q),
                None => None,
            };
            block_json(n.and_then(|n| view.hash_at(n)).map(|h| chain.blocks[&h].clone()))
        }
        "eth_getBlockByHash" => {
            let hash: B256 = serde_json::from_value(params[0].clone()).unwrap();
            block_json(view.has(&hash).then(|| chain.blocks[&hash].clone()))
        }
        "eth_getBlockReceipts" if faults.no_block_receipts => {
            return failure(id, -32601, "the method eth_getBlockReceipts does not exist/is not available");
        }
        "eth_getBlockReceipts" => {
            let hash: B256 = serde_json::from_value(params[0].clone()).unwrap();
            if view.has(&hash) { receipts_json(&chain.blocks[&hash]) } else { Value::Null }
        }
        "eth_getTransactionReceipt" => {
            let tx: B256 = serde_json::from_value(params[0].clone()).unwrap();
            let mined = (0..=view.head_number())
                .filter_map(|n| view.hash_at(n))
                .map(|h| chain.blocks[&h].clone())
                .find(|b| b.txs.iter().any(|t| t.hash == tx));
            match mined {
                Some(b) => {
                    let all = receipts_json(&b);
                    all.as_array().unwrap().iter().find(|r| r["transactionHash"] == json!(tx)).cloned().unwrap()
                }
                None => Value::Null,
            }
        }
        "eth_getLogs" => {
            let filter = &params[0];
            let addresses: Vec<Address> = match &filter["address"] {
                Value::Array(a) => a.iter().map(|v| serde_json::from_value(v.clone()).unwrap()).collect(),
                Value::String(_) => vec![serde_json::from_value(filter["address"].clone()).unwrap()],
                _ => vec![],
            };
            let topic0: Option<B256> = match &filter["topics"][0] {
                Value::Array(a) => a.first().map(|v| serde_json::from_value(v.clone()).unwrap()),
                Value::String(_) => Some(serde_json::from_value(filter["topics"][0].clone()).unwrap()),
                _ => None,
            };
            let blocks: Vec<Arc<Block>> = if let Some(hash) = filter["blockHash"].as_str() {
                let hash: B256 = hash.parse().unwrap();
                // A node without the block answers [] by hash, as lagging backends do.
                view.has(&hash).then(|| chain.blocks[&hash].clone()).into_iter().collect()
            } else {
                let head = view.head_number();
                let from = filter["fromBlock"].as_str().and_then(quantity).unwrap_or(0);
                let to = match filter["toBlock"].as_str() {
                    Some("latest") | None => head,
                    Some(q) => quantity(q).unwrap_or(head),
                };
                if let Some(cap) = faults.range_cap
                    && to >= from
                    && to - from + 1 > cap
                {
                    return failure(id, -32005, &format!("query exceeds max block range {cap}"));
                }
                (from..=to.min(head)).filter_map(|n| view.hash_at(n)).map(|h| chain.blocks[&h].clone()).collect()
            };
            let mut logs: Vec<Log> = blocks
                .iter()
                .flat_map(|b| b.logs())
                .filter(|l| addresses.is_empty() || addresses.contains(&l.address()))
                .filter(|l| topic0.is_none_or(|t| l.topics().first() == Some(&t)))
                .collect();
            if faults.removed_logs {
                let copies: Vec<Log> = logs
                    .iter()
                    .map(|l| {
                        let mut c = l.clone();
                        c.removed = true;
                        c.transaction_hash = Some(alloy::primitives::keccak256(l.transaction_hash.unwrap()));
                        c
                    })
                    .collect();
                logs.extend(copies);
            }
            serde_json::to_value(logs).unwrap()
        }
        other => return failure(id, -32601, &format!("simulated node: no method {other}")),
    };
    Response { id, payload: ResponsePayload::Success(serde_json::value::to_raw_value(&result).unwrap()) }
}

fn failure(id: Id, code: i64, message: &str) -> Response {
    Response {
        id,
        payload: ResponsePayload::Failure(ErrorPayload { code, message: message.to_string().into(), data: None }),
    }
}

fn quantity(q: &str) -> Option<u64> {
    u64::from_str_radix(q.trim_start_matches("0x"), 16).ok()
}

fn header_json(b: &Block) -> Value {
    let header = alloy::rpc::types::Header {
        hash: b.hash,
        inner: alloy::consensus::Header {
            parent_hash: b.parent,
            number: b.number,
            timestamp: b.time as u64,
            logs_bloom: b.bloom,
            gas_limit: 30_000_000,
            ..Default::default()
        },
        total_difficulty: None,
        size: None,
    };
    let block: alloy::rpc::types::Block = alloy::rpc::types::Block {
        header,
        uncles: vec![],
        transactions: alloy::rpc::types::BlockTransactions::Hashes(b.txs.iter().map(|t| t.hash).collect()),
        withdrawals: None,
    };
    serde_json::to_value(block).unwrap()
}

fn receipts_json(b: &Block) -> Value {
    let logs = b.logs();
    let receipts: Vec<Value> = b
        .txs
        .iter()
        .enumerate()
        .map(|(i, tx)| {
            let mine: Vec<&Log> = logs.iter().filter(|l| l.transaction_hash == Some(tx.hash)).collect();
            let mut bloom = alloy::primitives::Bloom::default();
            mine.iter().for_each(|l| bloom.accrue_log(&l.inner));
            json!({
                "type": "0x2",
                "status": "0x1",
                "cumulativeGasUsed": "0x5208",
                "logs": mine,
                "logsBloom": bloom,
                "transactionHash": tx.hash,
                "transactionIndex": format!("{i:#x}"),
                "blockHash": b.hash,
                "blockNumber": format!("{:#x}", b.number),
                "gasUsed": "0x5208",
                "effectiveGasPrice": "0x1",
                "from": Address::ZERO,
                "to": Address::ZERO,
                "contractAddress": null,
            })
        })
        .collect();
    Value::Array(receipts)
}
