//! The one-shot Runtime API serves one event and collects the answer of a tiny bash "function".

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use m365_trace_devtools::runtime_api::{Invocation, invoke_once};
use serde_json::json;

/// A bash bootstrap speaking the Runtime API over /dev/tcp: echoes the event back (or reports
/// an error, or exits) depending on MODE.
const SCRIPT: &str = r#"#!/bin/bash
set -u
host=${AWS_LAMBDA_RUNTIME_API%:*}; port=${AWS_LAMBDA_RUNTIME_API#*:}
echo "starting $AWS_LAMBDA_FUNCTION_NAME $AWS_LAMBDA_FUNCTION_VERSION $AWS_LAMBDA_FUNCTION_MEMORY_SIZE" >&2
[ "$MODE" = exit ] && exit 3
exec 3<>/dev/tcp/$host/$port
printf 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
reply=$(cat <&3)
id=$(printf '%s' "$reply" | tr -d '\r' | sed -n 's/^lambda-runtime-aws-request-id: //Ip')
deadline=$(printf '%s' "$reply" | tr -d '\r' | sed -n 's/^lambda-runtime-deadline-ms: //Ip')
event=$(printf '%s' "$reply" | tr -d '\r' | sed '1,/^$/d')
if [ "$MODE" = error ]; then
  body='{"errorType":"Boom","errorMessage":"it broke"}'; kind=error
else
  body="{\"echo\":$event,\"deadline\":$deadline}"; kind=response
fi
[ "$MODE" = hang ] && sleep 30
exec 3<>/dev/tcp/$host/$port
printf 'POST /2018-06-01/runtime/invocation/%s/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %s\r\n\r\n%s' "$id" "$kind" "${#body}" "$body" >&3
cat <&3 >/dev/null
echo "done" 
sleep 30
"#;

fn script() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("m365-devtools-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bootstrap");
    std::fs::write(&path, SCRIPT).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn invocation(mode: &str, timeout: Duration) -> Invocation {
    Invocation {
        binary: script(),
        env: vec![("MODE".into(), mode.into())],
        event: json!({"source": "aws.events", "n": 1}),
        timeout,
        function_name: "m365-trace-test".into(),
    }
}

#[tokio::test]
async fn response_error_and_exit() {
    let out = invoke_once(invocation("ok", Duration::from_secs(30)))
        .await
        .unwrap();
    let v = out.result.expect("response");
    assert_eq!(v["echo"], json!({"source": "aws.events", "n": 1}));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let deadline = v["deadline"].as_i64().unwrap();
    assert!(
        deadline > now_ms + 25_000 && deadline <= now_ms + 31_000,
        "{deadline} vs {now_ms}"
    );
    assert!(
        out.stderr.contains("starting m365-trace-test $LATEST 256"),
        "{}",
        out.stderr
    );
    assert!(out.init_to_first_next < Duration::from_secs(5));
    assert!(out.handler_duration.is_some());
    assert_eq!(out.request_id.len(), 36);

    let out = invoke_once(invocation("error", Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(out.result.unwrap_err()["errorType"], "Boom");

    let out = invoke_once(invocation("exit", Duration::from_secs(30)))
        .await
        .unwrap();
    let e = out.result.unwrap_err();
    assert_eq!(e["errorType"], "Runtime.ExitError", "{e}");
    assert!(e["errorMessage"].as_str().unwrap().contains('3'), "{e}");
}
