//! The HTML report of a simulated day (`huifu simulate --report FILE.html`): one self-contained
//! page. The charts are drawn to SVG and embedded in the page, and the styles are inline, so the
//! file can be opened anywhere, offline, and mailed as it is.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::{SimConfig, SimResult};

/// Width of every chart, in pixels: the page's content width.
const CHART_WIDTH_PX: u32 = 1_000;
/// Height of every chart, in pixels.
const CHART_HEIGHT_PX: u32 = 320;
/// Headroom above the highest point of a chart, as a fraction of it: the line never touches the
/// frame, and the legend in the upper corner sits above the data.
const CHART_HEADROOM: f64 = 0.25;
/// Room right of the last point, as a fraction of the time axis, so its dot is not cut.
const CHART_MARGIN_X: f64 = 0.02;
/// Font size of a chart's title, in pixels.
const CHART_TITLE_PX: u32 = 20;
/// Font size of axis labels and legends, in pixels.
const CHART_LABEL_PX: u32 = 14;
/// Radius of the dot that marks each sample on a line of instant values, in pixels.
const CHART_DOT_PX: u32 = 3;

/// One window of the simulated day (about a second), as the progress loop saw it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Seconds from the start of the day to the end of the window.
    pub seconds: f64,
    /// Payments done by the end of the window.
    pub payments: u64,
    /// Payments per second over the window.
    pub payments_per_second: f64,
    /// Median batch latency over the window, submit to durable reply, in milliseconds; `None`
    /// when no batch finished in it.
    pub latency_ms_p50: Option<f64>,
    /// 99th percentile of the same.
    pub latency_ms_p99: Option<f64>,
    /// Resident memory at the end of the window (VmRSS), in bytes.
    pub rss_bytes: u64,
}

/// Everything a report shows.
pub struct Report<'a> {
    pub config: &'a SimConfig,
    pub result: &'a SimResult,
    pub timeline: &'a [Sample],
    /// Peak resident memory of the whole run (VmHWM), in bytes.
    pub rss_bytes_max: u64,
    /// Size of the data folder after the run, in bytes.
    pub disk_bytes: u64,
}

impl Report<'_> {
    /// The audit passed and no sampled acknowledged payment went missing: the command's verdict.
    fn ok(&self) -> bool {
        self.result.audit.ok() && self.result.acknowledged_missing == 0
    }
}

/// A histogram value in microseconds as milliseconds.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Writes the report to `path`.
pub fn write(path: &Path, report: &Report) -> anyhow::Result<()> {
    let html = render(report)?;
    std::fs::write(path, html).with_context(|| format!("cannot write {}", path.display()))
}

/// The report as one HTML document.
pub fn render(report: &Report) -> anyhow::Result<String> {
    let r = report.result;
    let c = &r.counts;
    let l = &r.latency;
    let timeline = report.timeline;
    let throughput = line_chart(
        "Payments per second",
        "payments/s",
        &[Series {
            label: "payments/s",
            color: RGBColor(31, 119, 180),
            points: steps(timeline, |s| Some(s.payments_per_second)),
            dots: false,
        }],
    )?;
    let latency = line_chart(
        "Batch latency, submit to durable reply",
        "ms",
        &[
            Series {
                label: "p50",
                color: RGBColor(44, 160, 44),
                points: steps(timeline, |s| s.latency_ms_p50),
                dots: false,
            },
            Series {
                label: "p99",
                color: RGBColor(214, 39, 40),
                points: steps(timeline, |s| s.latency_ms_p99),
                dots: false,
            },
        ],
    )?;
    let memory = line_chart(
        "Resident memory",
        "MiB",
        &[Series {
            label: "RSS",
            color: RGBColor(148, 103, 189),
            points: timeline.iter().map(|s| (s.seconds, s.rss_bytes as f64 / MIB)).collect(),
            dots: true,
        }],
    )?;

    let mut html = String::with_capacity(64 * 1024);
    let verdict = if report.ok() { "ok" } else { "FAILED" };
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>huifu simulate: {payments} payments, audit {verdict}</title>\n<style>{STYLE}</style>\n\
         </head>\n<body>\n<h1>huifu simulate</h1>\n<p class=\"lead\">A simulated day of \
         {payments} payments at {rate} payments/s; audit <span class=\"{class}\">{verdict}</span>.</p>\n",
        payments = thousands(c.payments),
        rate = thousands(r.payments_per_second().round() as u64),
        class = if report.ok() { "ok" } else { "bad" },
    );

    // The summary: four small tables side by side.
    html.push_str("<div class=\"summary\">\n");
    let cfg = report.config;
    table(
        &mut html,
        "Configuration",
        &[
            ("users", thousands(cfg.users)),
            ("merchants", thousands(cfg.merchants)),
            ("riders", thousands(cfg.riders)),
            ("payments asked", thousands(cfg.payments)),
            ("clients", cfg.clients.to_string()),
            ("operations per batch", cfg.batch_ops.to_string()),
            (
                "rate",
                cfg.rate.map_or("as fast as it goes".into(), |r| format!("{} /s", thousands(r))),
            ),
            ("seed", cfg.seed.to_string()),
            (
                "bank latency",
                format!(
                    "{}–{} ms",
                    cfg.bank.latency_ns_min / 1_000_000,
                    cfg.bank.latency_ns_max / 1_000_000
                ),
            ),
            (
                "bank failures / timeouts",
                format!(
                    "{} / {} per million",
                    thousands(cfg.bank.failures_per_million.into()),
                    thousands(cfg.bank.timeouts_per_million.into())
                ),
            ),
        ],
    );
    table(
        &mut html,
        "Totals",
        &[
            ("payments", thousands(c.payments)),
            ("from the wallet", thousands(c.payments_wallet)),
            ("through a bank channel", thousands(c.payments_channel)),
            ("refunds (full)", format!("{} ({})", thousands(c.refunds), thousands(c.refunds_full))),
            ("coupons redeemed", thousands(c.coupons_redeemed)),
            ("operations", thousands(c.ops)),
            ("rejected", thousands(c.rejected.values().sum())),
        ],
    );
    table(
        &mut html,
        "Figures",
        &[
            ("seconds", format!("{:.2}", r.seconds)),
            ("payments/s", thousands(r.payments_per_second().round() as u64)),
            ("operations/s", thousands((c.ops as f64 / r.seconds.max(1e-9)).round() as u64)),
            ("batch latency p50", format!("{:.2} ms", ms(l.value_at_quantile(0.5)))),
            ("batch latency p99", format!("{:.2} ms", ms(l.value_at_quantile(0.99)))),
            ("batch latency max", format!("{:.2} ms", ms(l.max()))),
            ("resident memory max", format!("{} MiB", report.rss_bytes_max >> 20)),
            (
                "disk",
                format!(
                    "{} MiB ({} bytes per payment)",
                    report.disk_bytes >> 20,
                    report.disk_bytes / c.payments.max(1)
                ),
            ),
        ],
    );
    let mut audit = vec![
        ("result", verdict.to_string()),
        ("accounts", thousands(r.audit.accounts)),
        ("transfers", thousands(r.audit.transfers)),
        ("payments", thousands(r.audit.payments)),
        (
            "acknowledged payments",
            format!(
                "{} sampled, {} missing",
                thousands(r.acknowledged_checked),
                thousands(r.acknowledged_missing)
            ),
        ),
    ];
    audit.push(("violations", thousands(r.audit.violations.len() as u64)));
    table(&mut html, "Audit", &audit);
    html.push_str("</div>\n");
    if !r.audit.violations.is_empty() {
        html.push_str("<h2>Audit violations</h2>\n<ul class=\"violations\">\n");
        for v in &r.audit.violations {
            let _ = writeln!(html, "<li>{}</li>", escape(v));
        }
        html.push_str("</ul>\n");
    }

    let _ = write!(
        html,
        "<h2>Over the day</h2>\n<p class=\"note\">Rates and latencies are measured over windows \
         of about a second (a step each), memory at the end of each window; from the first \
         payment batch to the last reply ({} window{}).</p>\n\
         <figure>{throughput}</figure>\n<figure>{latency}</figure>\n<figure>{memory}</figure>\n",
        timeline.len(),
        if timeline.len() == 1 { "" } else { "s" }
    );

    // The operation mix, with a bar scaled to the largest count.
    let mut mix: Vec<(String, u64)> = vec![
        ("payments from the wallet".into(), c.payments_wallet),
        ("payments through a bank channel".into(), c.payments_channel),
        ("captures".into(), c.captures),
        ("releases".into(), c.releases),
        ("refunds".into(), c.refunds),
        ("top-ups".into(), c.topups),
        ("withdrawals".into(), c.withdrawals),
        ("payouts (instant and in settlement runs)".into(), c.payouts),
        ("settlement runs".into(), c.settlement_runs),
    ];
    mix.extend(c.rejected.iter().map(|(code, n)| (format!("rejected: {code}"), *n)));
    let largest = mix.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    html.push_str(
        "<h2>Operation mix</h2>\n<table class=\"mix\">\n\
         <tr><th>operation</th><th class=\"n\">count</th><th class=\"n\">of operations</th><th></th></tr>\n",
    );
    for (what, n) in &mix {
        let share = 100.0 * *n as f64 / c.ops.max(1) as f64;
        let width = 100.0 * *n as f64 / largest as f64;
        let class = if what.starts_with("rejected") { "bar bad" } else { "bar" };
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{share:.2}%</td>\
             <td class=\"barcell\"><div class=\"{class}\" style=\"width:{width:.2}%\"></div></td></tr>",
            escape(what),
            thousands(*n),
        );
    }
    html.push_str("</table>\n</body>\n</html>\n");
    Ok(html)
}

/// Bytes in a mebibyte, for the memory chart's axis.
const MIB: f64 = (1u64 << 20) as f64;

/// The page's styles, inline so that the file stands alone.
const STYLE: &str = "
body { font-family: sans-serif; color: #222; max-width: 1040px; margin: 24px auto; padding: 0 16px; }
h1 { margin-bottom: 4px; }
h2 { margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.lead { font-size: 18px; margin-top: 0; }
.note { color: #666; font-size: 14px; }
.ok { color: #1a7f37; font-weight: bold; }
.bad { color: #c62828; font-weight: bold; }
.summary { display: grid; grid-template-columns: repeat(2, 1fr); gap: 16px 32px; }
table { border-collapse: collapse; font-size: 14px; }
.summary table { width: 100%; align-self: start; }
caption { text-align: left; font-weight: bold; font-size: 16px; padding: 4px 0; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eee; }
td.v, td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 16px 0; }
figure svg { display: block; max-width: 100%; height: auto; }
table.mix { width: 100%; }
td.barcell { width: 45%; }
.bar { height: 12px; background: #1f77b4; min-width: 1px; }
.bar.bad { background: #d62728; }
.violations { color: #c62828; font-family: monospace; }
";

/// A two-column table: what, and how much.
fn table(html: &mut String, caption: &str, rows: &[(&str, String)]) {
    let _ = writeln!(html, "<table>\n<caption>{}</caption>", escape(caption));
    for (what, value) in rows {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td class=\"v\">{}</td></tr>",
            escape(what),
            escape(value)
        );
    }
    html.push_str("</table>\n");
}

/// One line of a chart.
struct Series<'a> {
    label: &'a str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    /// Mark each point: for values read at an instant rather than over a window.
    dots: bool,
}

/// A value measured over each window as a step: flat from the window's start (the previous
/// window's end, or the start of the day) to its end. Windows without a value are left out.
fn steps(timeline: &[Sample], value: impl Fn(&Sample) -> Option<f64>) -> Vec<(f64, f64)> {
    let starts = std::iter::once(0.0).chain(timeline.iter().map(|s| s.seconds));
    timeline
        .iter()
        .zip(starts)
        .filter_map(|(s, start)| value(s).map(|v| [(start, v), (s.seconds, v)]))
        .flatten()
        .collect()
}

/// A line chart of `series` against seconds, as an SVG document.
fn line_chart(title: &str, y_desc: &str, series: &[Series]) -> anyhow::Result<String> {
    let points = series.iter().flat_map(|s| s.points.iter());
    let x_max = points.clone().map(|p| p.0).fold(0.0, f64::max).max(1.0) * (1.0 + CHART_MARGIN_X);
    let y_max = points.map(|p| p.1).fold(0.0, f64::max).max(1.0) * (1.0 + CHART_HEADROOM);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (CHART_WIDTH_PX, CHART_HEIGHT_PX))
            .into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", CHART_TITLE_PX))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(225, 225, 225))
            .label_style(("sans-serif", CHART_LABEL_PX))
            .axis_desc_style(("sans-serif", CHART_LABEL_PX))
            .x_desc("seconds since the first payment")
            .y_desc(y_desc)
            .x_label_formatter(&|v| compact(*v))
            .y_label_formatter(&|v| compact(*v))
            .draw()
            .map_err(chart_error)?;
        for s in series {
            let color = s.color;
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                .map_err(chart_error)?
                .label(s.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            if s.dots {
                chart
                    .draw_series(
                        s.points.iter().map(|p| Circle::new(*p, CHART_DOT_PX, color.filled())),
                    )
                    .map_err(chart_error)?;
            }
        }
        // One line needs no legend: the title and the axis say what it is.
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", CHART_LABEL_PX))
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(200, 200, 200))
                .draw()
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

fn chart_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("cannot draw a chart: {error}")
}

/// An axis value, short: 120k, 1.5M, 2.5, 40.
fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 10.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// An integer with thousands separators: 1,234,567.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// Text made safe for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            ch => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Counts;
    use huifu_payments::AuditReport;

    fn synthetic_result(violations: Vec<String>) -> SimResult {
        let mut latency = crate::histogram();
        for us in [2_000, 3_000, 4_500, 9_000, 31_000] {
            latency.record(us).unwrap();
        }
        let mut counts = Counts {
            payments: 123_456,
            payments_wallet: 92_000,
            payments_channel: 31_456,
            captures: 30_100,
            releases: 700,
            refunds: 3_702,
            refunds_full: 1_800,
            topups: 1_234,
            withdrawals: 377,
            payouts: 2_468,
            settlement_runs: 10,
            coupons_redeemed: 9_999,
            ops: 170_000,
            ..Counts::default()
        };
        counts.rejected.insert("insufficient_funds".to_owned(), 42);
        counts.rejected.insert("budget_exhausted".to_owned(), 7);
        SimResult {
            counts,
            seconds: 1.5,
            latency,
            audit: AuditReport {
                accounts: 15_123,
                transfers: 600_000,
                payments: 123_456,
                violations,
            },
            acknowledged_missing: 0,
            acknowledged_checked: 7_716,
        }
    }

    fn synthetic_timeline() -> Vec<Sample> {
        (1..=5u32)
            .map(|i| Sample {
                seconds: f64::from(i) * 0.3,
                payments: 24_000 * u64::from(i),
                payments_per_second: 80_000.0 + f64::from(i) * 1_000.0,
                latency_ms_p50: Some(4.0 + f64::from(i) * 0.1),
                latency_ms_p99: if i == 3 { None } else { Some(30.0) },
                rss_bytes: (200 + 10 * u64::from(i)) << 20,
            })
            .collect()
    }

    #[test]
    fn a_report_holds_its_charts_and_key_numbers() {
        let config = SimConfig::default();
        let result = synthetic_result(Vec::new());
        let timeline = synthetic_timeline();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        let report = Report {
            config: &config,
            result: &result,
            timeline: &timeline,
            rss_bytes_max: 260 << 20,
            disk_bytes: 12_345_678,
        };
        write(&path, &report).unwrap();
        let html = std::fs::read_to_string(&path).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(html.matches("<svg").count(), 3, "three charts");
        // Self-contained: nothing is fetched to show it.
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
        for needle in [
            "123,456", // payments
            "82,304",  // payments/s = 123,456 / 1.5
            "92,000",  // wallet payments
            "31,456",  // channel payments
            "3,702",   // refunds
            "rejected: insufficient_funds",
            "260 MiB",               // peak memory
            "100 bytes per payment", // 12,345,678 / 123,456
            "audit <span class=\"ok\">ok</span>",
            "Payments per second",
            "Batch latency",
            "Resident memory",
            "Operation mix",
            "settlement runs",
        ] {
            assert!(html.contains(needle), "the report lacks {needle:?}");
        }
    }

    #[test]
    fn a_failed_audit_shows_its_violations_escaped() {
        let config = SimConfig::default();
        let result = synthetic_result(vec!["account <7> & co: off by 1".into()]);
        let report = Report {
            config: &config,
            result: &result,
            timeline: &[],
            rss_bytes_max: 0,
            disk_bytes: 0,
        };
        let html = render(&report).unwrap();
        assert!(html.contains("FAILED"));
        assert!(html.contains("account &lt;7&gt; &amp; co: off by 1"));
        assert_eq!(html.matches("<svg").count(), 3, "empty charts still draw");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(compact(150_000.0), "150k");
        assert_eq!(compact(2_500_000.0), "2.5M");
        assert_eq!(compact(2.5), "2.5");
        assert_eq!(compact(40.0), "40");
    }
}
