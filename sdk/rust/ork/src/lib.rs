//! The Ork task SDK for Rust. `#[ork::task]` turns a function
//! `fn f([ctx: &Context,] input: Input) -> ork::Result<Output>` into the program the worker's `rust` runtime runs:
//! input JSON on stdin → serde `Input` → `f` → `Output` JSON to `$ORK_OUTPUT_FILE` (else the last stdout line).
//! A `TaskError` (or any `std::error::Error` through `?`, or a panic) becomes `{"type","message","details"}` in
//! `$ORK_ERROR_FILE` and exit code 1; invalid input is type `input_validation` and exit code 2.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::io::{Read, Write};

pub use ork_macros::task;
pub use serde_json;

/// A task's result: `Ok(output)` or a [`TaskError`].
pub type Result<T, E = TaskError> = std::result::Result<T, E>;

/// A task failure: error type, message and JSON details, as they appear in the task's status.
///
/// `TaskError::new` is type `task_error`. Any `std::error::Error` converts (so `?` works) as type `exception` with
/// the error's `Display` as the message. It does not implement `std::error::Error` itself (that conversion would
/// conflict with it), like `anyhow::Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    kind: String,
    message: String,
    details: Value,
}

impl TaskError {
    /// A `task_error` without details.
    pub fn new(message: impl Into<String>) -> Self {
        TaskError { kind: "task_error".into(), message: message.into(), details: Value::Null }
    }

    /// A `task_error` with `details` (anything serde serializes, e.g. `serde_json::json!({...})`).
    pub fn with_details(message: impl Into<String>, details: impl Serialize) -> Self {
        let details = serde_json::to_value(details)
            .unwrap_or_else(|e| Value::String(format!("(details not serializable: {})", e)));
        TaskError { kind: "task_error".into(), message: message.into(), details }
    }

    /// Replaces the error type (`task_error` by default), e.g. `"rate_limited"`.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// The error type: `task_error`, `exception` (converted from a `std::error::Error`), or the one set by `kind`.
    pub fn error_type(&self) -> &str {
        &self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn details(&self) -> &Value {
        &self.details
    }

    /// `{"type", "message", "details"}`: what the worker reads from `$ORK_ERROR_FILE`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"type": self.kind, "message": self.message, "details": self.details})
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskError {
    fn from(e: E) -> Self {
        TaskError { kind: "exception".into(), message: e.to_string(), details: Value::Null }
    }
}

/// `[level] message` lines on stderr (the task log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Logger;

impl Logger {
    pub fn debug(&self, message: impl AsRef<str>) {
        line("debug", message.as_ref());
    }
    pub fn info(&self, message: impl AsRef<str>) {
        line("info", message.as_ref());
    }
    pub fn warning(&self, message: impl AsRef<str>) {
        line("warning", message.as_ref());
    }
    pub fn warn(&self, message: impl AsRef<str>) {
        line("warning", message.as_ref());
    }
    pub fn error(&self, message: impl AsRef<str>) {
        line("error", message.as_ref());
    }
}

fn line(level: &str, message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "[{}] {}", level, message);
}

/// Metrics as `ORK_METRIC {"name","value","labels"}` lines on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics;

impl Metrics {
    /// Records `name = value` with optional labels (`&[]` for none).
    pub fn record(&self, name: &str, value: f64, labels: &[(&str, &str)]) {
        let _ = writeln!(std::io::stderr().lock(), "ORK_METRIC {}", metric_json(name, value, labels));
    }
}

fn metric_json(name: &str, value: f64, labels: &[(&str, &str)]) -> Value {
    let labels = if labels.is_empty() {
        Value::Null
    } else {
        Value::Object(labels.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect())
    };
    serde_json::json!({"name": name, "value": value, "labels": labels})
}

/// Execution metadata, from the `ORK_*` variables the worker sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    pub task_id: String,
    pub run_id: String,
    pub task_name: String,
    pub workflow_name: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The instance's index in a `parallel:` / `foreach:` fan-out; `None` for a single task.
    pub parallel_index: Option<u32>,
    pub parallel_count: Option<u32>,
    pub log: Logger,
    pub metrics: Metrics,
}

impl Context {
    /// From the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any variable lookup (`ORK_TASK_ID`, `ORK_RUN_ID`, `ORK_TASK_NAME`, `ORK_WORKFLOW_NAME`, `ORK_ATTEMPT`,
    /// `ORK_PARALLEL_INDEX`, `ORK_PARALLEL_COUNT`); missing or non-numeric numbers are `None` (attempt: 1).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let text = |k: &str| get(k).unwrap_or_default();
        let num = |k: &str| get(k).and_then(|v| v.trim().parse::<u32>().ok());
        Context {
            task_id: text("ORK_TASK_ID"),
            run_id: text("ORK_RUN_ID"),
            task_name: text("ORK_TASK_NAME"),
            workflow_name: text("ORK_WORKFLOW_NAME"),
            attempt: num("ORK_ATTEMPT").unwrap_or(1),
            parallel_index: num("ORK_PARALLEL_INDEX"),
            parallel_count: num("ORK_PARALLEL_COUNT"),
            log: Logger,
            metrics: Metrics,
        }
    }

    pub fn log(&self) -> &Logger {
        &self.log
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// What one call of a task produced: the output JSON, or the error and the exit code.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Output(Value),
    Failed { code: i32, error: TaskError },
}

/// Converts what a task function returns into its output (used by `#[task]`).
pub trait IntoOutput {
    fn into_output(self) -> Result<Value>;
}

impl<T: Serialize, E: Into<TaskError>> IntoOutput for std::result::Result<T, E> {
    fn into_output(self) -> Result<Value> {
        let value = self.map_err(Into::into)?;
        serde_json::to_value(value)
            .map_err(|e| TaskError::new(format!("cannot serialize the output: {}", e)).kind("output_error"))
    }
}

/// Wraps a plain (non-`Result`) return value (used by `#[task]`).
pub struct Plain<T>(pub T);

impl<T: Serialize> IntoOutput for Plain<T> {
    fn into_output(self) -> Result<Value> {
        Ok::<T, TaskError>(self.0).into_output()
    }
}

/// Parses `input` (empty or blank: `{}`) into `I`, calls `f`, and catches panics: the testable core of [`main`].
pub fn call<I, R, F>(input: &str, ctx: &Context, f: F) -> Outcome
where
    I: DeserializeOwned,
    R: IntoOutput,
    F: FnOnce(&Context, I) -> R,
{
    let text = if input.trim().is_empty() { "{}" } else { input };
    let parsed: I = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let error = TaskError::new(format!("invalid input: {}", e)).kind("input_validation");
            return Outcome::Failed { code: 2, error };
        }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(ctx, parsed).into_output())) {
        Ok(Ok(v)) => Outcome::Output(v),
        Ok(Err(error)) => Outcome::Failed { code: 1, error },
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string panic payload)".into());
            Outcome::Failed { code: 1, error: TaskError::new(format!("panicked: {}", what)).kind("panic") }
        }
    }
}

/// The program's `main`: stdin → [`call`] → `$ORK_OUTPUT_FILE` / stdout, or `$ORK_ERROR_FILE`; returns the exit code.
pub fn main<I, R, F>(f: F) -> i32
where
    I: DeserializeOwned,
    R: IntoOutput,
    F: FnOnce(&Context, I) -> R,
{
    let ctx = Context::from_env();
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        return fail(2, &TaskError::new(format!("cannot read the input from stdin: {}", e)).kind("input_validation"));
    }
    match call(&input, &ctx, f) {
        Outcome::Output(v) => {
            let text = v.to_string();
            match std::env::var("ORK_OUTPUT_FILE") {
                Ok(path) if !path.is_empty() => match std::fs::write(&path, text) {
                    Ok(()) => 0,
                    Err(e) => fail(1, &TaskError::new(format!("cannot write {}: {}", path, e)).kind("output_error")),
                },
                _ => {
                    println!("{}", text);
                    0
                }
            }
        }
        Outcome::Failed { code, error } => fail(code, &error),
    }
}

/// Writes the error to `$ORK_ERROR_FILE` (when set) and a summary line to stderr; returns `code`.
fn fail(code: i32, error: &TaskError) -> i32 {
    if let Ok(path) = std::env::var("ORK_ERROR_FILE") {
        if !path.is_empty() {
            let _ = std::fs::write(path, error.to_json().to_string());
        }
    }
    let _ = writeln!(std::io::stderr().lock(), "[ork] {}", error);
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use std::collections::HashMap;

    #[derive(Deserialize)]
    struct In {
        n: i64,
        #[serde(default)]
        label: String,
    }

    #[derive(Serialize)]
    struct Out {
        total: i64,
        label: String,
    }

    fn ctx() -> Context {
        Context::from_lookup(|_| None)
    }

    fn double(_: &Context, input: In) -> Result<Out> {
        if input.n < 0 {
            return Err(TaskError::with_details("negative n", json!({"n": input.n})));
        }
        Ok(Out { total: input.n * 2, label: input.label })
    }

    #[test]
    fn typed_output() {
        assert_eq!(call(r#"{"n": 21, "label": "x"}"#, &ctx(), double), Outcome::Output(json!({"total": 42, "label": "x"})));
    }

    #[test]
    fn task_error_keeps_message_and_details() {
        match call(r#"{"n": -2}"#, &ctx(), double) {
            Outcome::Failed { code, error } => {
                assert_eq!(code, 1);
                assert_eq!(error.to_json(), json!({"type": "task_error", "message": "negative n", "details": {"n": -2}}));
            }
            other => panic!("expected a failure, got {:?}", other),
        }
    }

    #[test]
    fn bad_input_is_input_validation_with_exit_code_2() {
        for text in [r#"{"n": "seven"}"#, "{not json", r#"{"label": "no n"}"#] {
            match call(text, &ctx(), double) {
                Outcome::Failed { code, error } => {
                    assert_eq!(code, 2, "{}", text);
                    assert_eq!(error.error_type(), "input_validation");
                    assert!(error.message().starts_with("invalid input: "), "{}", error.message());
                }
                other => panic!("{}: expected a failure, got {:?}", text, other),
            }
        }
    }

    #[test]
    fn empty_input_is_an_empty_object() {
        let f = |_: &Context, m: HashMap<String, i64>| -> Result<usize> { Ok(m.len()) };
        assert_eq!(call("  \n", &ctx(), f), Outcome::Output(json!(0)));
    }

    #[test]
    fn question_mark_on_std_errors_is_exception() {
        let f = |_: &Context, s: String| -> Result<i64> { Ok(s.parse::<i64>()?) };
        match call(r#""12x""#, &ctx(), f) {
            Outcome::Failed { code: 1, error } => {
                assert_eq!(error.error_type(), "exception");
                assert_eq!(error.message(), "invalid digit found in string");
                assert_eq!(error.details(), &Value::Null);
            }
            other => panic!("expected an exception, got {:?}", other),
        }
        assert_eq!(call(r#""12""#, &ctx(), f), Outcome::Output(json!(12)));
    }

    #[test]
    fn panics_are_caught() {
        let f = |_: &Context, _: Value| -> Plain<i32> { panic!("boom {}", 7) };
        match call("{}", &ctx(), f) {
            Outcome::Failed { code: 1, error } => {
                assert_eq!(error.error_type(), "panic");
                assert_eq!(error.message(), "panicked: boom 7");
            }
            other => panic!("expected a panic failure, got {:?}", other),
        }
    }

    #[test]
    fn plain_values_and_custom_error_types() {
        let f = |c: &Context, _: Value| Plain(c.attempt);
        assert_eq!(call("{}", &ctx(), f), Outcome::Output(json!(1)));
        let g = |_: &Context, _: Value| -> Result<()> { Err(TaskError::new("slow down").kind("rate_limited")) };
        match call("{}", &ctx(), g) {
            Outcome::Failed { error, .. } => assert_eq!(error.to_string(), "rate_limited: slow down"),
            other => panic!("{:?}", other),
        }
    }

    #[test]
    fn unserializable_output_is_output_error() {
        let f = |_: &Context, _: Value| -> Result<HashMap<(i32, i32), i32>> { Ok(HashMap::from([((1, 2), 3)])) };
        match call("{}", &ctx(), f) {
            Outcome::Failed { code: 1, error } => assert_eq!(error.error_type(), "output_error"),
            other => panic!("{:?}", other),
        }
    }

    #[test]
    fn context_from_variables() {
        let vars: HashMap<&str, &str> = HashMap::from([
            ("ORK_TASK_ID", "t1"),
            ("ORK_RUN_ID", "r1"),
            ("ORK_TASK_NAME", "double"),
            ("ORK_WORKFLOW_NAME", "wf"),
            ("ORK_ATTEMPT", "3"),
            ("ORK_PARALLEL_INDEX", "2"),
            ("ORK_PARALLEL_COUNT", "4"),
        ]);
        let c = Context::from_lookup(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!((c.task_id.as_str(), c.run_id.as_str(), c.task_name.as_str()), ("t1", "r1", "double"));
        assert_eq!(c.workflow_name, "wf");
        assert_eq!((c.attempt, c.parallel_index, c.parallel_count), (3, Some(2), Some(4)));

        let empty = Context::from_lookup(|k| if k == "ORK_ATTEMPT" { Some("x".into()) } else { Some(String::new()) });
        assert_eq!((empty.attempt, empty.parallel_index, empty.parallel_count), (1, None, None));
    }

    #[test]
    fn metric_lines() {
        assert_eq!(metric_json("rows", 3.0, &[]), json!({"name": "rows", "value": 3.0, "labels": null}));
        assert_eq!(
            metric_json("rows", 1.5, &[("table", "users")]),
            json!({"name": "rows", "value": 1.5, "labels": {"table": "users"}})
        );
    }
}
