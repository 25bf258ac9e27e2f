//! A tenant's name is not reused by accident: `tenants remove` moves what the tenant kept in the
//! state bucket (checkpoint, backfills, ledger) aside, under
//! `{dir}/tenants-removed/NAME-{removed at}/`, so that a tenant added again under that name
//! starts fresh, `HISTORIC_DAYS` back; and `tenants add` refuses a name whose state is still
//! there unless told to continue from it. The keys are pure; the objects go through
//! [`Objects`] (S3 in production).

use std::future::Future;

use aws_sdk_s3::error::ProvideErrorMetadata;
use chrono::{DateTime, Utc};

use crate::state::StateError;
use crate::tenants::state_dir;

/// Where the state of removed tenants is moved, beside `tenants/`.
pub const REMOVED_DIR: &str = "tenants-removed";

/// The prefix a tenant's state is moved to when it is removed at `at`:
/// `{dir of STATE_KEY}/tenants-removed/NAME-YYYYMMDDTHHMMSSZ/`.
pub fn removed_prefix(state_key: &str, name: &str, at: DateTime<Utc>) -> String {
    let stamp = at.format("%Y%m%dT%H%M%SZ");
    match state_key.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{REMOVED_DIR}/{name}-{stamp}/"),
        None => format!("{REMOVED_DIR}/{name}-{stamp}/"),
    }
}

/// `key` moved from under `from` to under `to` (`None`: not under `from`).
pub fn moved_key(key: &str, from: &str, to: &str) -> Option<String> {
    key.strip_prefix(from).map(|rest| format!("{to}{rest}"))
}

/// Objects by prefix: what moving a tenant's state needs beyond the conditional store.
pub trait Objects: Send + Sync {
    /// The keys under `prefix`, all of them.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StateError>> + Send;
    /// Copies `from` to `to` (with its tags), then deletes `from`.
    fn rename(&self, from: &str, to: &str) -> impl Future<Output = Result<(), StateError>> + Send;
    /// The bucket, for messages.
    fn bucket(&self) -> &str;
}

/// What [`move_aside`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Moved {
    /// The prefix the state was under.
    pub from: String,
    /// The prefix it is under now.
    pub to: String,
    /// Objects moved.
    pub objects: usize,
}

/// The keys of the state kept for tenant `name`.
pub async fn state_of(
    objects: &impl Objects,
    state_key: &str,
    name: &str,
) -> Result<Vec<String>, StateError> {
    objects.list(&state_dir(state_key, name)).await
}

/// Moves every object of tenant `name`'s state under [`removed_prefix`] for `now`; stops at
/// the first failure (what was moved stays moved; the rest is where it was).
pub async fn move_aside(
    objects: &impl Objects,
    state_key: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Moved, StateError> {
    let from = state_dir(state_key, name);
    let to = removed_prefix(state_key, name, now);
    let keys = objects.list(&from).await?;
    for key in &keys {
        if let Some(target) = moved_key(key, &from, &to) {
            objects.rename(key, &target).await?;
        }
    }
    Ok(Moved {
        from,
        to,
        objects: keys.len(),
    })
}

/// [`Objects`] in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Objects {
    /// The objects of `bucket` through `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> S3Objects {
        S3Objects {
            client,
            bucket: bucket.into(),
        }
    }

    fn failed<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        key: &str,
        operation: &'static str,
        e: &E,
    ) -> StateError {
        StateError::S3 {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            operation,
            detail: format!(
                "{}: {}",
                e.code().unwrap_or("request failed"),
                e.message()
                    .map_or_else(|| crate::error_chain(e), str::to_owned)
            ),
        }
    }
}

impl Objects for S3Objects {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.failed(prefix, "ListObjectsV2", &e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), StateError> {
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(format!("{}/{from}", self.bucket))
            .send()
            .await
            .map_err(|e| self.failed(from, "CopyObject", &e))?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(from)
            .send()
            .await
            .map_err(|e| self.failed(from, "DeleteObject", &e))?;
        Ok(())
    }

    fn bucket(&self) -> &str {
        &self.bucket
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn removed_state_goes_beside_the_tenants_under_the_name_and_the_time() {
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 10, 5, 0).unwrap();
        assert_eq!(
            removed_prefix("m365-message-trace/checkpoint.json", "contoso", at),
            "m365-message-trace/tenants-removed/contoso-20261124T100500Z/"
        );
        assert_eq!(
            removed_prefix("checkpoint.json", "contoso", at),
            "tenants-removed/contoso-20261124T100500Z/"
        );
        let from = "d/tenants/contoso/";
        let to = "d/tenants-removed/contoso-20261124T100500Z/";
        assert_eq!(
            moved_key("d/tenants/contoso/ledger/a_b_1.bin", from, to).as_deref(),
            Some("d/tenants-removed/contoso-20261124T100500Z/ledger/a_b_1.bin")
        );
        assert_eq!(
            moved_key(
                "d/tenants/contoso-2/checkpoint.json",
                "d/tenants/contoso-2/",
                to
            )
            .as_deref(),
            Some("d/tenants-removed/contoso-20261124T100500Z/checkpoint.json")
        );
        assert_eq!(moved_key("d/tenants/other/checkpoint.json", from, to), None);
    }
}
