//! Many tenants from one deployment, end to end through the real handler: moto (S3 + Secrets
//! Manager), one Graph-like server that knows 50 tenants, one mutual-TLS relay and a local
//! Lambda `Invoke` stand-in. One scheduled event dispatches 50 ticks; running them side by
//! side delivers every tenant's records exactly once with its own hostname, under its own
//! checkpoint, and a tenant with a wrong secret fails alone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{TimeDelta, Utc};
use lambda_runtime::{Context, LambdaEvent};
use m365_trace_devtools::devo::DevoListener;
use m365_trace_devtools::graph::{GraphServer, GraphServerConfig};
use m365_trace_devtools::lambda::InvokeServer;
use m365_trace_devtools::pki::TestPki;
use m365_trace_devtools::records::{GraphRecord, generate};
use m365_trace_to_devo::app::{App, Clients};
use m365_trace_to_devo::config::Config;
use serde_json::{Value, json};

const TENANTS: usize = 50;
const WRONG_SECRET: usize = 7;
const OWN_HOSTNAME: usize = 11;
const REGISTRY_KEY: &str = "m365-message-trace/tenants.json";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:collector";

fn name(i: usize) -> String {
    format!("tenant-{i:02}")
}

fn tenant_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn hostname(i: usize) -> String {
    if i == OWN_HOSTNAME {
        "own-host".to_owned()
    } else {
        name(i)
    }
}

/// Everything the 50 tenants share: one of each stand-in, one bucket, one app.
struct Fleet {
    _graph: GraphServer,
    devo: DevoListener,
    invoke: InvokeServer,
    clients: Clients,
    bucket: String,
    env: HashMap<String, String>,
    records: Vec<Vec<GraphRecord>>,
}

async fn create_secret(clients: &Clients, id: &str, value: &Value) {
    clients
        .secrets
        .create_secret()
        .name(id)
        .secret_string(value.to_string())
        .send()
        .await
        .expect("create secret");
}

impl Fleet {
    async fn start() -> Fleet {
        Fleet::start_n(TENANTS).await
    }

    /// `n` tenants with records, their secrets, and a registry listing them and a paused one.
    async fn start_n(n: usize) -> Fleet {
        let pki = TestPki::generate(&["localhost", "127.0.0.1"]).expect("pki");
        let (start, end) = (
            Utc::now() - TimeDelta::hours(47),
            Utc::now() - TimeDelta::hours(26),
        );
        let records: Vec<Vec<GraphRecord>> = (0..n)
            .map(|i| generate(1000 + i as u64, start, end, 12))
            .collect();
        let graph = GraphServer::start_tenants(
            (0..n)
                .map(|i| GraphServerConfig {
                    tenant_id: tenant_id(i),
                    client_id: CLIENT_ID.into(),
                    client_secret: format!("secret-{i}"),
                    records: records[i].clone(),
                })
                .collect(),
        )
        .await
        .expect("graph server");
        let devo = DevoListener::start(&pki).await.expect("devo listener");
        let invoke = InvokeServer::start().await.expect("invoke stand-in");
        let mut clients = moto_clients().await;
        clients.lambda = lambda_client(&invoke.url());
        let bucket = format!(
            "tenants-{}-{}",
            std::process::id(),
            Utc::now().timestamp_subsec_nanos()
        );
        clients
            .s3
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("bucket");
        // SECRET_ID holds only the Devo material, shared by the tenants whose secret has none.
        let shared_id = format!("{bucket}/devo");
        let devo_material = json!({"devo_cert_pem": pki.client_cert_pem, "devo_key_pem": pki.client_key_pem, "devo_chain_pem": pki.ca_pem});
        create_secret(&clients, &shared_id, &devo_material).await;
        let mut entries = Vec::new();
        for i in 0..n {
            let secret = if i == WRONG_SECRET {
                "not-the-secret".to_owned()
            } else {
                format!("secret-{i}")
            };
            let mut value =
                json!({"tenant_id": tenant_id(i), "client_id": CLIENT_ID, "client_secret": secret});
            if i % 2 == 1 {
                // Half the tenants carry their own Devo material.
                value
                    .as_object_mut()
                    .unwrap()
                    .extend(devo_material.as_object().unwrap().clone());
            }
            let id = format!("{bucket}/{}", name(i));
            create_secret(&clients, &id, &value).await;
            let mut entry = json!({"name": name(i), "secret_id": id});
            if i == OWN_HOSTNAME {
                entry["devo_hostname"] = json!("own-host");
            }
            entries.push(entry);
        }
        entries.push(json!({"name": "paused", "secret_id": "none", "enabled": false}));
        let registry = json!({ "tenants": entries }).to_string();
        clients
            .s3
            .put_object()
            .bucket(&bucket)
            .key(REGISTRY_KEY)
            .body(ByteStream::from(registry.into_bytes()))
            .send()
            .await
            .expect("registry");
        let env: HashMap<String, String> = [
            ("SECRET_ID", shared_id.as_str()),
            ("STATE_BUCKET", bucket.as_str()),
            ("TENANTS_KEY", REGISTRY_KEY),
            ("LOGIN_URL", graph.url().as_str()),
            ("GRAPH_URL", graph.url().as_str()),
            ("DEVO_ADDRESS", devo.address().as_str()),
            ("DEVO_SERVER_NAME", "localhost"),
            ("HISTORIC_DAYS", "2"),
            ("PAGE_SIZE", "50"),
            ("REQUESTS_PER_SECOND", "100"),
            ("REQUEST_TIMEOUT_SECONDS", "10"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Fleet {
            _graph: graph,
            devo,
            invoke,
            clients,
            bucket,
            env,
            records,
        }
    }

    fn app(&self, env: &HashMap<String, String>) -> App {
        App::new(
            Config::from_lookup(|k| env.get(k).cloned()),
            self.clients.clone(),
            fast_options(),
        )
    }

    /// Writes `value` as the object at `key`.
    async fn put(&self, key: &str, value: &Value) {
        self.clients
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(value.to_string().into_bytes()))
            .send()
            .await
            .expect("put object");
    }

    /// The registry entry of tenant `i`, with its secret.
    fn entry(&self, i: usize) -> Value {
        json!({"name": name(i), "secret_id": format!("{}/{}", self.bucket, name(i))})
    }

    /// Runs every queued invocation through the handler, side by side; by tenant.
    async fn run_queued(&self, app: &App) -> HashMap<String, Result<Value, (String, String)>> {
        let ticks =
            self.invoke
                .invocations()
                .into_iter()
                .enumerate()
                .map(|(n, invocation)| async move {
                    let tenant = invocation.payload["tenant"].as_str().unwrap().to_owned();
                    (
                        tenant,
                        invoke(app, invocation.payload, &format!("tick-{n}")).await,
                    )
                });
        futures_util::future::join_all(ticks)
            .await
            .into_iter()
            .collect()
    }

    /// The record keys that reached Devo under `host`, sorted.
    fn keys_under(&self, host: &str) -> Vec<String> {
        let keys = trace_lines(&self.devo)
            .iter()
            .map(|line| host_and_key(line))
            .filter(|(h, _)| h == host)
            .map(|(_, key)| key)
            .collect();
        sorted(keys)
    }

    async fn object(&self, key: &str) -> Option<Value> {
        let out = self
            .clients
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        let body = out.body.collect().await.ok()?.into_bytes();
        Some(serde_json::from_slice(&body).expect("JSON"))
    }
}

fn lambda_client(url: &str) -> aws_sdk_lambda::Client {
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

/// The real handler, as Lambda runs it; a failure is its `errorType` and message.
async fn invoke(app: &App, event: Value, request_id: &str) -> Result<Value, (String, String)> {
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    context.invoked_function_arn = FUNCTION_ARN.to_owned();
    context.deadline =
        u64::try_from((Utc::now() + TimeDelta::seconds(120)).timestamp_millis()).unwrap();
    m365_trace_to_devo::lambda::handler::handle(app, LambdaEvent::new(event, context))
        .await
        .map_err(|e| {
            let d = lambda_runtime::Diagnostic::from(e);
            (d.error_type, d.error_message)
        })
}

/// The host field and the record key of a relay line.
fn host_and_key(line: &str) -> (String, String) {
    let (header, json) = line.split_once(": ").expect("header: json");
    let host = header.split(' ').nth(2).expect("host field").to_owned();
    let json: Value = serde_json::from_str(json).expect("JSON");
    let key = format!(
        "{}|{}",
        json["MessageTraceId"].as_str().unwrap(),
        json["RecipientAddress"].as_str().unwrap_or("")
    );
    (host, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_scheduled_event_runs_fifty_isolated_tenants() {
    let fleet = Fleet::start().await;
    let app = Arc::new(fleet.app(&fleet.env));

    // The schedule's event runs no tick: it starts one per enabled tenant.
    let summary = invoke(&app, scheduled_event(), "dispatcher")
        .await
        .expect("dispatch");
    assert_eq!(summary["tenants"], json!(TENANTS + 1));
    assert_eq!(summary["dispatched"].as_array().unwrap().len(), TENANTS);
    assert_eq!(summary["disabled"], json!(["paused"]));
    assert_eq!(summary["failed"], json!([]));
    let invocations = fleet.invoke.invocations();
    assert_eq!(invocations.len(), TENANTS);
    assert!(invocations.iter().all(|i| i.function == FUNCTION_ARN));
    assert_eq!(
        trace_lines(&fleet.devo).len(),
        0,
        "the dispatcher sends nothing itself"
    );

    // Lambda runs the 50 queued invocations side by side (polled together on this task: the
    // handler's future is not `Send`, so it is not spawned).
    let ticks = invocations.into_iter().enumerate().map(|(n, invocation)| {
        let app = app.clone();
        async move {
            let tenant = invocation.payload["tenant"].as_str().unwrap().to_owned();
            let outcome = invoke(&app, invocation.payload, &format!("tick-{n}")).await;
            (tenant, outcome)
        }
    });
    let outcomes: HashMap<String, Result<Value, (String, String)>> =
        futures_util::future::join_all(ticks)
            .await
            .into_iter()
            .collect();
    assert_eq!(outcomes.len(), TENANTS);
    for i in 0..TENANTS {
        let outcome = &outcomes[&name(i)];
        if i == WRONG_SECRET {
            let (error_type, message) = outcome.as_ref().unwrap_err();
            assert_eq!(error_type, "Microsoft", "{message}");
        } else {
            let summary = outcome
                .as_ref()
                .unwrap_or_else(|e| panic!("{}: {e:?}", name(i)));
            assert_eq!(summary["tenant"], json!(name(i)));
            assert_eq!(summary["caught_up"], json!(true), "{}", name(i));
        }
    }

    // Every tenant's records exactly once, under its own hostname; nothing of the failed one.
    let mut by_host: HashMap<String, Vec<String>> = HashMap::new();
    for line in trace_lines(&fleet.devo) {
        let (host, key) = host_and_key(&line);
        by_host.entry(host).or_default().push(key);
    }
    for i in 0..TENANTS {
        let got = by_host.remove(&hostname(i)).unwrap_or_default();
        let expected = if i == WRONG_SECRET {
            Vec::new()
        } else {
            sorted(fleet.records[i].iter().map(record_key).collect())
        };
        assert_same_keys(got, expected, &name(i));
    }
    assert!(
        by_host.is_empty(),
        "lines under unexpected hosts: {:?}",
        by_host.keys()
    );

    // Each tenant's tick sent its own status line, under its own hostname (the failed one too,
    // with why); the dispatcher sent none.
    let mut status_by_host: HashMap<String, Vec<Value>> = HashMap::new();
    for line in fleet.devo.lines().into_iter().filter(|l| is_status_line(l)) {
        let (header, json) = line.split_once(": ").expect("header: json");
        let host = header.split(' ').nth(2).expect("host field").to_owned();
        let json: Value = serde_json::from_str(json).expect("JSON");
        status_by_host.entry(host).or_default().push(json);
    }
    for i in 0..TENANTS {
        let lines = status_by_host.remove(&hostname(i)).unwrap_or_default();
        assert_eq!(lines.len(), 1, "{}: {lines:?}", name(i));
        let line = &lines[0];
        assert_eq!(line["tenant"], json!(name(i)), "{line}");
        if i == WRONG_SECRET {
            assert_eq!(
                (&line["outcome"], &line["error_type"]),
                (&json!("failed"), &json!("Microsoft")),
                "{line}"
            );
        } else {
            assert_eq!(line["outcome"], json!("succeeded"), "{line}");
            assert_eq!(line["events_sent"], json!(fleet.records[i].len()), "{line}");
        }
    }
    assert!(
        status_by_host.is_empty(),
        "status lines under unexpected hosts: {status_by_host:?}"
    );

    // Each tenant has its own checkpoint; the failed one says why.
    for i in 0..TENANTS {
        let key = format!("m365-message-trace/tenants/{}/checkpoint.json", name(i));
        let checkpoint = fleet.object(&key).await.unwrap_or_else(|| panic!("{key}"));
        assert!(checkpoint["lease"].is_null(), "{key}: lease released");
        if i == WRONG_SECRET {
            assert_eq!(checkpoint["last_error"]["error_type"], json!("Microsoft"));
        } else {
            assert!(
                checkpoint["end"].is_string() && checkpoint.get("last_error").is_none(),
                "{key}: {checkpoint}"
            );
        }
    }
    assert!(
        fleet
            .object("m365-message-trace/checkpoint.json")
            .await
            .is_none(),
        "no single-tenant checkpoint"
    );
    operate_from_the_command_line(&fleet).await;
}

/// Runs the CLI with the fleet's environment; returns its exit status, stdout and stderr.
async fn cli(fleet: &Fleet, args: &[&str]) -> (i32, String, String) {
    run_cli(args, fleet.env.clone()).await
}

/// `tenants list` shows each tenant's checkpoint, lag and last error; edits are conditional
/// writes; `--tenant` runs one tenant's plan and tick.
async fn operate_from_the_command_line(fleet: &Fleet) {
    let (code, out, err) = cli(fleet, &["tenants", "list", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).expect("JSON list");
    assert_eq!(rows.len(), TENANTS + 1);
    let failed = &rows[WRONG_SECRET];
    assert_eq!(failed["last_error"]["error_type"], json!("Microsoft"));
    // Two passes (FRESH_DELAY_SECONDS 600): the fresh pass is minutes behind; the span it
    // pulled younger than DELAY_SECONDS (90 000 s) waits for its second look, found empty or
    // not, so the record is complete up to now − DELAY_SECONDS.
    let fresh_lag = rows[0]["fresh_lag_seconds"].as_i64().unwrap();
    assert!((600..3600).contains(&fresh_lag), "{fresh_lag}");
    let lag = rows[0]["lag_seconds"].as_i64().unwrap();
    assert!((90_000..93_600).contains(&lag), "{lag}");
    let (code, out, _) = cli(fleet, &["tenants", "list"]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("TENANT"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("tenant-07") && l.contains("Microsoft")),
        "{out}"
    );

    let (code, out, err) = cli(fleet, &["plan", "--tenant", "tenant-03", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("m365-message-trace/tenants/tenant-03/checkpoint.json"),
        "{out}"
    );
    let (code, out, err) = cli(fleet, &["tick", "--tenant", "tenant-03", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["events_sent"],
        json!(0),
        "nothing twice"
    );
    // Without --tenant, a registry deployment's tick is refused: there is no one tenant.
    let (code, _, err) = cli(fleet, &["tick"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("name one with --tenant NAME"), "{err}");

    let (code, _, err) = cli(
        fleet,
        &[
            "tenants",
            "add",
            "newco",
            "--secret-id",
            "s/newco",
            "--disabled",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(
        fleet,
        &["tenants", "add", "newco", "--secret-id", "s/other"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("\"newco\" is already in the registry"),
        "{err}"
    );
    let (code, _, err) = cli(fleet, &["tick", "--tenant", "newco"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("\"newco\" is disabled"), "{err}");
    let (code, _, err) = cli(fleet, &["tenants", "pause", "tenant-03"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(fleet, &["tenants", "remove", "newco"]).await;
    assert_eq!(code, 0, "{err}");
    let registry = fleet.object(REGISTRY_KEY).await.unwrap();
    let entries = registry["tenants"].as_array().unwrap();
    assert_eq!(entries.len(), TENANTS + 1);
    assert_eq!(entries[3]["enabled"], json!(false));
    let (code, _, err) = cli(fleet, &["tenants", "add", "Bad_Name", "--secret-id", "s"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("[a-z0-9]"), "{err}");
}

#[tokio::test]
async fn events_for_tenants_that_cannot_run_are_refused_by_name() {
    let fleet = Fleet::start().await;
    let app = fleet.app(&fleet.env);
    let (error_type, message) = invoke(&app, json!({"tenant": "ghost"}), "r1")
        .await
        .unwrap_err();
    assert_eq!(error_type, "Tenant");
    assert!(
        message.contains("\"ghost\" is not in the registry"),
        "{message}"
    );
    let (error_type, message) = invoke(&app, json!({"tenant": "paused"}), "r2")
        .await
        .unwrap_err();
    assert_eq!(error_type, "Tenant");
    assert!(message.contains("\"paused\" is disabled"), "{message}");
    let backfill =
        json!({"backfill": {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}});
    let (error_type, message) = invoke(&app, backfill, "r3").await.unwrap_err();
    assert_eq!(error_type, "Tenant");
    assert!(
        message.contains("a backfill must name its tenant"),
        "{message}"
    );

    // A missing or malformed registry names the key.
    let mut env = fleet.env.clone();
    env.insert(
        "TENANTS_KEY".into(),
        "m365-message-trace/nowhere.json".into(),
    );
    let (error_type, message) = invoke(&fleet.app(&env), scheduled_event(), "r4")
        .await
        .unwrap_err();
    assert_eq!(error_type, "Registry");
    assert!(
        message.contains("nowhere.json (TENANTS_KEY) does not exist"),
        "{message}"
    );
    fleet
        .put(
            "m365-message-trace/bad.json",
            &json!({"tenants": [{"name": "x"}]}),
        )
        .await;
    env.insert("TENANTS_KEY".into(), "m365-message-trace/bad.json".into());
    // An entry without a secret cannot run: reported, not a failed invocation.
    let summary = invoke(&fleet.app(&env), scheduled_event(), "r5")
        .await
        .expect("a bad entry fails alone");
    assert_eq!(summary["dispatched"], json!([]));
    assert_eq!(summary["invalid"][0]["name"], json!("x"));
    let problem = summary["invalid"][0]["problem"].as_str().unwrap();
    assert!(problem.contains("missing field `secret_id`"), "{problem}");
    // An object that is not {"tenants": [...]} is the registry as a whole.
    fleet
        .put("m365-message-trace/bad.json", &json!({"tenants": {"x": 1}}))
        .await;
    let (error_type, message) = invoke(&fleet.app(&env), scheduled_event(), "r5b")
        .await
        .unwrap_err();
    assert_eq!(error_type, "Registry");
    assert!(
        message.contains("bad.json (TENANTS_KEY) is not valid"),
        "{message}"
    );

    // A tenant whose secret does not exist fails before its lease; `tenants list` still says why.
    let lone =
        json!({"tenants": [{"name": "lost", "secret_id": "m365-trace-to-devo/does-not-exist"}]});
    fleet
        .clients
        .s3
        .put_object()
        .bucket(&fleet.bucket)
        .key("m365-message-trace/lone.json")
        .body(ByteStream::from(lone.to_string().into_bytes()))
        .send()
        .await
        .unwrap();
    env.insert("TENANTS_KEY".into(), "m365-message-trace/lone.json".into());
    let (error_type, message) = invoke(&fleet.app(&env), json!({"tenant": "lost"}), "r7")
        .await
        .unwrap_err();
    assert_eq!(error_type, "Secret", "{message}");
    let checkpoint = fleet
        .object("m365-message-trace/tenants/lost/checkpoint.json")
        .await
        .expect("the failure is recorded");
    assert_eq!(checkpoint["last_error"]["error_type"], json!("Secret"));
    assert!(checkpoint["end"].is_null());

    // Without a registry, a tenant's event is refused and says how to fix it.
    env.remove("TENANTS_KEY");
    let (error_type, message) = invoke(&fleet.app(&env), json!({"tenant": "tenant-01"}), "r6")
        .await
        .unwrap_err();
    assert_eq!(error_type, "Tenant");
    assert!(message.contains("TENANTS_KEY is not set"), "{message}");
    assert_eq!(trace_lines(&fleet.devo).len(), 0);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_entry_fails_alone_and_the_others_run_once() {
    let fleet = Fleet::start_n(3).await;
    let app = fleet.app(&fleet.env);
    let mut first = fleet.entry(0);
    first["comment"] = json!("onboarded 2026-11");
    let mut bad = fleet.entry(1);
    bad["name"] = json!("Tenant_01");
    fleet
        .put(
            REGISTRY_KEY,
            &json!({"tenants": [first, bad, fleet.entry(2)]}),
        )
        .await;

    let summary = invoke(&app, scheduled_event(), "dispatcher")
        .await
        .expect("the dispatch runs the good entries");
    assert_eq!(summary["dispatched"], json!([name(0), name(2)]));
    assert_eq!(summary["invalid"][0]["index"], json!(1));
    assert_eq!(summary["invalid"][0]["name"], json!("Tenant_01"));
    let problem = summary["invalid"][0]["problem"].as_str().unwrap();
    assert!(problem.contains("[a-z0-9]"), "{problem}");
    assert_eq!(
        summary["unknown_fields"],
        json!([{"index": 0, "name": name(0), "field": "comment"}])
    );

    // The queued ticks run while the bad entry is still there: each checks only its own.
    let outcomes = fleet.run_queued(&app).await;
    assert_eq!(outcomes.len(), 2);
    for i in [0, 2] {
        let summary = outcomes[&name(i)]
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e:?}", name(i)));
        assert_eq!(summary["caught_up"], json!(true));
        let expected = sorted(fleet.records[i].iter().map(record_key).collect());
        assert_same_keys(fleet.keys_under(&name(i)), expected, &name(i));
    }
    assert!(fleet.keys_under(&name(1)).is_empty());
    assert!(fleet.keys_under("Tenant_01").is_empty());
}

#[tokio::test]
async fn throttled_invokes_are_retried_and_each_tenant_starts_once() {
    let fleet = Fleet::start_n(3).await;
    let app = fleet.app(&fleet.env);
    fleet.invoke.throttle_first(2);
    let summary = invoke(&app, scheduled_event(), "dispatcher")
        .await
        .expect("dispatch");
    assert_eq!(summary["dispatched"], json!([name(0), name(1), name(2)]));
    assert_eq!(summary["failed"], json!([]));
    assert_eq!(summary["retries"], json!(6));
    let mut started: Vec<String> = fleet
        .invoke
        .payloads()
        .iter()
        .map(|p| p["tenant"].as_str().unwrap().to_owned())
        .collect();
    started.sort();
    assert_eq!(started, [name(0), name(1), name(2)], "each exactly once");
    assert!(fleet.invoke.attempts().values().all(|n| *n == 3));
}

#[tokio::test]
async fn a_tenant_lambda_keeps_refusing_is_named_and_counted_and_the_others_start() {
    let fleet = Fleet::start_n(3).await;
    let app = fleet.app(&fleet.env);
    fleet.invoke.fail_containing(Some((&name(1), 503)));
    let summary = invoke(&app, scheduled_event(), "dispatcher")
        .await
        .expect("the others were started: not a failed dispatch");
    assert_eq!(summary["dispatched"], json!([name(0), name(2)]));
    let failed = summary["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["tenant"], json!(name(1)));
    assert_eq!(failed[0]["attempts"], json!(7), "retried");
    let error = failed[0]["error"].as_str().unwrap();
    assert!(error.contains("ServiceException (HTTP 503)"), "{error}");
    assert_eq!(fleet.invoke.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_name_added_again_starts_fresh_unless_told_to_keep_its_state() {
    let fleet = Fleet::start_n(1).await;
    let app = fleet.app(&fleet.env);
    let tenant = name(0);
    let secret = format!("{}/{tenant}", fleet.bucket);
    let checkpoint_key = format!("m365-message-trace/tenants/{tenant}/checkpoint.json");
    let all = fleet.records[0].len();
    let tick = |n: &'static str| invoke(&app, json!({"tenant": name(0)}), n);
    let first = tick("first").await.expect("first tick");
    assert_eq!(first["events_sent"], json!(all));

    // Kept: the add is refused, naming the way to continue and the prefix; with it, the
    // tenant continues from its position (nothing twice).
    let (code, _, err) = cli(&fleet, &["tenants", "remove", &tenant, "--keep-state"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&fleet, &["tenants", "add", &tenant, "--secret-id", &secret]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("--keep-state")
            && err.contains(&format!("m365-message-trace/tenants/{tenant}/")),
        "{err}"
    );
    let args = [
        "tenants",
        "add",
        &tenant,
        "--secret-id",
        &secret,
        "--keep-state",
    ];
    let (code, _, err) = cli(&fleet, &args).await;
    assert_eq!(code, 0, "{err}");
    let again = tick("kept").await.expect("tick after add --keep-state");
    assert_eq!(again["events_sent"], json!(0), "continued, nothing twice");

    // Removed: the state is moved aside, and the new tenant of that name starts fresh.
    let (code, _, err) = cli(&fleet, &["tenants", "remove", &tenant]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("tenants-removed/tenant-00-"), "{err}");
    assert!(fleet.object(&checkpoint_key).await.is_none(), "moved");
    let listed = fleet
        .clients
        .s3
        .list_objects_v2()
        .bucket(&fleet.bucket)
        .prefix("m365-message-trace/tenants-removed/tenant-00-")
        .send()
        .await
        .unwrap();
    let moved: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(
        moved.iter().any(|k| k.ends_with("/checkpoint.json")),
        "{moved:?}"
    );
    let (code, _, err) = cli(&fleet, &["tenants", "add", &tenant, "--secret-id", &secret]).await;
    assert_eq!(code, 0, "{err}");
    let fresh = tick("fresh").await.expect("tick of the new tenant");
    assert_eq!(
        fresh["events_sent"],
        json!(all),
        "a new customer starts HISTORIC_DAYS back, not at the old position"
    );
}

#[tokio::test]
async fn a_registry_key_that_is_a_state_key_is_refused() {
    let fleet = Fleet::start_n(1).await;
    for (tenants_key, state_key) in [
        ("m365-message-trace/checkpoint.json", None),
        ("state/x.json", Some("state/x.json")),
        ("m365-message-trace/tenants/tenant-00/checkpoint.json", None),
    ] {
        let mut env = fleet.env.clone();
        env.insert("TENANTS_KEY".into(), tenants_key.into());
        if let Some(state_key) = state_key {
            env.insert("STATE_KEY".into(), state_key.into());
        }
        let (error_type, message) = invoke(&fleet.app(&env), scheduled_event(), "r")
            .await
            .unwrap_err();
        assert_eq!(error_type, "Config", "{message}");
        assert!(
            message.contains(&format!("TENANTS_KEY={tenants_key:?} is invalid"))
                && message.contains("STATE_KEY"),
            "{message}"
        );
    }
    assert_eq!(fleet.invoke.count(), 0);
}
