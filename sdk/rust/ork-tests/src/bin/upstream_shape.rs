// The reference docs' shape: `fn main(input, ctx: Context)` (by value) returning ork::Result.
use ork::{task, Context};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    #[serde(default = "default_name")]
    name: String,
}

fn default_name() -> String {
    "world".into()
}

#[derive(Serialize)]
struct Output {
    greeting: String,
    workflow: String,
}

#[task]
fn main(input: Input, ctx: Context) -> ork::Result<Output> {
    ctx.log().info(&format!("greeting {}", input.name));
    Ok(Output { greeting: format!("hello {}", input.name), workflow: ctx.workflow_name })
}
