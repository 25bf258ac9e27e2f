//! `cargo bench`: the pure parts of a tick, timed with std::time (no criterion: see
//! docs/performance.md). Each case runs for about a second after a warm-up; the figure is the
//! best of five rounds, per item.
//!
//! * window planning: a 10-day catch-up into 6-hour windows;
//! * page parsing: one 5000-record Graph page body into records (serde, as the tick does);
//! * mapping + framing: a page of records into Devo lines;
//! * dedup: the window's duplicate check over a page of keys.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use m365_trace_devtools::records;
use m365_trace_to_devo::config::WindowRules;
use m365_trace_to_devo::devo::frame_line;
use m365_trace_to_devo::trace::record::{GraphRecord, MappingContext, to_message_trace};
use m365_trace_to_devo::transfer::dedup::Dedup;
use m365_trace_to_devo::window::{Progress, plan};
use serde::Deserialize;

const PAGE: usize = 5000;

#[derive(Deserialize)]
struct PageBody {
    value: Vec<GraphRecord>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

/// Runs `f` (which handles `items` items) repeatedly; prints the best time per item.
fn bench(name: &str, items: usize, mut f: impl FnMut()) {
    let warm = Instant::now();
    let mut calls = 0u32;
    while warm.elapsed() < Duration::from_millis(200) || calls < 2 {
        f();
        calls += 1;
    }
    let per_round = ((Duration::from_millis(200).as_secs_f64()
        / (warm.elapsed().as_secs_f64() / f64::from(calls)))
    .ceil() as u32)
        .max(1);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..per_round {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / f64::from(per_round));
    }
    let per_item = best / items as f64;
    println!(
        "{name:<34} {:>10.1} ns/item {:>12.0} items/s   ({:.3} ms per call of {items})",
        per_item * 1e9,
        1.0 / per_item,
        best * 1e3
    );
}

fn main() {
    // `cargo bench -- FILTER` runs the cases whose name contains FILTER.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));

    let start = Utc
        .with_ymd_and_hms(2026, 11, 24, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let end = start + TimeDelta::hours(6);
    let generated = records::generate(1, start, end, PAGE);
    let body = serde_json::to_vec(&serde_json::json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#admin/exchange/tracing/messageTraces",
        "value": generated.iter().rev().collect::<Vec<_>>(),
        "@odata.nextLink": "https://graph.microsoft.com/v1.0/admin/exchange/tracing/messageTraces?$skiptoken=x",
    }))
    .unwrap_or_default();
    println!(
        "page: {PAGE} records, {} bytes of JSON ({} per record)",
        body.len(),
        body.len() / PAGE
    );

    if wanted("window planning") {
        let rules = WindowRules {
            delay: TimeDelta::seconds(90_000),
            historic: TimeDelta::days(10),
            margin: TimeDelta::seconds(60),
            max_window: TimeDelta::seconds(21_600),
            lookback: TimeDelta::days(90),
        };
        let now = start + TimeDelta::days(11);
        let windows = plan(Progress::default(), now, &rules, 1000).windows.len();
        bench("window planning (per window)", windows, || {
            black_box(plan(Progress::default(), black_box(now), &rules, 1000));
        });
    }

    let page: PageBody = serde_json::from_slice(&body).unwrap_or(PageBody {
        value: Vec::new(),
        next_link: None,
    });
    if wanted("page parsing") {
        bench("page parsing (per record)", PAGE, || {
            let parsed: PageBody = serde_json::from_slice(black_box(&body)).unwrap_or(PageBody {
                value: Vec::new(),
                next_link: None,
            });
            black_box((parsed.value.len(), parsed.next_link));
        });
    }

    if wanted("mapping + framing") {
        let context = MappingContext {
            organization: "00000000-0000-0000-0000-000000000001",
            start,
            end,
        };
        let mut buf = Vec::with_capacity(8 << 20);
        bench("mapping + framing (per record)", PAGE, || {
            buf.clear();
            for (i, r) in page.value.iter().enumerate() {
                let trace = to_message_trace(r, &context, i as u64);
                let _ = frame_line(
                    &mut buf,
                    r.received_date_time.unwrap_or(start),
                    "m365-trace-to-devo",
                    "cloud.office365.messagetracing",
                    &trace,
                );
            }
            black_box(buf.len());
        });
    }

    if wanted("dedup") {
        // 20 pages of a window, newest first: each page 6 hours before the one above it.
        let pages: Vec<Vec<(String, chrono::DateTime<Utc>)>> = (0..20i64)
            .map(|p| {
                let back = TimeDelta::hours(6 * p);
                page.value
                    .iter()
                    .map(|r| {
                        (
                            format!("{}#{p}", r.key()),
                            r.received_date_time.unwrap_or(start) - back,
                        )
                    })
                    .collect()
            })
            .collect();
        bench("dedup check (per record)", PAGE * 20, || {
            let mut d = Dedup::default();
            for keys in &pages {
                for (k, t) in keys {
                    black_box(d.check(k, *t));
                }
                d.end_page();
            }
            black_box(d.len());
        });
    }
}
