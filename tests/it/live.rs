//! Live order status over Server-Sent Events: seen → confirmations → paid in order, resumed
//! with Last-Event-ID, heartbeats, the public twin of the checkout page, and bad requests.

use paywatch::money::Token;
use serde_json::Value;

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::sse::{SseEvent, SseStream};

fn data(e: &SseEvent) -> Value {
    serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("event data is JSON ({err}): {}", e.data))
}

fn confirmations(e: &SseEvent) -> u64 {
    data(e)["payments"][0]["confirmations"].as_u64().unwrap_or_else(|| panic!("no payment in {e:?}"))
}

/// Reads events until one named `name`; every event read on the way must be named in `allowed`.
async fn read_until(stream: &mut SseStream, name: &str, allowed: &[&str]) -> Vec<SseEvent> {
    let mut read = Vec::new();
    loop {
        let e = stream.next(20).await;
        let done = e.event == name;
        assert!(done || allowed.contains(&e.event.as_str()), "unexpected {} while waiting for {name}: {e:?}", e.event);
        read.push(e);
        if done {
            return read;
        }
    }
}

fn team_stream_url(app: &TestApp, order_id: &str) -> String {
    format!("{}/v2alpha/teams/{}/orders/{order_id}/events", app.base, app.team_id)
}

async fn streams_an_order(backend: &'static str) {
    let app = spawn_app(Options { backend, confirmations: 3, ..Default::default() }).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let url = team_stream_url(&app, &order_id);
    let mut stream = SseStream::open(&url, Some(&app.api_key), None).await;

    let first = stream.next(20).await;
    assert_eq!(first.event, "awaiting_payment", "{first:?}");
    assert_eq!(data(&first)["order_id"], order_id.as_str());
    assert_eq!(data(&first)["payments"], serde_json::json!([]));

    app.pay(Token::UsdtErc20, address, owed).await;
    let seen = stream.next(20).await;
    assert_eq!(seen.event, "seen", "{seen:?}");
    assert_eq!(confirmations(&seen), 1);
    assert_eq!(data(&seen)["status"], "awaiting_payment");

    app.mine(1).await;
    let deeper = stream.next(20).await;
    assert_eq!(deeper.event, "confirmations", "{deeper:?}");
    assert_eq!(confirmations(&deeper), 2);
    let resume_from = deeper.id.clone();
    drop(stream); // the client goes away before the order is paid

    app.mine(1).await;
    app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    let mut resumed = SseStream::open(&url, Some(&app.api_key), Some(&resume_from)).await;
    let after = read_until(&mut resumed, "paid", &["confirmations"]).await;
    let paid = after.last().unwrap();
    for e in &after {
        assert!(e.id.parse::<i64>().unwrap() > resume_from.parse::<i64>().unwrap(), "{e:?} repeats an old event");
    }
    assert_eq!(data(paid)["status"], "paid");
    assert_eq!(confirmations(paid), 3);
    // Paid at the required depth is the final event: the stream ends, and a client resuming
    // after it is told (204) that nothing more will come, so EventSource stops reconnecting.
    app.mine(2).await;
    resumed.ends(10).await;
    let again = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&app.api_key)
        .header("last-event-id", &paid.id)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 204);
    // An open order's stream stays open, with heartbeats while nothing changes.
    let (_, open_order, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    let mut waiting = SseStream::open(&team_stream_url(&app, &open_order), Some(&app.api_key), None).await;
    assert_eq!(waiting.next(20).await.event, "awaiting_payment");
    assert_eq!(waiting.wait_comment(10).await, "heartbeat");

    // The checkout page's public twin needs no key and, without Last-Event-ID, replays it all.
    let mut public = SseStream::open(&format!("{}/pay/{order_id}/events", app.base), None, None).await;
    let all = read_until(&mut public, "paid", &["awaiting_payment", "seen", "confirmations"]).await;
    let names: Vec<&str> = all.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(&names[..3], ["awaiting_payment", "seen", "confirmations"], "{names:?}");
    let ids: Vec<i64> = all.iter().map(|e| e.id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let depths: Vec<u64> = all[1..].iter().map(confirmations).collect();
    assert!(depths.windows(2).all(|w| w[0] <= w[1]), "confirmations never go back: {depths:?}");
    assert_eq!(all.last().unwrap(), paid, "the same event, with the same id, on both streams");
    public.ends(10).await;
    // Streams still open do not hold the server up: shutdown ends them.
    app.stop().await;
    waiting.ends(10).await;
}

on_both_backends!(order_events_stream_and_resume => streams_an_order);

#[tokio::test]
async fn event_streams_refuse_what_they_cannot_serve() {
    let app = spawn_app(Options::default()).await;
    let (_, order_id, _, _) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let client = reqwest::Client::new();
    let get = |url: String, key: Option<String>, last: Option<&'static str>| {
        let mut r = client.get(url);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(l) = last {
            r = r.header("last-event-id", l);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let key = Some(app.api_key.clone());
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (s, body) = get(format!("{}/pay/{unknown}/events", app.base), None, None).await;
    assert_eq!((s, body["code"].as_str()), (404, Some("not_found")), "{body}");
    let (s, body) = get(team_stream_url(&app, unknown), key.clone(), None).await;
    assert_eq!(s, 404, "{body}");
    let (s, _) = get(team_stream_url(&app, &order_id), None, None).await;
    assert_eq!(s, 401, "the team stream needs the team's key");
    let other_team = format!("{}/v2alpha/teams/someone-else/orders/{order_id}/events", app.base);
    assert_eq!(get(other_team, key.clone(), None).await.0, 404);
    let (s, body) = get(team_stream_url(&app, &order_id), key.clone(), Some("not-a-number")).await;
    assert_eq!((s, body["code"].as_str()), (400, Some("bad_request")), "{body}");
    app.stop().await;
}

/// Stream caps: past `max_streams_per_order`, `max_streams_per_client` (by client address) or
/// `max_streams` in all, a new stream is a 503 in the JSON error model; a stream whose client
/// left gives its slot back.
#[tokio::test]
async fn event_streams_past_their_caps_answer_503_and_slots_come_back() {
    let app = crate::support::app::spawn_app(crate::support::app::Options {
        config_edits: vec![(
            "heartbeat_secs = 5",
            "heartbeat_secs = 1\nmax_streams = 4\nmax_streams_per_order = 2\nmax_streams_per_client = 3",
        )],
        ..Default::default()
    })
    .await;
    let (_, first, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (_, second, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (_, third, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    // A second client: another loopback address.
    let elsewhere =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let open_from = |http: reqwest::Client, order: String| {
        let url = format!("{}/pay/{order}/events", app.base);
        async move { http.get(url).send().await.unwrap() }
    };
    let open = |order: String| open_from(app.http.clone(), order);
    let refused = |r: reqwest::Response, says: &'static str| async move {
        assert_eq!(r.status().as_u16(), 503);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "unavailable", "{body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    };
    let a1 = open(first.clone()).await;
    let a2 = open(first.clone()).await;
    assert_eq!((a1.status().as_u16(), a2.status().as_u16()), (200, 200));
    refused(open(first.clone()).await, "this order already has 2").await;
    let b1 = open(second.clone()).await;
    assert_eq!(b1.status().as_u16(), 200);
    refused(open(third.clone()).await, "this client already has 3").await;
    let c1 = open_from(elsewhere.clone(), second.clone()).await;
    assert_eq!(c1.status().as_u16(), 200, "another client has slots of its own");
    refused(open_from(elsewhere.clone(), third.clone()).await, "too many open event streams (4)").await;
    // A client leaves: its slot is free again once the server notices (at the next heartbeat).
    drop(a1);
    let started = std::time::Instant::now();
    let again = loop {
        let r = open(first.clone()).await;
        if r.status().as_u16() == 200 {
            break r;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "the slot never came back");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    drop((a2, b1, c1, again));
    app.stop().await;
}
