// Dispatch-time rendering and validation of task input, env and secrets, and completion-time output validation.
#include "scheduler/task_contract.hpp"

#include <filesystem>

#include "core/expressions.hpp"

namespace ork {

namespace {

constexpr size_t kMaxShownValue = 1000;

json error_obj(const std::string& type, const std::string& message, json details) {
  return {{"type", type}, {"message", message}, {"details", std::move(details)}};
}

std::string shown(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > kMaxShownValue ? s.substr(0, kMaxShownValue) + "..." : s;
}

// The error of a value that does not match its type: one message naming the task, the type and every problem.
json type_error(const std::string& kind, const WorkflowDefinition& wf, const TaskDefinition& def,
                const std::string& type_name, const json& value, const std::vector<TypeIssue>& issues) {
  std::string msg =
      "task '" + def.name + "' (workflow '" + wf.name + "'): " + kind + " does not match its type " + type_name + ": ";
  json list = json::array();
  for (size_t i = 0; i < issues.size(); ++i) {
    if (i < 3) msg += (i ? "; " : "") + issues[i].str();
    list.push_back({{"path", issues[i].path}, {"expected", issues[i].expected}, {"actual", issues[i].actual}});
  }
  if (issues.size() > 3) msg += "; and " + std::to_string(issues.size() - 3) + " more";
  return error_obj(kind + "_validation_error", msg,
                   {{"workflow", wf.name},
                    {"task", def.name},
                    {"expected", type_name},
                    {"errors", std::move(list)},
                    {"got", shown(value)}});
}

}  // namespace

TaskContracts::TaskContracts(const WorkflowDefinition& wf, const SecretSource& secrets) : wf_(wf), secrets_(secrets) {
  try {
    types_ = TypeSystem::compile(wf.types);
  } catch (const TypeError& e) {
    types_error_ = e.what();
    return;
  }
  for (const auto& t : wf.tasks) {
    try {
      if (!t.input_type.is_null()) input_types_[t.name] = types_.parse(t.input_type, "tasks." + t.name + ".input_type");
      if (!t.output_type.is_null())
        output_types_[t.name] = types_.parse(t.output_type, "tasks." + t.name + ".output_type");
    } catch (const TypeError& e) {
      type_errors_[t.name] = e.what();
    }
  }
}

std::map<std::string, std::string> TaskContracts::env_file(const std::string& rel) const {
  std::filesystem::path p(rel);
  if (p.is_relative() && !wf_.base_dir.empty()) p = std::filesystem::path(wf_.base_dir) / p;
  const std::string key = p.lexically_normal().string();
  auto it = env_files_.find(key);
  if (it == env_files_.end()) it = env_files_.emplace(key, read_dotenv_file(key)).first;
  return it->second;
}

PreparedTask TaskContracts::prepare(const TaskDefinition& def, const json& run_input, const json& upstream,
                                    const json& ctx, const json* item) const {
  const std::string who = "task '" + def.name + "': ";
  auto contract_failure = [&](const std::string& why) {
    return TaskInputError(error_obj("type_error", who + why, {{"workflow", wf_.name}, {"task", def.name}}), false);
  };
  if (!types_error_.empty()) throw contract_failure("the workflow's types do not compile: " + types_error_);
  if (auto e = type_errors_.find(def.name); e != type_errors_.end()) throw contract_failure(e->second);

  PreparedTask p;
  const json scope = expression_scope(run_input, upstream, ctx, item);
  try {
    p.input = render(def.input.is_object() ? def.input : json::object(), scope, "input");
  } catch (const ExpressionError& e) {
    throw TaskInputError(error_obj("input_error", who + e.what(), {{"workflow", wf_.name}, {"task", def.name}}), false);
  }
  if (item) p.input["item"] = *item;
  if (run_input.is_object())
    for (auto it = run_input.begin(); it != run_input.end(); ++it) p.input[it.key()] = it.value();
  if (upstream.is_object())
    for (auto it = upstream.begin(); it != upstream.end(); ++it) p.input[it.key()] = it.value();

  if (auto t = input_types_.find(def.name); t != input_types_.end()) {
    auto issues = types_.validate(*t->second, p.input, "input");
    if (!issues.empty())
      throw TaskInputError(type_error("input", wf_, def, types_.display(*t->second), p.input, issues), false);
  }

  // Env: the workflow's env file, the task's env file, then `env:` (later ones win).
  try {
    for (const auto* f : {&wf_.env_file, &def.env_file})
      if (*f)
        for (const auto& [k, v] : env_file(**f)) p.env[k] = v;
  } catch (const std::exception& e) {
    throw TaskInputError(error_obj("input_error", who + "env_file: " + e.what(), nullptr), true);
  }
  for (const auto& [k, v] : def.env) {
    if (v.secret) {
      try {
        p.secret_env[k] = secrets_.require(*v.secret);
      } catch (const std::exception& e) {
        throw TaskInputError(error_obj("secret_error", who + "env." + k + ": " + e.what(), {{"secret", *v.secret}}),
                             true);
      }
      p.env.erase(k);
      continue;
    }
    json value;
    try {
      value = render(json(v.value), scope, "env." + k);
    } catch (const ExpressionError& e) {
      throw TaskInputError(error_obj("input_error", who + e.what(), {{"workflow", wf_.name}, {"task", def.name}}),
                           false);
    }
    p.env[k] = value.is_string() ? value.get<std::string>() : value.is_null() ? std::string() : value.dump();
  }
  for (const auto& s : def.secrets) {
    try {
      p.secret_files.push_back({{"name", s.name}, {"path", s.path}, {"value", secrets_.require(s.secret)}});
    } catch (const std::exception& e) {
      throw TaskInputError(
          error_obj("secret_error", who + "secrets." + s.name + ": " + e.what(), {{"secret", s.secret}}), true);
    }
  }
  return p;
}

std::optional<json> TaskContracts::check_output(const TaskDefinition& def, json& output) const {
  if (!def.validate_output) return std::nullopt;
  auto t = output_types_.find(def.name);
  if (t == output_types_.end()) return std::nullopt;
  auto issues = types_.validate(*t->second, output, "output");
  if (issues.empty()) return std::nullopt;
  return type_error("output", wf_, def, types_.display(*t->second), output, issues);
}

}  // namespace ork
