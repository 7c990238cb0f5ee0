// Type schemas: the expression grammar, validation with field paths and defaults, assignability, JSON Schema.
#include "core/types.hpp"

#include <gtest/gtest.h>

using ork::json;
using ork::TypeError;
using ork::TypeSystem;

namespace {

const json kTypes = json::parse(R"({
  "Address": {"street": "str", "city": "str", "country": "str = \"NL\""},
  "User": {"id": "int", "name": "str", "email": "str", "address": "Address | None", "tags": "list[str] = []",
           "level": "Literal[\"debug\", \"info\"] = \"info\"", "friends": "list[User]?"},
  "ExtractOutput": {"users": "list[User]", "count": "int"},
  "Counts": "dict[str, int]",
  "Numbers": ["int"]
})");

// Problems as "path: expected X, got Y" strings.
std::vector<std::string> check(const TypeSystem& ts, const std::string& type, json v) {
  std::vector<std::string> out;
  for (const auto& i : ts.validate(*ts.parse(type, "t"), v, "output")) out.push_back(i.str());
  return out;
}

std::string reason(const TypeSystem& ts, const std::string& src, const std::string& dst) {
  return ts.assignable(*ts.parse(src, "src"), *ts.parse(dst, "dst")).value_or("");
}

}  // namespace

TEST(Types, PrimitivesAndTemporalFormats) {
  TypeSystem ts;
  EXPECT_TRUE(check(ts, "int", 3).empty());
  EXPECT_TRUE(check(ts, "int", 3.0).empty());  // an integral float is an int (Python's json gives 3.0)
  EXPECT_EQ(check(ts, "int", 3.5), std::vector<std::string>{"output: expected int, got float 3.5"});
  EXPECT_EQ(check(ts, "int", "3"), std::vector<std::string>{"output: expected int, got str \"3\""});
  EXPECT_TRUE(check(ts, "float", 2).empty());
  EXPECT_EQ(check(ts, "bool", 1), std::vector<std::string>{"output: expected bool, got int 1"});
  EXPECT_TRUE(check(ts, "str", "").empty());
  EXPECT_TRUE(check(ts, "any", json::object()).empty());
  EXPECT_TRUE(check(ts, "None", nullptr).empty());

  EXPECT_TRUE(check(ts, "date", "2024-02-29").empty());
  EXPECT_FALSE(check(ts, "date", "2023-02-29").empty());
  EXPECT_FALSE(check(ts, "date", "2024-13-01").empty());
  EXPECT_TRUE(check(ts, "datetime", "2024-01-15T10:30:00Z").empty());
  EXPECT_TRUE(check(ts, "datetime", "2024-01-15 10:30").empty());
  EXPECT_TRUE(check(ts, "datetime", "2024-01-15T10:30:00.123+05:30").empty());
  EXPECT_FALSE(check(ts, "datetime", "2024-01-15").empty());
  EXPECT_TRUE(check(ts, "datetime_notz", "2024-01-15T10:30:00.5").empty());
  EXPECT_FALSE(check(ts, "datetime_notz", "2024-01-15T10:30:00Z").empty());
  EXPECT_TRUE(check(ts, "datetime_tz", "2024-01-15T10:30:00-02:00").empty());
  EXPECT_FALSE(check(ts, "datetime_tz", "2024-01-15T10:30:00").empty());
  EXPECT_TRUE(check(ts, "datetime_utc", "2024-01-15T10:30:00Z").empty());
  EXPECT_FALSE(check(ts, "datetime_utc", "2024-01-15T10:30:00+00:00").empty());
  EXPECT_FALSE(check(ts, "datetime_utc", "2024-01-15T25:30:00Z").empty());
}

TEST(Types, NestedObjectsReportFieldPaths) {
  TypeSystem ts = TypeSystem::compile(kTypes);
  json good = {{"users", {{{"id", 1}, {"name", "a"}, {"email", "a@x"}, {"address", nullptr}}}}, {"count", 1}};
  EXPECT_TRUE(check(ts, "ExtractOutput", good).empty());

  json bad = {{"users", {{{"id", "1"}, {"name", "a"}, {"address", {{"street", "s"}, {"city", 3}}}}}}, {"count", 1}};
  EXPECT_EQ(check(ts, "ExtractOutput", bad),
            (std::vector<std::string>{"output.users[0].address.city: expected str, got int 3",
                                      "output.users[0].email: expected str, got nothing (the field is missing)",
                                      "output.users[0].id: expected int, got str \"1\""}));
  // The doc's example: a list of strings where users are expected.
  EXPECT_EQ(check(ts, "ExtractOutput", {{"users", {"invalid"}}, {"count", 1}}),
            std::vector<std::string>{"output.users[0]: expected User, got str \"invalid\""});
  EXPECT_EQ(check(ts, "ExtractOutput", {{"users", "invalid"}, {"count", 1}}),
            std::vector<std::string>{"output.users: expected list[User], got str \"invalid\""});
}

TEST(Types, DefaultsAreFilledAndOptionalFieldsMayBeMissing) {
  TypeSystem ts = TypeSystem::compile(kTypes);
  json user = {{"id", 1}, {"name", "a"}, {"email", "e"}};
  auto issues = ts.validate(*ts.parse("User", "t"), user, "input");
  EXPECT_TRUE(issues.empty());
  EXPECT_EQ(user["tags"], json::array());
  EXPECT_EQ(user["level"], "info");
  EXPECT_FALSE(user.contains("address"));  // optional: may stay missing
  EXPECT_FALSE(user.contains("friends"));
  json addr = {{"street", "s"}, {"city", "c"}};
  EXPECT_TRUE(ts.validate(*ts.parse("Address", "t"), addr, "x").empty());
  EXPECT_EQ(addr["country"], "NL");
  EXPECT_EQ(check(ts, "User", {{"id", 1}, {"name", "a"}, {"email", "e"}, {"level", "trace"}}),
            std::vector<std::string>{"output.level: expected Literal[\"debug\", \"info\"], got str \"trace\""});
  // Extra fields are allowed (like pydantic's default).
  EXPECT_TRUE(check(ts, "Address", {{"street", "s"}, {"city", "c"}, {"zip", 1}}).empty());
}

TEST(Types, CollectionsOptionalsUnionsAndEnums) {
  TypeSystem ts = TypeSystem::compile(kTypes);
  EXPECT_TRUE(check(ts, "Counts", {{"a", 1}}).empty());
  EXPECT_EQ(check(ts, "Counts", {{"a", "x"}}), std::vector<std::string>{"output.a: expected int, got str \"x\""});
  EXPECT_TRUE(check(ts, "dict[int, str]", {{"1", "a"}, {"-2", "b"}}).empty());
  EXPECT_FALSE(check(ts, "dict[int, str]", {{"x", "a"}}).empty());
  EXPECT_TRUE(check(ts, "Numbers", {1, 2}).empty());
  EXPECT_TRUE(check(ts, "[[int]]", {{1}, {2, 3}}).empty());
  EXPECT_TRUE(check(ts, "int?", nullptr).empty());
  EXPECT_TRUE(check(ts, "Optional[int]", nullptr).empty());
  EXPECT_TRUE(check(ts, "int | str", "x").empty());
  EXPECT_EQ(check(ts, "int | str", true), std::vector<std::string>{"output: expected int | str, got bool true"});
  EXPECT_TRUE(check(ts, "enum[red, green]", "red").empty());
  EXPECT_TRUE(check(ts, "Literal[1, 2]", 2).empty());
  EXPECT_FALSE(check(ts, "Literal[1, 2]", 3).empty());
  EXPECT_TRUE(check(ts, "list", {1, "a"}).empty());
  EXPECT_TRUE(check(ts, "types.User?", nullptr).empty());
  // Recursion through lists is fine.
  json u = {{"id", 1}, {"name", "a"}, {"email", "e"}, {"friends", {{{"id", 2}, {"name", "b"}, {"email", 5}}}}};
  EXPECT_EQ(check(ts, "User", u), std::vector<std::string>{"output.friends[0].email: expected str, got int 5"});
  EXPECT_EQ(ts.display(*ts.parse("list[User] | None", "t")), "list[User] | None");
  EXPECT_EQ(ts.display(*ts.parse(json::parse(R"({"a": "int", "b": ["str"]})"), "t")), "{a: int, b: list[str]}");
}

TEST(Types, DeclarationErrorsNameThePath) {
  auto compile_error = [](const std::string& types) {
    try {
      TypeSystem::compile(json::parse(types));
    } catch (const TypeError& e) {
      return e.path() + " | " + e.message();
    }
    return std::string("no error");
  };
  EXPECT_EQ(
      compile_error(R"({"User": {"id": "integer"}})"),
      "types.User.id | unknown type 'integer' (did you mean 'int'?) (not declared under 'types' and not a builtin)");
  EXPECT_EQ(compile_error(R"({"User": {"a": "Adress"}, "Address": {"s": "str"}})"),
            "types.User.a | unknown type 'Adress' (did you mean 'Address'?) (not declared under 'types' and not a "
            "builtin)");
  EXPECT_EQ(compile_error(R"({"A": "B", "B": "A | None"})"),
            "types.A | type 'A' refers to itself without a list or an object in between");
  EXPECT_EQ(compile_error(R"({"int": {"a": "str"}})"),
            "types.int | 'int' is a builtin type name and cannot be redefined");
  EXPECT_EQ(compile_error(R"({"A": {"n": "int = \"x\""}})").substr(0, 38), "types.A.n | default \"x\" is not a valid");
  EXPECT_EQ(compile_error(R"({"A": "int = 3"})"), "types.A | a default ('= value') is only allowed on an object field");
  EXPECT_EQ(compile_error(R"({"A": {"l": ["int", "str"]}})"),
            "types.A.l | a list type is written [T] with exactly one element type");
  EXPECT_EQ(compile_error(R"({"A": {"l": "list[int"}})"),
            "types.A.l | invalid type 'list[int': expected ']' at the end");
  EXPECT_EQ(compile_error(R"({"A": {"d": "dict[float, int]"}})"),
            "types.A.d | invalid type 'dict[float, int]': dict keys must be str or int");
  EXPECT_EQ(compile_error(R"({"A": {"x": 5}})").substr(0, 24), "types.A.x | expected a t");
}

TEST(Types, Assignability) {
  TypeSystem ts = TypeSystem::compile(kTypes);
  EXPECT_EQ(reason(ts, "int", "float"), "");
  EXPECT_EQ(reason(ts, "float", "int"), "float is not int");
  EXPECT_EQ(reason(ts, "int", "int | None"), "");
  EXPECT_EQ(reason(ts, "int?", "int"), "int | None may be None but int is not optional");
  EXPECT_EQ(reason(ts, "list[int]", "list[float]"), "");
  EXPECT_EQ(reason(ts, "list[str]", "list[int]"), "[]: str is not int");
  EXPECT_EQ(reason(ts, "datetime_utc", "datetime_tz"), "");
  EXPECT_EQ(reason(ts, "datetime_tz", "datetime"), "");
  EXPECT_EQ(reason(ts, "date", "datetime"), "date is not datetime");
  EXPECT_EQ(reason(ts, "enum[a, b]", "str"), "");
  EXPECT_EQ(reason(ts, "enum[a, b]", "enum[a]"), "Literal[\"a\", \"b\"] allows \"b\", which Literal[\"a\"] does not");
  EXPECT_EQ(reason(ts, "any", "User"), "");
  // Objects: every required field of the target must be produced with a fitting type; extra fields are fine.
  const json src = json::parse(R"({"users": "list[User]", "count": "int", "more": "str"})");
  const json dst = json::parse(R"({"users": "list[User]", "count": "float"})");
  EXPECT_EQ(ts.assignable(*ts.parse(src, "s"), *ts.parse(dst, "d")).value_or(""), "");
  const json dst2 = json::parse(R"({"users": "list[User]", "total": "int"})");
  EXPECT_EQ(ts.assignable(*ts.parse(src, "s"), *ts.parse(dst2, "d")).value_or(""),
            "total: required field 'total' (int) is not produced");
  const json src3 = json::parse(R"({"users": "list[Address]", "count": "int"})");
  EXPECT_EQ(ts.assignable(*ts.parse(src3, "s"), *ts.parse("ExtractOutput", "d")).value_or(""),
            "users[].email: required field 'email' (str) is not produced");
  EXPECT_EQ(
      ts.assignable(*ts.parse(json::parse(R"({"a": "int?"})"), "s"), *ts.parse(json::parse(R"({"a": "int"})"), "d"))
          .value_or(""),
      "a: may be missing or None but int is required");
  EXPECT_EQ(reason(ts, "User", "User"), "");  // recursive: terminates
}

TEST(Types, PathsIntoTypes) {
  TypeSystem ts = TypeSystem::compile(kTypes);
  auto at = [&](const std::string& type, std::vector<ork::PathStep> path) {
    std::string why;
    auto t = ts.at_path(ts.parse(type, "t"), path, &why, "fetch");
    return t ? ts.display(*t) : "error: " + why;
  };
  EXPECT_EQ(at("ExtractOutput", {{"users"}, {"0", true, 0}, {"address"}, {"city"}}), "str");
  EXPECT_EQ(at("ExtractOutput", {{"count"}}), "int");
  EXPECT_EQ(at("ExtractOutput", {{"users"}, {"0", false, 0}}), "User");  // `.0` on a list works like [0]
  EXPECT_EQ(at("ExtractOutput", {{"userz"}}),
            "error: fetch (ExtractOutput) has no field 'userz' (fields: count, users)");
  EXPECT_EQ(at("ExtractOutput", {{"users"}, {"name"}}),
            "error: fetch.users is list[User]: use an index like [0], not 'name'");
  EXPECT_EQ(at("ExtractOutput", {{"count"}, {"x"}}), "error: fetch.count is int, which has no field 'x'");
  EXPECT_EQ(at("Counts", {{"anything"}}), "int");
  EXPECT_EQ(at("any", {{"x"}, {"y"}}), "any");
}

TEST(Types, JsonSchemaDraft2020) {
  TypeSystem ts = TypeSystem::compile(kTypes);
  json doc = ts.schema_document("t", {{"extract.output", ts.parse("ExtractOutput", "x")}});
  EXPECT_EQ(doc["$schema"], "https://json-schema.org/draft/2020-12/schema");
  const json& user = doc["$defs"]["User"];
  EXPECT_EQ(user["type"], "object");
  EXPECT_EQ(user["required"], json({"email", "id", "name"}));
  EXPECT_EQ(user["properties"]["id"], json({{"type", "integer"}}));
  EXPECT_EQ(user["properties"]["address"]["anyOf"][0], json({{"$ref", "#/$defs/Address"}}));
  EXPECT_EQ(user["properties"]["address"]["anyOf"][1], json({{"type", "null"}}));
  EXPECT_EQ(user["properties"]["tags"]["default"], json::array());
  EXPECT_EQ(user["properties"]["level"]["enum"], json({"debug", "info"}));
  EXPECT_EQ(user["properties"]["friends"]["anyOf"][0]["items"], json({{"$ref", "#/$defs/User"}}));
  EXPECT_EQ(doc["$defs"]["Counts"]["additionalProperties"], json({{"type", "integer"}}));
  EXPECT_EQ(doc["$defs"]["Numbers"]["items"], json({{"type", "integer"}}));
  EXPECT_EQ(doc["$defs"]["extract.output"]["$ref"], "#/$defs/ExtractOutput");
  EXPECT_EQ(ts.json_schema(*ts.parse("datetime_utc", "t"))["format"], "date-time");
}

TEST(Types, DescribeValues) {
  EXPECT_EQ(ork::describe_value(json::array({"a", "b"})), "list[str]");
  EXPECT_EQ(ork::describe_value(json::array({1, "b"})), "list[mixed]");
  EXPECT_EQ(ork::describe_value(json::array()), "list (empty)");
  EXPECT_EQ(ork::describe_value(json{{"a", 1}}), "object {a}");
  EXPECT_EQ(ork::describe_value(std::string(60, 'x')).size(), 4 + 2 + 40u);
}
