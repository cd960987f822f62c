//! The producer Lambda binary: logging, configuration and clients once per
//! container, then one [`Producer::invoke`] per event.

use etl_aws::lambda::init_tracing;
use etl_aws::Clients;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use producer::{Config, Producer};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let producer = Producer::new(config, &Clients::from_env().await?);
    run(service_fn(|event: LambdaEvent<Value>| {
        producer.invoke(event)
    }))
    .await
}
