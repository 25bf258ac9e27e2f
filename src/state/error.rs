//! Why the state in S3 could not be read or written, with what to fix.

use thiserror::Error;

/// Why a state object (checkpoint, and later ledgers and the tenant registry) could not be
/// read or written.
#[derive(Debug, Error)]
pub enum StateError {
    /// The conditional write failed: another invocation wrote the object since we read it.
    #[error(
        "s3://{bucket}/{key} was changed by another invocation (HTTP {status}); this one stops"
    )]
    Conflict {
        bucket: String,
        key: String,
        /// 412 (precondition failed) or 409 (conflicting conditional write).
        status: u16,
    },
    /// The bucket does not exist.
    #[error("STATE_BUCKET {bucket} does not exist (NoSuchBucket): create it or fix STATE_BUCKET")]
    NoBucket { bucket: String },
    /// The role may not read or write the object.
    #[error(
        "access to s3://{bucket}/{key} was denied ({operation}, HTTP {status}): the function's role needs s3:GetObject and s3:PutObject on that key, and s3:ListBucket on the bucket so that a missing checkpoint reads as 404"
    )]
    Denied {
        bucket: String,
        key: String,
        /// GetObject or PutObject.
        operation: &'static str,
        /// HTTP status.
        status: u16,
    },
    /// Any other S3 failure.
    #[error("S3 {operation} on s3://{bucket}/{key} failed: {detail}")]
    S3 {
        bucket: String,
        key: String,
        /// GetObject or PutObject.
        operation: &'static str,
        /// Status, code and message.
        detail: String,
    },
    /// The object is not one this version understands.
    #[error(
        "s3://{bucket}/{key} is not a valid checkpoint: {problem}; fix it, or delete it to start again from HISTORIC_DAYS back (records may be sent again)"
    )]
    Invalid {
        bucket: String,
        key: String,
        /// What is wrong.
        problem: String,
    },
}

impl StateError {
    /// Whether the write failed its precondition: another invocation owns the state now.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StateError::Conflict { .. })
    }
}
