//! Adapter tests at the SDK boundary with aws-smithy-mocks, for what moto
//! cannot do: Comprehend's batch calls (moto answers them with 500), an
//! Athena query that never finishes, and the characters SQS refuses in
//! bodies and attribute values (moto accepts every one).
// Test helpers unwrap too: a failed setup is the test failing
// (`allow-unwrap-in-tests` only covers the `#[test]` functions themselves).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_comprehend::operation::batch_detect_dominant_language::BatchDetectDominantLanguageOutput;
use aws_sdk_comprehend::operation::batch_detect_sentiment::{
    BatchDetectSentimentInput, BatchDetectSentimentOutput,
};
use aws_sdk_comprehend::types::{
    BatchDetectDominantLanguageItemResult, BatchDetectSentimentItemResult, BatchItemError,
    DominantLanguage, SentimentScore, SentimentType,
};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::retry::RetryConfig;
use etl_aws::comprehend::{ComprehendAnalyzer, LanguageMode, MAX_DOC_BYTES};
use etl_core::{Document, Engine, Label, Retry, SentimentAnalyzer};

fn comprehend(mode: RuleMode, rules: &[&Rule]) -> aws_sdk_comprehend::Client {
    mock_client!(aws_sdk_comprehend, mode, rules, |b| b
        .retry_config(RetryConfig::disabled()))
}

fn analyzer(client: aws_sdk_comprehend::Client, lang: LanguageMode) -> ComprehendAnalyzer {
    ComprehendAnalyzer::new(client, lang).with_retry(
        4,
        Duration::from_millis(1),
        Duration::from_millis(5),
    )
}

fn item(index: usize, label: SentimentType) -> BatchDetectSentimentItemResult {
    BatchDetectSentimentItemResult::builder()
        .index(index as i32)
        .sentiment(label)
        .sentiment_score(
            SentimentScore::builder()
                .positive(0.9)
                .negative(0.05)
                .neutral(0.04)
                .mixed(0.01)
                .build(),
        )
        .build()
}

fn item_error(index: usize, code: &str) -> BatchItemError {
    BatchItemError::builder()
        .index(index as i32)
        .error_code(code)
        .error_message("mocked")
        .build()
}

fn output(
    ok: Vec<BatchDetectSentimentItemResult>,
    errors: Vec<BatchItemError>,
) -> BatchDetectSentimentOutput {
    BatchDetectSentimentOutput::builder()
        .set_result_list(Some(ok))
        .set_error_list(Some(errors))
        .build()
        .unwrap()
}

/// Label each text by its first word, so a mix-up of indices shows.
fn label_by_text(input: &BatchDetectSentimentInput) -> BatchDetectSentimentOutput {
    let ok = input
        .text_list()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            item(
                i,
                if t.starts_with("bad") {
                    SentimentType::Negative
                } else {
                    SentimentType::Positive
                },
            )
        })
        .collect();
    output(ok, vec![])
}

fn docs(texts: &[String]) -> Vec<Document<'_>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| Document {
            id: Box::leak(format!("d{i}").into_boxed_str()),
            text: t,
        })
        .collect()
}

#[tokio::test]
async fn sixty_documents_take_three_calls_and_map_back_by_index() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sizes = Arc::clone(&seen);
    let rule = mock!(aws_sdk_comprehend::Client::batch_detect_sentiment).then_compute_output(
        move |input| {
            sizes.lock().unwrap().push(input.text_list().len());
            label_by_text(input)
        },
    );
    let a = analyzer(
        comprehend(RuleMode::MatchAny, &[&rule]),
        LanguageMode::Fixed("en".into()),
    );
    let texts: Vec<String> = (0..60)
        .map(|i| {
            if i % 3 == 0 {
                format!("bad {i}")
            } else {
                format!("good {i}")
            }
        })
        .collect();
    let results = a.analyze(&docs(&texts)).await.unwrap();
    assert_eq!(rule.num_calls(), 3);
    assert_eq!(*seen.lock().unwrap(), vec![25, 25, 10]);
    for (i, r) in results.iter().enumerate() {
        let s = r.as_ref().unwrap();
        let want = if i % 3 == 0 {
            Label::Negative
        } else {
            Label::Positive
        };
        assert_eq!(s.label, want, "document {i}");
        assert_eq!(
            (s.positive, s.negative, s.neutral, s.mixed),
            (0.9, 0.05, 0.04, 0.01)
        );
        assert_eq!(s.compound, None);
        assert_eq!(s.engine, Engine::Comprehend);
        assert_eq!(s.language, "en");
    }
    assert_eq!(a.take_units(), 60 * 3);
}

#[tokio::test]
async fn error_list_entries_are_retried_when_transient_and_final_otherwise() {
    // Call 1: doc 0 ok, doc 1 INTERNAL_SERVER_ERROR, doc 2 invalid. Call 2 carries only doc 1.
    let first = mock!(aws_sdk_comprehend::Client::batch_detect_sentiment)
        .match_requests(|i| i.text_list().len() == 3)
        .then_output(|| {
            output(
                vec![item(0, SentimentType::Neutral)],
                vec![
                    item_error(1, "INTERNAL_SERVER_ERROR"),
                    item_error(2, "INVALID_REQUEST"),
                ],
            )
        });
    let retry = mock!(aws_sdk_comprehend::Client::batch_detect_sentiment)
        .match_requests(|i| i.text_list() == ["two"])
        .then_output(|| output(vec![item(0, SentimentType::Mixed)], vec![]));
    let a = analyzer(
        comprehend(RuleMode::Sequential, &[&first, &retry]),
        LanguageMode::Fixed("en".into()),
    );
    let texts = vec!["one".to_string(), "two".to_string(), "three".to_string()];
    let results = a.analyze(&docs(&texts)).await.unwrap();
    assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
    assert_eq!(results[0].as_ref().unwrap().label, Label::Neutral);
    assert_eq!(results[1].as_ref().unwrap().label, Label::Mixed);
    let e = results[2].as_ref().unwrap_err();
    assert_eq!(
        (e.retry, e.code.as_str()),
        (Retry::Permanent, "INVALID_REQUEST")
    );
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_succeeds() {
    let throttle = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_string();
    let rule = mock!(aws_sdk_comprehend::Client::batch_detect_sentiment)
        .sequence()
        .http_status(400, Some(throttle))
        .times(2)
        .output(|| output(vec![item(0, SentimentType::Positive)], vec![]))
        .build();
    let a = analyzer(
        comprehend(RuleMode::Sequential, &[&rule]),
        LanguageMode::Fixed("en".into()),
    );
    let texts = vec!["nice".to_string()];
    let results = a.analyze(&docs(&texts)).await.unwrap();
    assert_eq!(rule.num_calls(), 3);
    assert_eq!(results[0].as_ref().unwrap().label, Label::Positive);
}

#[tokio::test]
async fn persistent_throttling_fails_the_call_as_retryable() {
    let rule = mock!(aws_sdk_comprehend::Client::batch_detect_sentiment)
        .sequence()
        .http_status(
            400,
            Some(r#"{"__type":"TooManyRequestsException","message":"slow down"}"#.to_string()),
        )
        .repeatedly()
        .build();
    let a = analyzer(
        comprehend(RuleMode::MatchAny, &[&rule]),
        LanguageMode::Fixed("en".into()),
    );
    let texts = vec!["nice".to_string()];
    let results = a.analyze(&docs(&texts)).await.unwrap();
    let err = results[0].as_ref().unwrap_err();
    assert_eq!(rule.num_calls(), 4, "bounded by max_attempts");
    assert_eq!(
        (err.retry, err.code.as_str()),
        (Retry::Retryable, "TooManyRequestsException")
    );
}

#[tokio::test]
async fn a_chunk_that_stays_throttled_keeps_the_chunks_before_it_and_skips_the_rest() {
    let throttle = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_string();
    let rule = mock!(aws_sdk_comprehend::Client::batch_detect_sentiment)
        .sequence()
        .output(|| {
            output(
                (0..25).map(|i| item(i, SentimentType::Positive)).collect(),
                vec![],
            )
        })
        .http_status(400, Some(throttle))
        .repeatedly()
        .build();
    let a = analyzer(
        comprehend(RuleMode::Sequential, &[&rule]),
        LanguageMode::Fixed("en".into()),
    );
    let texts: Vec<String> = (0..60).map(|i| format!("text {i}")).collect();
    let results = a.analyze(&docs(&texts)).await.unwrap();
    assert_eq!(
        rule.num_calls(),
        1 + 4,
        "chunk 1 once, chunk 2 up to max_attempts, chunk 3 never"
    );
    assert!(
        results[..25].iter().all(Result::is_ok),
        "the first chunk's scores are kept"
    );
    for r in &results[25..50] {
        let e = r.as_ref().unwrap_err();
        assert_eq!(
            (e.retry, e.code.as_str()),
            (Retry::Retryable, "ThrottlingException")
        );
    }
    for r in &results[50..] {
        let e = r.as_ref().unwrap_err();
        assert_eq!(
            (e.retry, e.code.as_str()),
            (Retry::Retryable, "NotAttempted")
        );
    }
    assert_eq!(
        a.take_units(),
        25 * 3,
        "billed once, for the scored chunk only"
    );
}

#[tokio::test]
async fn calls_take_tokens_from_the_shared_rate_limiter() {
    let rule = mock!(aws_sdk_comprehend::Client::batch_detect_sentiment)
        .then_compute_output(label_by_text);
    let limiter = Arc::new(etl_aws::RateLimiter::per_second(1_000.0));
    let a = Arc::new(
        analyzer(
            comprehend(RuleMode::MatchAny, &[&rule]),
            LanguageMode::Fixed("en".into()),
        )
        .with_rate_limiter(Arc::clone(&limiter)),
    );
    // Two "messages" at once, three calls each (60 documents): all six
    // calls take a token from the one bucket.
    let texts: Vec<String> = (0..60).map(|i| format!("good {i}")).collect();
    let (d1, d2) = (docs(&texts), docs(&texts));
    let (x, y) = tokio::join!(a.analyze(&d1), a.analyze(&d2));
    assert!(x
        .unwrap()
        .iter()
        .chain(y.unwrap().iter())
        .all(Result::is_ok));
    assert_eq!(rule.num_calls(), 6);
    assert_eq!(limiter.granted(), 6);
}

#[tokio::test]
async fn server_errors_are_retryable_but_validation_errors_are_not() {
    let rule = mock!(aws_sdk_comprehend::Client::batch_detect_sentiment)
        .sequence()
        .http_status(503, None)
        .output(|| output(vec![item(0, SentimentType::Positive)], vec![]))
        .build();
    let a = analyzer(
        comprehend(RuleMode::Sequential, &[&rule]),
        LanguageMode::Fixed("en".into()),
    );
    let texts = vec!["nice".to_string()];
    assert!(a.analyze(&docs(&texts)).await.unwrap()[0].is_ok());
    assert_eq!(rule.num_calls(), 2);

    let invalid = mock!(aws_sdk_comprehend::Client::batch_detect_sentiment)
        .sequence()
        .http_status(
            400,
            Some(r#"{"__type":"InvalidRequestException","message":"no"}"#.to_string()),
        )
        .repeatedly()
        .build();
    let a = analyzer(
        comprehend(RuleMode::MatchAny, &[&invalid]),
        LanguageMode::Fixed("en".into()),
    );
    let results = a.analyze(&docs(&texts)).await.unwrap();
    assert_eq!(invalid.num_calls(), 1, "permanent errors are not retried");
    assert_eq!(results[0].as_ref().unwrap_err().retry, Retry::Permanent);
}

#[tokio::test]
async fn long_multibyte_texts_are_cut_to_5000_bytes_on_a_char_boundary() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&sent);
    let rule = mock!(aws_sdk_comprehend::Client::batch_detect_sentiment).then_compute_output(
        move |input| {
            log.lock()
                .unwrap()
                .extend(input.text_list().iter().cloned());
            label_by_text(input)
        },
    );
    let a = analyzer(
        comprehend(RuleMode::MatchAny, &[&rule]),
        LanguageMode::Fixed("en".into()),
    );
    // "a" + 2,500 × "€" (3 bytes) = 7,501 bytes; 5,000 falls inside a "€".
    let long = format!("a{}", "€".repeat(2_500));
    let texts = vec![long.clone(), "😀".repeat(1_300)];
    let results = a.analyze(&docs(&texts)).await.unwrap();
    assert!(results.iter().all(Result::is_ok));
    let sent = sent.lock().unwrap();
    assert_eq!(sent[0].len(), 4_999);
    assert!(long.starts_with(&sent[0]));
    assert_eq!(sent[1].len(), 5_000, "4-byte emoji: 1,250 fit exactly");
    assert!(sent.iter().all(|t| t.len() <= MAX_DOC_BYTES));
}

#[tokio::test]
async fn auto_language_groups_documents_and_rejects_unsupported_ones() {
    let detect = mock!(aws_sdk_comprehend::Client::batch_detect_dominant_language)
        .then_compute_output(|input| {
            let results = input
                .text_list()
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let code = match t.as_str() {
                        t if t.starts_with("hola") => "es",
                        t if t.starts_with("hej") => "sv",
                        _ => "en",
                    };
                    BatchDetectDominantLanguageItemResult::builder()
                        .index(i as i32)
                        .languages(
                            DominantLanguage::builder()
                                .language_code("fr")
                                .score(0.1)
                                .build(),
                        )
                        .languages(
                            DominantLanguage::builder()
                                .language_code(code)
                                .score(0.9)
                                .build(),
                        )
                        .build()
                })
                .collect();
            BatchDetectDominantLanguageOutput::builder()
                .set_result_list(Some(results))
                .set_error_list(Some(vec![]))
                .build()
                .unwrap()
        });
    let en = mock!(aws_sdk_comprehend::Client::batch_detect_sentiment)
        .match_requests(|i| i.language_code().map(|l| l.as_str()) == Some("en"))
        .then_compute_output(label_by_text);
    let es = mock!(aws_sdk_comprehend::Client::batch_detect_sentiment)
        .match_requests(|i| i.language_code().map(|l| l.as_str()) == Some("es"))
        .then_compute_output(|input| {
            assert_eq!(input.text_list(), ["hola amigo"]);
            label_by_text(input)
        });
    let a = analyzer(
        comprehend(RuleMode::MatchAny, &[&detect, &en, &es]),
        LanguageMode::Auto,
    );
    let texts: Vec<String> = ["good day", "hola amigo", "bad day", "hej hej"]
        .map(String::from)
        .to_vec();
    let results = a.analyze(&docs(&texts)).await.unwrap();
    assert_eq!(
        (detect.num_calls(), en.num_calls(), es.num_calls()),
        (1, 1, 1)
    );
    assert_eq!(results[0].as_ref().unwrap().language, "en");
    assert_eq!(results[1].as_ref().unwrap().language, "es");
    assert_eq!(results[2].as_ref().unwrap().label, Label::Negative);
    let e = results[3].as_ref().unwrap_err();
    assert_eq!(
        (e.retry, e.code.as_str()),
        (Retry::Permanent, "UnsupportedLanguage")
    );
    assert!(
        e.message.contains("d3") && e.message.contains("sv"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn athena_query_that_never_finishes_is_cancelled_after_the_timeout() {
    use aws_sdk_athena::operation::get_query_execution::GetQueryExecutionOutput;
    use aws_sdk_athena::operation::start_query_execution::StartQueryExecutionOutput;
    use aws_sdk_athena::operation::stop_query_execution::StopQueryExecutionOutput;
    use aws_sdk_athena::types::{QueryExecution, QueryExecutionState, QueryExecutionStatus};
    use etl_core::QueryEngine;

    let start = mock!(aws_sdk_athena::Client::start_query_execution).then_output(|| {
        StartQueryExecutionOutput::builder()
            .query_execution_id("q-1")
            .build()
    });
    let poll = mock!(aws_sdk_athena::Client::get_query_execution).then_output(|| {
        GetQueryExecutionOutput::builder()
            .query_execution(
                QueryExecution::builder()
                    .query_execution_id("q-1")
                    .status(
                        QueryExecutionStatus::builder()
                            .state(QueryExecutionState::Running)
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let stop = mock!(aws_sdk_athena::Client::stop_query_execution)
        .match_requests(|i| i.query_execution_id() == Some("q-1"))
        .then_output(|| StopQueryExecutionOutput::builder().build());
    let client = mock_client!(aws_sdk_athena, RuleMode::MatchAny, &[&start, &poll, &stop]);
    let q = etl_aws::AthenaQuery::new(client, "wg", "db").with_polling(
        Duration::from_millis(1),
        Duration::from_millis(5),
        Duration::from_millis(60),
    );
    let err = q.query("SELECT 1").await.unwrap_err();
    assert_eq!(err.retry, Retry::Retryable);
    assert!(
        err.message.contains("cancelled") && err.target.contains("q-1"),
        "{err}"
    );
    assert_eq!(stop.num_calls(), 1);
    assert!(
        poll.num_calls() >= 2 && poll.num_calls() < 200,
        "bounded polling: {}",
        poll.num_calls()
    );
}

// --- SQS: the characters it refuses ------------------------------------------

const WORK_QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/work";
const DEAD_LETTER_QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq";

/// An SQS client answered by `rules`: what `mock_client!` builds, by hand,
/// because that macro needs aws-sdk-sqs's `test-util` feature.
fn sqs(rules: &[&Rule]) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    let mut interceptor =
        aws_smithy_mocks::MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDMOCKED",
            "mocked",
            None,
            None,
            "mocked",
        ))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// SQS's rule for bodies and attribute values, written out here rather than
/// taken from the code under test.
fn sqs_accepts(s: &str) -> bool {
    s.chars().all(|c| {
        matches!(
            u32::from(c),
            0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF
        )
    })
}

fn refused(id: &str) -> (etl_core::SourceRecord, etl_core::AnalyzeError) {
    use chrono::TimeZone;
    let t = chrono::Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
    let record = etl_core::SourceRecord {
        id: id.to_owned(),
        text: format!("text of {id}"),
        created_at: t,
        updated_at: t,
        attributes: Default::default(),
    };
    let why = format!("bad \u{1} in {id}");
    (
        record,
        etl_core::AnalyzeError::permanent("InvalidRequest", why),
    )
}

#[tokio::test]
async fn a_dead_letter_reaches_sqs_with_only_characters_it_accepts() {
    use aws_sdk_sqs::operation::send_message::{SendMessageInput, SendMessageOutput};
    use etl_aws::sqs::{
        SqsDeadLetters, ATTR_REASON, ATTR_REASONS, ATTR_SOURCE_CONTENT_ID, ATTR_SOURCE_MESSAGE_ID,
    };
    use etl_core::{DeadLetterMessage, DeadLetterSink};

    let sent: Arc<Mutex<Vec<SendMessageInput>>> = Arc::default();
    let capture = Arc::clone(&sent);
    let rule = mock!(aws_sdk_sqs::Client::send_message).then_compute_output(move |input| {
        capture.lock().unwrap().push(input.clone());
        SendMessageOutput::builder().message_id("dl-1").build()
    });
    let ids: Vec<String> = vec![
        "a\u{FFFE}b".into(),
        "c\u{1}d".into(),
        "\u{D7FF}\u{E000}".into(),
        "../a b/".repeat(30).chars().take(200).collect(),
        "😀 👩\u{200D}💻".into(),
    ];
    let records = ids.iter().map(String::as_str).map(refused).collect();
    let letter = DeadLetterMessage::new("m\u{FFFE}", "", 2, records);
    SqsDeadLetters::new(sqs(&[&rule]), DEAD_LETTER_QUEUE)
        .put(&letter)
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 1);

    let input = sent.lock().unwrap().pop().unwrap();
    let body = input.message_body().unwrap();
    assert!(sqs_accepts(body), "{body}");
    assert_eq!(etl_core::decode_message(body).unwrap().records.len(), 5);
    let attrs = input.message_attributes().unwrap();
    for (name, value) in attrs {
        let v = value.string_value().unwrap();
        assert!(!v.is_empty(), "{name} is empty");
        assert!(sqs_accepts(v), "{name}: {v:?}");
    }
    assert!(
        !attrs.contains_key(ATTR_SOURCE_CONTENT_ID),
        "an empty id is left out, never sent empty"
    );
    assert_eq!(
        attrs[ATTR_SOURCE_MESSAGE_ID].string_value(),
        Some("m\\ufffe")
    );
    let reason = attrs[ATTR_REASON].string_value().unwrap();
    assert!(
        reason.contains("c\\u0001d (InvalidRequest: bad \\u0001 in c\\u0001d)"),
        "{reason}"
    );
    let reasons: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(attrs[ATTR_REASONS].string_value().unwrap()).unwrap();
    let mut keys: Vec<&String> = reasons.keys().collect();
    let mut want: Vec<&String> = ids.iter().collect();
    keys.sort();
    want.sort();
    assert_eq!(keys, want, "the keys decode to the exact ids");
    assert_eq!(
        reasons["a\u{FFFE}b"],
        "InvalidRequest: bad \u{1} in a\u{FFFE}b"
    );
}

#[tokio::test]
async fn a_body_sqs_would_refuse_fails_permanently_before_any_call() {
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
    use etl_core::{build_message, WorkQueue};

    let rule = mock!(aws_sdk_sqs::Client::send_message_batch).then_output(|| {
        SendMessageBatchOutput::builder()
            .set_successful(Some(vec![]))
            .set_failed(Some(vec![]))
            .build()
            .unwrap()
    });
    let q = etl_aws::SqsQueue::new(sqs(&[&rule]), WORK_QUEUE);
    let good = build_message(vec![refused("ok\u{FFFE}").0]);
    assert!(sqs_accepts(&good.body), "bodies are escaped when built");
    q.send(std::slice::from_ref(&good)).await.unwrap();
    assert_eq!(rule.num_calls(), 1);

    let mut bad = good.clone();
    bad.body.insert(1, '\u{FFFE}');
    let err = q.send(&[good, bad.clone()]).await.unwrap_err();
    assert_eq!(err.retry, Retry::Permanent);
    assert!(
        err.message.contains("U+FFFE at byte 1") && err.message.contains(&bad.content_id),
        "{err}"
    );
    assert_eq!(
        rule.num_calls(),
        1,
        "nothing sent, not even the good message"
    );
}
