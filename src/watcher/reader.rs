//! The watcher's RPC calls and nothing else: what it asks of the endpoints, in as few round
//! trips as the trust rule allows, each answer handed back as it came (`completeness` judges
//! them). Batches are only a cost choice here: no rule depends on one batch reaching one node.

use std::collections::BTreeMap;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, Bloom};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::client::BatchRequest;
use alloy::rpc::types::{Filter, Log, TransactionReceipt};
use alloy::sol_types::SolEvent;
use anyhow::Context;
use futures_util::StreamExt;

use crate::chain::completeness::{BlockHead, Look};
use crate::chain::contracts::IERC20;

/// Headers asked per JSON-RPC batch (providers cap batches at 50-1,000 calls).
pub const HEADER_BATCH: usize = 50;
/// Header batches of one range in flight at once.
const HEADER_BATCHES_IN_FLIGHT: usize = 4;

#[derive(Clone)]
pub struct Reader {
    provider: DynProvider,
    tokens: Vec<Address>,
}

/// The head's poll: the head, the headers asked with it, and the logs from a block to the head.
pub struct HeadPoll {
    pub head: BlockHead,
    /// The look at `from..=head` (headers asked with the head, the head's own, the logs), when
    /// the logs were asked and answered.
    pub look: Option<Look>,
}

impl Reader {
    pub fn new(provider: DynProvider, tokens: Vec<Address>) -> Self {
        Self { provider, tokens }
    }

    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    fn filter(&self) -> Filter {
        Filter::new().address(self.tokens.clone()).event_signature(IERC20::Transfer::SIGNATURE_HASH)
    }

    /// The head: one `eth_getBlockByNumber("latest")` (number, hash, parent and bloom).
    pub async fn head(&self) -> anyhow::Result<BlockHead> {
        let block: Option<HeadFields> = self
            .provider
            .raw_request("eth_getBlockByNumber".into(), (BlockNumberOrTag::Latest, false))
            .await
            .context("eth_getBlockByNumber(latest)")?;
        Ok(block.context("the node has no latest block")?.into())
    }

    /// One batch: the head, the headers of `from..from+extra`, and `eth_getLogs(from,
    /// "latest")`: the floor's two calls when one block came, a header more for each other
    /// block the pace says came. Logs past the head are dropped (the next poll reads them).
    /// A node that refuses a call of the batch (some refuse a `from` past their head): the
    /// head alone.
    pub async fn head_with_logs(&self, from: u64, extra: u64) -> anyhow::Result<HeadPoll> {
        let mut batch = BatchRequest::new(self.provider.client());
        let latest =
            batch.add_call::<_, Option<HeadFields>>("eth_getBlockByNumber", &(BlockNumberOrTag::Latest, false))?;
        let mut asked = Vec::new();
        for n in from..from + extra {
            let waiter = batch
                .add_call::<_, Option<HeadFields>>("eth_getBlockByNumber", &(BlockNumberOrTag::Number(n), false))?;
            asked.push(waiter);
        }
        let filter = self.filter().from_block(from).to_block(BlockNumberOrTag::Latest);
        let logs = batch.add_call::<_, Vec<Log>>("eth_getLogs", &(filter,))?;
        if let Err(e) = batch.send().await {
            if e.is_error_resp() {
                tracing::debug!(error = %e, "the head's batch was refused; reading the head alone");
                return Ok(HeadPoll { head: self.head().await?, look: None });
            }
            return Err(anyhow::Error::new(e).context("a batch of the head and eth_getLogs"));
        }
        let head: BlockHead =
            latest.await.context("eth_getBlockByNumber(latest)")?.context("the node has no latest block")?.into();
        let mut headers = BTreeMap::new();
        for waiter in asked {
            if let Ok(Some(b)) = waiter.await {
                headers.insert(b.number, BlockHead::from(b));
            }
        }
        let Ok(logs) = logs.await else { return Ok(HeadPoll { head, look: None }) };
        if head.number < from {
            return Ok(HeadPoll { head, look: None });
        }
        headers.retain(|n, _| *n <= head.number);
        headers.insert(head.number, head);
        let logs = logs.into_iter().filter(|l| l.block_number.is_some_and(|n| n <= head.number)).collect();
        Ok(HeadPoll { head, look: Some(Look { from, to: head.number, headers, logs, ..Default::default() }) })
    }

    /// A range's logs and the headers its rule needs: its two ends in one batch when `tied`,
    /// else every header beside the logs.
    pub async fn look(&self, tied: bool, from: u64, to: u64) -> anyhow::Result<Look> {
        if tied { self.tied_range(from, to).await } else { self.range(from, to).await }
    }

    /// `eth_getLogs(from, to)` and every header of the range, asked at once.
    pub async fn range(&self, from: u64, to: u64) -> anyhow::Result<Look> {
        let filter = self.filter().from_block(from).to_block(to);
        let numbers: Vec<u64> = (from..=to).collect();
        let (logs, heads) = tokio::join!(self.provider.get_logs(&filter), self.headers(&numbers));
        let headers = heads?.into_iter().flatten().map(|h| (h.number, h)).collect();
        Ok(Look { from, to, headers, logs: logs.context("eth_getLogs")?, ..Default::default() })
    }

    /// One batch: the first and last headers of `from..=to` and its `eth_getLogs`, for an
    /// endpoint declared to keep a batch on one node (`one_node::verify_tied` judges it).
    pub async fn tied_range(&self, from: u64, to: u64) -> anyhow::Result<Look> {
        let mut batch = BatchRequest::new(self.provider.client());
        let ends: Vec<u64> = if from == to { vec![from] } else { vec![from, to] };
        let mut waiters = Vec::new();
        for n in &ends {
            let params = (BlockNumberOrTag::Number(*n), false);
            waiters.push(batch.add_call::<_, Option<HeadFields>>("eth_getBlockByNumber", &params)?);
        }
        let logs = batch.add_call::<_, Vec<Log>>("eth_getLogs", &(self.filter().from_block(from).to_block(to),))?;
        batch.send().await.context("a batch of a range's end headers and eth_getLogs")?;
        let mut headers = BTreeMap::new();
        for (n, waiter) in ends.iter().zip(waiters) {
            if let Some(b) = waiter.await.with_context(|| format!("eth_getBlockByNumber({n})"))? {
                headers.insert(b.number, BlockHead::from(b));
            }
        }
        Ok(Look { from, to, headers, logs: logs.await.context("eth_getLogs")?, ..Default::default() })
    }

    /// Fills in the headers of `look`'s range that no answer had yet (asked once more).
    pub async fn complete_headers(&self, look: &mut Look) -> anyhow::Result<()> {
        let missing: Vec<u64> = (look.from..=look.to).filter(|n| !look.headers.contains_key(n)).collect();
        for h in self.headers(&missing).await?.into_iter().flatten() {
            look.headers.entry(h.number).or_insert(h);
        }
        Ok(())
    }

    /// Every log of the block with hash `hash`, from its receipts (None: the node had no such
    /// block). An endpoint without `eth_getBlockReceipts` is asked for the block's transactions
    /// and each one's receipt instead (one batch).
    pub async fn block_logs(&self, hash: B256) -> anyhow::Result<Option<Vec<Log>>> {
        let receipts = match self.provider.get_block_receipts(hash.into()).await {
            Ok(receipts) => receipts,
            Err(e) => {
                tracing::debug!(error = %e, "eth_getBlockReceipts refused; asking the block's receipts one by one");
                self.receipts_one_by_one(hash).await?
            }
        };
        Ok(receipts.map(|rs| rs.into_iter().flat_map(|r| r.inner.logs().to_vec()).collect()))
    }

    async fn receipts_one_by_one(&self, hash: B256) -> anyhow::Result<Option<Vec<TransactionReceipt>>> {
        let Some(block) = self.provider.get_block_by_hash(hash).await.context("eth_getBlockByHash")? else {
            return Ok(None);
        };
        let mut batch = BatchRequest::new(self.provider.client());
        let mut waiters = Vec::new();
        for tx in block.transactions.hashes() {
            waiters.push(batch.add_call::<_, Option<TransactionReceipt>>("eth_getTransactionReceipt", &(tx,))?);
        }
        batch.send().await.context("a batch of eth_getTransactionReceipt")?;
        let mut receipts = Vec::with_capacity(waiters.len());
        for waiter in waiters {
            // A receipt a node does not have leaves the block unproven.
            let Some(receipt) = waiter.await.context("eth_getTransactionReceipt")? else { return Ok(None) };
            receipts.push(receipt);
        }
        Ok(Some(receipts))
    }

    /// Headers of `numbers` (None where the node has none yet), in JSON-RPC batches of
    /// `HEADER_BATCH`, a few in flight. A node that refuses batches is asked call by call.
    pub async fn headers(&self, numbers: &[u64]) -> anyhow::Result<Vec<Option<BlockHead>>> {
        let chunks: Vec<_> = numbers.chunks(HEADER_BATCH).map(|chunk| self.header_chunk(chunk)).collect();
        let answered: Vec<anyhow::Result<Vec<Option<BlockHead>>>> =
            futures_util::stream::iter(chunks).buffered(HEADER_BATCHES_IN_FLIGHT).collect().await;
        let mut out = Vec::with_capacity(numbers.len());
        for chunk in answered {
            out.extend(chunk?);
        }
        Ok(out)
    }

    async fn header_chunk(&self, chunk: &[u64]) -> anyhow::Result<Vec<Option<BlockHead>>> {
        if chunk.len() > 1
            && let Some(heads) = self.header_batch(chunk).await?
        {
            return Ok(heads);
        }
        let singles: Vec<_> = chunk.iter().map(|n| self.header(*n)).collect();
        let fetched: Vec<anyhow::Result<Option<BlockHead>>> =
            futures_util::stream::iter(singles).buffered(16).collect().await;
        fetched.into_iter().collect()
    }

    /// One batch of headers; None when the batch itself was refused (not a call in it).
    async fn header_batch(&self, numbers: &[u64]) -> anyhow::Result<Option<Vec<Option<BlockHead>>>> {
        let mut batch = BatchRequest::new(self.provider.client());
        let mut waiters = Vec::with_capacity(numbers.len());
        for n in numbers {
            let params = (BlockNumberOrTag::Number(*n), false);
            waiters.push(batch.add_call::<_, Option<HeadFields>>("eth_getBlockByNumber", &params)?);
        }
        if let Err(e) = batch.send().await {
            tracing::debug!(error = %e, "a batch of headers was refused; asking one by one");
            return Ok(None);
        }
        let mut heads = Vec::with_capacity(numbers.len());
        for (n, waiter) in numbers.iter().zip(waiters) {
            let block = waiter.await.with_context(|| format!("eth_getBlockByNumber({n})"))?;
            heads.push(block.map(BlockHead::from));
        }
        Ok(Some(heads))
    }

    pub async fn header(&self, n: u64) -> anyhow::Result<Option<BlockHead>> {
        let params = (BlockNumberOrTag::Number(n), false);
        let block: Option<HeadFields> = self
            .provider
            .raw_request("eth_getBlockByNumber".into(), params)
            .await
            .with_context(|| format!("eth_getBlockByNumber({n})"))?;
        Ok(block.map(BlockHead::from))
    }
}

/// The five fields of a block the trust rule reads, and nothing else of it: a catch-up reads
/// every header of its ranges, and decoding whole blocks was most of its own work.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeadFields {
    #[serde(with = "alloy::serde::quantity")]
    number: u64,
    hash: B256,
    parent_hash: B256,
    #[serde(with = "alloy::serde::quantity")]
    timestamp: u64,
    logs_bloom: Bloom,
}

/// A header as the node gave it (its own number: a node answering another block's header for
/// a number is caught by the hash chain, not trusted to be that number).
impl From<HeadFields> for BlockHead {
    fn from(h: HeadFields) -> Self {
        BlockHead {
            number: h.number,
            hash: h.hash,
            parent: h.parent_hash,
            time: h.timestamp as i64,
            bloom: h.logs_bloom,
        }
    }
}
