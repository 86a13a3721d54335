//! A program that depends on lpipe-sqs directly, and names nothing else of it, links it with
//! `lpipe_sqs::link()` so that its source and sink are registered.

#[test]
fn link_registers_the_sqs_source_and_sink() {
    assert_eq!(lpipe_sqs::link(), "sqs");
    let registry = lpipe_core::Registry::from_inventory();
    assert!(registry.source_names().contains(&"sqs"));
    assert!(registry.sink_kinds().contains(&"sqs".to_owned()));
}
