//! A hostile JSON-RPC proxy in front of anvil: the ways real providers misbehave, switched
//! by the test while paywatch runs. Every request is counted, so a test can
//! assert the request rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Range and result caps with the texts three providers answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapStyle {
    /// A result cap; the error names a block range that works.
    Infura { max_results: usize },
    /// A block-range cap stated as "up to a NK block range", with a range that works.
    Alchemy { max_range: u64 },
    /// A block-range cap stated as "limited to a N range".
    QuickNode { max_range: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything goes through untouched.
    Honest,
    /// Half the requests holding an eth_getLogs reach a node 1-3 blocks behind, for every
    /// call in them: the newest blocks' logs are missing (`toBlock` clamped to its own head)
    /// and so are their headers.
    LaggingLogs,
    /// One call in `every` answers HTTP 429 with `Retry-After`; others JSON-RPC rate errors.
    RateLimited {
        every: u64,
    },
    Caps(CapStyle),
    /// Half the requests reach a node 3 blocks behind: a lower head, null for newer headers,
    /// clamped logs.
    FlappingHeads,
    /// One call in four drops the connection mid-answer, one in four answers slowly.
    Flaky,
    /// Every call fails with 503.
    Down,
    /// Three requests in four (a batch is one request) reach a node `lag` blocks behind, for every
    /// call in them: its head, null for headers past it by number and by hash, logs by range
    /// clamped to it and `[]` by hash for blocks it does not have.
    LaggingNode {
        lag: u64,
    },
    /// Every request holding an eth_getLogs reaches a node `lag` blocks behind (a provider's
    /// log-serving pool), for every call in it; requests without logs reach a current node.
    LogsBehind {
        lag: u64,
    },
    /// Requests asking only for the head reach a current node; every other request reaches a
    /// node 1-3 blocks behind it.
    HeadAhead,
    /// eth_blockNumber and the latest block claim a head `ahead` blocks past the real one.
    LyingHead {
        ahead: u64,
    },
    /// Every eth_getLogs answer also carries a `removed: true` copy of each log.
    RemovedLogs,
    /// Every eth_getLogs answer also carries, for each log, one from a sender that is not in
    /// its block's bloom (the same transfer from an address the block never saw).
    OutsideBloom,
    /// A node of another chain: eth_chainId answers 1.
    OtherChain,
    /// Each call routed on its own, as aggregators and load balancers do, even within one
    /// batch: `percent` of the eth_getLogs calls reach a log-serving pool `lag` blocks behind
    /// (logs clamped to its head, `[]` by hash for blocks it lacks); every other call, the
    /// headers of the same batch included, reaches a current node.
    SplitLogs {
        lag: u64,
        percent: u64,
    },
    /// A node that accepts the first `count` distinct signed transactions (answering their
    /// hashes, as a node does) and never passes them on, nor any copy of them sent again: the
    /// stuck transaction of a congested mempool. Later ones go through.
    SwallowTransactions {
        count: usize,
    },
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    mode: Mutex<Mode>,
    calls: AtomicU64,
    /// (fromBlock, toBlock) of every eth_getLogs by range that reached anvil.
    log_ranges: Mutex<Vec<(u64, u64)>>,
    refusals: AtomicU64,
    /// JSON-RPC batches of two or more eth_getBlockByNumber calls.
    header_batches: AtomicU64,
    /// The signed transactions `SwallowTransactions` kept from the chain.
    swallowed: Mutex<Vec<String>>,
    /// Set when the proxy is dropped: connections still open are cut (a client sees its
    /// connection fail, then the port refuses new ones).
    closed: std::sync::atomic::AtomicBool,
}

pub struct RpcProxy {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl RpcProxy {
    pub async fn start(upstream: &str, mode: Mode) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, upstream, mode)
    }

    /// A proxy on a port chosen before it listens (paywatch started while it is down).
    pub async fn start_on(port: u16, upstream: &str, mode: Mode) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        Self::serve(listener, upstream, mode)
    }

    fn serve(listener: tokio::net::TcpListener, upstream: &str, mode: Mode) -> Self {
        let url = format!("http://{}/v3/SECRET-API-KEY", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            http: reqwest::Client::new(),
            mode: Mutex::new(mode),
            calls: AtomicU64::new(0),
            log_ranges: Mutex::new(Vec::new()),
            refusals: AtomicU64::new(0),
            header_batches: AtomicU64::new(0),
            swallowed: Mutex::new(Vec::new()),
            closed: Default::default(),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, shared, task }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Batches of headers asked (two or more eth_getBlockByNumber in one request).
    pub fn header_batches(&self) -> u64 {
        self.shared.header_batches.load(Ordering::SeqCst)
    }

    pub fn log_ranges(&self) -> Vec<(u64, u64)> {
        self.shared.log_ranges.lock().unwrap().clone()
    }

    /// The signed transactions kept from the chain (`SwallowTransactions`).
    pub fn swallowed(&self) -> Vec<String> {
        self.shared.swallowed.lock().unwrap().clone()
    }

    /// Calls refused by a cap.
    pub fn refusals(&self) -> u64 {
        self.shared.refusals.load(Ordering::SeqCst)
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.task.abort();
    }
}

async fn handle(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let n = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return (StatusCode::BAD_REQUEST, "not JSON").into_response(),
    };
    let mode = *s.mode.lock().unwrap();
    if s.closed.load(Ordering::SeqCst) {
        return dropped_connection();
    }
    match mode {
        Mode::Down => return (StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response(),
        Mode::RateLimited { every } if n % every == 0 => return rate_limited(&request, n),
        Mode::Flaky if n % 4 == 0 => return dropped_connection(),
        Mode::Flaky if n % 4 == 1 => tokio::time::sleep(Duration::from_millis(300)).await,
        _ => {}
    }
    let lag = request_lag(mode, n, &request);
    let Value::Array(items) = &request else {
        let lag = call_lag(mode, n * 1_000, &request).or(lag);
        return one(&s, &request, mode, lag).await;
    };
    // A batch: each call meets the same backend behaviour as it would alone.
    if items.len() > 1 && items.iter().all(|r| r["method"] == "eth_getBlockByNumber") {
        s.header_batches.fetch_add(1, Ordering::SeqCst);
    }
    let mut answers = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let lag = call_lag(mode, n * 1_000 + i as u64, item).or(lag);
        let response = one(&s, item, mode, lag).await;
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
        answers.push(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
    }
    axum::Json(Value::Array(answers)).into_response()
}

/// How far behind the node is that answers a whole request (a batch reaches one node).
fn request_lag(mode: Mode, n: u64, request: &Value) -> Option<u64> {
    let calls: Vec<&Value> = match request {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let method = |c: &&Value| c["method"].as_str().unwrap_or("").to_string();
    let has_logs = calls.iter().any(|c| method(c) == "eth_getLogs");
    match mode {
        Mode::LaggingLogs if has_logs && coin(n) => Some(1 + n % 3),
        Mode::FlappingHeads if coin(n) => Some(3),
        Mode::LaggingNode { lag } if coin(n) || coin(n ^ 0x5555) => Some(lag),
        Mode::LogsBehind { lag } if has_logs => Some(lag),
        Mode::HeadAhead => {
            let head_only = calls.iter().all(|c| {
                method(c) == "eth_blockNumber" || (method(c) == "eth_getBlockByNumber" && c["params"][0] == "latest")
            });
            (!head_only).then_some(1 + n % 3)
        }
        _ => None,
    }
}

/// How far behind the node is that answers one call, when the mode routes each call on its own.
fn call_lag(mode: Mode, n: u64, call: &Value) -> Option<u64> {
    match mode {
        Mode::SplitLogs { lag, percent } if call["method"] == "eth_getLogs" => {
            // A fixed spread of the calls (deterministic per call number), not a coin per run.
            let draw = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 57; // 0..127
            (draw * 100 < percent * 128).then_some(lag)
        }
        _ => None,
    }
}

/// One JSON-RPC call through the lagging, flapping, capping and lying behaviours; `lag` is the
/// request's node when the mode picks one per request.
async fn one(s: &Shared, request: &Value, mode: Mode, lag: Option<u64>) -> Response {
    let method = request["method"].as_str().unwrap_or("");
    if let (Mode::SwallowTransactions { count }, "eth_sendRawTransaction") = (mode, method) {
        let raw = request["params"][0].as_str().unwrap_or_default().to_string();
        let mut swallowed = s.swallowed.lock().unwrap();
        if swallowed.contains(&raw) || swallowed.len() < count {
            let bytes = alloy::hex::decode(raw.trim_start_matches("0x")).unwrap_or_default();
            let hash = alloy::primitives::keccak256(&bytes);
            if !swallowed.contains(&raw) {
                swallowed.push(raw);
            }
            return answer(request, json!(format!("{hash:#x}")));
        }
    }
    if let Some(lag) = lag {
        let head = upstream_head(s).await.saturating_sub(lag);
        match method {
            "eth_blockNumber" => return answer(request, json!(format!("{head:#x}"))),
            "eth_getBlockByNumber" => {
                let wanted = match request["params"][0].as_str() {
                    Some("latest") => Some(head),
                    other => other.and_then(parse_quantity),
                };
                if let Some(wanted) = wanted {
                    if wanted > head {
                        return answer(request, Value::Null);
                    }
                    let mut asked = request.clone();
                    asked["params"][0] = json!(format!("{wanted:#x}"));
                    return forward(s, &asked).await;
                }
            }
            // A node answers only for the blocks it has, by hash too.
            "eth_getBlockByHash" => {
                let block = forward_json(s, request).await;
                let number = block["result"]["number"].as_str().and_then(parse_quantity);
                return answer(
                    request,
                    if number.is_some_and(|b| b <= head) { block["result"].clone() } else { Value::Null },
                );
            }
            "eth_getBlockReceipts" => {
                let receipts = forward_json(s, request).await;
                let number = receipts["result"][0]["blockNumber"].as_str().and_then(parse_quantity);
                if number.is_none_or(|b| b > head) {
                    return answer(request, Value::Null);
                }
                return axum::Json(receipts).into_response();
            }
            "eth_getLogs" if request["params"][0]["blockHash"].is_string() => {
                let asked = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByHash", "params": [request["params"][0]["blockHash"], false]});
                let number = forward_json(s, &asked).await["result"]["number"].as_str().and_then(parse_quantity);
                if number.is_none_or(|b| b > head) {
                    return answer(request, json!([]));
                }
            }
            "eth_getLogs" => {
                let mut clamped = request.clone();
                let filter = &mut clamped["params"][0];
                let to = if filter["toBlock"] == "latest" { Some(head) } else { block_param(&filter["toBlock"]) };
                if let (Some(from), Some(to)) = (block_param(&filter["fromBlock"]), to) {
                    if from > head {
                        return answer(request, json!([]));
                    }
                    filter["toBlock"] = json!(format!("{:#x}", to.min(head)));
                    return forward(s, &clamped).await;
                }
            }
            _ => {}
        }
    }
    if mode == Mode::OtherChain && method == "eth_chainId" {
        return answer(request, json!("0x1"));
    }
    if let Mode::LyingHead { ahead } = mode {
        match method {
            "eth_blockNumber" => {
                let head = upstream_head(s).await + ahead;
                return answer(request, json!(format!("{head:#x}")));
            }
            "eth_getBlockByNumber" if request["params"][0] == "latest" => {
                let mut block = forward_json(s, request).await;
                if let Some(number) = block["result"]["number"].as_str().and_then(parse_quantity) {
                    block["result"]["number"] = json!(format!("{:#x}", number + ahead));
                }
                return axum::Json(block).into_response();
            }
            _ => {}
        }
    }
    if method == "eth_getLogs" && matches!(mode, Mode::RemovedLogs | Mode::OutsideBloom) {
        let mut answered = forward_json(s, request).await;
        if let Some(logs) = answered["result"].as_array_mut() {
            let forged: Vec<Value> = logs.iter().map(|l| forge(l, mode)).collect();
            logs.extend(forged);
        }
        return axum::Json(answered).into_response();
    }
    if method == "eth_getLogs"
        && let (Some(from), Some(to)) =
            (block_param(&request["params"][0]["fromBlock"]), block_param(&request["params"][0]["toBlock"]))
    {
        if let Mode::Caps(style) = mode {
            return capped_logs(s, request, style, from, to).await;
        }
        s.log_ranges.lock().unwrap().push((from, to));
    }
    forward(s, request).await
}

/// A log that is not a live payment: the same transfer in another transaction, marked removed
/// (`RemovedLogs`) or from a sender its block's bloom never saw (`OutsideBloom`).
fn forge(log: &Value, mode: Mode) -> Value {
    let mut forged = log.clone();
    let tx = log["transactionHash"].as_str().unwrap_or("0x");
    forged["transactionHash"] = json!(format!("{}ee", &tx[..tx.len().saturating_sub(2)]));
    match mode {
        Mode::RemovedLogs => forged["removed"] = json!(true),
        _ => forged["topics"][1] = json!(format!("0x000000000000000000000000{}", "5a".repeat(20))),
    }
    forged
}

/// Headers go out, then the body fails: the client sees the connection drop.
fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped"))
    });
    Response::builder().status(200).body(Body::from_stream(failing)).unwrap()
}

async fn capped_logs(s: &Shared, request: &Value, style: CapStyle, from: u64, to: u64) -> Response {
    let span = to - from + 1;
    let refuse = |code: i64, message: String| {
        s.refusals.fetch_add(1, Ordering::SeqCst);
        error(request, code, &message)
    };
    match style {
        CapStyle::Alchemy { max_range } if span > max_range => {
            return refuse(
                -32602,
                format!(
                    "Log response size exceeded. You can make eth_getLogs requests with up to a {} block range \
                     and no limit on the response size, or you can request any block range with a cap of 10K logs \
                     in the response. Based on your parameters, this block range should work: [{:#x}, {:#x}]",
                    if max_range.is_multiple_of(1000) {
                        format!("{}K", max_range / 1000)
                    } else {
                        max_range.to_string()
                    },
                    from,
                    from + max_range - 1
                ),
            );
        }
        CapStyle::QuickNode { max_range } if span > max_range => {
            return refuse(-32614, format!("eth_getLogs is limited to a {} range", group_thousands(max_range)));
        }
        _ => {}
    }
    let answered = forward_json(s, request).await;
    if let CapStyle::Infura { max_results } = style
        && let Some(logs) = answered["result"].as_array()
        && logs.len() > max_results
    {
        // The range up to the block before the one holding the first log past the cap.
        let last_ok = logs[max_results]["blockNumber"].as_str().and_then(parse_quantity).unwrap_or(from + 1) - 1;
        return refuse(
            -32005,
            format!(
                "query returned more than {max_results} results. Try with this block range [{from:#x}, {:#x}].",
                last_ok.max(from)
            ),
        );
    }
    s.log_ranges.lock().unwrap().push((from, to));
    axum::Json(answered).into_response()
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate_limited(request: &Value, n: u64) -> Response {
    match n % 3 {
        0 => {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", "1".parse().unwrap());
            (StatusCode::TOO_MANY_REQUESTS, headers, "Too Many Requests").into_response()
        }
        1 => error(request, -32005, "rate limit exceeded"),
        _ => error(request, 429, "Your app has exceeded its compute units per second capacity."),
    }
}

async fn upstream_head(s: &Shared) -> u64 {
    let r = forward_json(s, &json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})).await;
    r["result"].as_str().and_then(parse_quantity).unwrap_or(0)
}

async fn forward_json(s: &Shared, request: &Value) -> Value {
    match s.http.post(&s.upstream).json(request).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

async fn forward(s: &Shared, request: &Value) -> Response {
    match s.http.post(&s.upstream).json(request).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap_or_default();
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(bytes))
                .unwrap()
        }
        Err(_) => (StatusCode::BAD_GATEWAY, "upstream unreachable").into_response(),
    }
}

fn answer(request: &Value, result: Value) -> Response {
    axum::Json(json!({"jsonrpc": "2.0", "id": request["id"], "result": result})).into_response()
}

fn error(request: &Value, code: i64, message: &str) -> Response {
    axum::Json(json!({"jsonrpc": "2.0", "id": request["id"], "error": {"code": code, "message": message}}))
        .into_response()
}

/// Half the calls, in no pattern a client's call order could line up with (a load
/// balancer's pick).
fn coin(n: u64) -> bool {
    // splitmix64's finaliser: neighbouring calls get independent answers.
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & 1 == 1
}

fn parse_quantity(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

fn block_param(v: &Value) -> Option<u64> {
    v.as_str().and_then(parse_quantity)
}

/// A WebSocket endpoint that accepts a new-head subscription and then stays open and silent:
/// paywatch must go on by polling. Returns its ws:// URL and the count of subscriptions taken.
pub async fn silent_websocket() -> (String, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let subscriptions = Arc::new(AtomicU64::new(0));
    let counted = subscriptions.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                while let Some(Ok(message)) = ws.next().await {
                    let Message::Text(text) = message else { continue };
                    let request: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    // Answer the calls (the subscription among them), never send a head.
                    let result = match request["method"].as_str() {
                        Some("eth_subscribe") => {
                            counted.fetch_add(1, Ordering::SeqCst);
                            json!("0x5113e7")
                        }
                        Some("eth_chainId") => json!("0x7a69"),
                        _ => Value::Null,
                    };
                    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": result});
                    if ws.send(Message::Text(answer.to_string().into())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, subscriptions, task)
}
