//! One authenticated GET of a page, retried within the tick's budget: what both APIs share.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::trace::auth::TokenSource;
use crate::trace::error::TraceError;
use crate::trace::http::{Budget, describe_transport, retry_after};

/// The client-side limiter of `REQUESTS_PER_SECOND`, shared by the clones of an API client.
pub fn rate_limiter(requests_per_second: u32) -> Arc<DefaultDirectRateLimiter> {
    let rate = NonZeroU32::new(requests_per_second).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(Quota::per_second(rate)))
}

/// A page body parsed by its API, and what getting it cost.
#[derive(Debug)]
pub struct Fetched<T> {
    /// What the API's parser made of the 200 body.
    pub value: T,
    /// Size of the body.
    pub bytes: usize,
    /// Requests made (1 unless retried).
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
    /// Parses a 200 body; an error is retried as a malformed answer.
    pub parse: P,
    /// Turns an error status and its body into the API's error (with its hint).
    pub refusal: R,
}

/// GETs `url` with a bearer token from `tokens`: waits for the rules' limiter and `before_send` before
/// each attempt, retries transport failures, malformed bodies, 408/429/5xx (honouring
/// `Retry-After`) within `budget`, and retries a 401 once with a fresh token.
pub async fn get_page<T, P, R>(
    rules: &PageRules<'_, P, R>,
    url: &str,
    tokens: &mut TokenSource,
    budget: &Budget,
    what: &str,
    mut before_send: impl AsyncFnMut() -> Result<(), TraceError>,
) -> Result<Fetched<T>, TraceError>
where
    P: Fn(&[u8]) -> Result<T, String>,
    R: Fn(u16, &[u8]) -> TraceError,
{
    let mut backoff = budget.backoff();
    let mut requests = 0;
    let mut throttled = 0;
    let mut refreshed_token = false;
    loop {
        rules.limiter.until_ready().await;
        let token = tokens.token(budget).await?;
        before_send().await?;
        requests += 1;
        let sent = rules
            .http
            .get(url)
            .header(reqwest::header::AUTHORIZATION, token.bearer())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(budget.request_timeout())
            .send()
            .await;
        let answer = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let wait = retry_after(response.headers());
                response.bytes().await.map(|body| (status, wait, body))
            }
            Err(e) => Err(e),
        };
        let (status, wait, body) = match answer {
            Ok(answer) => answer,
            Err(e) => {
                let failure = describe_transport(rules.api, what.to_owned(), &e);
                budget.wait_to_retry(&mut backoff, None, failure).await?;
                continue;
            }
        };
        if status == 200 {
            match (rules.parse)(&body) {
                Ok(value) => {
                    return Ok(Fetched {
                        value,
                        bytes: body.len(),
                        requests,
                        throttled,
                    });
                }
                Err(problem) => {
                    let failure = TraceError::Malformed {
                        api: rules.api,
                        what: what.to_owned(),
                        problem: format!("{problem} ({} bytes)", body.len()),
                    };
                    budget.wait_to_retry(&mut backoff, None, failure).await?;
                    continue;
                }
            }
        }
        if status == 429 {
            throttled += 1;
        }
        if status == 401 && !refreshed_token {
            // A token can be revoked or expire early: try once with a fresh one.
            refreshed_token = true;
            tokens.invalidate();
            continue;
        }
        let failure = (rules.refusal)(status, &body);
        if failure.is_retryable() {
            budget.wait_to_retry(&mut backoff, wait, failure).await?;
            continue;
        }
        return Err(failure);
    }
}
