use chrono::NaiveDate;
use etl_aws::glue::{PARQUET_INPUT_FORMAT, PARQUET_OUTPUT_FORMAT, PARQUET_SERDE};
use etl_aws::GlueCatalog;
use etl_core::output::COLUMNS;
use etl_core::Catalog;
use etl_testkit::{moto, unique};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[tokio::test]
async fn table_is_created_once_with_the_contract_schema() {
    let c = moto().clients().await.glue;
    let db = unique("db").replace('-', "_");
    let cat = GlueCatalog::new(c.clone(), &db, "sentiment", "s3://lake/prefix/sentiment");
    cat.ensure_table().await.unwrap();
    cat.ensure_table().await.unwrap();
    // A second container finds it and is fine too.
    GlueCatalog::new(c.clone(), &db, "sentiment", "s3://lake/prefix/sentiment")
        .ensure_table()
        .await
        .unwrap();

    let t = c
        .get_table()
        .database_name(&db)
        .name("sentiment")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let sd = t.storage_descriptor.clone().unwrap();
    let cols: Vec<(String, String)> = sd
        .columns()
        .iter()
        .map(|c| (c.name.clone(), c.r#type.clone().unwrap_or_default()))
        .collect();
    let want: Vec<(String, String)> = COLUMNS
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    assert_eq!(cols, want);
    assert_eq!(sd.location.as_deref(), Some("s3://lake/prefix/sentiment/"));
    assert_eq!(sd.input_format.as_deref(), Some(PARQUET_INPUT_FORMAT));
    assert_eq!(sd.output_format.as_deref(), Some(PARQUET_OUTPUT_FORMAT));
    assert_eq!(
        sd.serde_info.unwrap().serialization_library.as_deref(),
        Some(PARQUET_SERDE)
    );
    let keys: Vec<_> = t
        .partition_keys()
        .iter()
        .map(|k| (k.name.as_str(), k.r#type.as_deref()))
        .collect();
    assert_eq!(keys, [("dt", Some("string"))]);
    assert_eq!(
        t.parameters
            .unwrap()
            .get("classification")
            .map(String::as_str),
        Some("parquet")
    );
    assert_eq!(t.table_type.as_deref(), Some("EXTERNAL_TABLE"));
}

#[tokio::test]
async fn partitions_are_registered_idempotently() {
    let c = moto().clients().await.glue;
    let db = unique("db").replace('-', "_");
    let cat = GlueCatalog::new(c.clone(), &db, "sentiment", "s3://lake/sentiment/");
    cat.ensure_table().await.unwrap();
    cat.add_partitions(&[d("2024-05-01"), d("2024-05-02"), d("2024-05-01")])
        .await
        .unwrap();
    cat.add_partitions(&[d("2024-05-01")]).await.unwrap();
    // A fresh container does not remember them: AlreadyExists must count as success.
    let cold = GlueCatalog::new(c.clone(), &db, "sentiment", "s3://lake/sentiment/");
    cold.add_partitions(&[d("2024-05-02"), d("2024-05-03")])
        .await
        .unwrap();

    let parts = c
        .get_partitions()
        .database_name(&db)
        .table_name("sentiment")
        .send()
        .await
        .unwrap();
    let mut got: Vec<(String, String)> = parts
        .partitions()
        .iter()
        .map(|p| {
            (
                p.values().join(","),
                p.storage_descriptor
                    .as_ref()
                    .and_then(|s| s.location.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "2024-05-01".to_string(),
                "s3://lake/sentiment/dt=2024-05-01/".to_string()
            ),
            (
                "2024-05-02".to_string(),
                "s3://lake/sentiment/dt=2024-05-02/".to_string()
            ),
            (
                "2024-05-03".to_string(),
                "s3://lake/sentiment/dt=2024-05-03/".to_string()
            ),
        ]
    );
}

#[tokio::test]
async fn many_partitions_are_sent_in_calls_of_one_hundred() {
    let c = moto().clients().await.glue;
    let db = unique("db").replace('-', "_");
    let cat = GlueCatalog::new(c.clone(), &db, "sentiment", "s3://lake/sentiment/");
    cat.ensure_table().await.unwrap();
    let start = d("2023-01-01");
    let days: Vec<NaiveDate> = (0..150).map(|i| start + chrono::Days::new(i)).collect();
    cat.add_partitions(&days).await.unwrap();
    let mut count = 0;
    let mut token = None;
    for _ in 0..20 {
        let out = c
            .get_partitions()
            .database_name(&db)
            .table_name("sentiment")
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        count += out.partitions().len();
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(count, 150);
}

#[tokio::test]
async fn partitions_on_a_missing_table_fail_naming_it() {
    let c = moto().clients().await.glue;
    let cat = GlueCatalog::new(c, "nodb", "notable", "s3://lake/sentiment/");
    let err = cat.add_partitions(&[d("2024-05-01")]).await.unwrap_err();
    assert!(err.target.contains("nodb.notable"), "{err}");
}
