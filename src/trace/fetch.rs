//! One authenticated GET of a page, retried within the tick's budget: what both APIs share.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::trace::auth::{AccessToken, TokenSource};
use crate::trace::error::TraceError;
use crate::trace::http::{Budget, describe_transport, retry_after};
use crate::trace::origin::Origin;

/// The client-side limiter of `REQUESTS_PER_SECOND`, shared by the clones of an API client.
pub fn rate_limiter(requests_per_second: u32) -> Arc<DefaultDirectRateLimiter> {
    let rate = NonZeroU32::new(requests_per_second).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(Quota::per_second(rate)))
}

/// A page body parsed by its API, and its size.
#[derive(Debug)]
pub struct Fetched<T> {
    /// What the API's parser made of the 200 body.
    pub value: T,
    /// Size of the body (as decoded, when it came compressed).
    pub bytes: usize,
}

/// What getting pages cost: counted as each request is sent, so that a page that fails (out of
/// retries, out of time after a 429) is counted too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    /// Requests sent (1 per page unless retried).
    pub requests: u32,
    /// Of those, the ones answered 429.
    pub throttled: u32,
}

/// Where one API's pages come from and how its answers are read.
pub struct PageRules<'a, P, R> {
    /// The HTTP client.
    pub http: &'a reqwest::Client,
    /// The client-side request rate.
    pub limiter: &'a DefaultDirectRateLimiter,
    /// `graph` or `reporting`, for errors.
    pub api: &'static str,
    /// The only origin the bearer token is sent to.
    pub origin: &'a Origin,
    /// Parses a 200 body; an error is retried as a malformed answer.
    pub parse: P,
    /// Turns an error status and its body into the API's error (with its hint).
    pub refusal: R,
    /// Headers every request sends besides the token (Graph: `Prefer`).
    pub headers: &'a [(&'static str, &'static str)],
    /// Whether a 429 is waited out (its `Retry-After`) and retried; when not, it is returned at
    /// once (delivery details stop for the tick rather than wait for the quota).
    pub wait_when_throttled: bool,
}

impl<P, R> PageRules<'_, P, R> {
    /// The error for a nextLink or redirect to `target`, outside the API's origin.
    fn off_origin(&self, what: &str, via: &'static str, target: String) -> TraceError {
        TraceError::OffOrigin {
            api: self.api,
            what: what.to_owned(),
            via,
            target,
            allowed: self.origin.describe(),
            var: self.origin.var(),
        }
    }
}

/// One answer as received.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    /// Where a 3xx pointed, when outside the origin.
    redirect: Option<String>,
    body: Vec<u8>,
}

/// What to do after one answer.
enum Next<T> {
    Done(T),
    Retry(TraceError, Option<Duration>),
    FreshToken,
    Fail(TraceError),
}

/// What an API's request budget does around each attempt at a page: Graph's keeps the tenant's
/// quota ([`crate::trace::request_budget`]); the Reporting Web Service has none ([`NoGate`]).
pub trait Gate {
    /// Waits until one more request may be sent, or says why none may.
    fn before_send(&mut self) -> impl Future<Output = Result<(), TraceError>> + Send;
    /// Hears that the attempt just made was answered 429.
    fn throttled(&mut self);
}

/// No request budget: every attempt may go at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGate;

impl Gate for NoGate {
    fn before_send(&mut self) -> impl Future<Output = Result<(), TraceError>> + Send {
        std::future::ready(Ok(()))
    }
    fn throttled(&mut self) {}
}

/// GETs `url` with a bearer token from `tokens`: waits for the rules' limiter and the `gate`
/// before each attempt (and tells it of each 429), counts each attempt in `spent`, retries transport failures, malformed bodies,
/// 408/429/5xx (honouring `Retry-After`) within `budget`, and retries a 401 once with a fresh
/// token. A `url` outside the rules' origin, or a redirect out of it, is refused without sending
/// the token there.
pub async fn get_page<T, P, R>(
    rules: &PageRules<'_, P, R>,
    url: &str,
    tokens: &mut TokenSource,
    budget: &Budget,
    what: &str,
    gate: &mut impl Gate,
    spent: &mut Spent,
) -> Result<Fetched<T>, TraceError>
where
    P: Fn(&[u8]) -> Result<T, String>,
    R: Fn(u16, &[u8]) -> TraceError,
{
    let url = rules
        .origin
        .admit(url)
        .map_err(|target| rules.off_origin(what, "nextLink", target))?;
    let mut backoff = budget.backoff();
    let mut refreshed_token = false;
    loop {
        rules.limiter.until_ready().await;
        let token = tokens.token(budget).await?;
        gate.before_send().await?;
        spent.requests += 1;
        let answer = match send(rules, &url, &token, budget).await {
            Ok(answer) => answer,
            Err(e) => {
                let failure = describe_transport(rules.api, what.to_owned(), &e);
                budget.wait_to_retry(&mut backoff, None, failure).await?;
                continue;
            }
        };
        if answer.status == 429 {
            spent.throttled += 1;
            gate.throttled();
        }
        match judge(rules, what, answer, &mut refreshed_token) {
            Next::Done(value) => return Ok(value),
            Next::Retry(failure, wait) => budget.wait_to_retry(&mut backoff, wait, failure).await?,
            Next::FreshToken => tokens.invalidate(),
            Next::Fail(failure) => return Err(failure),
        }
    }
}

/// One GET with the token, the whole body read.
async fn send<P, R>(
    rules: &PageRules<'_, P, R>,
    url: &reqwest::Url,
    token: &AccessToken,
    budget: &Budget,
) -> Result<Answer, reqwest::Error> {
    let mut request = rules
        .http
        .get(url.clone())
        .header(reqwest::header::AUTHORIZATION, token.bearer())
        .header(reqwest::header::ACCEPT, "application/json");
    for (name, value) in rules.headers {
        request = request.header(*name, *value);
    }
    let response = request.timeout(budget.request_timeout()).send().await?;
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let redirect = response
        .status()
        .is_redirection()
        .then(|| rules.origin.redirect_target(url, response.headers()))
        .flatten();
    let body = response.bytes().await?.into();
    Ok(Answer {
        status,
        retry_after,
        redirect,
        body,
    })
}

/// Reads one answer: the parsed page, or whether and how to try again.
fn judge<T, P, R>(
    rules: &PageRules<'_, P, R>,
    what: &str,
    answer: Answer,
    refreshed_token: &mut bool,
) -> Next<Fetched<T>>
where
    P: Fn(&[u8]) -> Result<T, String>,
    R: Fn(u16, &[u8]) -> TraceError,
{
    let Answer {
        status,
        retry_after,
        redirect,
        body,
    } = answer;
    match (status, redirect) {
        (200, _) => match (rules.parse)(&body) {
            Ok(value) => Next::Done(Fetched {
                value,
                bytes: body.len(),
            }),
            Err(problem) => Next::Retry(
                TraceError::Malformed {
                    api: rules.api,
                    what: what.to_owned(),
                    problem: format!("{problem} ({} bytes)", body.len()),
                },
                None,
            ),
        },
        // The redirect policy hands back a redirect that leaves the origin without following it.
        (300..=399, Some(target)) => Next::Fail(rules.off_origin(what, "redirect", target)),
        // A token can be revoked or expire early: try once with a fresh one.
        (401, _) if !*refreshed_token => {
            *refreshed_token = true;
            Next::FreshToken
        }
        _ => {
            let failure = (rules.refusal)(status, &body);
            if status == 429 && !rules.wait_when_throttled {
                Next::Fail(failure)
            } else if failure.is_retryable() {
                Next::Retry(failure, retry_after)
            } else {
                Next::Fail(failure)
            }
        }
    }
}
