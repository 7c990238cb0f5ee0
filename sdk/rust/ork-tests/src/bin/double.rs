// Context by reference first, then the input; TaskError with details, `?` on a std error, a panic.
use ork::{task, Context, TaskError};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    n: i64,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Serialize)]
struct Output {
    total: i64,
    task: String,
    attempt: u32,
    index: Option<u32>,
}

#[task]
fn double(ctx: &Context, input: Input) -> ork::Result<Output> {
    ctx.log.info(format!("doubling {}", input.n));
    ctx.metrics().record("n", input.n as f64, &[("unit", "items")]);
    if input.n < 0 {
        return Err(TaskError::with_details("negative n", serde_json::json!({"n": input.n})));
    }
    if input.n == 13 {
        panic!("unlucky");
    }
    let extra: i64 = match &input.text {
        Some(t) => t.parse()?,
        None => 0,
    };
    Ok(Output { total: input.n * 2 + extra, task: ctx.task_name.clone(), attempt: ctx.attempt, index: ctx.parallel_index })
}
