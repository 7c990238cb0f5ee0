// No context, no input, a plain return value.
#[ork::task]
fn answer() -> Vec<u32> {
    vec![4, 2]
}
