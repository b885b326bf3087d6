//! A window, on an endpoint declared to keep a batch on one node: a head poll that left out
//! the first new block's header records the transfers it saw as seen, and nothing more (what
//! may and may not follow from such an answer: `one_node::window_logs`). The cursor stays; the
//! next poll links and reads the same blocks again.

use std::collections::BTreeMap;

use super::matching;
use super::step::{Progress, StepError, Watcher};
use crate::chain::completeness::{BlockHead, Look};
use crate::chain::one_node::window_logs;
use crate::payments::credit::{self, Step};
use crate::store::{StoreError, cursor};

impl Watcher {
    /// Tied, a head poll from the cursor without the first new block's header is a window when
    /// the last poll was not (`one_node::window_due`): recorded here. None: not a window.
    pub(super) async fn window(
        &mut self,
        stored: Option<cursor::Cursor>,
        poll: Option<&Look>,
        from: u64,
        head: &BlockHead,
    ) -> Result<Option<Progress>, StepError> {
        match (stored, poll) {
            (Some(c), Some(look))
                if self.tied && !self.last_was_window && look.from == from && !look.headers.contains_key(&from) =>
            {
                self.record_window(look, c, head).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Records a window's transfers as seen, from the cursor `c` (claimed, as every step does).
    async fn record_window(&mut self, look: &Look, c: cursor::Cursor, head: &BlockHead) -> Result<Progress, StepError> {
        let logs = match window_logs(look, head) {
            Ok(logs) => logs,
            Err(why) => return Ok(Progress::Retry(why.into())),
        };
        self.index.refresh(&self.store, self.status.processed_time()).await?;
        let headers = BTreeMap::from([(head.number, *head)]);
        let mut transfers =
            matching::transfers(self.rules.chain_id, &self.tokens, &self.index, &self.store, &logs, &headers).await?;
        if let Err(why) = matching::stamp_times(&self.reader, &mut transfers).await? {
            return Ok(Progress::Retry(why));
        }
        // No confirmation, no cursor, no `answered`: nothing proven, so nothing moved or removed.
        let step = Step { from_cursor: Some(c), transfers, at: self.chain_now(), ..Default::default() };
        let mut tx = self.store.begin().await?;
        let outcome = match credit::commit_step(&mut tx, &self.rules, &step).await {
            Err(StoreError::Conflict(_)) => return Ok(Progress::Retry("an order changed under the window".into())),
            other => other?,
        };
        tx.commit().await?;
        self.status.committed();
        self.last_was_window = true;
        metrics::counter!(crate::telemetry::TRANSFERS_MATCHED).increment(outcome.recorded as u64);
        Ok(Progress::CaughtUp)
    }
}
