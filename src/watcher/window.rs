//! A window, on an endpoint declared to keep a batch on one node: a head poll that left out
//! the first new block's header records the transfers it saw as seen, and nothing more (what
//! may and may not follow from such an answer: `one_node::window_logs`). The cursor stays; the
//! next poll links and reads the same blocks again.

use std::collections::BTreeMap;

use super::step::{Progress, StepError, Watcher};
use crate::chain::completeness::{BlockHead, Look};
use crate::chain::one_node::window_logs;
use crate::payments::credit::Step;
use crate::store::cursor;

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
        let headers = BTreeMap::from([(head.number, *head)]);
        let transfers = match self.matched(&logs, &headers).await? {
            Ok(transfers) => transfers,
            Err(why) => return Ok(Progress::Retry(why)),
        };
        // No confirmation, no cursor, no `answered`: nothing proven, so nothing moved or removed.
        let step = Step { from_cursor: Some(c), transfers, at: self.chain_now(), ..Default::default() };
        let Some(outcome) = self.commit_books(&step).await? else {
            return Ok(Progress::Retry("an order changed under the window".into()));
        };
        self.last_was_window = true;
        metrics::counter!(crate::telemetry::TRANSFERS_MATCHED).increment(outcome.recorded as u64);
        Ok(Progress::CaughtUp)
    }
}
