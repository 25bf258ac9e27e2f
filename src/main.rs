//! The Lambda binary: build the clients once at cold start, then serve invocations.

use lambda_runtime::{LambdaEvent, service_fn};
use m365_trace_to_devo::app::{App, Clients, TickOptions};
use m365_trace_to_devo::config::Config;
use m365_trace_to_devo::lambda::handler;
use m365_trace_to_devo::logging;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let clients = Clients::from_env().await?;
    let app = App::new(Config::from_env(), clients, TickOptions::default());
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        handler::handle(app, event).await
    }))
    .await
}
