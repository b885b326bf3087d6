//! Failover across a chain's endpoints, as a tower service under alloy's retry layer.
//!
//! alloy's `FallbackLayer` ranks endpoints by their past answers and sends each call to the best
//! one; an endpoint never tried never outranks the first, so with the first down every call
//! failed and the second was never asked. Here the order is the configured one: a call goes to
//! the first endpoint that is not resting, and a transport failure (connection refused, a
//! timeout, HTTP 5xx or 429) rests that endpoint and tries the next one at once. A rested
//! endpoint is asked again after `REST` and, before its first call back, must answer the
//! configured chain id (an endpoint serving another chain is never used again). A call goes to
//! one endpoint at a time: a batch reaches one endpoint whole, which the watcher relies on to
//! tie a getLogs answer to a node that has the block.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use alloy::rpc::json_rpc::{Id, Request, RequestPacket, ResponsePacket};
use alloy::transports::http::Http;
use alloy::transports::{TransportError, TransportErrorKind, TransportFut};
use tower::Service;

/// How long a failing endpoint rests before it is asked again.
pub const REST: Duration = Duration::from_secs(15);

#[derive(Debug)]
struct Endpoint {
    transport: Http<reqwest::Client>,
    /// Scheme and host, for logs.
    name: String,
    state: Mutex<State>,
}

impl Endpoint {
    /// Its state (a panic elsewhere while holding it leaves a state still worth reading).
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In use (or never failed).
    Up,
    /// Failed; asked again after this instant, once its chain id is checked.
    Resting(Instant),
    /// Serves another chain: never used.
    WrongChain(u64),
}

/// The endpoints in their configured order, the first that is up answering.
#[derive(Debug, Clone)]
pub struct Failover {
    endpoints: Arc<Vec<Endpoint>>,
    chain_id: Option<u64>,
}

impl Failover {
    /// `transports` with their redacted names; `chain_id` is what a rested endpoint must serve
    /// before it is used again (None: not checked).
    pub fn new(transports: Vec<(Http<reqwest::Client>, String)>, chain_id: Option<u64>) -> Self {
        let endpoints = transports
            .into_iter()
            .map(|(transport, name)| Endpoint { transport, name, state: Mutex::new(State::Up) })
            .collect();
        Self { endpoints: Arc::new(endpoints), chain_id }
    }

    /// The endpoints to try, in order: those up first, then those whose rest is over, then
    /// the resting ones (when every endpoint failed, the least recently failed is still asked).
    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let states: Vec<State> = self.endpoints.iter().map(|e| *e.state()).collect();
        let mut up: Vec<usize> = Vec::new();
        let mut resting: Vec<(Instant, usize)> = Vec::new();
        for (i, s) in states.iter().enumerate() {
            match s {
                State::Up => up.push(i),
                State::Resting(until) if *until <= now => up.push(i),
                State::Resting(until) => resting.push((*until, i)),
                State::WrongChain(_) => {}
            }
        }
        up.sort_unstable();
        resting.sort_unstable();
        up.extend(resting.into_iter().map(|(_, i)| i));
        up
    }

    fn rest(&self, i: usize, why: &str) {
        let e = &self.endpoints[i];
        let mut state = e.state();
        // With one endpoint there is no next to try: the caller reports the failure.
        if *state == State::Up && self.endpoints.len() > 1 {
            tracing::warn!(
                endpoint = e.name,
                error = why,
                rest_secs = REST.as_secs(),
                "rpc endpoint failed; trying the next"
            );
        }
        if !matches!(*state, State::WrongChain(_)) {
            *state = State::Resting(Instant::now() + REST);
        }
    }

    /// Before a rested endpoint is used again: its chain id must be the configured one.
    async fn back_on_the_right_chain(&self, i: usize) -> Result<(), TransportError> {
        let e = &self.endpoints[i];
        let was = *e.state();
        // Only once its rest is over: the only endpoint asked again early (every one resting)
        // would otherwise cost a chain-id call before each call while it fails.
        let (State::Resting(until), Some(expected)) = (was, self.chain_id) else { return Ok(()) };
        if until > Instant::now() {
            return Ok(());
        }
        let actual = chain_id_of(&e.transport).await?;
        if actual != expected {
            tracing::error!(endpoint = e.name, expected, actual, "rpc endpoint serves another chain; it is not used");
            *e.state() = State::WrongChain(actual);
            return Err(TransportErrorKind::custom_str(&format!("{} serves chain id {actual}", e.name)));
        }
        tracing::info!(endpoint = e.name, "rpc endpoint is back");
        Ok(())
    }

    /// Leaves out an endpoint found serving another chain at start.
    pub fn exclude(&self, i: usize, actual: u64) {
        *self.endpoints[i].state() = State::WrongChain(actual);
    }
}

/// Whether a transport error is the endpoint's (try another) rather than the call's.
fn endpoint_failed(error: &TransportError) -> bool {
    match error {
        TransportError::Transport(kind) => match kind.as_http_error() {
            Some(http) => http.status >= 500 || http.status == 429 || http.status == 408,
            None => true,
        },
        // A JSON-RPC error payload or an answer that does not parse: the endpoint answered.
        _ => false,
    }
}

async fn chain_id_of(transport: &Http<reqwest::Client>) -> Result<u64, TransportError> {
    let request = Request::new("eth_chainId", Id::Number(0), ())
        .serialize()
        .map_err(|e| TransportErrorKind::custom_str(&e.to_string()))?;
    let answer = transport.clone().call(RequestPacket::Single(request)).await?;
    let ResponsePacket::Single(response) = answer else {
        return Err(TransportErrorKind::custom_str("eth_chainId: a batch answer to one call"));
    };
    let text = response.payload.as_success().map(|raw| raw.get().trim_matches('"').to_string());
    text.as_deref()
        .and_then(|t| u64::from_str_radix(t.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| TransportErrorKind::custom_str("eth_chainId: no chain id in the answer"))
}

impl Service<RequestPacket> for Failover {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let mut last = None;
            for i in this.order() {
                if let Err(e) = this.back_on_the_right_chain(i).await {
                    this.rest(i, &e.to_string());
                    last = Some(e);
                    continue;
                }
                match this.endpoints[i].transport.clone().call(request.clone()).await {
                    Ok(answer) => {
                        let mut state = this.endpoints[i].state();
                        if matches!(*state, State::Resting(_)) {
                            *state = State::Up;
                        }
                        return Ok(answer);
                    }
                    Err(e) if endpoint_failed(&e) => {
                        this.rest(i, &crate::redact::describe(&e.to_string()));
                        last = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(last.unwrap_or_else(|| TransportErrorKind::custom_str("no rpc endpoint serves the configured chain")))
        })
    }
}
