//! The failures S3 has, on the harness's S3 client: a request matching a rule still reaches
//! moto, and its answer is replaced by S3's error (a 403 on an object the role may not read or
//! KMS may not decrypt, a 500 answering a PUT that S3 applied). An interceptor of the real SDK
//! client, so that its retries behave as against S3.

use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// One fault: which requests, what S3 answers instead, how often.
#[derive(Debug, Clone)]
pub struct S3Fault {
    /// `GET` or `PUT`.
    pub method: &'static str,
    /// A part of the object's key.
    pub key_contains: String,
    /// Matching requests let through before the fault starts.
    pub skip: usize,
    /// Matching requests answered with the fault, then it ends.
    pub times: usize,
    /// The HTTP status S3 answers.
    pub status: u16,
    /// S3's error code.
    pub code: &'static str,
}

/// The faults of one harness, and how many requests each answered.
#[derive(Debug, Default)]
pub struct S3Faults {
    rules: Mutex<Vec<(S3Fault, usize)>>,
}

impl S3Faults {
    /// Adds `fault`.
    pub fn add(&self, fault: S3Fault) {
        self.rules.lock().unwrap().push((fault, 0));
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// Requests answered with a fault so far.
    pub fn answered(&self) -> usize {
        self.rules
            .lock()
            .unwrap()
            .iter()
            .map(|(f, seen)| seen.saturating_sub(f.skip).min(f.times))
            .sum()
    }

    fn matching(&self, method: &str, uri: &str) -> Option<(u16, &'static str)> {
        let mut answer = None;
        for (fault, seen) in self.rules.lock().unwrap().iter_mut() {
            if fault.method != method || !uri.contains(&fault.key_contains) {
                continue;
            }
            *seen += 1;
            if answer.is_none() && *seen > fault.skip && *seen - fault.skip <= fault.times {
                answer = Some((fault.status, fault.code));
            }
        }
        answer
    }
}

/// The answer chosen for the request of this attempt.
#[derive(Debug, Clone)]
struct Answer(Option<(u16, &'static str)>);

impl Storable for Answer {
    type Storer = StoreReplace<Self>;
}

/// The interceptor installed on the harness's S3 client.
#[derive(Debug, Clone)]
pub struct FaultInterceptor(pub Arc<S3Faults>);

impl Intercept for FaultInterceptor {
    fn name(&self) -> &'static str {
        "S3Faults"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let answer = self.0.matching(request.method(), request.uri());
        cfg.interceptor_state().store_put(Answer(answer));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Answer(Some((status, code)))) = cfg.load::<Answer>().cloned() else {
            return Ok(());
        };
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected by the test</Message><RequestId>test</RequestId></Error>"#
        );
        let response = context.response_mut();
        *response.status_mut() = status.try_into()?;
        let headers = response.headers_mut();
        for name in [
            "content-length",
            "etag",
            "content-type",
            "transfer-encoding",
        ] {
            headers.remove(name);
        }
        headers.insert("content-type", "application/xml");
        headers.insert("content-length", body.len().to_string());
        *response.body_mut() = SdkBody::from(body);
        Ok(())
    }
}
