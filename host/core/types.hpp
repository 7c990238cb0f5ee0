// Workflow type schemas (`types:`, task input/output types): parsing of type expressions, validation of JSON values
// with field paths, static assignability between declared types, and JSON Schema (draft 2020-12) export.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ork {

using json = nlohmann::json;

struct Type;
using TypePtr = std::shared_ptr<const Type>;

struct Field {
  std::string name;
  TypePtr type;                  // a nullable type makes the field optional
  std::optional<json> fallback;  // the `= default` value
};

struct Type {
  enum class Kind {
    Any,
    Null,
    Bool,
    Int,
    Float,
    Str,
    Date,
    DateTime,      // ISO 8601, offset optional
    DateTimeNoTz,  // no offset allowed
    DateTimeTz,    // offset (Z or +HH:MM) required
    DateTimeUtc,   // Z required
    List,
    Dict,
    Object,
    Union,
    Enum,
    Named
  };
  Kind kind = Kind::Any;
  TypePtr elem;                  // List element, Dict value
  TypePtr key;                   // Dict key: Str or Int
  std::vector<Field> fields;     // Object, in declaration order
  std::vector<TypePtr> options;  // Union
  std::vector<json> values;      // Enum
  std::string name;              // Named: the alias it refers to
};

// A type declaration problem; `path` is the dotted YAML path of the offending spec (e.g. "types.User.address").
class TypeError : public std::runtime_error {
 public:
  TypeError(std::string path, const std::string& message)
      : std::runtime_error(path.empty() ? message : path + ": " + message), path_(std::move(path)), msg_(message) {}
  const std::string& path() const { return path_; }
  const std::string& message() const { return msg_; }

 private:
  std::string path_, msg_;
};

// One value that does not match its type.
struct TypeIssue {
  std::string path;      // "output.users[0].email"
  std::string expected;  // "str"
  std::string actual;    // "int 5", "missing"
  std::string str() const { return path + ": expected " + expected + ", got " + actual; }
};

// One path step of a reference: a field name, or a list index written `[2]` (or `.2`).
struct PathStep {
  std::string key;
  bool is_index = false;
  size_t index = 0;
};

// The named types of one workflow plus the operations on types compiled against them.
class TypeSystem {
 public:
  TypeSystem() = default;
  // Compiles a workflow's `types:` map (JSON form of the YAML). Throws TypeError naming the offending path.
  static TypeSystem compile(const json& types);

  // Compiles a type spec (a type-expression string, an inline {field: spec} map or a one-element [spec] list) that
  // may name this system's types. `path` labels errors. Throws TypeError.
  TypePtr parse(const json& spec, const std::string& path) const;

  bool has(const std::string& name) const { return named_.count(name) > 0; }
  const std::map<std::string, TypePtr>& named() const { return named_; }
  // Follows Named references to the type they stand for.
  const Type& resolve(const Type& t) const;

  // Checks `value` against `t`, filling defaults of missing object fields in place. Returns the problems found
  // (at most `max_issues`), each with a path starting at `root` ("input", "output").
  std::vector<TypeIssue> validate(const Type& t, json& value, const std::string& root, size_t max_issues = 20) const;

  // Whether every value of `src` is a valid `dst`; nullopt when it is, else the reason (with a field path).
  std::optional<std::string> assignable(const Type& src, const Type& dst) const;

  // The type found at `path` inside a value of type `t` (nullptr if `t` has no such field: `why` says what is
  // wrong, naming the value `root`). Nullable steps are looked through. Any gives Any.
  TypePtr at_path(const TypePtr& t, const std::vector<PathStep>& path, std::string* why,
                  const std::string& root = "the value") const;

  bool nullable(const Type& t) const;
  std::string display(const Type& t) const;  // "list[User]", "int | None", "{id: int, name: str}"

  json json_schema(const Type& t) const;  // draft 2020-12 fragment; named types as {"$ref": "#/$defs/<name>"}
  // A whole schema document: every named type plus `extra` (e.g. "extract.output") under "$defs".
  json schema_document(const std::string& title, const std::map<std::string, TypePtr>& extra) const;

 private:
  std::map<std::string, TypePtr> named_;
};

// A short description of a JSON value for error messages: `int 5`, `str "abc"`, `list[str]`, `object`, `null`.
std::string describe_value(const json& v);

// True for strings that match the temporal formats of the type kinds Date .. DateTimeUtc.
bool is_date(const std::string& s);
bool is_datetime(const std::string& s, Type::Kind kind);

}  // namespace ork
