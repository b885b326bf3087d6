//! A simulated chain: blocks with real hashes (keccak of their parent, number and a salt) and
//! real `logsBloom`s, reorgs of any depth that may mine a dropped transaction again at another
//! height or log index, pace changes, and every canonical chain it ever had (the views of
//! nodes that lag, or still follow a fork the chain left).

use std::collections::HashMap;
use std::sync::Arc;

use alloy::primitives::{Address, B256, Bloom, LogData, U256, keccak256};
use alloy::rpc::types::Log;
use paywatch::chain::completeness::TRANSFER;

/// Another event of the tokens (an Approval's topic): a block holding it and another contract's
/// Transfer has a bloom that says "maybe" for the tokens' Transfers, with none in it.
pub const APPROVAL: B256 = alloy::primitives::b256!("8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925");

/// A transaction: one or more logs, mined in some block (or waiting to be mined again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    pub hash: B256,
    pub logs: Vec<SimLog>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimLog {
    pub address: Address,
    pub topics: Vec<B256>,
    pub data: Vec<u8>,
}

impl SimLog {
    pub fn transfer(token: Address, from: Address, to: Address, amount: U256) -> Self {
        Self {
            address: token,
            topics: vec![TRANSFER, from.into_word(), to.into_word()],
            data: amount.to_be_bytes::<32>().to_vec(),
        }
    }

    /// The transfer's (token, recipient, amount) when it is one.
    pub fn as_transfer(&self) -> Option<(Address, Address, U256)> {
        (self.topics.len() == 3 && self.topics[0] == TRANSFER && self.data.len() == 32)
            .then(|| (self.address, Address::from_word(self.topics[2]), U256::from_be_slice(&self.data)))
    }
}

#[derive(Debug, Clone)]
pub struct Block {
    pub number: u64,
    pub hash: B256,
    pub parent: B256,
    pub time: i64,
    pub txs: Vec<Tx>,
    pub bloom: Bloom,
}

impl Block {
    /// Every log of the block, as a node answers it (log index across the block).
    pub fn logs(&self) -> Vec<Log> {
        let mut out = Vec::new();
        for (ti, tx) in self.txs.iter().enumerate() {
            for l in &tx.logs {
                out.push(Log {
                    inner: alloy::primitives::Log {
                        address: l.address,
                        data: LogData::new_unchecked(l.topics.clone(), l.data.clone().into()),
                    },
                    block_hash: Some(self.hash),
                    block_number: Some(self.number),
                    block_timestamp: Some(self.time as u64),
                    transaction_hash: Some(tx.hash),
                    transaction_index: Some(ti as u64),
                    log_index: Some(out.len() as u64),
                    removed: false,
                });
            }
        }
        out
    }
}

pub struct Chain {
    pub blocks: HashMap<B256, Arc<Block>>,
    /// The canonical chain now, by number from 0.
    pub canonical: Vec<B256>,
    /// Every canonical chain it had, one per tick (a node's view is one of them, cut short).
    pub history: Vec<Arc<Vec<B256>>>,
    salt: u64,
    pub block_secs: i64,
    /// The highest head it ever had.
    pub max_head: u64,
}

impl Chain {
    pub fn new(genesis_time: i64) -> Self {
        let genesis = Block {
            number: 0,
            hash: keccak256(b"genesis"),
            parent: B256::ZERO,
            time: genesis_time,
            txs: vec![],
            bloom: Bloom::default(),
        };
        let mut chain = Self {
            blocks: HashMap::new(),
            canonical: vec![genesis.hash],
            history: Vec::new(),
            salt: 0,
            block_secs: 2,
            max_head: 0,
        };
        chain.blocks.insert(genesis.hash, Arc::new(genesis));
        chain.snapshot();
        chain
    }

    pub fn head(&self) -> Arc<Block> {
        self.blocks[self.canonical.last().unwrap()].clone()
    }

    pub fn at(&self, n: u64) -> Option<Arc<Block>> {
        self.canonical.get(n as usize).map(|h| self.blocks[h].clone())
    }

    /// Mines a block holding `txs` on the head.
    pub fn mine(&mut self, txs: Vec<Tx>) -> Arc<Block> {
        let parent = self.head();
        self.salt += 1;
        let number = parent.number + 1;
        let mut preimage = parent.hash.to_vec();
        preimage.extend(number.to_be_bytes());
        preimage.extend(self.salt.to_be_bytes());
        let mut bloom = Bloom::default();
        for tx in &txs {
            for l in &tx.logs {
                bloom.accrue_log(&alloy::primitives::Log {
                    address: l.address,
                    data: LogData::new_unchecked(l.topics.clone(), Default::default()),
                });
            }
        }
        let block = Arc::new(Block {
            number,
            hash: keccak256(&preimage),
            parent: parent.hash,
            time: parent.time + self.block_secs,
            txs,
            bloom,
        });
        self.blocks.insert(block.hash, block.clone());
        self.canonical.push(block.hash);
        self.max_head = self.max_head.max(number);
        block
    }

    /// Drops the newest `depth` blocks; returns their transactions, oldest first.
    pub fn rollback(&mut self, depth: u64) -> Vec<Tx> {
        let keep = self.canonical.len().saturating_sub(depth as usize).max(1);
        let dropped: Vec<B256> = self.canonical.split_off(keep);
        dropped.iter().flat_map(|h| self.blocks[h].txs.clone()).collect()
    }

    /// Records the canonical chain as it is now: one tick of history.
    pub fn snapshot(&mut self) {
        self.history.push(Arc::new(self.canonical.clone()));
    }

    /// The chain a node sees `age` ticks behind, cut `lag` blocks short of its head.
    pub fn view(&self, age: usize, lag: u64) -> View {
        let tick = self.history.len().saturating_sub(1 + age);
        let seen = self.history[tick].clone();
        let len = seen.len().saturating_sub(lag as usize).max(1);
        View { hashes: seen, len }
    }
}

/// What one node has: a prefix of a chain the simulated chain once had.
pub struct View {
    hashes: Arc<Vec<B256>>,
    len: usize,
}

impl View {
    pub fn head_number(&self) -> u64 {
        self.len as u64 - 1
    }
    pub fn hash_at(&self, n: u64) -> Option<B256> {
        (n < self.len as u64).then(|| self.hashes[n as usize])
    }
    pub fn has(&self, hash: &B256) -> bool {
        self.hashes[..self.len].contains(hash)
    }
}
