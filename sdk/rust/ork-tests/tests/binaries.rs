//! Runs the #[task] binaries as the worker does: input on stdin, ORK_* variables, output and error files.
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

struct Run {
    code: i32,
    output: Option<Value>,
    error: Option<Value>,
    stdout: String,
    stderr: String,
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ork-rust-sdk-{}-{}", std::process::id(), name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `exe` with `input` on stdin; `files`: set ORK_OUTPUT_FILE / ORK_ERROR_FILE (else stdout is the output).
fn run(exe: &str, name: &str, input: &str, files: bool) -> Run {
    let dir = scratch(name);
    let (out, err) = (dir.join("output.json"), dir.join("error.json"));
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env("ORK_TASK_NAME", "doubler")
        .env("ORK_WORKFLOW_NAME", "wf")
        .env("ORK_ATTEMPT", "2")
        .env("ORK_PARALLEL_INDEX", "1")
        .env("ORK_PARALLEL_COUNT", "3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if files {
        cmd.env("ORK_OUTPUT_FILE", &out).env("ORK_ERROR_FILE", &err);
    }
    let mut child = cmd.spawn().expect("spawn");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let r = child.wait_with_output().unwrap();
    let read = |p: &PathBuf| std::fs::read_to_string(p).ok().map(|t| serde_json::from_str(&t).expect("valid JSON"));
    let run = Run {
        code: r.status.code().unwrap_or(-1),
        output: read(&out),
        error: read(&err),
        stdout: String::from_utf8_lossy(&r.stdout).into(),
        stderr: String::from_utf8_lossy(&r.stderr).into(),
    };
    std::fs::remove_dir_all(&dir).unwrap();
    run
}

const DOUBLE: &str = env!("CARGO_BIN_EXE_double");

#[test]
fn typed_output_and_context() {
    let r = run(DOUBLE, "ok", r#"{"n": 21, "text": "1"}"#, true);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.output, Some(json!({"total": 43, "task": "doubler", "attempt": 2, "index": 1})));
    assert!(r.error.is_none());
    assert!(r.stderr.contains("[info] doubling 21\n"), "{}", r.stderr);
    assert!(r.stderr.contains(r#"ORK_METRIC {"labels":{"unit":"items"},"name":"n","value":21.0}"#), "{}", r.stderr);
    assert_eq!(r.stdout, "");
}

#[test]
fn without_output_file_the_output_is_the_last_stdout_line() {
    let r = run(DOUBLE, "stdout", r#"{"n": 2}"#, false);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "{\"attempt\":2,\"index\":1,\"task\":\"doubler\",\"total\":4}\n");
}

#[test]
fn task_error_with_details() {
    let r = run(DOUBLE, "te", r#"{"n": -4}"#, true);
    assert_eq!(r.code, 1);
    assert_eq!(r.error, Some(json!({"type": "task_error", "message": "negative n", "details": {"n": -4}})));
    assert_eq!(r.output, None);
    assert!(r.stderr.contains("[ork] task_error: negative n"), "{}", r.stderr);
}

#[test]
fn std_error_panic_and_bad_input() {
    let r = run(DOUBLE, "exc", r#"{"n": 1, "text": "x"}"#, true);
    assert_eq!((r.code, r.error.unwrap()["type"].clone()), (1, json!("exception")));

    let r = run(DOUBLE, "panic", r#"{"n": 13}"#, true);
    assert_eq!(r.code, 1);
    assert_eq!(r.error.unwrap()["message"], "panicked: unlucky");

    let r = run(DOUBLE, "bad", r#"{"n": "x"}"#, true);
    assert_eq!(r.code, 2);
    let e = r.error.unwrap();
    assert_eq!(e["type"], "input_validation");
    assert!(e["message"].as_str().unwrap().contains("invalid type: string \"x\", expected i64"), "{}", e);
}

#[test]
fn upstream_shape_main_with_context_by_value() {
    let r = run(env!("CARGO_BIN_EXE_upstream_shape"), "up", "", true);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.output, Some(json!({"greeting": "hello world", "workflow": "wf"})));
    assert!(r.stderr.contains("[info] greeting world"), "{}", r.stderr);
}

#[test]
fn plain_return_without_input() {
    let r = run(env!("CARGO_BIN_EXE_plain"), "plain", "{\"ignored\": true}", true);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.output, Some(json!([4, 2])));
}
