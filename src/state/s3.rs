//! The state bucket in S3: conditional PUTs (`If-None-Match: *`, `If-Match`), and S3's errors
//! turned into ones that say what to fix.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use crate::state::{Condition, Object, StateError, StateStore};

/// Objects in one S3 bucket, through a client built once at cold start.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Store {
    /// Wraps a client built once at cold start.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> S3Store {
        S3Store {
            client,
            bucket: bucket.into(),
        }
    }
}

impl StateStore for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Object>, StateError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => return Ok(None),
            Err(e) => return Err(self.classify(key, "GetObject", &e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let body = out.body.collect().await.map_err(|e| StateError::S3 {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            operation: "GetObject",
            detail: format!("reading the body: {e}"),
        })?;
        Ok(Some(Object {
            body: body.into_bytes().to_vec(),
            etag,
        }))
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Condition<'_>,
    ) -> Result<String, StateError> {
        self.put_with(key, body, condition, None).await
    }

    async fn put_tagged(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Condition<'_>,
        tagging: &str,
    ) -> Result<String, StateError> {
        self.put_with(key, body, condition, Some(tagging)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify(key, "DeleteObject", &e)),
        }
    }

    fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl S3Store {
    /// A conditional PUT, with the object tags `tagging` when given.
    async fn put_with(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Condition<'_>,
        tagging: Option<&str>,
    ) -> Result<String, StateError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .set_tagging(tagging.map(str::to_owned))
            .body(ByteStream::from(body));
        let request = match condition {
            Condition::Matches(etag) => request.if_match(etag),
            Condition::Absent => request.if_none_match("*"),
        };
        match request.send().await {
            Ok(out) => Ok(out.e_tag().unwrap_or_default().to_owned()),
            Err(e) => Err(self.classify(key, "PutObject", &e)),
        }
    }

    fn classify<E>(
        &self,
        key: &str,
        operation: &'static str,
        e: &SdkError<E, HttpResponse>,
    ) -> StateError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().unwrap_or_default();
        let (bucket, key_owned) = (self.bucket.clone(), key.to_owned());
        match (status, code) {
            (Some(s @ (409 | 412)), _)
            | (Some(s), "PreconditionFailed" | "ConditionalRequestConflict") => {
                StateError::Conflict {
                    bucket,
                    key: key_owned,
                    status: s,
                }
            }
            (_, "NoSuchBucket") => StateError::NoBucket { bucket },
            (Some(s @ 403), _) | (Some(s), "AccessDenied") => StateError::Denied {
                bucket,
                key: key_owned,
                operation,
                status: s,
            },
            _ => StateError::S3 {
                bucket,
                key: key_owned,
                operation,
                detail: format!(
                    "HTTP {}: {} {}",
                    status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    code,
                    e.message()
                        .map_or_else(|| crate::error_chain(e), str::to_owned)
                ),
            },
        }
    }
}
