//! User functions: plain async functions whose argument is any `T: DeserializeOwned`.
//!
//! The two accepted shapes, as axum does for handlers, told apart by a marker type:
//!
//! - `async fn f(args: A) -> Result<R, E>`
//! - `async fn f(args: A, ctx: Context) -> Result<R, E>`
//!
//! where `A: DeserializeOwned` (the struct is the signature), `R: IntoReturn` and
//! `E: Into<BoxError>`.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

pub use crate::params::{optional_fields, NoParams, Signature};
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::error::BoxError;
use crate::kwargs::Kwargs;
use crate::queue::Payload;

/// What a function returned, after conversion.
#[derive(Debug, Clone, PartialEq)]
pub enum Returned {
    /// Nothing to report.
    Nothing,
    /// A value that becomes the record's output (shown in a direct invocation's response).
    Output(serde_json::Value),
    /// Payloads to run next.
    Payloads(Vec<Payload>),
}

/// Types a function may return in its `Ok`: `()`, `Option<T>`, a value for the record's
/// output (`bool`, numbers, strings, `serde_json::Value`, or any serializable value wrapped in
/// [`RecordOutput`]), a [`Payload`] or a `Vec<Payload>` to run next.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by an lpipe function",
    note = "return `()`, a `Payload`, a `Vec<Payload>`, a JSON-like value, or wrap a serializable value in `lpipe::RecordOutput`"
)]
pub trait IntoReturn {
    /// The conversion.
    fn into_return(self) -> Returned;
}

/// Wraps any serializable value to make it a function's output.
///
/// # Examples
///
/// A value of your own type is the record's output when wrapped:
///
/// ```
/// use lpipe_core::{Action, BoxError, NoParams, RecordOutput};
/// #[derive(serde::Serialize)]
/// struct Stored { id: u32 }
/// async fn store(_: NoParams) -> Result<RecordOutput<Stored>, BoxError> {
///     Ok(RecordOutput(Stored { id: 7 }))
/// }
/// let _ = Action::new().function(store);
/// ```
///
/// and not without (the compiler's note says to return `RecordOutput`):
///
/// ```compile_fail
/// use lpipe_core::{Action, BoxError, NoParams};
/// #[derive(serde::Serialize)]
/// struct Stored { id: u32 }
/// async fn store(_: NoParams) -> Result<Stored, BoxError> {
///     Ok(Stored { id: 7 })
/// }
/// let _ = Action::new().function(store);
/// ```
#[derive(Debug, Clone)]
pub struct RecordOutput<T>(pub T);

impl<T: serde::Serialize> IntoReturn for RecordOutput<T> {
    fn into_return(self) -> Returned {
        match serde_json::to_value(self.0) {
            Ok(serde_json::Value::Null) => Returned::Nothing,
            Ok(v) => Returned::Output(v),
            Err(e) => Returned::Output(serde_json::Value::String(format!(
                "<unserializable output: {e}>"
            ))),
        }
    }
}

impl IntoReturn for () {
    fn into_return(self) -> Returned {
        Returned::Nothing
    }
}

impl IntoReturn for Returned {
    fn into_return(self) -> Returned {
        self
    }
}

impl<T: IntoReturn> IntoReturn for Option<T> {
    fn into_return(self) -> Returned {
        self.map_or(Returned::Nothing, IntoReturn::into_return)
    }
}

impl IntoReturn for Payload {
    fn into_return(self) -> Returned {
        Returned::Payloads(vec![self])
    }
}

impl IntoReturn for Vec<Payload> {
    fn into_return(self) -> Returned {
        Returned::Payloads(self)
    }
}

impl IntoReturn for serde_json::Value {
    fn into_return(self) -> Returned {
        if self.is_null() {
            Returned::Nothing
        } else {
            Returned::Output(self)
        }
    }
}

macro_rules! output_values {
    ($($t:ty),*) => {$(
        impl IntoReturn for $t {
            fn into_return(self) -> Returned {
                Returned::Output(serde_json::Value::from(self))
            }
        }
    )*};
}
output_values!(bool, String, &'static str, i32, i64, u32, u64, f64);

/// Something that can be made a pipeline function: an async function or closure of one of the
/// two shapes `async fn(A) -> Result<R, E>` and `async fn(A, Context) -> Result<R, E>`
/// (`A: DeserializeOwned`, `R: IntoReturn`, `E: Into<BoxError>`). `M` is a marker that keeps
/// the shapes apart.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an lpipe function",
    note = "an lpipe function is `async fn(args: A) -> Result<R, E>`, `async fn(args: A, ctx: lpipe::Context) -> Result<R, E>`, `async fn(args: A, state: lpipe::State<T>) -> Result<R, E>` or `async fn(args: A, state: lpipe::State<T>, ctx: lpipe::Context) -> Result<R, E>`, with `A: serde::de::DeserializeOwned` (use `lpipe::NoParams` for none), `R: lpipe::IntoReturn` and `E: Into<lpipe::BoxError>`",
    note = "if the return type is the part at fault: to make a value of your own type the record's output, return `Result<lpipe::RecordOutput<YourType>, E>` and `Ok(lpipe::RecordOutput(value))`; `R` may also be `()`, a `String`, a number, a `bool`, a `serde_json::Value`, a `Payload` or a `Vec<Payload>`"
)]
pub trait IntoFunction<M>: Send + Sync + Sized + 'static {
    /// Erases the function's type.
    fn into_function(self) -> Function;
}

/// A function with its type erased, its name and its learned [`Signature`].
#[derive(Clone)]
pub struct Function {
    pub(crate) inner: Arc<dyn ErasedFunction>,
    pub(crate) name: &'static str,
    pub(crate) params: Signature,
    /// The fields of its argument it can do without (see [`optional_fields`]).
    pub(crate) optional: Vec<&'static str>,
    /// The shared state it takes ([`State<T>`]): `T`'s id and name.
    pub(crate) state: Option<(std::any::TypeId, &'static str)>,
    /// The JSON Schema of its argument type, when given (`with_schema`, feature `schemars`).
    pub(crate) schema: Option<Arc<serde_json::Value>>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("params", &self.params)
            .finish()
    }
}

impl Function {
    /// The function's name (the last segment of its Rust path, or the one given to
    /// [`Function::named`]).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The parameters learned from its argument type.
    pub fn params(&self) -> &Signature {
        &self.params
    }

    /// The parameters its argument type can do without (`Option`s, `#[serde(default)]`s).
    pub fn optional_params(&self) -> &[&'static str] {
        &self.optional
    }

    /// The JSON Schema of its argument type, if it was made with `with_schema` (feature
    /// `schemars`); the Lambda's description carries it.
    pub fn schema(&self) -> Option<&serde_json::Value> {
        self.schema.as_deref()
    }

    /// Renames the function (for logs and reports; closures have no useful name).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }
}

/// Erases a function's type so functions of different signatures can sit in one action.
///
/// # Examples
///
/// ```
/// use lpipe_core::{function, NoParams};
/// async fn ping(_: NoParams) -> Result<(), std::convert::Infallible> { Ok(()) }
/// assert_eq!(function(ping).name(), "ping");
/// ```
pub fn function<M>(f: impl IntoFunction<M>) -> Function {
    f.into_function()
}

/// The argument type of a function shape (the `M` of [`IntoFunction<M>`]).
#[doc(hidden)]
pub trait FunctionShape {
    /// The function's first argument.
    type Args;
}

/// Erases a function's type, as [`function`] does, and keeps the JSON Schema of its argument
/// type: the Lambda's description (`my-lambda describe`) carries it, and `lpipe check`
/// compares the types a forwarding Lambda passes with those the consumer takes.
///
/// # Examples
///
/// ```
/// use lpipe_core::{with_schema, Action};
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Welcome { address: String, name: String }
/// async fn send_welcome(_: Welcome) -> Result<(), std::convert::Infallible> { Ok(()) }
///
/// let f = with_schema(send_welcome);
/// assert_eq!(f.schema().unwrap()["properties"]["address"]["type"], "string");
/// let action = Action::new().function(f);
/// # let _ = action;
/// ```
#[cfg(feature = "schemars")]
pub fn with_schema<M: FunctionShape>(f: impl IntoFunction<M>) -> Function
where
    M::Args: schemars::JsonSchema,
{
    let mut function = f.into_function();
    function.schema = Some(Arc::new(schemars::schema_for!(M::Args).to_value()));
    function
}

/// A call whose arguments are deserialized, ready to be awaited.
pub(crate) type Prepared<'a> = BoxFuture<'a, Result<Returned, BoxError>>;

pub(crate) type ParamError = serde_path_to_error::Error<serde_json::Error>;

pub(crate) trait ErasedFunction: Send + Sync + 'static {
    /// Deserializes the arguments; the returned future runs the function. `ctx` makes the
    /// function's [`Context`], called only by functions that take one (or state).
    fn prepare<'a>(
        &'a self,
        kwargs: &Kwargs,
        ctx: &dyn Fn() -> Context,
    ) -> Result<Prepared<'a>, ParamError>;
}

fn short_name<F>() -> &'static str {
    let full = std::any::type_name::<F>();
    // "crate::module::name" or "crate::module::name::{{closure}}"
    let trimmed = full.trim_end_matches("::{{closure}}");
    match trimmed.rsplit("::").next() {
        Some(last) if !last.is_empty() && !trimmed.contains('<') => last,
        _ => full,
    }
}

fn args_from<A: DeserializeOwned>(params: &Signature, kwargs: &Kwargs) -> Result<A, ParamError> {
    if *params == Signature::None {
        // `()` and unit structs deserialize from null; `NoParams` from anything.
        let mut de = serde_json::Deserializer::from_str("null");
        return serde_path_to_error::deserialize(&mut de);
    }
    kwargs.deserialize()
}

/// What a function's argument type takes: its signature, and the fields it can do without.
fn learn<A: DeserializeOwned>() -> (Signature, Vec<&'static str>) {
    let signature = Signature::of::<A>();
    let optional = signature
        .fields()
        .map(optional_fields::<A>)
        .unwrap_or_default();
    (signature, optional)
}

/// A function's type erased: its holder, its name and what it takes.
fn erase<F, M>(
    f: F,
    (params, optional): (Signature, Vec<&'static str>),
    state: Option<(std::any::TypeId, &'static str)>,
) -> Function
where
    Holder<F, M>: ErasedFunction,
{
    Function {
        name: short_name::<F>(),
        params: params.clone(),
        optional,
        state,
        schema: None,
        inner: Arc::new(Holder::<F, M> {
            f,
            params,
            _marker: PhantomData,
        }),
    }
}

/// `T`'s id and name, for a function that takes [`State<T>`].
fn state_type<T: 'static>() -> (std::any::TypeId, &'static str) {
    (std::any::TypeId::of::<T>(), std::any::type_name::<T>())
}

struct Holder<F, M> {
    f: F,
    params: Signature,
    _marker: PhantomData<fn() -> M>,
}

/// Marker for `async fn(A) -> Result<R, E>`.
#[doc(hidden)]
pub struct ArgsOnly<A>(PhantomData<fn() -> A>);
/// Marker for `async fn(A, Context) -> Result<R, E>`.
#[doc(hidden)]
pub struct ArgsAndContext<A>(PhantomData<fn() -> A>);

impl<A> FunctionShape for ArgsOnly<A> {
    type Args = A;
}
impl<A> FunctionShape for ArgsAndContext<A> {
    type Args = A;
}
impl<A, T> FunctionShape for ArgsAndState<A, T> {
    type Args = A;
}
impl<A, T> FunctionShape for ArgsStateAndContext<A, T> {
    type Args = A;
}

impl<F, Fut, A, R, E> ErasedFunction for Holder<F, ArgsOnly<A>>
where
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    R: IntoReturn + 'static,
    E: Into<BoxError> + 'static,
{
    fn prepare<'a>(
        &'a self,
        kwargs: &Kwargs,
        _ctx: &dyn Fn() -> Context,
    ) -> Result<Prepared<'a>, ParamError> {
        let args: A = args_from(&self.params, kwargs)?;
        Ok(async move {
            (self.f)(args)
                .await
                .map(IntoReturn::into_return)
                .map_err(Into::into)
        }
        .boxed())
    }
}

impl<F, Fut, A, R, E> ErasedFunction for Holder<F, ArgsAndContext<A>>
where
    F: Fn(A, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    R: IntoReturn + 'static,
    E: Into<BoxError> + 'static,
{
    fn prepare<'a>(
        &'a self,
        kwargs: &Kwargs,
        ctx: &dyn Fn() -> Context,
    ) -> Result<Prepared<'a>, ParamError> {
        let args: A = args_from(&self.params, kwargs)?;
        let ctx = ctx();
        Ok(async move {
            (self.f)(args, ctx)
                .await
                .map(IntoReturn::into_return)
                .map_err(Into::into)
        }
        .boxed())
    }
}

impl<F, Fut, A, R, E> IntoFunction<ArgsOnly<A>> for F
where
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    R: IntoReturn + 'static,
    E: Into<BoxError> + 'static,
{
    fn into_function(self) -> Function {
        erase::<F, ArgsOnly<A>>(self, learn::<A>(), None)
    }
}

impl<F, Fut, A, R, E> IntoFunction<ArgsAndContext<A>> for F
where
    F: Fn(A, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    R: IntoReturn + 'static,
    E: Into<BoxError> + 'static,
{
    fn into_function(self) -> Function {
        erase::<F, ArgsAndContext<A>>(self, learn::<A>(), None)
    }
}

/// Shared state of type `T`, as a function's second argument: `async fn(args: A, db:
/// State<Database>)` or `async fn(args: A, db: State<Database>, ctx: Context)`. The state is
/// given once with [`PipelineBuilder::state`](crate::PipelineBuilder::state), and
/// [`build`](crate::PipelineBuilder::build) fails, naming the function and the type, when a
/// function takes a `State<T>` that was not given. Dereferences to `T`; cloning is cheap.
///
/// # Examples
///
/// ```
/// use lpipe_core::{Action, BoxError, Pipeline, State};
/// #[derive(serde::Deserialize)]
/// struct Order { id: String }
/// struct Database { table: String }
///
/// async fn store(order: Order, db: State<Database>) -> Result<String, BoxError> {
///     Ok(format!("{} into {}", order.id, db.table))
/// }
/// let pipeline = Pipeline::builder()
///     .path("STORE", [Action::new().function(store)])
///     .state(Database { table: "orders".into() })
///     .build()
///     .unwrap();
/// # let _ = pipeline;
/// ```
pub struct State<T>(Arc<T>);

impl<T> State<T> {
    /// The shared value.
    pub fn shared(&self) -> &Arc<T> {
        &self.0
    }
}

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

impl<T> std::ops::Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for State<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("State").field(&self.0).finish()
    }
}

fn state_of<T: Send + Sync + 'static>(ctx: &Context) -> State<T> {
    State(ctx.shared_state::<T>().unwrap_or_else(|| {
        panic!(
            "no state of type {} (the pipeline's build checks this; was the function called outside a pipeline?)",
            std::any::type_name::<T>()
        )
    }))
}

/// Marker for `async fn(A, State<T>) -> Result<R, E>`.
#[doc(hidden)]
pub struct ArgsAndState<A, T>(PhantomData<fn() -> (A, T)>);
/// Marker for `async fn(A, State<T>, Context) -> Result<R, E>`.
#[doc(hidden)]
pub struct ArgsStateAndContext<A, T>(PhantomData<fn() -> (A, T)>);

impl<F, Fut, A, T, R, E> ErasedFunction for Holder<F, ArgsAndState<A, T>>
where
    F: Fn(A, State<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    T: Send + Sync + 'static,
    R: IntoReturn + 'static,
    E: Into<BoxError> + 'static,
{
    fn prepare<'a>(
        &'a self,
        kwargs: &Kwargs,
        ctx: &dyn Fn() -> Context,
    ) -> Result<Prepared<'a>, ParamError> {
        let args: A = args_from(&self.params, kwargs)?;
        let ctx = ctx();
        let state = state_of::<T>(&ctx);
        Ok(async move {
            (self.f)(args, state)
                .await
                .map(IntoReturn::into_return)
                .map_err(Into::into)
        }
        .boxed())
    }
}

impl<F, Fut, A, T, R, E> ErasedFunction for Holder<F, ArgsStateAndContext<A, T>>
where
    F: Fn(A, State<T>, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    T: Send + Sync + 'static,
    R: IntoReturn + 'static,
    E: Into<BoxError> + 'static,
{
    fn prepare<'a>(
        &'a self,
        kwargs: &Kwargs,
        ctx: &dyn Fn() -> Context,
    ) -> Result<Prepared<'a>, ParamError> {
        let args: A = args_from(&self.params, kwargs)?;
        let ctx = ctx();
        let state = state_of::<T>(&ctx);
        Ok(async move {
            (self.f)(args, state, ctx)
                .await
                .map(IntoReturn::into_return)
                .map_err(Into::into)
        }
        .boxed())
    }
}

impl<F, Fut, A, T, R, E> IntoFunction<ArgsAndState<A, T>> for F
where
    F: Fn(A, State<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    T: Send + Sync + 'static,
    R: IntoReturn + 'static,
    E: Into<BoxError> + 'static,
{
    fn into_function(self) -> Function {
        erase::<F, ArgsAndState<A, T>>(self, learn::<A>(), Some(state_type::<T>()))
    }
}

impl<F, Fut, A, T, R, E> IntoFunction<ArgsStateAndContext<A, T>> for F
where
    F: Fn(A, State<T>, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    T: Send + Sync + 'static,
    R: IntoReturn + 'static,
    E: Into<BoxError> + 'static,
{
    fn into_function(self) -> Function {
        erase::<F, ArgsStateAndContext<A, T>>(self, learn::<A>(), Some(state_type::<T>()))
    }
}

impl IntoFunction<()> for Function {
    fn into_function(self) -> Function {
        self
    }
}
