use super::*;
use serde_json::json;

fn key(n: u8) -> IdempotencyKey {
    IdempotencyKey::new("ns", [n; 16])
}

const NOW: u64 = 10_000_000;

fn claim(n: u8, at: u64) -> Claim {
    Claim::new(key(n), NOW + at, NOW + at + 60_000, NOW / 1000 + 3600)
}

#[tokio::test]
async fn the_memory_store_follows_the_table_of_answers() {
    let s = MemoryIdempotencyStore::new();
    let first = claim(1, 0);
    assert_eq!(s.begin(&first).await.unwrap(), ClaimStatus::Started);
    assert_eq!(
        s.begin(&claim(1, 10)).await.unwrap(),
        ClaimStatus::InProgress {
            lock_until_ms: NOW + 60_000
        }
    );
    s.complete(&first.held(), Some(&json!({"ok": 1})), NOW / 1000 + 3600)
        .await
        .unwrap();
    assert_eq!(
        s.begin(&claim(1, 20)).await.unwrap(),
        ClaimStatus::Completed(Some(json!({"ok": 1})))
    );
    // Released: free again.
    let other = claim(2, 0);
    assert_eq!(s.begin(&other).await.unwrap(), ClaimStatus::Started);
    s.release(&other.held()).await.unwrap();
    assert_eq!(s.begin(&claim(2, 5)).await.unwrap(), ClaimStatus::Started);
    // Expired: free again.
    let expired = Claim::new(key(3), NOW, NOW + 1, NOW / 1000 - 1);
    assert_eq!(s.begin(&expired).await.unwrap(), ClaimStatus::Started);
    assert_eq!(s.begin(&claim(3, 0)).await.unwrap(), ClaimStatus::Started);
}

#[tokio::test]
async fn a_run_whose_lock_lapsed_cannot_undo_the_run_that_took_its_key_over() {
    let s = MemoryIdempotencyStore::new();
    let old = claim(1, 0);
    assert_eq!(s.begin(&old).await.unwrap(), ClaimStatus::Started);
    // After the old run's lock timed out, a new run takes the key over.
    let new = claim(1, 61_000);
    assert_eq!(s.begin(&new).await.unwrap(), ClaimStatus::Started);
    // The old run settles late: told so, nothing changed.
    assert_eq!(s.release(&old.held()).await, Err(StoreError::lost(&key(1))));
    assert!(s.complete(&old.held(), None, NOW).await.is_err());
    assert!(s.extend(&[&old.held()], NOW + 900_000).await.is_err());
    let old_held = old.held();
    let settled = s.settle(&[Settlement::Release { held: &old_held }]).await;
    assert_eq!(settled, vec![Err(StoreError::lost(&key(1)))]);
    match s.items().into_values().next() {
        Some(MemoryItem::InProgress {
            owner,
            lock_until_ms,
            ..
        }) => {
            assert_eq!(owner, new.owner);
            assert_eq!(lock_until_ms, new.lock_until_ms);
        }
        other => panic!("the new run's item is gone: {other:?}"),
    }
    // The new run's own release works, and then the old run's completion has nothing.
    s.release(&new.held()).await.unwrap();
    assert!(s.complete(&old.held(), None, NOW).await.is_err());
    assert!(s.items().is_empty());
}

#[tokio::test]
async fn the_memory_store_sweeps_out_expired_keys_as_it_grows() {
    let s = MemoryIdempotencyStore::new();
    for n in 0..(SWEEP_FROM as u32 + 10) {
        let mut digest = [0; 16];
        digest[..4].copy_from_slice(&n.to_le_bytes());
        // Half of them expire at once.
        let expires = if n % 2 == 0 {
            NOW / 1000 - 1
        } else {
            NOW / 1000 + 60
        };
        let c = Claim::new(IdempotencyKey::new("ns", digest), NOW, NOW + 1, expires);
        s.begin(&c).await.unwrap();
    }
    let left = s.items().len();
    assert!(left < SWEEP_FROM, "{left} items after a sweep");
    assert!(left >= SWEEP_FROM / 2, "{left}: live keys are kept");
}
