// `{{ task.field }}` expressions in task input and env.
#include <gtest/gtest.h>

#include "core/expressions.hpp"

using ork::json;
using ork::resolve_templates;

TEST(Templates, WholeStringReferenceKeepsTheJsonType) {
  json scope{{"a", {{"n", 2}, {"list", {1, 2, 3}}, {"obj", {{"k", "v"}}}}}, {"input", {{"date", "2024-01-15"}}}};
  EXPECT_EQ(resolve_templates("{{ a.n }}", scope), 2);
  EXPECT_EQ(resolve_templates("{{a.list}}", scope), json({1, 2, 3}));
  EXPECT_EQ(resolve_templates("{{ a.list.1 }}", scope), 2);
  EXPECT_EQ(resolve_templates("{{ a.obj }}", scope), json({{"k", "v"}}));
  EXPECT_EQ(resolve_templates("{{ input.date }}", scope), "2024-01-15");
}

TEST(Templates, EmbeddedReferencesAreSubstitutedAsText) {
  json scope{{"a", {{"n", 2}, {"word", "hi"}, {"obj", {{"k", "v"}}}}}};
  EXPECT_EQ(resolve_templates("{{ a.word }} there, {{a.n}} times", scope), "hi there, 2 times");
  EXPECT_EQ(resolve_templates("x={{ a.obj }}", scope), "x={\"k\":\"v\"}");
  EXPECT_EQ(resolve_templates("no refs {{ not closed", scope), "no refs {{ not closed");
  EXPECT_EQ(resolve_templates("{{ }} {{ a..b }} stay", scope), "{{ }} {{ a..b }} stay");
}

TEST(Templates, NestedValuesAreResolvedAndOthersUntouched) {
  json scope{{"up", {{"path", "/data/x.csv"}}}};
  json in{{"file", "{{ up.path }}"}, {"n", 3}, {"nested", {{"list", {"{{ up.path }}", true}}}}};
  json out = resolve_templates(in, scope);
  EXPECT_EQ(out["file"], "/data/x.csv");
  EXPECT_EQ(out["n"], 3);
  EXPECT_EQ(out["nested"]["list"][0], "/data/x.csv");
  EXPECT_EQ(out["nested"]["list"][1], true);
}

TEST(Templates, UnresolvedReferenceIsAnError) {
  json scope{{"a", {{"n", 2}}}};
  EXPECT_THROW(resolve_templates("{{ a.missing }}", scope), std::runtime_error);
  EXPECT_THROW(resolve_templates("x {{ b.n }}", scope), std::runtime_error);
  EXPECT_THROW(resolve_templates("{{ a.n.deeper }}", scope), std::runtime_error);
}

TEST(Templates, ListIndexesInBrackets) {
  json scope{{"a", {{"rows", {{{"id", 7}}, {{"id", 8}}}}}}};
  EXPECT_EQ(resolve_templates("{{ a.rows[1].id }}", scope), 8);
  EXPECT_EQ(resolve_templates("{{ a.rows.0.id }}", scope), 7);
  EXPECT_EQ(resolve_templates("{{ a.rows[0] }}", scope), json({{"id", 7}}));
}

TEST(Templates, ErrorsSayWhereAndWhatIsMissing) {
  json scope = ork::expression_scope({{"date", "d"}}, {{"a", {{"n", 2}, {"list", {1, 2}}}}, {"b", nullptr}},
                                     {{"run_id", "r1"}, {"attempt", 1}}, nullptr);
  auto error = [&](const std::string& expr, const std::string& where = "input.x") {
    try {
      ork::render(json(expr), scope, where);
    } catch (const ork::ExpressionError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error("{{ fetchh.data }}"),
            "input.x: '{{ fetchh.data }}': unknown name 'fetchh' (known here: a, b, ctx, input; a task's output is "
            "visible only to tasks that depend on it)");
  EXPECT_EQ(error("{{ a.missing }}"), "input.x: '{{ a.missing }}': a has no field 'missing' (fields: list, n)");
  EXPECT_EQ(error("x {{ a.list[5] }}", "env.X"), "env.X: '{{ a.list[5] }}': a.list has 2 item(s), no index 5");
  EXPECT_EQ(error("{{ a.list.first }}"),
            "input.x: '{{ a.list.first }}': a.list is a list; use an index like [0], not 'first'");
  EXPECT_EQ(error("{{ a.n.deeper }}"), "input.x: '{{ a.n.deeper }}': a.n is int 2, which has no field 'deeper'");
  EXPECT_EQ(error("{{ b.x }}"), "input.x: '{{ b.x }}': b is null, which has no field 'x'");
  EXPECT_EQ(error("{{ item }}").rfind("input.x: '{{ item }}': unknown name 'item' ('item' exists only in foreach", 0),
            0u);
}

TEST(Templates, ScopeHasRunInputContextAndItem) {
  json item = {{"path", "/x"}};
  json scope = ork::expression_scope({{"date", "2024-01-15"}}, {{"up", {{"v", 1}}}},
                                     {{"run_id", "r1"}, {"task_name", "t"}, {"attempt", 2}}, &item);
  json in{{"d", "{{ input.date }}"}, {"run", "{{ ctx.run_id }}"}, {"also", "{{ context.task_name }}/{{ attempt }}"},
          {"bare", "{{ run_id }}"},  {"n", "{{ ctx.attempt }}"},  {"p", "{{ item.path }}"},
          {"whole", "{{ item }}"},   {"up", "{{ up.v }}"}};
  json out = ork::render(in, scope, "input");
  EXPECT_EQ(out["d"], "2024-01-15");
  EXPECT_EQ(out["run"], "r1");
  EXPECT_EQ(out["also"], "t/2");
  EXPECT_EQ(out["bare"], "r1");
  EXPECT_EQ(out["n"], 2);
  EXPECT_EQ(out["p"], "/x");
  EXPECT_EQ(out["whole"], item);
  EXPECT_EQ(out["up"], 1);
  // A task named like a context field shadows the bare name.
  json shadow = ork::expression_scope(json::object(), {{"attempt", {{"k", "task"}}}}, {{"attempt", 1}}, nullptr);
  EXPECT_EQ(ork::render(json("{{ attempt.k }}"), shadow, ""), "task");
  EXPECT_EQ(ork::render(json("{{ ctx.attempt }}"), shadow, ""), 1);
}

TEST(Templates, FindExpressionsReportsInvalidOnes) {
  auto e = ork::find_expressions("a {{ x.y[2] }} b {{ x | upper }} {{ }} {{ open");
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].error, "");
  EXPECT_EQ(e[0].path.size(), 3u);
  EXPECT_TRUE(e[0].path[2].is_index);
  EXPECT_EQ(e[0].path[2].index, 2u);
  EXPECT_NE(e[1].error.find("unexpected ' | upper'"), std::string::npos);
  EXPECT_EQ(e[2].error, "empty expression");
}

TEST(Templates, QuotedTextIsALiteralEscape) {
  json scope{{"a", {{"n", 2}}}};
  EXPECT_EQ(resolve_templates("{{ '{{' }} name | upper {{ '}}' }}", scope), "{{ name | upper }}");
  EXPECT_EQ(resolve_templates("{{ \"}}\" }}", scope), "}}");
  EXPECT_EQ(resolve_templates("{{ 'x' }}", scope), "x");  // a whole literal is a string
  EXPECT_EQ(resolve_templates("n={{ a.n }} {{ '{{' }}", scope), "n=2 {{");
}
