//! Counts words: input {"text", "top"} → output {"words", "distinct", "top": [{"word", "count"}]}.
use ork::{task, Context, TaskError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Deserialize)]
struct Input {
    text: String,
    #[serde(default = "default_top")]
    top: usize,
}

fn default_top() -> usize {
    3
}

#[derive(Serialize)]
struct WordCount {
    word: String,
    count: u64,
}

#[derive(Serialize)]
struct Output {
    words: u64,
    distinct: usize,
    top: Vec<WordCount>,
}

#[task]
fn count(ctx: &Context, input: Input) -> ork::Result<Output> {
    if input.text.trim().is_empty() {
        return Err(TaskError::with_details("no text to count", serde_json::json!({"top": input.top})));
    }
    let mut counts: HashMap<String, u64> = HashMap::new();
    for word in input.text.split_whitespace() {
        *counts.entry(word.to_lowercase()).or_default() += 1;
    }
    let words = counts.values().sum();
    let mut top: Vec<WordCount> = counts.iter().map(|(w, c)| WordCount { word: w.clone(), count: *c }).collect();
    top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    top.truncate(input.top);

    ctx.log.info(format!("{} words in {} (attempt {})", words, ctx.workflow_name, ctx.attempt));
    ctx.metrics.record("words", words as f64, &[]);
    Ok(Output { words, distinct: counts.len(), top })
}
