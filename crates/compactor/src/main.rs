//! The compactor Lambda binary: configuration and the table once per
//! container, then [`compactor::nightly`] per scheduled invocation.

use compactor::{invoke, Config};
use etl_aws::lambda::init_tracing;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let lake = etl_aws::delta::existing_delta_lake(&sdk, &config.table_location).await?;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let (lake, config) = (&lake, &config);
        async move {
            invoke(lake, config, &event.context.request_id)
                .await
                .map_err(lambda_runtime::Diagnostic::from)
        }
    }))
    .await
}
