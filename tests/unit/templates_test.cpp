// `{{ task.field }}` references in task input and env.
#include <gtest/gtest.h>

#include "scheduler/engine.hpp"

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
