//! The conformance Lambda: Python lpipe 4.2.0's test Lambda, path for path, with the same
//! functions, parameters, return values and error classes.
//!
//! Queue names come from the environment variables `TEST_SQS_QUEUE` and `TEST_KINESIS_STREAM`
//! (defaults `test-sqs-queue` and `test-kinesis-stream`, the reference's fixture names).

use lpipe::{
    Action, BoxError, Context, FailButContinue, FailCatastrophically, NoParams, Payload, Pipeline,
    PipelineBuilder, Queue,
};
use serde::Deserialize;
use serde_json::json;

lpipe::path_enum! {
    /// The paths of the reference's test Lambda.
    pub enum Path {
        TEST_FUNC,
        TEST_FUNC_EXPLICIT_PARAMS,
        TEST_FUNC_NO_PARAMS,
        TEST_FUNC_BLANK_PARAMS,
        TEST_FUNC_DEFAULT_PARAM,
        TEST_PATH,
        TEST_FUNC_AND_PATH,
        MULTI_TEST_FUNC,
        MULTI_TEST_FUNC_NO_PARAMS,
        TEST_RENAME_PARAM,
        TEST_KINESIS_QUEUE,
        TEST_SQS_QUEUE,
        TEST_SQS_QUEUE_WITHOUT_PATH,
        TEST_SENTRY,
        TEST_RET,
        TEST_TRIGGER_FIRST,
        TEST_TRIGGER_SECOND,
        TEST_MULTI_TRIGGER,
        TEST_TRIGGER_ERROR,
        TEST_DEFAULT_PATH,
        TEST_DEFAULT_PATH_INCLUDE_ALL,
        TEST_BARE_FUNCS,
        TEST_RAISE,
        TEST_RAISE_CUSTOM,
        TEST_RAISE_CUSTOM_CONTINUE,
        TEST_RETURN_PAYLOAD_RAISES,
        TEST_RETURN_PAYLOAD_RAISES_CONTINUE,
    }
}

/// The reference's `MyCustomException(FailCatastrophically)`: its source is a
/// [`FailCatastrophically`], so lpipe keeps the record.
#[derive(Debug, thiserror::Error)]
#[error("error message")]
pub struct MyCustomException(#[source] FailCatastrophically);

/// The reference's `MyCustomExceptionContinue(FailButContinue)`.
#[derive(Debug, thiserror::Error)]
#[error("error message (continue)")]
pub struct MyCustomExceptionContinue(#[source] FailButContinue);

/// The SQS queue the TEST_SQS_QUEUE paths forward to.
pub fn sqs_queue_name() -> String {
    std::env::var("TEST_SQS_QUEUE").unwrap_or_else(|_| "test-sqs-queue".to_owned())
}

/// The Kinesis stream the TEST_KINESIS_QUEUE path forwards to.
pub fn kinesis_stream_name() -> String {
    std::env::var("TEST_KINESIS_STREAM").unwrap_or_else(|_| "test-kinesis-stream".to_owned())
}

/// `test_func(foo: str)`.
#[derive(Debug, Deserialize)]
pub struct Foo {
    /// Required.
    pub foo: String,
}

/// `test_func`: fails on an empty `foo`, returns true.
pub async fn test_func(args: Foo, ctx: Context) -> Result<bool, BoxError> {
    if args.foo.is_empty() {
        return Err("Missing required parameter 'foo'".into());
    }
    tracing::info!(record = ?ctx.record().id(), path = %ctx.path(), "test_func success");
    Ok(true)
}

/// `test_func_no_params`.
pub async fn test_func_no_params(_: NoParams) -> Result<bool, BoxError> {
    tracing::info!("test_func_no_params success");
    Ok(true)
}

/// `test_func_default_param(foo: str = "bar")`.
#[derive(Debug, Deserialize)]
pub struct DefaultFoo {
    /// Defaults to `"bar"`.
    #[serde(default = "bar")]
    pub foo: String,
}

fn bar() -> String {
    "bar".to_owned()
}

/// `test_func_default_param`.
pub async fn test_func_default_param(args: DefaultFoo) -> Result<bool, BoxError> {
    tracing::info!(foo = %args.foo, "test_func_default_param success");
    Ok(true)
}

/// Returns a payload for TEST_TRIGGER_SECOND.
pub async fn test_func_trigger_first(_: NoParams) -> Result<Payload, BoxError> {
    Ok(Payload::to_path(Path::TEST_TRIGGER_SECOND, &json!({}))?)
}

/// Returns two payloads for TEST_TRIGGER_SECOND and one for a Kinesis queue.
pub async fn test_func_multi_trigger(_: NoParams) -> Result<Vec<Payload>, BoxError> {
    Ok(vec![
        Payload::to_path(Path::TEST_TRIGGER_SECOND, &json!({}))?,
        Payload::to_path(Path::TEST_TRIGGER_SECOND, &json!({}))?,
        Payload::to_queue(
            Queue::kinesis(kinesis_stream_name()).path("TEST_FUNC"),
            &json!({"foo": "bar"}),
        )?,
    ])
}

/// Returns a payload for TEST_RAISE_CUSTOM_CONTINUE.
pub async fn test_func_trigger_error(_: NoParams) -> Result<Payload, BoxError> {
    Ok(Payload::to_path(
        Path::TEST_RAISE_CUSTOM_CONTINUE,
        &json!({}),
    )?)
}

/// `return_foobar`.
pub async fn return_foobar(_: NoParams) -> Result<&'static str, BoxError> {
    Ok("foobar")
}

/// `test_kwargs_passed_to_default_path_include_all(**kwargs)`: `foo` must be `"bar"`.
pub async fn test_kwargs_passed_to_default_path_include_all(
    kwargs: serde_json::Map<String, serde_json::Value>,
) -> Result<(), FailButContinue> {
    match kwargs.get("foo") {
        Some(v) if v == "bar" => Ok(()),
        _ => Err(FailButContinue::new("foo was not set to bar")),
    }
}

/// `test_kwargs_passed_to_default_path(foo)`: `foo` must be `"bar"`.
pub async fn test_kwargs_passed_to_default_path(args: Foo) -> Result<(), FailButContinue> {
    if args.foo == "bar" {
        Ok(())
    } else {
        Err(FailButContinue::new("foo was not set to bar"))
    }
}

/// `throw_exception`: an ordinary error.
pub async fn throw_exception(_: NoParams) -> Result<(), BoxError> {
    Err("an ordinary exception".into())
}

/// `throw_custom_exception`: [`MyCustomException`].
pub async fn throw_custom_exception(_: NoParams) -> Result<(), MyCustomException> {
    Err(MyCustomException(FailCatastrophically::new(
        "error message",
    )))
}

/// `throw_custom_exception_continue`: [`MyCustomExceptionContinue`].
pub async fn throw_custom_exception_continue(_: NoParams) -> Result<(), MyCustomExceptionContinue> {
    Err(MyCustomExceptionContinue(FailButContinue::new(
        "error message (continue)",
    )))
}

/// Returns a payload for TEST_RAISE_CUSTOM.
pub async fn return_payload_throw_custom_exception(_: NoParams) -> Result<Payload, BoxError> {
    Ok(Payload::to_path(Path::TEST_RAISE_CUSTOM, &json!({}))?)
}

/// Returns a payload for TEST_RAISE_CUSTOM_CONTINUE.
pub async fn return_payload_throw_custom_exception_continue(
    _: NoParams,
) -> Result<Payload, BoxError> {
    Ok(Payload::to_path(
        Path::TEST_RAISE_CUSTOM_CONTINUE,
        &json!({}),
    )?)
}

/// The reference's `PATHS`, as a pipeline builder (add sinks or a default path, then build).
pub fn pipeline() -> PipelineBuilder {
    // The reference's test Lambda is invoked directly and fed by SQS, Kinesis and CloudWatch
    // events alike: it detects each event's source by its shape.
    let builder = Pipeline::builder().detect_source();
    other_paths(queue_paths(function_paths(builder)))
}

/// The paths that call functions and run other paths.
fn function_paths(builder: PipelineBuilder) -> PipelineBuilder {
    use Path::*;
    builder
        .path(TEST_FUNC, [Action::new().function(test_func)])
        .path(
            TEST_FUNC_EXPLICIT_PARAMS,
            [Action::new().required_param("foo").function(test_func)],
        )
        .path(
            TEST_FUNC_NO_PARAMS,
            [Action::new().function(test_func_no_params)],
        )
        .path(
            TEST_FUNC_BLANK_PARAMS,
            [Action::new()
                .required_params::<&str>([])
                .function(test_func_no_params)],
        )
        .path(
            TEST_PATH,
            [Action::new().required_param("foo").path(TEST_FUNC)],
        )
        .path(
            TEST_FUNC_AND_PATH,
            [Action::new().function(test_func).path(TEST_FUNC)],
        )
        .path(
            MULTI_TEST_FUNC,
            [
                Action::new().function(test_func),
                Action::new().function(test_func).path(TEST_FUNC),
                Action::new().path(TEST_FUNC_BLANK_PARAMS),
            ],
        )
        .path(
            MULTI_TEST_FUNC_NO_PARAMS,
            [
                Action::new().function(test_func_no_params),
                Action::new()
                    .function(test_func_no_params)
                    .path(TEST_FUNC_BLANK_PARAMS),
                Action::new().path(TEST_FUNC_BLANK_PARAMS),
            ],
        )
        .path(
            TEST_BARE_FUNCS,
            [Action::new()
                .function(test_func)
                .function(test_func_no_params)],
        )
        .path(
            TEST_RENAME_PARAM,
            [Action::new()
                .required_param(("bar", "foo"))
                .function(test_func)],
        )
}

/// The paths that forward to queues.
fn queue_paths(builder: PipelineBuilder) -> PipelineBuilder {
    use Path::*;
    let sqs = sqs_queue_name();
    let kinesis = kinesis_stream_name();
    builder
        .path(
            TEST_KINESIS_QUEUE,
            [Action::new()
                .required_param("uri")
                .queue(Queue::kinesis(&kinesis).path("TEST_FUNC"))],
        )
        .path(
            TEST_SQS_QUEUE,
            [Action::new()
                .required_param("uri")
                .queue(Queue::sqs(&sqs).path("TEST_FUNC"))],
        )
        .path(
            TEST_SQS_QUEUE_WITHOUT_PATH,
            [Action::new().required_param("uri").queue(Queue::sqs(&sqs))],
        )
}

/// Default parameters, errors, returned payloads and default-path forwarding.
fn other_paths(builder: PipelineBuilder) -> PipelineBuilder {
    use Path::*;
    builder
        .path(
            TEST_FUNC_DEFAULT_PARAM,
            [Action::new().function(test_func_default_param)],
        )
        .path(TEST_SENTRY, [Action::new().function(throw_exception)])
        .path(TEST_RET, [Action::new().function(return_foobar)])
        .path(
            TEST_TRIGGER_FIRST,
            [Action::new().function(test_func_trigger_first)],
        )
        .path(TEST_TRIGGER_SECOND, [Action::new().function(return_foobar)])
        .path(
            TEST_MULTI_TRIGGER,
            [Action::new().function(test_func_multi_trigger)],
        )
        .path(
            TEST_DEFAULT_PATH,
            [Action::new().function(test_kwargs_passed_to_default_path)],
        )
        .path(
            TEST_DEFAULT_PATH_INCLUDE_ALL,
            [Action::new()
                .function(test_kwargs_passed_to_default_path_include_all)
                .include_all_params()],
        )
        .path_fn(TEST_TRIGGER_ERROR, test_func_trigger_error)
        .path_fn(TEST_RAISE, throw_exception)
        .path_fn(TEST_RAISE_CUSTOM, throw_custom_exception)
        .path_fn(TEST_RAISE_CUSTOM_CONTINUE, throw_custom_exception_continue)
        .path_fn(
            TEST_RETURN_PAYLOAD_RAISES,
            return_payload_throw_custom_exception,
        )
        .path_fn(
            TEST_RETURN_PAYLOAD_RAISES_CONTINUE,
            return_payload_throw_custom_exception_continue,
        )
}

/// The single-function form (`call=test_func`).
pub fn call_pipeline() -> PipelineBuilder {
    Pipeline::from_function(test_func).detect_source()
}
