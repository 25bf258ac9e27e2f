//! `cargo bench`: the pure parts of a tick, timed with std::time (no criterion: see
//! docs/performance.md). Each case runs for about a second after a warm-up; the figure is the
//! best of five rounds, per item.
//!
//! * window planning: a 10-day catch-up into 6-hour windows;
//! * page parsing: one 5000-record Graph page body into records (serde, as the tick does);
//! * mapping + framing: a page of records into Devo lines;
//! * dedup: the window's duplicate check over a page of keys;
//! * ledger (two passes): encode and decode of one ledger object, a `LedgerIndex::verdict`
//!   lookup per record, the bytes per record, and the heap that loading one 6-hour window's
//!   ledger of a 10-million-records-a-day tenant takes (a counting allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use m365_trace_devtools::records;
use m365_trace_to_devo::config::WindowRules;
use m365_trace_to_devo::devo::frame_line;
use m365_trace_to_devo::ledger::part::{decode, encode};
use m365_trace_to_devo::ledger::{Fingerprint, LedgerIndex, LedgerPart, store};
use m365_trace_to_devo::state::MemoryStore;
use m365_trace_to_devo::trace::record::{GraphRecord, MappingContext, to_message_trace};
use m365_trace_to_devo::transfer::dedup::Dedup;
use m365_trace_to_devo::window::{Standing, plan};
use serde::Deserialize;

const PAGE: usize = 5000;

/// The system allocator, counting the bytes in use and their peak (for the ledger's memory).
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn note_alloc(size: usize) {
    let now = IN_USE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the new block allocated before the old one is freed (a moving realloc).
        note_alloc(new_size);
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`; returns its result and the peak of heap bytes in use above what was in use before.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = IN_USE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - before)
}

/// `n` record keys shaped like Graph's (`id|recipientAddress`) with documented statuses.
fn ledger_records(n: usize) -> Vec<(String, &'static str)> {
    const STATUSES: [&str; 4] = ["Delivered", "Pending", "FilteredAsSpam", "Failed"];
    (0..n)
        .map(|i| {
            (
                format!(
                    "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}|user{}@contoso.onmicrosoft.com",
                    i.wrapping_mul(2_654_435_761) & 0xffff_ffff,
                    i % 0xffff,
                    i % 0xfff,
                    (i / 7) % 0xfff,
                    i,
                    i % 5000
                ),
                STATUSES[i % 7 % 4],
            )
        })
        .collect()
}

/// The ledger cases: sizes, timings and the memory of one 6-hour window's ledger.
fn ledger_cases(wanted: &dyn Fn(&str) -> bool) {
    const N: usize = 1_000_000;
    let records = ledger_records(N);
    let fingerprints: Vec<Fingerprint> = records
        .iter()
        .map(|(k, s)| Fingerprint::of(k, Some(s)))
        .collect();
    let bytes = encode(fingerprints.clone());
    println!(
        "ledger: {N} records -> {} bytes ({:.3} bytes per record, 16-byte header); in memory {} bytes per fingerprint",
        bytes.len(),
        bytes.len() as f64 / N as f64,
        std::mem::size_of::<Fingerprint>()
    );
    if wanted("ledger encode") {
        bench("ledger encode (per record)", N, || {
            black_box(encode(black_box(fingerprints.clone())));
        });
    }
    if wanted("ledger decode") {
        bench("ledger decode (per record)", N, || {
            black_box(decode(black_box(&bytes)));
        });
    }
    if wanted("ledger verdict") {
        let start = Utc
            .with_ymd_and_hms(2026, 11, 24, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let index = LedgerIndex::new(fingerprints.clone(), Vec::new());
        // Every record known, as in a reconciliation where nothing changed: the full lookup.
        bench("ledger verdict (per record)", N, || {
            for (k, s) in &records {
                black_box(index.verdict(k, Some(s), start));
            }
        });
    }
    if wanted("ledger memory") {
        ledger_memory();
    }
}

/// The heap that `ledger::store::load` takes for one 6-hour window of a tenant with 10 million
/// records a day (2.5 million records), as the reconciliation pass loads it: in 72 parts (one
/// fresh window a 5-minute tick) and in 5 parts (a catch-up: the fresh pass cuts parts at
/// 500,000 records, `second_look::MAX_PART_RECORDS`); and the largest window the
/// reconciliation plan loads, 3,000,000 records (`MAX_INDEX_RECORDS`), in 6 parts.
fn ledger_memory() {
    for (records, parts_n) in [(2_500_000, 72), (2_500_000, 5), (3_000_000, 6)] {
        ledger_memory_of(records, parts_n);
    }
}

/// The peak heap of loading `window` records stored in `parts_n` parts.
fn ledger_memory_of(window: usize, parts_n: usize) {
    let start = Utc
        .with_ymd_and_hms(2026, 11, 24, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let end = start + TimeDelta::hours(6);
    let keys = ledger_records(window);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    {
        let store = MemoryStore::default();
        let step = TimeDelta::seconds(6 * 3600 / parts_n as i64);
        let per_part = window / parts_n;
        let parts: Vec<LedgerPart> = (0..parts_n)
            .map(|i| {
                let part = LedgerPart {
                    start: start + step * i as i32,
                    end: start + step * (i as i32 + 1),
                    n: 0,
                    records: per_part as u64,
                };
                let fps = keys[i * per_part..(i + 1) * per_part]
                    .iter()
                    .map(|(k, s)| Fingerprint::of(k, Some(s)))
                    .collect();
                runtime
                    .block_on(store::write(&store, "bench/checkpoint.json", &part, fps))
                    .expect("write");
                part
            })
            .collect();
        let stored: usize = parts
            .iter()
            .map(|p| 16 + p.records as usize * Fingerprint::BYTES)
            .sum();
        let (index, peak) = peak_heap(|| {
            runtime
                .block_on(store::load(
                    &store,
                    "bench/checkpoint.json",
                    &parts,
                    start,
                    end,
                ))
                .0
        });
        let held = IN_USE.load(Ordering::Relaxed);
        drop(index);
        let kept = held - IN_USE.load(Ordering::Relaxed);
        println!(
            "ledger load, 6-hour window of {window} records in {parts_n} part(s): {:.1} MB of objects; peak heap {:.1} MB, index kept {:.1} MB",
            stored as f64 / 1e6,
            peak as f64 / 1e6,
            kept as f64 / 1e6
        );
    }
}

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
        let windows = plan(Standing::default(), now, &rules, 1000).windows.len();
        bench("window planning (per window)", windows, || {
            black_box(plan(Standing::default(), black_box(now), &rules, 1000));
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

    ledger_cases(&wanted);
}
