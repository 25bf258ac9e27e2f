//! Defaults of the configuration, in one place for the code, the tests and the docs.

/// `STATE_KEY`.
pub const STATE_KEY: &str = "m365-message-trace/checkpoint.json";
/// `DEVO_ADDRESS`.
pub const DEVO_ADDRESS: &str = "collector-us.devo.io:443";
/// `DEVO_TAG`.
pub const DEVO_TAG: &str = "cloud.office365.messagetracing";
/// `STATUS_TAG`: the tag of the collection's own status line, one per tenant and tick.
pub const STATUS_TAG: &str = "my.app.m365trace.status";
/// `DEVO_HOSTNAME` when no function name is known either.
pub const DEVO_HOSTNAME: &str = "m365-trace-to-devo";
/// `FRESH_DELAY_SECONDS`: the fresh pass pulls up to 10 minutes ago.
pub const FRESH_DELAY_SECONDS: i64 = 600;
/// `DELAY_SECONDS`: 25 h.
pub const DELAY_SECONDS: i64 = 90_000;
/// `HISTORIC_DAYS`.
pub const HISTORIC_DAYS: i64 = 10;
/// `MARGIN_SECONDS`.
pub const MARGIN_SECONDS: i64 = 60;
/// `MAX_WINDOW_SECONDS`: 6 h.
pub const MAX_WINDOW_SECONDS: i64 = 21_600;
/// `PAGE_SIZE`.
pub const PAGE_SIZE: u32 = 5000;
/// `REQUESTS_PER_SECOND`.
pub const REQUESTS_PER_SECOND: u32 = 1;
/// `REQUEST_BUDGET_PER_5_MINUTES`: Graph allows 100; a tenth stays free for other tools.
pub const REQUEST_BUDGET_PER_5_MINUTES: usize = 90;
/// `REQUEST_TIMEOUT_SECONDS`.
pub const REQUEST_TIMEOUT_SECONDS: u64 = 60;
/// `DEVO_IDLE_SECONDS`: devo-sdk reconnects after 30 s idle.
pub const DEVO_IDLE_SECONDS: u64 = 30;
/// `DEVO_CONFIRM_BYTES`: 4 MiB, about 7,000 lines of 600 B. A healthy relay reads it in well
/// under a second, so a step costs one close and one handshake per 4 MiB; a congested one
/// (32 KB/s) in two minutes, still inside the default 240 s tick. It is also about what
/// Linux lets a socket queue unread (tcp_wmem's maximum): writing further without a
/// confirmation mostly fills buffers.
pub const DEVO_CONFIRM_BYTES: u64 = 4 * 1024 * 1024;
/// `DEVO_CONFIRM_SECONDS`: a step at least every 20 s, a twelfth of the default tick, so that
/// a slow trickle of pages is confirmed as it goes, not only at the window's end.
pub const DEVO_CONFIRM_SECONDS: u64 = 20;
/// `DETAIL_STATUSES`: the deliveries an analyst asks "why?" about.
pub const DETAIL_STATUSES: &str = "failed,quarantined,filteredAsSpam";
/// `DETAIL_TAG`: the Devo table of delivery details.
pub const DETAIL_TAG: &str = "my.app.office365.messagetracedetail";
/// `DETAIL_QUEUE_MAX`: deliveries waiting for their details, per tenant. About 17 ticks of
/// detail calls at the default budget (60 a tick), and about 300 KB of checkpoint.
pub const DETAIL_QUEUE_MAX: usize = 1000;
