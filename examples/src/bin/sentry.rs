//! A Lambda that reports dropped and failed records to Sentry (`SENTRY_DSN`; without it,
//! reporting is off and one log line says so). Locally: `sentry [EVENT_FILE]`.
use std::process::ExitCode;

use lpipe::sentry::SentryReporter;
use lpipe::{Action, FailButContinue, FailCatastrophically, Pipeline};
use serde::Deserialize;

#[derive(Deserialize)]
struct Charge {
    order_id: String,
    amount_cents: i64,
}

async fn charge(args: Charge) -> Result<(), lpipe::BoxError> {
    if args.amount_cents < 0 {
        return Err(
            FailButContinue::new(format!("order {}: negative amount", args.order_id)).into(),
        );
    }
    if args.order_id.starts_with("retry") {
        return Err(FailCatastrophically::new(format!(
            "order {}: the payment service is down",
            args.order_id
        ))
        .into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    lpipe::run(
        Pipeline::builder()
            .path("CHARGE", [Action::new().function(charge)])
            .only_source("raw")
            // Kwargs may hold personal data: attached only because this example opts in.
            .reporter(SentryReporter::from_env().include_kwargs(true)),
    )
    .await
}
