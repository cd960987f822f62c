use bytes::Bytes;
use chrono::{TimeZone, Utc};
use etl_aws::S3Sink;
use etl_core::output::{encode_parquet, object_key, output_schema, to_record_batch};
use etl_core::{Codec, Engine, Label, ObjectSink, ScoredRecord, SentimentScore, SourceRecord};
use etl_testkit::{create_bucket, moto, unique};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

async fn sink() -> (S3Sink, aws_sdk_s3::Client) {
    let c = moto().clients().await.s3;
    let bucket = unique("lake");
    create_bucket(&c, &bucket).await;
    (S3Sink::new(c.clone(), bucket, "/team/etl/"), c)
}

#[tokio::test]
async fn parquet_objects_land_under_the_prefix_and_read_back() {
    let (sink, client) = sink().await;
    let t = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
    let row = ScoredRecord {
        record: SourceRecord {
            id: "a".into(),
            text: "good".into(),
            created_at: t,
            updated_at: t,
            attributes: Default::default(),
        },
        score: SentimentScore {
            label: Label::Positive,
            positive: 0.7,
            negative: 0.0,
            neutral: 0.3,
            mixed: 0.0,
            compound: Some(0.44),
            language: "en".into(),
            engine: Engine::Vader,
        },
        processed_at: t,
    };
    let body = encode_parquet(&to_record_batch(&[row], true).unwrap(), Codec::Zstd).unwrap();
    let key = object_key(t.date_naive(), "abc");
    sink.put(&key, body.clone()).await.unwrap();
    assert_eq!(
        sink.location(&key),
        format!(
            "s3://{}/team/etl/sentiment/dt=2024-05-01/part-abc.parquet",
            sink.bucket()
        )
    );
    let listed = client
        .list_objects_v2()
        .bucket(sink.bucket())
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["team/etl/sentiment/dt=2024-05-01/part-abc.parquet"]);
    let back = sink.get(&key).await.unwrap();
    assert_eq!(back, body);
    let batches: Vec<_> = ParquetRecordBatchReaderBuilder::try_new(back)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches[0].schema(), output_schema(true));
    assert_eq!(batches[0].num_rows(), 1);
}

#[tokio::test]
async fn large_bodies_use_multipart_upload() {
    let (sink, client) = sink().await;
    let sink = sink.with_multipart(6 * 1024 * 1024, 5 * 1024 * 1024);
    let body: Bytes = (0..11 * 1024 * 1024)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    sink.put("dt=2024-01-01/part-big.parquet", body.clone())
        .await
        .unwrap();
    let back = sink.get("dt=2024-01-01/part-big.parquet").await.unwrap();
    assert_eq!(back.len(), body.len());
    assert!(back == body);
    let head = client
        .head_object()
        .bucket(sink.bucket())
        .key("team/etl/sentiment/dt=2024-01-01/part-big.parquet")
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag().unwrap_or_default().contains("-3"),
        "3-part multipart ETag: {:?}",
        head.e_tag()
    );
    let uploads = client
        .list_multipart_uploads()
        .bucket(sink.bucket())
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "no dangling uploads");
}

#[tokio::test]
async fn writing_to_a_missing_bucket_is_permanent_and_names_the_key() {
    let c = moto().clients().await.s3;
    let sink = S3Sink::new(c, "no-such-bucket-here", "");
    let err = sink
        .put("dt=2024-01-01/part-x.parquet", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(err.retry, etl_core::Retry::Permanent);
    assert_eq!(
        err.target,
        "s3://no-such-bucket-here/sentiment/dt=2024-01-01/part-x.parquet"
    );
}
