use std::time::Duration;

use chrono::{TimeZone, Utc};
use etl_aws::testing::{create_table, moto, unique};
use etl_aws::{LockOutcome, StateStore};
use etl_core::{Retry, Watermark};

async fn store() -> StateStore {
    let c = moto().clients().await.dynamodb;
    let table = unique("state");
    create_table(&c, &table, "pk").await;
    StateStore::new(c, table, "source-table")
}

#[tokio::test]
async fn watermark_writes_are_conditional_on_the_version_read() {
    let st = store().await;
    assert!(st.load_watermark().await.unwrap().is_none());
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

    let back = st.load_watermark().await.unwrap().unwrap();
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
