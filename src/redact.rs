//! Endpoint URLs as messages may show them: scheme, host and port, never a key. A leaf
//! module, so the config can name endpoints without depending on the chain code.

/// `https://eth.example.com/v3/KEY` → `https://eth.example.com`: enough to tell endpoints
/// apart, never the key in the path, query or user info.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", u.scheme()),
            (Some(host), None) => format!("{}://{host}", u.scheme()),
            _ => format!("{}://", u.scheme()),
        },
        Err(_) => "<invalid url>".to_string(),
    }
}

/// Redacted names of several endpoints, for messages.
pub fn redact_all(urls: &[String]) -> String {
    urls.iter().map(|u| redact(u)).collect::<Vec<_>>().join(", ")
}

/// An RPC error's text for logs: its first line, with any URL reduced to scheme and host
/// (reqwest puts the full request URL into its errors).
pub fn describe(error: &str) -> String {
    let first = error.lines().next().unwrap_or_default();
    first.split(' ').map(redact_word).collect::<Vec<_>>().join(" ")
}

/// A word with any URL in it (`(https://…)`, `url="wss://…"`) reduced to scheme and host.
fn redact_word(word: &str) -> String {
    let Some(at) = ["http://", "https://", "ws://", "wss://"].iter().filter_map(|s| word.find(s)).min() else {
        return word.to_string();
    };
    let url = word[at..].trim_end_matches([')', ',', '"', '\'', ']', '>', ';', ':']);
    format!("{}{}{}", &word[..at], redact(url), &word[at + url.len()..])
}

/// Any error as a job logs it: its whole chain of causes on one line (`{e:#}`), every URL in
/// it reduced to scheme and host.
pub fn error(e: &dyn std::fmt::Display) -> String {
    describe(&format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_url_in_an_error_loses_its_key() {
        let e = anyhow::anyhow!("error sending request for url (https://eth.example.com/v3/SECRET-KEY)")
            .context("eth_getTransactionCount of \"wss://ws.example.com:8546/SECRET-KEY\"")
            .context("refund pass, url=http://user:SECRET-KEY@10.0.0.1:8545/");
        let said = error(&e);
        assert!(!said.contains("SECRET-KEY"), "{said}");
        for kept in ["(https://eth.example.com)", "\"wss://ws.example.com:8546\"", "url=http://10.0.0.1:8545"] {
            assert!(said.contains(kept), "{kept} in {said}");
        }
    }
}
