//! What paywatch's HTML pages share (checkout, refund claim, console): one page shell and one
//! Content-Security-Policy builder, so every page loads only paywatch's own assets.

use maud::{DOCTYPE, Markup, html};

/// A page's frame: `title · site` in the tab, the stylesheet (and script) of its area, an
/// optional header above `main`, and the title again as the page's heading.
pub struct Shell<'a> {
    pub site: &'a str,
    pub stylesheet: &'a str,
    pub script: Option<&'a str>,
    pub header: Option<Markup>,
}

pub fn shell(frame: Shell<'_>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (frame.site) }
                link rel="stylesheet" href=(frame.stylesheet);
                @if let Some(script) = frame.script { script src=(script) defer {} }
            }
            body {
                @if let Some(header) = frame.header { (header) }
                main id="main" { h1 { (title) } (body) }
            }
        }
    }
}

/// What a page may use beyond its own style sheet; every source is paywatch itself, nothing
/// inline, no frames, no `<base>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Csp {
    pub scripts: bool,
    /// Pictures (and `data:` ones, the QR code and icons).
    pub images: bool,
    /// `fetch` and event streams.
    pub connect: bool,
    /// Forms that post (here only).
    pub forms: bool,
}

impl Csp {
    pub fn header_value(self) -> String {
        let mut policy = vec!["default-src 'none'", "style-src 'self'"];
        if self.scripts {
            policy.push("script-src 'self'");
        }
        if self.images {
            policy.push("img-src 'self' data:");
        }
        if self.connect {
            policy.push("connect-src 'self'");
        }
        policy.push(if self.forms { "form-action 'self'" } else { "form-action 'none'" });
        policy.extend(["base-uri 'none'", "frame-ancestors 'none'"]);
        policy.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::Csp;

    #[test]
    fn a_policy_allows_only_what_it_names_and_only_from_paywatch() {
        let none = Csp::default().header_value();
        assert!(none.starts_with("default-src 'none'; style-src 'self'"), "{none}");
        assert!(!none.contains("script-src") && !none.contains("img-src") && !none.contains("connect-src"), "{none}");
        assert!(none.contains("form-action 'none'") && none.contains("frame-ancestors 'none'"), "{none}");
        let all = Csp { scripts: true, images: true, connect: true, forms: true }.header_value();
        for part in ["script-src 'self'", "img-src 'self' data:", "connect-src 'self'", "form-action 'self'"] {
            assert!(all.contains(part), "{all} lacks {part}");
        }
        assert!(!all.contains("unsafe") && !all.contains('*'), "{all}");
    }
}
