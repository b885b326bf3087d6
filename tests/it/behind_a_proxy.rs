//! Deployment behind a reverse proxy and in the open (issue 26, item 12): `[server]
//! trusted_proxies` gives each forwarded client its own stream cap (a client's own forwarding
//! headers are never believed), a connection that sends half a request header is closed, and
//! wrong admin tokens (API and console sign-in) are slowed per client.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::app::{Options, TestApp, spawn_app};

use crate::support::app::ADMIN_TOKEN as ADMIN;

/// The app with `server` (the `[server]` lines, heartbeat_secs first) as its server section.
async fn app_with(server: &'static str) -> TestApp {
    spawn_app(Options { config_edits: vec![("heartbeat_secs = 5", server)], ..Default::default() }).await
}

/// A client bound to `local` (another loopback address is another peer).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(local.parse::<IpAddr>().unwrap()).build().unwrap()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_stream_cap() {
    let app = app_with("heartbeat_secs = 5\nmax_streams_per_client = 2\ntrusted_proxies = [\"127.0.0.1\"]").await;
    let (_, order, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    let url = format!("{}/pay/{order}/events", app.base);
    let open = |http: reqwest::Client, forwarded_for: &'static str| {
        let url = url.clone();
        async move { http.get(url).header("x-forwarded-for", forwarded_for).send().await.unwrap() }
    };
    let proxy = client_from("127.0.0.1");
    let first = open(proxy.clone(), "203.0.113.1").await;
    let second = open(proxy.clone(), "198.51.100.9, 203.0.113.1").await;
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let third = open(proxy.clone(), "203.0.113.1").await;
    assert_eq!(third.status().as_u16(), 503, "the forwarded client's own cap");
    let other = open(proxy.clone(), "203.0.113.2").await;
    assert_eq!(other.status().as_u16(), 200, "another client behind the proxy is not the proxy's count");
    // A peer that is not a trusted proxy: its forwarding header is its own writing, ignored.
    let direct = client_from("127.0.0.2");
    let a = open(direct.clone(), "192.0.2.1").await;
    let b = open(direct.clone(), "192.0.2.2").await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let c = open(direct.clone(), "192.0.2.3").await;
    assert_eq!(c.status().as_u16(), 503, "an untrusted peer counts as itself, whatever it forwards");
    drop((first, second, other, a, b));
    app.stop().await;
}

#[tokio::test]
async fn connections_that_send_half_a_request_header_are_closed() {
    let app = app_with("heartbeat_secs = 5\nheader_read_timeout_s = 1").await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: paywatch\r\nX-Slow: ").await.unwrap();
        held.push(stream);
    }
    let started = Instant::now();
    for mut stream in held {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a connection with half a header was still open after {:?}", started.elapsed());
    }
    // A whole request is served as before.
    let r = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    app.stop().await;
}

#[tokio::test]
async fn wrong_admin_tokens_and_sign_ins_are_slowed_per_client() {
    let app = app_with("heartbeat_secs = 5\ntrusted_proxies = [\"127.0.0.1\"]").await;
    let funds = format!("{}/admin/funds", app.base);
    let admin = |token: &'static str, client: &'static str| {
        let (http, url) = (app.http.clone(), funds.clone());
        async move { http.get(url).bearer_auth(token).header("x-forwarded-for", client).send().await.unwrap() }
    };
    for _ in 0..5 {
        assert_eq!(admin("wrong-token", "203.0.113.1").await.status().as_u16(), 401);
    }
    let slowed = admin("wrong-token", "203.0.113.1").await;
    assert_eq!(slowed.status().as_u16(), 429);
    let wait: u64 = slowed.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let body: serde_json::Value = slowed.json().await.unwrap();
    assert_eq!(body["code"], "too_many_attempts", "{body}");
    assert_eq!(admin(ADMIN, "203.0.113.1").await.status().as_u16(), 429, "even the right token waits out the minute");
    assert_eq!(admin(ADMIN, "203.0.113.2").await.status().as_u16(), 200, "another client is not slowed");

    // The console's sign-in form, from a third client.
    let sign_in = |token: &'static str| {
        let http = app.http.clone();
        let url = format!("{}/console/sign-in", app.base);
        async move {
            http.post(url)
                .header("x-forwarded-for", "203.0.113.3")
                .header("cookie", "paywatch_sign_in=n0nce")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={token}&nonce=n0nce"))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..5 {
        assert_eq!(sign_in("wrong-token").await.status().as_u16(), 401);
    }
    let slowed = sign_in(ADMIN).await;
    assert_eq!(slowed.status().as_u16(), 429);
    assert!(slowed.headers().contains_key("retry-after"));
    assert!(slowed.text().await.unwrap().contains("Too many wrong tokens"));
    app.stop().await;
}

/// Issue 35, measured: behind nginx's `X-Forwarded-For $proxy_add_x_forwarded_for` a client's
/// own `Forwarded: for=…` passes through. Forty wrong admin tokens, each with its own
/// `Forwarded` address, the proxy (here the test, a trusted peer) appending the one address it
/// saw: the sixth is slowed, since only the configured header names the client. And forty
/// addresses of one IPv6 /64 behind the proxy are one client.
#[tokio::test]
async fn a_clients_own_forwarded_header_and_a_64_of_addresses_change_nothing() {
    let app = app_with("heartbeat_secs = 5\ntrusted_proxies = [\"127.0.0.1\"]").await;
    let funds = format!("{}/admin/funds", app.base);
    let wrong = |forwarded: String, x_forwarded_for: &'static str| {
        let (http, url) = (app.http.clone(), funds.clone());
        async move {
            let r = http.get(url).bearer_auth("wrong-token").header("forwarded", forwarded);
            r.header("x-forwarded-for", x_forwarded_for).send().await.unwrap().status().as_u16()
        }
    };
    let mut answers = Vec::new();
    for i in 0..40 {
        answers.push(wrong(format!("for=198.18.{}.{}", i / 200, i % 200 + 1), "203.0.113.50").await);
    }
    assert_eq!(answers[..5], [401; 5], "five free tries: {answers:?}");
    assert!(answers[5..].iter().all(|s| *s == 429), "the sixth on is slowed: {answers:?}");

    let from_64 = |i: u32| {
        let (http, url) = (app.http.clone(), funds.clone());
        let address = format!("2001:db8:77:1:{:x}::{:x}", i * 7919 % 65_536, i + 1);
        async move { http.get(url).bearer_auth("wrong-token").header("x-forwarded-for", address).send().await.unwrap() }
    };
    let mut answers = Vec::new();
    for i in 0..40 {
        answers.push(from_64(i).await.status().as_u16());
    }
    assert!(answers[5..].iter().all(|s| *s == 429), "one /64 is one client: {answers:?}");
    app.stop().await;
}

/// Issue 35: behind a real nginx (configured as its docs show, `X-Forwarded-For
/// $proxy_add_x_forwarded_for`; paywatch trusts the nginx host, 127.0.0.1, and a front proxy
/// at 127.0.0.9, a CDN say). A client at 127.0.0.7 sends forty wrong admin tokens, each with
/// its own `Forwarded` and `X-Forwarded-For` addresses: the sixth is slowed all the same. The
/// operator signs in from an address that never failed. 100,000 distinct IPv6 addresses of one
/// /64, forwarded by the front proxy, are one client: five tries in all.
#[tokio::test]
async fn behind_nginx_a_clients_own_headers_and_a_64_of_addresses_change_nothing() {
    let app = app_with("heartbeat_secs = 5\ntrusted_proxies = [\"127.0.0.1\", \"127.0.0.9\"]").await;
    let nginx = crate::support::nginx::Nginx::start(app.base.trim_start_matches("http://")).await;
    let funds = format!("{}/admin/funds", nginx.base);
    let client = client_from("127.0.0.7");
    let mut answers = Vec::new();
    for i in 0..40u32 {
        let r = client
            .get(&funds)
            .bearer_auth("wrong-token")
            .header("forwarded", format!("for=198.18.0.{}", i + 1))
            .header("x-forwarded-for", format!("198.19.0.{}", i + 1))
            .send()
            .await
            .unwrap();
        answers.push(r.status().as_u16());
    }
    assert_eq!(answers[..5], [401; 5], "five free tries: {answers:?}");
    assert!(answers[5..].iter().all(|s| *s == 429), "the sixth on is slowed: {answers:?}");
    let operator = client_from("127.0.0.8").get(&funds).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(operator.status().as_u16(), 200, "the operator, from an address that never failed");

    let front = client_from("127.0.0.9");
    let tries = futures_util::stream::iter(0..100_000u32)
        .map(|i| {
            let (http, url) = (front.clone(), funds.clone());
            let address = format!("2001:db8:77:1:{:x}:{:x}::{:x}", i >> 16, i & 0xffff, i % 251 + 1);
            async move {
                let r = http.get(url).bearer_auth("wrong-token").header("x-forwarded-for", address).send().await;
                r.unwrap().status().as_u16()
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<u16>>()
        .await;
    let unthrottled = tries.iter().filter(|s| **s == 401).count();
    let slowed = tries.iter().filter(|s| **s == 429).count();
    assert_eq!((unthrottled, slowed), (5, 99_995), "100,000 addresses of one /64: five tries in all");
    let other =
        front.get(&funds).bearer_auth(ADMIN).header("x-forwarded-for", "2001:db8:77:2::1").send().await.unwrap();
    assert_eq!(other.status().as_u16(), 200, "the next /64 is another client");
    drop(nginx);
    app.stop().await;
}
