//! What every path that writes the books shares (a step, a confirm-only poll, a window): the
//! believed logs matched to orders and stamped with their blocks' times, and one `credit::Step`
//! committed in its own transaction.

use std::collections::BTreeMap;

use alloy::rpc::types::Log;
use anyhow::Context;

use super::matching;
use super::step::{StepError, Watcher};
use crate::chain::completeness::BlockHead;
use crate::payments::credit::{self, Outcome, Step};
use crate::store::StoreError;
use crate::store::transfers::Transfer;

impl Watcher {
    /// The transfers into deposit addresses among `logs`, each with its block's time; Err: why
    /// a time could not be had (the step retries).
    pub(super) async fn matched(
        &mut self,
        logs: &[Log],
        headers: &BTreeMap<u64, BlockHead>,
    ) -> Result<Result<Vec<Transfer>, String>, StepError> {
        // Refreshed after the logs were fetched: any order whose address is paid in these logs
        // was committed before the payment was mined, so it is in the index now.
        self.index.refresh(&self.store, self.status.processed_time()).await?;
        let mut transfers =
            matching::transfers(self.rules.chain_id, &self.tokens, &self.index, &self.store, logs, headers).await?;
        Ok(matching::stamp_times(&self.reader, &mut transfers).await?.map(|()| transfers))
    }

    /// Commits `step` in a transaction of its own. None: an order changed under it (the next
    /// poll recomputes from what is stored then).
    pub(super) async fn commit_books(&self, step: &Step) -> Result<Option<Outcome>, StepError> {
        let mut tx = self.store.begin().await?;
        let outcome = match credit::commit_step(&mut tx, &self.rules, step).await {
            Err(StoreError::Conflict(why)) => {
                tracing::info!(chain = self.name, why, "an order changed under the step; recomputing");
                return Ok(None);
            }
            other => other?,
        };
        tx.commit().await.context("committing the step")?;
        self.status.committed();
        Ok(Some(outcome))
    }
}
