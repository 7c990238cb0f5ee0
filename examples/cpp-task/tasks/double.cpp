// Doubles `n`: input {"label", "n"} → output {"label", "total", "attempt"}.
#include <ork/task.hpp>

struct Input {
  std::string label;
  int n = 1;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Input, label, n)

struct Output {
  std::string label;
  int total;
  int attempt;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Output, label, total, attempt)

Output run(const Input& in, const ork::Context& ctx) {
  if (in.n < 0) throw ork::TaskError("n must not be negative", {{"n", in.n}});
  ctx.log.info("doubling " + std::to_string(in.n) + " in " + ctx.workflow_name);
  ctx.metrics.record("n", in.n);
  return {in.label, in.n * 2, ctx.attempt};
}

ORK_TASK(run)
