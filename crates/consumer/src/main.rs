//! The consumer Lambda binary: logging, configuration and clients once per
//! container, then one [`BatchHandler::invoke`] per SQS batch.

use aws_lambda_events::sqs::SqsEvent;
use consumer::{BatchHandler, Config};
use etl_aws::lambda::init_tracing;
use etl_aws::Clients;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let handler = BatchHandler::new(&config, &Clients::from_env().await?).await?;
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        handler.invoke(event)
    }))
    .await
}
