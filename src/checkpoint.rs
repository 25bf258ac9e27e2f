//! The checkpoint object in S3: its format, and conditional reads and writes of it.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::lease::Lease;
use crate::window::Window;

/// Format version written in every checkpoint.
pub const FORMAT_VERSION: u32 = 1;

/// The state that survives between ticks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version.
    pub version: u32,
    /// End of the last delivered window: every record received before it was sent.
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    /// A window whose newest part was delivered when a tick ran out of time.
    #[serde(default)]
    pub partial: Option<Window>,
    /// The running invocation's claim, if any.
    #[serde(default)]
    pub lease: Option<Lease>,
    /// When this object was last written.
    pub updated_at: DateTime<Utc>,
    /// Which API the records come from (informational).
    #[serde(default)]
    pub api: Option<String>,
    /// Times of the API requests of the last 5 minutes: the client-side throttle budget that
    /// survives between ticks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_requests: Vec<DateTime<Utc>>,
    /// The `RESET_BEFORE` value this checkpoint last restarted for (scheduled checkpoint only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_before: Option<DateTime<Utc>>,
    /// The range a backfill checkpoint belongs to (backfill checkpoints only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<crate::backfill::Range>,
}

impl Checkpoint {
    /// A checkpoint that has never delivered anything.
    pub fn empty(now: DateTime<Utc>) -> Checkpoint {
        Checkpoint {
            version: FORMAT_VERSION,
            end: None,
            partial: None,
            lease: None,
            updated_at: now,
            api: None,
            recent_requests: Vec::new(),
            reset_before: None,
            backfill: None,
        }
    }
}

/// A checkpoint as read, with the ETag that a replacement must match.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The content.
    pub checkpoint: Checkpoint,
    /// The object's ETag.
    pub etag: String,
}

/// Why the checkpoint could not be read or written.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The conditional write failed: another invocation wrote the object since we read it.
    #[error(
        "s3://{bucket}/{key} was changed by another invocation (HTTP {status}); this one stops"
    )]
    Conflict {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// 412 (precondition failed) or 409 (conflicting conditional write).
        status: u16,
    },
    /// The bucket does not exist.
    #[error("STATE_BUCKET {bucket} does not exist (NoSuchBucket): create it or fix STATE_BUCKET")]
    NoBucket {
        /// Bucket.
        bucket: String,
    },
    /// The role may not read or write the object.
    #[error(
        "access to s3://{bucket}/{key} was denied ({operation}, HTTP {status}): the function's role needs s3:GetObject and s3:PutObject on that key, and s3:ListBucket on the bucket so that a missing checkpoint reads as 404"
    )]
    Denied {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// GetObject or PutObject.
        operation: &'static str,
        /// HTTP status.
        status: u16,
    },
    /// Any other S3 failure.
    #[error("S3 {operation} on s3://{bucket}/{key} failed: {detail}")]
    S3 {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// GetObject or PutObject.
        operation: &'static str,
        /// Status, code and message.
        detail: String,
    },
    /// The object is not a checkpoint this version understands.
    #[error(
        "s3://{bucket}/{key} is not a valid checkpoint: {problem}; fix it, or delete it to start again from HISTORIC_DAYS back (records may be sent again)"
    )]
    Invalid {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// Reads and conditionally writes checkpoint objects in one bucket.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl CheckpointStore {
    /// Wraps a client built once at cold start.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> CheckpointStore {
        CheckpointStore {
            client,
            bucket: bucket.into(),
        }
    }

    /// Reads the checkpoint at `key`; `None` when there is none yet.
    pub async fn load(&self, key: &str) -> Result<Option<Stored>, CheckpointError> {
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
        let body = out.body.collect().await.map_err(|e| CheckpointError::S3 {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            operation: "GetObject",
            detail: format!("reading the body: {e}"),
        })?;
        let checkpoint: Checkpoint =
            serde_json::from_slice(&body.into_bytes()).map_err(|e| CheckpointError::Invalid {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                problem: e.to_string(),
            })?;
        if checkpoint.version != FORMAT_VERSION {
            return Err(CheckpointError::Invalid {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                problem: format!(
                    "format version {} is not {FORMAT_VERSION}",
                    checkpoint.version
                ),
            });
        }
        Ok(Some(Stored { checkpoint, etag }))
    }

    /// Writes `checkpoint` at `key`: creates it (`If-None-Match: *`) when `etag` is `None`,
    /// else replaces it only if it still has that ETag (`If-Match`). Returns the new ETag.
    pub async fn write(
        &self,
        key: &str,
        checkpoint: &Checkpoint,
        etag: Option<&str>,
    ) -> Result<String, CheckpointError> {
        let body = serde_json::to_vec_pretty(checkpoint).map_err(|e| CheckpointError::Invalid {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            problem: e.to_string(),
        })?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        let request = match etag {
            Some(etag) => request.if_match(etag),
            None => request.if_none_match("*"),
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
    ) -> CheckpointError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().unwrap_or_default();
        let (bucket, key_owned) = (self.bucket.clone(), key.to_owned());
        match (status, code) {
            (Some(s @ (409 | 412)), _)
            | (Some(s), "PreconditionFailed" | "ConditionalRequestConflict") => {
                CheckpointError::Conflict {
                    bucket,
                    key: key_owned,
                    status: s,
                }
            }
            (_, "NoSuchBucket") => CheckpointError::NoBucket { bucket },
            (Some(s @ 403), _) | (Some(s), "AccessDenied") => CheckpointError::Denied {
                bucket,
                key: key_owned,
                operation,
                status: s,
            },
            _ => CheckpointError::S3 {
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
