//! Charts drawn as SVG on the server (no script, no CDN): a line of a chain's lag over the
//! last hour and stacked monthly revenue bars. Every data point is an element carrying its
//! value (`data-*`) and a `<title>` a screen reader or a hover shows; the money in them is the
//! exact decimal text, only the geometry is approximated.

use maud::{Markup, html};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::chain::status::LagSample;
use crate::overview::MonthRevenue;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 12.0;

/// Colours with at least 3:1 contrast on white, one per pay method.
const PALETTE: [&str; 6] = ["#1f5fbf", "#b3541e", "#2e7d32", "#7b1fa2", "#8d6e00", "#00838f"];

pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn frame(id: &str, title: &str, max_label: &str, inner: Markup, x_labels: Markup) -> Markup {
    let plot_bottom = HEIGHT - BOTTOM;
    html! {
        svg class="chart" id=(id) viewBox={"0 0 " (WIDTH) " " (HEIGHT)} preserveAspectRatio="xMinYMin meet" role="img" aria-labelledby={(id) "-title"} {
            title id={(id) "-title"} { (title) }
            line class="axis" x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(plot_bottom) stroke="#555" {}
            line class="axis" x1=(LEFT) y1=(plot_bottom) x2=(WIDTH) y2=(plot_bottom) stroke="#555" {}
            text x=(LEFT - 6.0) y=(TOP + 10.0) text-anchor="end" font-size="11" fill="#333" { (max_label) }
            text x=(LEFT - 6.0) y=(plot_bottom) text-anchor="end" font-size="11" fill="#333" { "0" }
            (x_labels)
            (inner)
        }
    }
}

/// Blocks behind the head over time.
pub fn lag(id: &str, chain: &str, samples: &[LagSample]) -> Markup {
    let max = samples.iter().map(LagSample::behind).max().unwrap_or(0).max(1);
    let (first, last) = match (samples.first(), samples.last()) {
        (Some(f), Some(l)) => (f.at, l.at.max(f.at + 1)),
        _ => (0, 1),
    };
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let x = |at: i64| LEFT + 4.0 + plot_w * (at - first) as f64 / (last - first) as f64;
    let y = |behind: u64| TOP + plot_h * (1.0 - behind as f64 / max as f64);
    let points: Vec<String> = samples.iter().map(|s| format!("{:.1},{:.1}", x(s.at), y(s.behind()))).collect();
    let inner = html! {
        @if samples.len() > 1 {
            polyline points=(points.join(" ")) fill="none" stroke=(colour(0)) stroke-width="2" {}
        }
        @for s in samples {
            circle class="point" cx=(format!("{:.1}", x(s.at))) cy=(format!("{:.1}", y(s.behind()))) r="3"
                fill=(colour(0)) data-at=(s.at) data-behind=(s.behind()) {
                title { (super::layout::when(s.at)) ": " (s.behind()) " blocks behind" }
            }
        }
    };
    let x_labels = html! {
        @if let (Some(f), Some(l)) = (samples.first(), samples.last()) {
            text x=(LEFT + 4.0) y=(HEIGHT - 6.0) font-size="11" fill="#333" { (clock(f.at)) }
            text x=(WIDTH - 4.0) y=(HEIGHT - 6.0) text-anchor="end" font-size="11" fill="#333" { (clock(l.at)) }
        }
    };
    frame(id, &format!("Blocks behind the head on {chain}, last hour"), &max.to_string(), inner, x_labels)
}

fn clock(ts: i64) -> String {
    let w = super::layout::when(ts);
    w.get(11..16).unwrap_or(&w).to_string()
}

/// Revenue per month, stacked by pay method (`methods` fixes each one's colour).
pub fn revenue(id: &str, months: &[MonthRevenue], methods: &[String]) -> Markup {
    let max = months.iter().map(MonthRevenue::total).max().unwrap_or_default().max(Decimal::ONE);
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = plot_w / months.len().max(1) as f64;
    let height = |usd: Decimal| (usd / max).to_f64().unwrap_or(0.0) * plot_h;
    let inner = html! {
        @for (i, m) in months.iter().enumerate() {
            @let x = LEFT + 4.0 + slot * i as f64 + slot * 0.15;
            @let mut base = HEIGHT - BOTTOM;
            @for (k, method) in methods.iter().enumerate() {
                @if let Some(usd) = m.by_method.get(method).filter(|u| !u.is_zero()) {
                    @let h = height(*usd);
                    @let top = { base -= h; base };
                    rect class="bar" x=(format!("{x:.1}")) y=(format!("{top:.1}")) width=(format!("{:.1}", slot * 0.7))
                        height=(format!("{h:.1}")) fill=(colour(k)) data-month=(m.month) data-method=(method)
                        data-usd=(usd.normalize().to_string()) {
                        title { (m.month) " " (method) ": " (crate::money::cents_text(*usd)) " USD" }
                    }
                }
            }
        }
    };
    let x_labels = html! {
        @for (i, m) in months.iter().enumerate() {
            @if i % 2 == 1 || months.len() <= 6 {
                text x=(format!("{:.1}", LEFT + 4.0 + slot * (i as f64 + 0.5))) y=(HEIGHT - 6.0) text-anchor="middle"
                    font-size="11" fill="#333" { (m.month) }
            }
        }
    };
    frame(id, "Revenue by month and pay method, last 12 months (USD)", &crate::money::cents_text(max), inner, x_labels)
}
