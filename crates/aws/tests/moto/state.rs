use std::time::Duration;

use chrono::{TimeZone, Utc};
use etl_aws::{LockOutcome, StateStore};
use etl_core::Retry;
use etl_testkit::{create_table, moto, unique};
use serde::{Deserialize, Serialize};

/// Any state a caller keeps in the watermark item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Watermark {
    at: Option<chrono::DateTime<Utc>>,
    ids_at: std::collections::BTreeSet<String>,
}

async fn store() -> StateStore {
    let c = moto().clients().await.dynamodb;
    let table = unique("state");
    create_table(&c, &table, "pk").await;
    StateStore::new(c, table, "source-table")
}

#[tokio::test]
async fn watermark_writes_are_conditional_on_the_version_read() {
    let st = store().await;
    assert!(st.load_watermark::<Watermark>().await.unwrap().is_none());
    let mut wm = Watermark {
        at: Some(Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap()),
        ids_at: ["a".to_string()].into(),
    };
    assert_eq!(st.save_watermark(&wm, None).await.unwrap(), 1);
    let err = st.save_watermark(&wm, None).await.unwrap_err();
    assert_eq!(err.retry, Retry::Permanent);
    assert!(err.message.contains("changed by another run"), "{err}");

    wm.ids_at.insert("b".into());
    assert_eq!(st.save_watermark(&wm, Some(1)).await.unwrap(), 2);
    let stale = st
        .save_watermark(&Watermark::default(), Some(1))
        .await
        .unwrap_err();
    assert!(stale.to_string().contains("version 1"), "{stale}");

    let back = st.load_watermark::<Watermark>().await.unwrap().unwrap();
    assert_eq!(back.version, 2);
    assert_eq!(back.value, wm, "the stale write did not move it back");
}

#[tokio::test]
async fn checkpoints_are_versioned_and_cleared_conditionally() {
    let st = store().await;
    let cp = serde_json::json!({"segments":[{"state":"start"}]});
    assert_eq!(st.save_checkpoint(&cp, None).await.unwrap(), 1);
    assert_eq!(st.save_checkpoint(&cp, Some(1)).await.unwrap(), 2);
    let back = st
        .load_checkpoint::<serde_json::Value>()
        .await
        .unwrap()
        .unwrap();
    assert_eq!((back.value, back.version), (cp, 2));
    assert!(st.clear_checkpoint(1).await.is_err(), "stale version");
    st.clear_checkpoint(2).await.unwrap();
    assert!(st
        .load_checkpoint::<serde_json::Value>()
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_second_run_cannot_take_the_lock_until_it_expires_or_is_released() {
    let st = store().await;
    let ttl = Duration::from_secs(300);
    assert!(matches!(
        st.acquire_lock("run-a", ttl).await.unwrap(),
        LockOutcome::Acquired { .. }
    ));
    match st.acquire_lock("run-b", ttl).await.unwrap() {
        LockOutcome::Held { owner, expires_at } => {
            assert_eq!(owner, "run-a");
            assert!(expires_at > Utc::now().timestamp());
        }
        other => panic!("expected Held, got {other:?}"),
    }
    assert!(
        matches!(
            st.acquire_lock("run-a", ttl).await.unwrap(),
            LockOutcome::Acquired { .. }
        ),
        "re-entrant"
    );
    assert!(!st.release_lock("run-b").await.unwrap(), "not the owner");
    assert!(st.release_lock("run-a").await.unwrap());
    assert!(matches!(
        st.acquire_lock("run-b", ttl).await.unwrap(),
        LockOutcome::Acquired { .. }
    ));
}

#[tokio::test]
async fn an_expired_lock_can_be_taken_over() {
    let st = store().await;
    assert!(matches!(
        st.acquire_lock("crashed", Duration::ZERO).await.unwrap(),
        LockOutcome::Acquired { .. }
    ));
    // Expiry has one-second resolution: poll (bounded) until the next second.
    let mut outcome = None;
    for _ in 0..40 {
        match st
            .acquire_lock("next", Duration::from_secs(60))
            .await
            .unwrap()
        {
            LockOutcome::Acquired { .. } => {
                outcome = Some(());
                break;
            }
            LockOutcome::Held { owner, .. } => assert_eq!(owner, "crashed"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(outcome.is_some(), "expired lock was never taken over");
    assert!(matches!(
        st.acquire_lock("crashed", Duration::ZERO).await.unwrap(),
        LockOutcome::Held { .. }
    ));
}

/// A ledger far past DynamoDB's 400 KB item limit is stored in chunks and
/// read back byte for byte; a missing chunk or altered bytes are refused
/// with the generation named, never read as a smaller ledger.
#[tokio::test]
async fn ledgers_past_the_item_limit_round_trip_in_chunks_and_damage_is_refused() {
    let st = store().await;
    let mut ledger = etl_core::Ledger::new();
    let now = Utc::now();
    for i in 0..40_000u32 {
        let r = etl_core::SourceRecord {
            id: format!("bulk-{i}"),
            text: "same time".into(),
            created_at: now,
            updated_at: now,
            attributes: Default::default(),
        };
        ledger.insert(etl_core::fingerprint(&r), r.updated_at);
    }
    let bytes = ledger.encode();
    assert!(bytes.len() > 900_000);
    let r = st.save_ledger("run-1", &bytes).await.unwrap();
    assert_eq!(
        r.chunks as usize,
        bytes.len().div_ceil(etl_aws::state::LEDGER_CHUNK_BYTES)
    );
    assert!(r.chunks >= 3);
    let back = st.load_ledger(&r).await.unwrap();
    assert_eq!(back, bytes);
    assert_eq!(etl_core::Ledger::decode(&back).unwrap(), ledger);

    // A second save never reuses the generation name.
    let r2 = st.save_ledger("run-1", &bytes).await.unwrap();
    assert_ne!(r2.generation, r.generation);

    let mut wrong = r.clone();
    wrong.sha256 = "0".repeat(64);
    let err = st.load_ledger(&wrong).await.unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    st.delete_ledger(&r).await.unwrap();
    let err = st.load_ledger(&r).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("ledger generation {} chunk 0", r.generation)),
        "{err}"
    );
    assert_eq!(
        st.load_ledger(&r2).await.unwrap(),
        bytes,
        "other generations untouched"
    );
}
