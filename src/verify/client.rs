//! Devo's Query API over HTTP: `POST {DEVO_QUERY_URL}/query` with `Authorization: Bearer
//! <devo_query_token>`, paged by `limit`/`offset`, retried on 429, 5xx and transport failures
//! within the time budget, and never sent (nor redirected) outside `DEVO_QUERY_URL`'s origin.

use std::collections::BTreeMap;
use std::time::Duration;

use backon::ExponentialBackoff;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;

use crate::events::Event;
use crate::events::audit::QueryRetry;
use crate::secret::QueryToken;
use crate::trace::http::{Budget, retry_after, transport_detail};
use crate::trace::origin::{Origin, target};
use crate::verify::answer::{self, HeldKey, Row};
use crate::verify::error::{QueryError, devo_msg};
use crate::verify::linq::{self, QueryBody, Target};

/// Rows asked for per page.
pub const PAGE_ROWS: u64 = 10_000;
/// Pages read for one query at most (100 million rows: far more than one hour of a tenant).
const MAX_PAGES: u64 = 10_000;
/// The variable that sets the origin.
const VAR: &str = "DEVO_QUERY_URL";

/// A client of one Devo domain's Query API with one token.
#[derive(Debug, Clone)]
pub struct QueryClient {
    http: reqwest::Client,
    endpoint: String,
    origin: Origin,
    token: QueryToken,
    secret_id: String,
    page_rows: u64,
}

/// What Devo holds for one hour: its distinct keys, and the rows that were not this product's
/// (no `MessageTraceId` or `RecipientAddress`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourKeys {
    /// Distinct (id, recipient, status) with their line counts.
    pub keys: Vec<HeldKey>,
    /// Rows of the hour without the key fields.
    pub foreign_rows: u64,
}

impl QueryClient {
    /// A client of the Query API at `base` (`DEVO_QUERY_URL`, e.g.
    /// `https://apiv2-us.devo.com/search`) with `token` from secret `secret_id` (named in
    /// messages). `http` must refuse redirects off origin ([`crate::app::http_client`]).
    pub fn new(
        http: reqwest::Client,
        base: &str,
        token: QueryToken,
        secret_id: &str,
    ) -> QueryClient {
        let base = base.trim_end_matches('/');
        QueryClient {
            http,
            endpoint: format!("{base}/query"),
            origin: Origin::of(base, VAR),
            token,
            secret_id: secret_id.to_owned(),
            page_rows: PAGE_ROWS,
        }
    }

    /// The same client asking for `rows` per page (tests page small).
    pub fn with_page_rows(self, rows: u64) -> QueryClient {
        QueryClient {
            page_rows: rows.max(1),
            ..self
        }
    }

    /// `scheme://host:port` of `DEVO_QUERY_URL`, for messages.
    pub fn origin(&self) -> String {
        self.origin.describe()
    }

    /// Lines of `target` per hour in `[start, end)` (hours with none are absent).
    pub async fn lines_per_hour(
        &self,
        target: &Target,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        budget: &Budget,
    ) -> Result<BTreeMap<DateTime<Utc>, u64>, QueryError> {
        let what = format!("line counts of {start}..{end}");
        let body = QueryBody::new(linq::lines_per_hour(target), start, end);
        let mut hours = BTreeMap::new();
        let mut each = |row: Row| {
            let (Some(hour), Some(n)) = (answer::eventdate(&row), answer::lines(&row)) else {
                return Err(self.malformed(&what, "a row without eventdate or lines"));
            };
            if hour >= start && hour < end {
                *hours.entry(hour).or_insert(0) += n;
            }
            Ok(())
        };
        self.each_row(&body, &what, &target.table, budget, &mut each)
            .await?;
        Ok(hours)
    }

    /// The distinct keys `target` wrote in the hour starting at `hour`, all pages.
    pub async fn keys_of_hour(
        &self,
        target: &Target,
        hour: DateTime<Utc>,
        budget: &Budget,
    ) -> Result<HourKeys, QueryError> {
        let mut keys = Vec::new();
        let foreign_rows = self
            .each_key_of_hour(target, hour, budget, &mut |key| keys.push(key))
            .await?;
        keys.sort();
        Ok(HourKeys { keys, foreign_rows })
    }

    /// Hands each distinct key `target` wrote in the hour starting at `hour` to `each`, page
    /// by page (memory stays one page, however many keys the hour has); returns the rows of
    /// the hour without the key fields.
    pub async fn each_key_of_hour(
        &self,
        target: &Target,
        hour: DateTime<Utc>,
        budget: &Budget,
        each: &mut (dyn FnMut(HeldKey) + Send),
    ) -> Result<u64, QueryError> {
        let end = hour + chrono::Duration::hours(1);
        let what = format!("keys of {hour}..{end}");
        let body = QueryBody::new(linq::keys_per_hour(target), hour, end);
        let mut foreign_rows = 0;
        let mut row_of_hour = |row: Row| {
            if answer::eventdate(&row).is_some_and(|h| h != hour) {
                return Ok(());
            }
            match answer::held_key(&row) {
                Some(key) => each(key),
                None => foreign_rows += answer::lines(&row).unwrap_or(1),
            }
            Ok(())
        };
        self.each_row(&body, &what, &target.table, budget, &mut row_of_hour)
            .await?;
        Ok(foreign_rows)
    }

    /// Every row of `body`, page after page until a short one, handed to `each` (memory stays
    /// one page).
    pub async fn each_row(
        &self,
        body: &QueryBody,
        what: &str,
        table: &str,
        budget: &Budget,
        each: &mut (dyn FnMut(Row) -> Result<(), QueryError> + Send),
    ) -> Result<(), QueryError> {
        for page in 0..MAX_PAGES {
            let at = body.page(self.page_rows, page * self.page_rows);
            let got = self.rows(&at, what, table, budget).await?;
            let short = (got.len() as u64) < self.page_rows;
            for row in got {
                each(row)?;
            }
            if short {
                return Ok(());
            }
        }
        Err(QueryError::OutOfTime {
            what: what.to_owned(),
            last: format!("more than {MAX_PAGES} pages of {} rows", self.page_rows),
        })
    }

    /// One query, retried on 429, 5xx and transport failures while `budget` allows.
    pub async fn rows(
        &self,
        body: &QueryBody,
        what: &str,
        table: &str,
        budget: &Budget,
    ) -> Result<Vec<Row>, QueryError> {
        let mut backoff = budget.backoff();
        loop {
            let failure = match self.attempt(body, what, table, budget).await {
                Attempt::Rows(rows) => return Ok(rows),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry(e, wait) => (e, wait),
            };
            wait_to_retry(budget, &mut backoff, failure, what).await?;
        }
    }

    async fn attempt(&self, body: &QueryBody, what: &str, table: &str, budget: &Budget) -> Attempt {
        if budget.exhausted() {
            return Attempt::Fatal(QueryError::OutOfTime {
                what: what.to_owned(),
                last: "no time left before the deadline".to_owned(),
            });
        }
        let url = match self.origin.admit(&self.endpoint) {
            Ok(url) => url,
            Err(target) => {
                return Attempt::Fatal(QueryError::OffOrigin {
                    origin: self.origin.describe(),
                    what: what.to_owned(),
                    target,
                });
            }
        };
        let sent = self
            .http
            .post(url.clone())
            .header(reqwest::header::AUTHORIZATION, self.token.bearer())
            .json(body)
            .timeout(budget.request_timeout())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(self.transport(what, &e), None),
        };
        let status = response.status();
        if status.is_redirection() {
            let target = self
                .origin
                .redirect_target(&url, response.headers())
                .unwrap_or_else(|| "the same origin, too many times".to_owned());
            return Attempt::Fatal(QueryError::OffOrigin {
                origin: self.origin.describe(),
                what: what.to_owned(),
                target,
            });
        }
        let wait = retry_after(response.headers());
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Attempt::Retry(self.transport(what, &e), None),
        };
        self.judge(status, &bytes, what, table, wait)
    }

    /// What an answer means: rows, a failure to retry, or one to report.
    fn judge(
        &self,
        status: StatusCode,
        bytes: &[u8],
        what: &str,
        table: &str,
        wait: Option<Duration>,
    ) -> Attempt {
        let parsed = answer::parse(bytes);
        let (devo_status, msg) = match &parsed {
            Ok(a) => (a.status, devo_msg(a.msg.as_deref())),
            Err(_) => (None, String::new()),
        };
        // A 200 whose body says otherwise is judged by the body's status.
        let effective = match devo_status {
            Some(s) if status.is_success() && s != 0 => u16::try_from(s)
                .ok()
                .filter(|s| (400..600).contains(s))
                .unwrap_or(400),
            _ => status.as_u16(),
        };
        match effective {
            200..=299 => match parsed.and_then(answer::Answer::rows) {
                Ok(rows) => Attempt::Rows(rows),
                Err(problem) => Attempt::Retry(self.malformed(what, &problem), None),
            },
            401 => Attempt::Fatal(QueryError::Unauthorized {
                origin: self.origin.describe(),
                secret_id: self.secret_id.clone(),
                msg,
            }),
            403 => Attempt::Fatal(QueryError::Forbidden {
                origin: self.origin.describe(),
                table: table.to_owned(),
                secret_id: self.secret_id.clone(),
                msg,
            }),
            404 | 405 => Attempt::Fatal(self.malformed(
                what,
                &format!("HTTP {}: no Query API at this address", status.as_u16()),
            )),
            408 | 429 | 500..=599 => Attempt::Retry(
                QueryError::Unavailable {
                    origin: self.origin.describe(),
                    what: what.to_owned(),
                    status: effective,
                    msg,
                    hint: if effective == 429 {
                        " later: the domain's queries share the Query API's rate limit"
                    } else {
                        ""
                    },
                },
                wait,
            ),
            _ => Attempt::Fatal(QueryError::Refused {
                origin: self.origin.describe(),
                what: what.to_owned(),
                status: status.as_u16(),
                devo_status: devo_status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                msg,
            }),
        }
    }

    fn malformed(&self, what: &str, problem: &str) -> QueryError {
        QueryError::Malformed {
            origin: self.origin.describe(),
            what: what.to_owned(),
            problem: problem.to_owned(),
        }
    }

    fn transport(&self, what: &str, e: &reqwest::Error) -> QueryError {
        let detail = transport_detail(e);
        QueryError::Transport {
            origin: e.url().map_or_else(|| self.origin.describe(), target),
            what: what.to_owned(),
            detail,
        }
    }
}

/// The outcome of one request.
enum Attempt {
    Rows(Vec<Row>),
    Retry(QueryError, Option<Duration>),
    Fatal(QueryError),
}

/// Sleeps before the next attempt (`Retry-After` when given), or gives the failure back when
/// the retries are used up or the budget would end first.
async fn wait_to_retry(
    budget: &Budget,
    backoff: &mut ExponentialBackoff,
    failure: (QueryError, Option<Duration>),
    what: &str,
) -> Result<(), QueryError> {
    let (error, retry_after) = failure;
    let Some(next) = backoff.next() else {
        return Err(error);
    };
    let delay = retry_after.unwrap_or(next);
    if delay + Duration::from_millis(200) >= budget.remaining() {
        return Err(QueryError::OutOfTime {
            what: what.to_owned(),
            last: error.to_string(),
        });
    }
    QueryRetry {
        delay,
        error: &error,
    }
    .emit();
    tokio::time::sleep(delay).await;
    Ok(())
}
