//! Reorgs: the range's first block does not extend the cursor. The cursor's block is read
//! again; gone, the watcher walks back through the kept block hashes to the highest block the
//! node still agrees with, and everything above it is rewound (reversed where it was
//! credited). Without an ancestor within the kept hashes it stops advancing rather than jump.

use super::step::{MAX_REORG_DEPTH, Progress, StepError, Watcher};
use crate::payments::credit;
use crate::store::{StoreError, cursor};

impl Watcher {
    /// The range's first block does not extend the cursor: the cursor's block left the chain
    /// (walk back) or the node that answered is on another fork (ask again).
    pub(super) async fn check_cursor(&mut self, stored: Option<cursor::Cursor>) -> Result<Progress, StepError> {
        let Some(c) = stored else { return Ok(Progress::Retry("no cursor to link to".into())) };
        match self.reader.header(c.block_number).await? {
            None => Ok(Progress::Retry("the node does not have the cursor's block".into())),
            Some(h) if h.hash != c.block_hash => self.walk_back(c).await,
            Some(_) => Ok(Progress::Retry("a node on another fork answered the headers".into())),
        }
    }

    /// After a reorg: the highest stored block the node still agrees with. Everything above
    /// it is rewound (and reversed where it was credited). Without one within the kept
    /// hashes the watcher stops advancing: jumping would skip blocks nobody checked.
    pub(super) async fn walk_back(&mut self, from: cursor::Cursor) -> Result<Progress, StepError> {
        let chain_id = self.rules.chain_id;
        let floor = from.block_number.saturating_sub(MAX_REORG_DEPTH);
        let mut ancestor = None;
        for (n, stored) in cursor::blocks_below(self.store.pool(), chain_id, from.block_number, floor).await? {
            let Some(node) = self.reader.header(n).await? else {
                return Ok(Progress::Retry("the node does not have a block below the cursor".into()));
            };
            if node.hash == stored {
                ancestor = Some(cursor::Cursor { block_number: n, block_hash: node.hash, block_time: node.time });
                break;
            }
        }
        let Some(ancestor) = ancestor else {
            let reason = format!(
                "reorg: no common ancestor within the {MAX_REORG_DEPTH} kept blocks below {}; the watcher stopped \
                 advancing (an operator must check the chain and the RPC endpoints)",
                from.block_number
            );
            tracing::error!("{reason}");
            self.status.set_problem(Some(reason.clone()));
            return Err(StepError { error: anyhow::anyhow!(reason), rate_limited: false });
        };
        let mut tx = self.store.begin().await?;
        let (reversed, deep) = match credit::rewind(&mut tx, &self.rules, ancestor, self.chain_now(), from).await {
            Err(StoreError::Conflict(_)) => return Ok(Progress::Retry("an order changed under the rewind".into())),
            other => other?,
        };
        tx.commit().await?;
        self.status.committed();
        self.status.set_processed(ancestor.block_number);
        self.status.set_processed_time(ancestor.block_time);
        tracing::warn!(
            chain = self.name,
            from = from.block_number,
            ancestor = ancestor.block_number,
            "reorg: rewound to the common ancestor"
        );
        if !deep.is_empty() {
            tracing::error!(removed = ?deep, reversed = ?reversed,
                "reorg deeper than the confirmations: confirmed transfers left the canonical chain");
        }
        Ok(Progress::MoreToDo)
    }
}
