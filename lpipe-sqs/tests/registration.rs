//! A program that depends on lpipe-sqs directly, and names none of its items, gets its source
//! and sink registered with `use lpipe_sqs as _;` (rustc links a dependency only when the
//! program names it; this line names the crate and nothing in it).

use lpipe_sqs as _;

#[test]
fn naming_the_crate_registers_the_sqs_source_and_sink() {
    let registry = lpipe_core::registry::Registry::from_inventory();
    assert!(registry.source_names().contains(&"sqs"));
    assert!(registry.sink_kinds().contains(&"sqs".to_owned()));
    let built = lpipe_core::Pipeline::builder()
        .path(
            "A",
            [lpipe_core::Action::new().queue(lpipe_core::Queue::sqs("q"))],
        )
        .build();
    assert!(built.is_ok(), "{:?}", built.err().map(|e| e.to_string()));
}
