//! A small Server-Sent Events reader over reqwest, enough to follow an order's stream.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: String,
}

pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
    pub comments: Vec<String>,
}

impl SseStream {
    /// Opens `url` with an optional bearer key and Last-Event-ID; panics on a non-200 answer.
    pub async fn open(url: &str, key: Option<&str>, last_event_id: Option<&str>) -> SseStream {
        let mut request = reqwest::Client::new().get(url).header("accept", "text/event-stream");
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "event stream {url}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        SseStream { response, buffer: String::new(), comments: Vec::new() }
    }

    /// The next event (comments are kept in `comments`); panics if none comes within `secs`.
    pub async fn next(&mut self, secs: u64) -> SseEvent {
        tokio::time::timeout(Duration::from_secs(secs), self.read_event())
            .await
            .unwrap_or_else(|_| panic!("no event within {secs} s (comments so far: {:?})", self.comments))
    }

    /// Reads until a comment line arrives; panics if none comes within `secs`.
    pub async fn wait_comment(&mut self, secs: u64) -> String {
        let before = self.comments.len();
        tokio::time::timeout(Duration::from_secs(secs), async {
            while self.comments.len() == before {
                self.read_event_or_comment().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no comment within {secs} s"));
        self.comments[before].clone()
    }

    /// Waits for the server to end the stream (no event may come first); panics otherwise.
    pub async fn ends(mut self, secs: u64) {
        tokio::time::timeout(Duration::from_secs(secs), async {
            while let Some(chunk) = self.response.chunk().await.unwrap() {
                let text = String::from_utf8_lossy(&chunk);
                assert!(!text.contains("data:"), "an event came where the stream should end: {text}");
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the stream was still open after {secs} s"));
    }

    async fn read_event(&mut self) -> SseEvent {
        loop {
            if let Some(event) = self.read_event_or_comment().await {
                return event;
            }
        }
    }

    /// Parses one blank-line-terminated block: `Some` for an event, `None` for comments only.
    async fn read_event_or_comment(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent { id: String::new(), event: "message".into(), data: String::new() };
                let mut is_event = false;
                for line in block.lines() {
                    if let Some(comment) = line.strip_prefix(':') {
                        self.comments.push(comment.trim().to_string());
                        continue;
                    }
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    is_event = true;
                    match field {
                        "id" => event.id = value.to_string(),
                        "event" => event.event = value.to_string(),
                        "data" if event.data.is_empty() => event.data = value.to_string(),
                        "data" => event.data = format!("{}\n{value}", event.data),
                        _ => {}
                    }
                }
                return is_event.then_some(event);
            }
            let chunk = self.response.chunk().await.unwrap().expect("the stream stayed open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
