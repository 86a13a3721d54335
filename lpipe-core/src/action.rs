//! Actions: the steps of a path.

use crate::function::{Function, IntoFunction};
use crate::path::{IntoPathName, PathName};
use crate::queue::Queue;

/// A required parameter: a name, or a `(from, to)` rename.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredParam {
    pub(crate) from: String,
    pub(crate) to: String,
}

impl From<&str> for RequiredParam {
    fn from(name: &str) -> Self {
        RequiredParam {
            from: name.to_owned(),
            to: name.to_owned(),
        }
    }
}

impl From<String> for RequiredParam {
    fn from(name: String) -> Self {
        RequiredParam {
            to: name.clone(),
            from: name,
        }
    }
}

impl From<(&str, &str)> for RequiredParam {
    fn from((from, to): (&str, &str)) -> Self {
        RequiredParam {
            from: from.to_owned(),
            to: to.to_owned(),
        }
    }
}

/// One step of a path: call functions, then run paths, then forward to queues.
///
/// The functions receive the action's kwargs. What is passed on to the paths and queues is,
/// as in Python lpipe:
/// - with `required_params`: exactly those (each must be present; `(from, to)` renames), and
///   the functions receive the same;
/// - with `include_all_params`: every kwarg of the message (plus the renamed required ones);
/// - otherwise, the union of the functions' parameters that are present (a function taking a
///   map or `serde_json::Value` takes everything);
/// - an action with no functions and no required params passes on nothing (`{}`).
///
/// # Examples
///
/// ```
/// use lpipe_core::{Action, Queue, NoParams};
/// #[derive(serde::Deserialize)]
/// struct Subscribe { email: String }
/// async fn subscribe(args: Subscribe) -> Result<(), lpipe_core::BoxError> { Ok(()) }
///
/// let action = Action::new()
///     .function(subscribe)
///     .path("SEND_WELCOME")
///     .queue(Queue::sqs("audit").path("RECORD"));
/// let renaming = Action::new().required_param(("mail", "email")).function(subscribe);
/// # let _ = (action, renaming);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Action {
    pub(crate) functions: Vec<Function>,
    pub(crate) paths: Vec<PathName>,
    pub(crate) queues: Vec<Queue>,
    pub(crate) required_params: Vec<RequiredParam>,
    pub(crate) include_all_params: bool,
    pub(crate) returns_to: Vec<PathName>,
}

impl Action {
    /// An empty action (building a pipeline with it fails until something is added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a function.
    pub fn function<M>(mut self, f: impl IntoFunction<M>) -> Self {
        self.functions.push(f.into_function());
        self
    }

    /// Adds functions of possibly different signatures (see [`function`](fn@crate::function)).
    pub fn functions(mut self, fs: impl IntoIterator<Item = Function>) -> Self {
        self.functions.extend(fs);
        self
    }

    /// Adds a path to run after the functions.
    pub fn path(mut self, path: impl IntoPathName) -> Self {
        self.paths.push(path.into_path_name());
        self
    }

    /// Adds a queue to forward to after the functions and paths.
    pub fn queue(mut self, queue: Queue) -> Self {
        self.queues.push(queue);
        self
    }

    /// Adds a required parameter: a name, or a `(from, to)` rename.
    pub fn required_param(mut self, param: impl Into<RequiredParam>) -> Self {
        self.required_params.push(param.into());
        self
    }

    /// Adds required parameters.
    pub fn required_params<P: Into<RequiredParam>>(
        mut self,
        params: impl IntoIterator<Item = P>,
    ) -> Self {
        self.required_params
            .extend(params.into_iter().map(Into::into));
        self
    }

    /// Declares a path that this action's functions may return a [`Payload`](crate::Payload)
    /// to (a function that computes a new kwarg for the next step returns
    /// `Payload::to_path(…)`). The path must exist when the pipeline is built; once an action
    /// declares any, a payload to a path it does not declare drops the record with an
    /// `InvalidPathError` that says so. [`to_mermaid`](crate::Pipeline::to_mermaid) draws the
    /// declared paths as dashed "returns" edges. Without any declared, payloads may go to any
    /// path, undrawn.
    ///
    /// # Examples
    ///
    /// ```
    /// use lpipe_core::{Action, Payload, Pipeline};
    /// #[derive(serde::Deserialize)]
    /// struct Order { price: f64, qty: f64 }
    /// async fn total(o: Order) -> Result<Payload, lpipe_core::BoxError> {
    ///     Ok(Payload::to_path("BILL", &serde_json::json!({"total": o.price * o.qty}))?)
    /// }
    /// # async fn bill(_: lpipe_core::NoParams) -> Result<(), lpipe_core::BoxError> { Ok(()) }
    /// let pipeline = Pipeline::builder()
    ///     .path("ORDER", [Action::new().function(total).returns_to("BILL")])
    ///     .path("BILL", [Action::new().function(bill)])
    ///     .build()
    ///     .unwrap();
    /// assert!(pipeline.to_mermaid().contains(r#"path_ORDER_1 -.->|"returns"| path_BILL"#));
    /// ```
    pub fn returns_to(mut self, path: impl IntoPathName) -> Self {
        self.returns_to.push(path.into_path_name());
        self
    }

    /// Passes every kwarg of the message on to the functions, paths and queues.
    pub fn include_all_params(mut self) -> Self {
        self.include_all_params = true;
        self
    }

    /// The functions.
    pub fn get_functions(&self) -> &[Function] {
        &self.functions
    }

    /// The paths.
    pub fn get_paths(&self) -> &[PathName] {
        &self.paths
    }

    /// The queues.
    pub fn get_queues(&self) -> &[Queue] {
        &self.queues
    }

    /// The paths its functions may return payloads to (see [`returns_to`](Self::returns_to)).
    pub fn get_returns_to(&self) -> &[PathName] {
        &self.returns_to
    }

    /// A short description for diagrams: its functions, or what it forwards.
    pub(crate) fn label(&self) -> String {
        if !self.functions.is_empty() {
            let names: Vec<&str> = self.functions.iter().map(Function::name).collect();
            return names.join(", ");
        }
        if self.include_all_params {
            return "forward all kwargs".to_owned();
        }
        if self.required_params.is_empty() {
            return "forward".to_owned();
        }
        let params: Vec<String> = self
            .required_params
            .iter()
            .map(|p| {
                if p.from == p.to {
                    p.from.clone()
                } else {
                    format!("{} as {}", p.from, p.to)
                }
            })
            .collect();
        format!("forward {}", params.join(", "))
    }

    /// The kwargs this action passes on to its paths and queues, when they are known at
    /// build time: `None` when it passes on every kwarg (`include_all_params`, or a function
    /// that takes any).
    pub(crate) fn forwarded_fields(&self) -> Option<std::collections::BTreeSet<&str>> {
        if self.include_all_params {
            return None;
        }
        if !self.required_params.is_empty() {
            return Some(self.required_params.iter().map(|p| p.to.as_str()).collect());
        }
        self.function_fields()
    }

    /// The kwargs this action reads (its functions' parameters and its required parameters),
    /// when they are known at build time: `None` when it takes every kwarg.
    pub(crate) fn read_fields(&self) -> Option<std::collections::BTreeSet<&str>> {
        if self.include_all_params {
            return None;
        }
        let mut fields = self.function_fields()?;
        fields.extend(self.required_params.iter().map(|p| p.from.as_str()));
        Some(fields)
    }

    /// The union of the functions' parameters; `None` if one takes any kwarg.
    fn function_fields(&self) -> Option<std::collections::BTreeSet<&str>> {
        let mut fields = std::collections::BTreeSet::new();
        for f in &self.functions {
            match f.params {
                crate::params::Signature::Any => return None,
                crate::params::Signature::None => {}
                crate::params::Signature::Fields(names) => fields.extend(names.iter().copied()),
            }
        }
        Some(fields)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.functions.is_empty() && self.paths.is_empty() && self.queues.is_empty()
    }
}
