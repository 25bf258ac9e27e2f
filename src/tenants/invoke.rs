//! The production [`Invoker`]: Lambda `Invoke` of the function itself with
//! `InvocationType=Event` (queued, answered 202 at once). `AWS_ENDPOINT_URL_LAMBDA` points the
//! SDK at a local stand-in in tests and in the benchmark.

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use aws_sdk_lambda::config::retry::RetryConfig;

use crate::tenants::retry::{Invoker, Refused};

/// Invokes one function asynchronously.
#[derive(Debug, Clone)]
pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaInvoker {
    /// Invokes `function` (a name or ARN: the dispatcher's own) through `client`.
    pub fn new(client: aws_sdk_lambda::Client, function: String) -> LambdaInvoker {
        LambdaInvoker { client, function }
    }
}

impl Invoker for LambdaInvoker {
    async fn invoke(&self, payload: Vec<u8>) -> Result<(), Refused> {
        // The dispatch retries throttling itself, within its deadline ([`crate::tenants::retry`]).
        let once = aws_sdk_lambda::config::Builder::default().retry_config(RetryConfig::disabled());
        let out = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .customize()
            .config_override(once)
            .send()
            .await
            .map_err(|e| {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let code = e.code().map(str::to_owned);
                let message = e
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| crate::error_chain(&e));
                let shown = code.as_deref().unwrap_or("request failed");
                let status_text = status.map_or_else(String::new, |s| format!(" (HTTP {s})"));
                let hint = if status == Some(403) {
                    " (the role needs lambda:InvokeFunction on its own function)"
                } else {
                    ""
                };
                Refused {
                    message: format!(
                        "Invoke {}: {shown}{status_text}: {message}{hint}",
                        self.function
                    ),
                    status,
                    code,
                }
            })?;
        match out.status_code() {
            202 => Ok(()),
            status => Err(Refused {
                status: u16::try_from(status).ok(),
                code: None,
                message: format!(
                    "Invoke {} answered HTTP {status}, not 202 Accepted",
                    self.function
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use m365_trace_devtools::lambda::InvokeServer;

    use super::*;

    fn client(url: &str) -> aws_sdk_lambda::Client {
        let config = aws_sdk_lambda::Config::builder()
            .endpoint_url(url)
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .behavior_version_latest()
            .build();
        aws_sdk_lambda::Client::from_conf(config)
    }

    #[tokio::test]
    async fn an_asynchronous_invoke_reaches_the_stand_in_with_its_payload() {
        let server = InvokeServer::start().await.unwrap();
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:collector";
        let invoker = LambdaInvoker::new(client(&server.url()), arn.into());
        invoker
            .invoke(br#"{"tenant":"contoso"}"#.to_vec())
            .await
            .unwrap();
        let seen = server.invocations();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].function, arn);
        assert_eq!(seen[0].payload, serde_json::json!({"tenant": "contoso"}));
        server.refuse_containing(Some("fabrikam"));
        let err = invoker
            .invoke(br#"{"tenant":"fabrikam"}"#.to_vec())
            .await
            .unwrap_err();
        assert_eq!(err.status, Some(429));
        assert_eq!(err.code.as_deref(), Some("TooManyRequestsException"));
        assert!(
            err.message.contains("TooManyRequestsException (HTTP 429)"),
            "{err:?}"
        );
        assert_eq!(
            server.attempts()[r#"{"tenant":"fabrikam"}"#],
            1,
            "the SDK does not retry on its own"
        );
    }
}
