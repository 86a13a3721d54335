//! A directed graph across two Lambdas.
//!
//! The *signup* Lambda ([`signup`]) validates a signup, stores the user (whose function returns
//! a payload for the AUDIT path), and forwards a welcome message to an SQS queue whose consumer
//! is the *mailer* Lambda ([`mailer`]), path SEND_WELCOME. The queue name comes from
//! `GRAPH_MAILER_QUEUE` (default `lpipe-graph-mailer`). Dropped signups go, as they came, to
//! the dead-letter queue `GRAPH_DROPPED_QUEUE` (default `lpipe-graph-signup-dropped`).
//! Both write CloudWatch metrics (namespace `lpipe-graph`); the mailer adds its own count,
//! `WelcomeMailsSent`.
//!
//! Each function is given with [`with_schema`]: the Lambdas' descriptions carry their argument
//! types' JSON Schemas, and `lpipe check` compares the type of each kwarg the signup Lambda
//! forwards with the one the mailer takes.

use lpipe::{
    with_schema, Action, Context, FailButContinue, FailCatastrophically, Metrics, Payload,
    Pipeline, PipelineBuilder, Queue,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

lpipe::path_enum! {
    /// The paths of the two Lambdas.
    pub enum Path { SIGNUP, STORE_USER, AUDIT, SEND_WELCOME }
}

/// The welcome queue: `lpipe-graph-mailer`, or `GRAPH_MAILER_QUEUE`.
pub fn welcome_queue() -> Queue {
    Queue::sqs("lpipe-graph-mailer").target_from_env("GRAPH_MAILER_QUEUE")
}

/// The welcome queue's name.
pub fn mailer_queue() -> String {
    welcome_queue().target().to_owned()
}

/// The signup Lambda's dead-letter queue: `lpipe-graph-signup-dropped`, or
/// `GRAPH_DROPPED_QUEUE`.
pub fn dead_letter_queue() -> Queue {
    Queue::sqs("lpipe-graph-signup-dropped").target_from_env("GRAPH_DROPPED_QUEUE")
}

/// The dead-letter queue's name.
pub fn dropped_queue() -> String {
    dead_letter_queue().target().to_owned()
}

/// A signup.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Signup {
    /// The user's name.
    pub name: String,
    /// Their email address.
    pub email: String,
    /// Their plan.
    #[serde(default = "free")]
    pub plan: String,
}

fn free() -> String {
    "free".to_owned()
}

/// Drops signups whose email has no `@` (FailButContinue: never retried).
pub async fn validate_signup(args: Signup) -> Result<(), FailButContinue> {
    if !args.email.contains('@') {
        return Err(FailButContinue::new(format!(
            "{}: '{}' is not an email address",
            args.name, args.email
        )));
    }
    Ok(())
}

/// What `store_user` needs. SIGNUP passes on only the kwargs that were present (a default of
/// `Signup` is not forwarded), so the default is repeated here.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct StoreUser {
    /// The user's name.
    pub name: String,
    /// Their plan.
    #[serde(default = "free")]
    pub plan: String,
}

/// Stores the user; the store is "down" for the plan `unavailable` (FailCatastrophically: the
/// record is retried). Returns a payload for AUDIT.
pub async fn store_user(args: StoreUser) -> Result<Payload, FailCatastrophically> {
    if args.plan == "unavailable" {
        return Err(FailCatastrophically::new(
            "the user store is unavailable; retry later",
        ));
    }
    tracing::info!(name = %args.name, plan = %args.plan, "stored user");
    Payload::to_path(
        Path::AUDIT,
        &json!({"event": "user stored", "name": args.name}),
    )
    .map_err(FailCatastrophically::wrap)
}

/// An audit entry.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Audit {
    /// What happened.
    pub event: String,
    /// To whom.
    pub name: String,
}

/// Records an audit entry; its output shows in the response.
pub async fn audit(args: Audit) -> Result<String, FailButContinue> {
    Ok(format!("audit: {} ({})", args.event, args.name))
}

/// What the mailer needs: `required_params` renames `email` to `address`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Welcome {
    /// Where to send it.
    pub address: String,
    /// Whom to greet.
    pub name: String,
}

/// Sends the welcome email (here: logs it, counts it, and returns it).
pub async fn send_welcome(args: Welcome, ctx: Context) -> Result<String, FailButContinue> {
    tracing::info!(to = %args.address, "sending welcome email");
    ctx.count("WelcomeMailsSent", 1);
    Ok(format!("welcome mail to {} <{}>", args.name, args.address))
}

/// The signup Lambda.
pub fn signup() -> PipelineBuilder {
    use Path::*;
    Pipeline::builder()
        .path(
            SIGNUP,
            [
                Action::new()
                    .function(with_schema(validate_signup))
                    .path(STORE_USER),
                Action::new()
                    .required_params([("email", "address"), ("name", "name")])
                    .queue(welcome_queue().path(SEND_WELCOME)),
            ],
        )
        .path(
            STORE_USER,
            [Action::new()
                .function(with_schema(store_user))
                .returns_to(AUDIT)],
        )
        .path(AUDIT, [Action::new().function(with_schema(audit))])
        .dead_letter_queue(dead_letter_queue())
        .only_source("sqs")
        .metrics(Metrics::new("lpipe-graph"))
}

/// The mailer Lambda, which consumes the welcome queue.
pub fn mailer() -> PipelineBuilder {
    Pipeline::builder()
        .path(
            Path::SEND_WELCOME,
            [Action::new().function(with_schema(send_welcome))],
        )
        .only_source("sqs")
        .metrics(Metrics::new("lpipe-graph"))
}
