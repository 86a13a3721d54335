//! A program that depends on lpipe-cloudwatch directly, and names none of its items, gets its source
//! and sink registered with `use lpipe_cloudwatch as _;` (rustc links a dependency only when the
//! program names it; this line names the crate and nothing in it).

use lpipe_cloudwatch as _;

#[test]
fn naming_the_crate_registers_the_cloudwatch_source_and_eventbridge_sink() {
    let registry = lpipe_core::registry::Registry::from_inventory();
    assert!(registry.source_names().contains(&"cloudwatch"));
    assert!(registry.sink_kinds().contains(&"eventbridge".to_owned()));
    let built = lpipe_core::Pipeline::builder()
        .path(
            "A",
            [lpipe_core::Action::new().queue(lpipe_core::Queue::eventbridge("bus"))],
        )
        .build();
    assert!(built.is_ok(), "{:?}", built.err().map(|e| e.to_string()));
}
