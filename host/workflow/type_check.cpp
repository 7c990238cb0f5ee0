// Static contract checks over a loaded workflow (see type_check.hpp).
#include "type_check.hpp"

#include <algorithm>

#include "core/expressions.hpp"
#include "core/types.hpp"

namespace ork {

std::vector<std::string> split_type_path(const std::string& path) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '.' || c == '[') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c != ']') {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

namespace {

std::vector<std::string> with(std::vector<std::string> p, const std::string& key) {
  p.push_back(key);
  return p;
}

class Checker {
 public:
  Checker(const WorkflowDefinition& wf, const std::vector<TaskTypeSources>& src) : wf_(wf), src_(src) {}

  std::vector<TypeProblem> run() {
    try {
      ts_ = TypeSystem::compile(wf_.types);
    } catch (const TypeError& e) {
      out_.push_back({split_type_path(e.path()), e.message()});
      return out_;  // task types may name the broken one: nothing more to say reliably
    }
    for (size_t i = 0; i < wf_.tasks.size(); ++i) compile_task(i);
    for (size_t i = 0; i < wf_.tasks.size(); ++i) check_task(i);
    return out_;
  }

 private:
  void problem(std::vector<std::string> path, std::string msg) { out_.push_back({std::move(path), std::move(msg)}); }

  TypePtr compile(const json& spec, const std::vector<std::string>& where) {
    std::string label;
    for (const auto& k : where) label += (label.empty() ? "" : ".") + k;
    try {
      return ts_.parse(spec, label);
    } catch (const TypeError& e) {
      problem(split_type_path(e.path()), e.message());
      return nullptr;
    }
  }

  void compile_task(size_t i) {
    const TaskDefinition& t = wf_.tasks[i];
    const TaskTypeSources& s = src_[i];
    if (!t.output_type.is_null()) {
      if (TypePtr o = compile(t.output_type, s.output_type)) out_types_[t.name] = o;
    }
    if (!t.input_type.is_null()) {
      TypePtr in = compile(t.input_type, s.input_type);
      if (!in) return;
      const Type& r = ts_.resolve(*in);
      if (r.kind != Type::Kind::Object && r.kind != Type::Kind::Any) {
        problem(s.input_type, "an input type must be an object type (named task arguments), got " + ts_.display(*in));
        return;
      }
      in_types_[t.name] = in;
    }
  }

  // What dependents see of task `p`: its output, or the list of its instances' outputs when it fans out.
  TypePtr view(const std::string& p) {
    auto it = out_types_.find(p);
    if (it == out_types_.end()) return nullptr;
    const TaskDefinition* d = wf_.find(p);
    if (d && d->parallel.kind != Parallelism::Kind::None) {
      auto l = std::make_shared<Type>();
      l->kind = Type::Kind::List;
      l->elem = it->second;
      return l;
    }
    return it->second;
  }

  std::string describe_source(const std::string& p) {
    const TaskDefinition* d = wf_.find(p);
    std::string s = "task '" + p + "' output type " + ts_.display(*out_types_.at(p));
    if (d && d->parallel.kind != Parallelism::Kind::None) s += ", one per instance (a list)";
    return s;
  }

  TypePtr builtin(const char* name) { return ts_.parse(json(name), ""); }

  // ": <reason>" unless the reason only repeats "<src> is not <dst>".
  std::string reason(const std::string& why, const Type& src, const Type& dst) const {
    return why == ts_.display(src) + " is not " + ts_.display(dst) ? "" : ": " + why;
  }

  // The foreach item's type, or nullptr (unknown or wrong: `why` set when wrong).
  TypePtr item_type(const TaskDefinition& t, std::string* why) {
    if (t.parallel.kind != Parallelism::Kind::ForEach) return nullptr;
    std::vector<PathStep> path;
    std::string err;
    if (!parse_path(t.parallel.ref, path, err)) return nullptr;
    TypePtr base = view(path[0].key);
    if (!base) return nullptr;
    std::vector<PathStep> rest(path.begin() + 1, path.end());
    std::string w;
    TypePtr list = ts_.at_path(base, rest, &w, path[0].key);
    if (!list) {
      if (why) *why = "foreach '" + t.parallel.ref + "': " + w;
      return nullptr;
    }
    const Type& r = ts_.resolve(*list);
    if (r.kind == Type::Kind::Any) return list;
    if (r.kind != Type::Kind::List) {
      if (why) *why = "foreach '" + t.parallel.ref + "' is " + ts_.display(*list) + ", not a list";
      return nullptr;
    }
    return r.elem;
  }

  // The static type of expression `e` in task `t`: nullptr when unknown (untyped producer, run input) or wrong
  // (`why` set).
  TypePtr expr_type(const TaskDefinition& t, const Expression& e, std::string* why, std::string* from) {
    if (e.is_literal) return builtin("str");
    const std::string& root = e.root();
    std::vector<PathStep> rest(e.path.begin() + 1, e.path.end());
    TypePtr base;
    if (root == "input") return nullptr;
    if (root == "item") {
      base = item_type(t, nullptr);
      if (from) *from = "the foreach item of '" + t.parallel.ref + "'";
    } else if (root == "ctx" || root == "context" ||
               std::find(context_fields().begin(), context_fields().end(), root) != context_fields().end()) {
      const std::string field = (root == "ctx" || root == "context") ? (rest.empty() ? "" : rest[0].key) : root;
      if (field.empty()) return nullptr;
      if (root == "ctx" || root == "context") rest.erase(rest.begin());
      if (wf_.find(root) && std::find(t.depends_on.begin(), t.depends_on.end(), root) != t.depends_on.end()) {
        base = view(root);  // a task named like a context field shadows it
      } else {
        base = field == "attempt"                                       ? builtin("int")
               : field == "parallel_index" || field == "parallel_count" ? builtin("int | None")
                                                                        : builtin("str");
        if (from) *from = "context field " + field;
      }
    } else if (wf_.find(root)) {
      base = view(root);
      if (base && from) *from = describe_source(root);
    }
    if (!base) return nullptr;
    std::string w;
    TypePtr r = ts_.at_path(base, rest, &w, root == "ctx" || root == "context" ? root + "." + e.path[1].key : root);
    if (!r && why) *why = "'" + e.source() + "': " + w;
    return r;
  }

  bool has_expression(const json& v) {
    if (v.is_string()) {
      for (const auto& e : find_expressions(v.get_ref<const std::string&>()))
        if (e.error.empty()) return true;
      return false;
    }
    if (v.is_structured())
      for (const auto& x : v)
        if (has_expression(x)) return true;
    return false;
  }

  // Every expression in `v` (nested) resolves against typed producers; wrong paths are reported at `where`.
  void check_paths(const TaskDefinition& t, const json& v, const std::vector<std::string>& where) {
    if (v.is_string()) {
      for (const auto& e : find_expressions(v.get_ref<const std::string&>())) {
        if (!e.error.empty()) continue;
        std::string why;
        expr_type(t, e, &why, nullptr);
        if (!why.empty()) problem(where, why);
      }
    } else if (v.is_object()) {
      for (auto it = v.begin(); it != v.end(); ++it) check_paths(t, it.value(), with(where, it.key()));
    } else if (v.is_array()) {
      for (size_t i = 0; i < v.size(); ++i) check_paths(t, v[i], with(where, std::to_string(i)));
    }
  }

  void check_task(size_t i) {
    const TaskDefinition& t = wf_.tasks[i];
    const TaskTypeSources& s = src_[i];
    const std::vector<std::string> task_path = {"tasks", t.name};

    // Expressions in input and env must follow declared output fields.
    for (auto it = t.input.begin(); it != t.input.end(); ++it) {
      auto o = s.input_keys.find(it.key());
      check_paths(t, it.value(), o != s.input_keys.end() ? o->second : with(with(task_path, "input"), it.key()));
    }
    for (const auto& [k, v] : t.env)
      if (!v.secret) check_paths(t, json(v.value), with(with(task_path, "env"), k));

    // Fan-out references against typed producers.
    if (t.parallel.kind == Parallelism::Kind::ForEach) {
      std::string why;
      item_type(t, &why);
      if (!why.empty()) problem(with(task_path, "foreach"), why);
    } else if (t.parallel.kind == Parallelism::Kind::CountRef) {
      Expression e;
      e.text = t.parallel.ref;
      std::string err, why;
      if (parse_path(t.parallel.ref, e.path, err)) {
        TypePtr c = expr_type(t, e, &why, nullptr);
        if (!why.empty()) {
          problem(with(task_path, "parallel"), why);
        } else if (c) {
          if (auto bad = ts_.assignable(*c, *builtin("int")))
            problem(with(task_path, "parallel"),
                    "parallel '" + t.parallel.ref + "' is " + ts_.display(*c) + ", not an int count");
        }
      }
    }

    auto in = in_types_.find(t.name);
    if (in == in_types_.end()) return;
    const TypePtr& it_decl = in->second;
    const Type& obj = ts_.resolve(*it_decl);
    if (obj.kind != Type::Kind::Object) return;
    auto field_of = [&](const std::string& name) -> const Field* {
      for (const auto& f : obj.fields)
        if (f.name == name) return &f;
      return nullptr;
    };
    std::string field_names;
    for (const auto& f : obj.fields) field_names += (field_names.empty() ? "" : ", ") + f.name;

    // Literal and expression bindings written in `input:` / `inputs:`.
    for (auto kv = t.input.begin(); kv != t.input.end(); ++kv) {
      const std::string& key = kv.key();
      auto o = s.input_keys.find(key);
      const std::vector<std::string> where = o != s.input_keys.end() ? o->second : with(with(task_path, "input"), key);
      const Field* f = field_of(key);
      if (!f) {
        problem(where, "input '" + key + "' is not a field of the input type " + ts_.display(*it_decl) +
                           (field_names.empty() ? "" : " (fields: " + field_names + ")"));
        continue;
      }
      const json& v = kv.value();
      if (v.is_string()) {
        auto exprs = find_expressions(v.get_ref<const std::string&>());
        if (exprs.size() == 1 && exprs[0].error.empty() && exprs[0].begin == 0 &&
            exprs[0].end == v.get_ref<const std::string&>().size()) {
          std::string why, from;
          TypePtr st = expr_type(t, exprs[0], &why, &from);
          if (!st) continue;  // unknown, or already reported by check_paths
          if (auto bad = ts_.assignable(*st, *f->type))
            problem(where, "input '" + key + "' expects " + ts_.display(*f->type) + " but '" + exprs[0].source() +
                               "' is " + ts_.display(*st) + (from.empty() ? "" : " (" + from + ")") +
                               reason(*bad, *st, *f->type));
          continue;
        }
        if (has_expression(v)) {  // text with expressions inside: a string at run time
          if (auto bad = ts_.assignable(*builtin("str"), *f->type))
            problem(where, "input '" + key + "' expects " + ts_.display(*f->type) +
                               " but the value is text with expressions (a str)");
          continue;
        }
      }
      if (has_expression(v)) continue;  // structured values with expressions inside: checked when rendered
      json copy = v;
      auto issues = ts_.validate(*f->type, copy, "input." + key, 1);
      if (!issues.empty()) problem(where, issues[0].str());
    }

    // Fields filled by the engine: a dependency's whole output under its name, the foreach item.
    for (const auto& f : obj.fields) {
      if (t.input.contains(f.name)) continue;
      if (std::find(t.depends_on.begin(), t.depends_on.end(), f.name) != t.depends_on.end()) {
        TypePtr st = view(f.name);
        if (!st) continue;
        if (auto bad = ts_.assignable(*st, *f.type))
          problem(s.input_type, "input field '" + f.name + "' expects " + ts_.display(*f.type) + " but " +
                                    describe_source(f.name) + reason(*bad, *st, *f.type));
      } else if (f.name == "item" && t.parallel.kind == Parallelism::Kind::ForEach) {
        TypePtr st = item_type(t, nullptr);
        if (!st) continue;
        if (auto bad = ts_.assignable(*st, *f.type))
          problem(s.input_type, "input field 'item' expects " + ts_.display(*f.type) + " but the items of '" +
                                    t.parallel.ref + "' are " + ts_.display(*st) + reason(*bad, *st, *f.type));
      }
    }
  }

  const WorkflowDefinition& wf_;
  const std::vector<TaskTypeSources>& src_;
  TypeSystem ts_;
  std::map<std::string, TypePtr> out_types_, in_types_;
  std::vector<TypeProblem> out_;
};

}  // namespace

std::vector<TypeProblem> check_workflow_types(const WorkflowDefinition& wf,
                                              const std::vector<TaskTypeSources>& sources) {
  return Checker(wf, sources).run();
}

}  // namespace ork
