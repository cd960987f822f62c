use arrow_array::cast::AsArray;
use etl_aws::AthenaQuery;
use etl_core::QueryEngine;
use etl_testkit::moto;
use serde_json::json;

fn cell(v: Option<&str>) -> serde_json::Value {
    match v {
        Some(s) => json!({"VarCharValue": s}),
        None => json!({}),
    }
}

fn row(values: &[Option<&str>]) -> serde_json::Value {
    json!({"Data": values.iter().map(|v| cell(*v)).collect::<Vec<_>>()})
}

fn column(name: &str) -> serde_json::Value {
    json!({"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": name, "Label": name,
           "Type": "varchar", "Precision": 0, "Scale": 0, "Nullable": "UNKNOWN", "CaseSensitive": true})
}

#[tokio::test]
async fn select_results_come_back_as_utf8_columns_without_the_header() {
    // moto hands canned results to the next GetQueryResults of its region:
    // this test owns eu-west-1, so no other test can take them.
    let region = "eu-west-1";
    let status = moto().post(
        "/moto-api/static/athena/query-results",
        &json!({
            "region": region,
            "results": [{
                "rows": [
                    row(&[Some("dt"), Some("sentiment"), Some("records")]),
                    row(&[Some("2024-05-01"), Some("POSITIVE"), Some("3")]),
                    row(&[Some("2024-05-01"), Some("NEGATIVE"), None]),
                ],
                "column_info": [column("dt"), column("sentiment"), column("records")],
            }],
        }),
    );
    assert_eq!(status, 201);
    let client = aws_sdk_athena::Client::new(&moto().sdk_config_in(region).await);
    let q = AthenaQuery::new(client, "primary", "default");
    let batches = q
        .query("SELECT dt, sentiment, records FROM daily_sentiment")
        .await
        .unwrap();
    let b = &batches[0];
    let names: Vec<_> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["dt", "sentiment", "records"]);
    assert_eq!(b.num_rows(), 2, "header row skipped");
    let label = b.column(1).as_string::<i32>();
    assert_eq!((label.value(0), label.value(1)), ("POSITIVE", "NEGATIVE"));
    assert!(b.column(2).is_null(1));
}

#[tokio::test]
async fn views_are_created_once_per_instance() {
    let client = aws_sdk_athena::Client::new(&moto().sdk_config().await);
    let q = AthenaQuery::new(client.clone(), "primary", "lakedb")
        .with_output_location("s3://results/athena/");
    q.ensure_views("sentiment").await.unwrap();
    q.ensure_views("sentiment").await.unwrap();
    let ids = client
        .list_query_executions()
        .work_group("primary")
        .send()
        .await
        .unwrap();
    let mut views = Vec::new();
    for id in ids.query_execution_ids() {
        let e = client
            .get_query_execution()
            .query_execution_id(id)
            .send()
            .await
            .unwrap();
        let sql = e.query_execution.and_then(|x| x.query).unwrap_or_default();
        if sql.starts_with("CREATE OR REPLACE VIEW") {
            views.push(sql);
        }
    }
    assert_eq!(views.len(), 2, "two DDL statements, run once: {views:?}");
    assert!(views
        .iter()
        .any(|v| v.starts_with("CREATE OR REPLACE VIEW daily_sentiment")));
    assert!(views
        .iter()
        .any(|v| v.starts_with("CREATE OR REPLACE VIEW sentiment_latest")));
    let err = q.ensure_views("other").await.unwrap_err();
    assert_eq!(err.retry, etl_core::Retry::Permanent);
}

#[tokio::test]
async fn unknown_workgroup_is_a_permanent_error() {
    let client = aws_sdk_athena::Client::new(&moto().sdk_config().await);
    let err = AthenaQuery::new(client, "no-such-wg", "db")
        .query("SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(err.retry, etl_core::Retry::Permanent);
    assert!(err.target.contains("no-such-wg"), "{err}");
}
