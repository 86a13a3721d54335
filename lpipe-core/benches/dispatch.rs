//! Per-record dispatch cost: a direct-invocation batch of the benchmark workload (path PROCESS
//! = [validate, enrich], [store]; see bench/ at the repository's root) through `Pipeline::handle`.
//!
//! `cargo bench -p lpipe-core --bench dispatch`; criterion reports the time per batch and, with
//! the throughput set, per record.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lpipe_core::{Action, FailButContinue, Pipeline};
use serde::Deserialize;

#[derive(Deserialize)]
struct Validate {
    user_id: i64,
    email: String,
}

async fn validate(a: Validate) -> Result<(), FailButContinue> {
    if a.email.contains('@') {
        Ok(())
    } else {
        Err(FailButContinue::new(format!(
            "user {}: bad email",
            a.user_id
        )))
    }
}

#[derive(Deserialize)]
struct Enrich {
    user_id: i64,
    name: String,
    #[serde(default)]
    score: f64,
}

async fn enrich(a: Enrich) -> Result<(), FailButContinue> {
    std::hint::black_box((a.user_id, &a.name, a.score));
    Ok(())
}

#[derive(Deserialize)]
struct Store {
    user_id: i64,
    tags: Vec<String>,
}

async fn store(a: Store) -> Result<(), FailButContinue> {
    std::hint::black_box((a.user_id, &a.tags));
    Ok(())
}

fn event(n: usize) -> String {
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({"path": "PROCESS", "kwargs": {"user_id": i, "email": format!("user{i}@example.com"),
                "name": format!("User {i}"), "tags": ["a", "b"], "score": i as f64 * 0.5}})
        })
        .collect();
    serde_json::to_string(&records).unwrap()
}

fn builder() -> lpipe_core::PipelineBuilder {
    Pipeline::builder().path(
        "PROCESS",
        [
            Action::new().function(validate).function(enrich),
            Action::new().function(store),
        ],
    )
}

fn dispatch(c: &mut Criterion) {
    let pipeline = builder().build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("dispatch");
    for n in [1usize, 100, 1000] {
        let ev = event(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("raw", n), &ev, |b, ev| {
            b.iter(|| {
                rt.block_on(pipeline.handle(ev, Default::default()))
                    .unwrap()
            });
        });
        // Every record idempotent by user_id, keys in a fresh in-memory store each time (a
        // store that has seen the batch would run none of it).
        group.bench_with_input(BenchmarkId::new("raw_idempotent", n), &ev, |b, ev| {
            b.iter_batched(
                || {
                    let store = lpipe_core::idempotency::MemoryIdempotencyStore::new();
                    builder()
                        .idempotent(lpipe_core::Idempotency::new(store).key_from(["user_id"]))
                        .build()
                        .unwrap()
                },
                // The pipeline (and its store) is dropped outside the measurement.
                |p| {
                    rt.block_on(p.handle(ev, Default::default())).unwrap();
                    p
                },
                criterion::BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
