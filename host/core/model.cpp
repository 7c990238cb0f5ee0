// JSON form of workflow definitions: what the state store keeps and the scheduler reads back (exact round trip).
#include "model.hpp"

#include <stdexcept>

namespace ork {

namespace {

json opt_to_json(const std::optional<std::string>& v) {
  return v ? json(*v) : json(nullptr);
}

std::optional<std::string> opt_from_json(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return it->get<std::string>();
}

template <typename T>
T value_or(const json& j, const char* key, T def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  return it->get<T>();
}

const char* kind_name(Parallelism::Kind k) {
  switch (k) {
    case Parallelism::Kind::None:
      return "none";
    case Parallelism::Kind::Static:
      return "static";
    case Parallelism::Kind::CountRef:
      return "count_ref";
    case Parallelism::Kind::ForEach:
      return "foreach";
  }
  return "none";
}

Parallelism::Kind kind_from(const std::string& s) {
  if (s == "none") return Parallelism::Kind::None;
  if (s == "static") return Parallelism::Kind::Static;
  if (s == "count_ref") return Parallelism::Kind::CountRef;
  if (s == "foreach") return Parallelism::Kind::ForEach;
  throw std::invalid_argument("unknown parallel kind '" + s + "'");
}

// A literal env value is a plain string; a secret is {"secret": ref} (plus "value" if one was also set).
json env_to_json(const EnvValue& e) {
  if (!e.secret) return e.value;
  json j = {{"secret", *e.secret}};
  if (!e.value.empty()) j["value"] = e.value;
  return j;
}

EnvValue env_from_json(const json& j) {
  EnvValue e;
  if (j.is_string()) {
    e.value = j.get<std::string>();
  } else {
    e.secret = j.at("secret").get<std::string>();
    e.value = value_or<std::string>(j, "value", "");
  }
  return e;
}

}  // namespace

json command_json(const TaskDefinition& t) {
  if (t.command) return *t.command;
  return t.command_args.empty() ? json(nullptr) : json(t.command_args);
}

void to_json(json& j, const TaskDefinition& t) {
  json env = json::object();
  for (const auto& [k, v] : t.env) env[k] = env_to_json(v);
  json secrets = json::array();
  for (const auto& s : t.secrets) secrets.push_back({{"name", s.name}, {"secret", s.secret}, {"path", s.path}});
  j = json{
      {"name", t.name},
      {"executor", t.executor},
      {"worker", t.worker},
      {"file", opt_to_json(t.file)},
      {"config_file", opt_to_json(t.config_file)},
      {"command", command_json(t)},
      {"function", opt_to_json(t.function)},
      {"image", opt_to_json(t.image)},
      {"input_to_file", opt_to_json(t.input_to_file)},
      {"output_from_file", opt_to_json(t.output_from_file)},
      {"input", t.input},
      {"depends_on", t.depends_on},
      {"timeout_seconds", t.timeout_seconds},
      {"retries", t.retries},
      {"retry_delay_seconds", t.retry_delay_seconds},
      {"parallel", {{"kind", kind_name(t.parallel.kind)}, {"count", t.parallel.count}, {"ref", t.parallel.ref}}},
      {"concurrency", t.concurrency ? json(*t.concurrency) : json(nullptr)},
      {"resources", {{"cpu_millis", t.resources.cpu_millis}, {"memory_mb", t.resources.memory_mb}}},
      {"env", std::move(env)},
      {"secrets", std::move(secrets)},
      {"env_file", opt_to_json(t.env_file)},
      {"on_failure", t.on_failure == OnFailure::Run ? "run" : "skip"},
      {"input_type", t.input_type},
      {"output_type", t.output_type},
      {"validate_output", t.validate_output},
      {"loc", {{"file", t.loc.file}, {"line", t.loc.line}, {"column", t.loc.column}}},
  };
  if (!t.description.empty()) j["description"] = t.description;
  if (!t.meta.is_null()) j["meta"] = t.meta;
}

void from_json(const json& j, TaskDefinition& t) {
  t = TaskDefinition{};
  t.name = j.at("name").get<std::string>();
  t.executor = value_or<std::string>(j, "executor", "");
  t.worker = value_or<std::string>(j, "worker", "");
  t.file = opt_from_json(j, "file");
  t.config_file = opt_from_json(j, "config_file");
  if (auto c = j.find("command"); c != j.end() && c->is_array())
    t.command_args = c->get<std::vector<std::string>>();
  else
    t.command = opt_from_json(j, "command");
  t.function = opt_from_json(j, "function");
  t.image = opt_from_json(j, "image");
  t.input_to_file = opt_from_json(j, "input_to_file");
  t.output_from_file = opt_from_json(j, "output_from_file");
  t.input = value_or<json>(j, "input", json::object());
  t.description = value_or<std::string>(j, "description", "");
  t.meta = value_or<json>(j, "meta", json(nullptr));
  t.depends_on = value_or<std::vector<std::string>>(j, "depends_on", {});
  t.timeout_seconds = value_or<int>(j, "timeout_seconds", 3600);
  t.retries = value_or<int>(j, "retries", 0);
  t.retry_delay_seconds = value_or<int>(j, "retry_delay_seconds", 0);
  if (auto p = j.find("parallel"); p != j.end() && !p->is_null()) {
    t.parallel.kind = kind_from(value_or<std::string>(*p, "kind", "none"));
    t.parallel.count = value_or<int>(*p, "count", 0);
    t.parallel.ref = value_or<std::string>(*p, "ref", "");
  }
  if (auto c = j.find("concurrency"); c != j.end() && !c->is_null()) t.concurrency = c->get<int>();
  if (auto r = j.find("resources"); r != j.end() && !r->is_null()) {
    t.resources.cpu_millis = value_or<int64_t>(*r, "cpu_millis", 0);
    t.resources.memory_mb = value_or<int64_t>(*r, "memory_mb", 0);
  }
  if (auto e = j.find("env"); e != j.end() && !e->is_null()) {
    for (const auto& [k, v] : e->items()) t.env[k] = env_from_json(v);
  }
  if (auto s = j.find("secrets"); s != j.end() && !s->is_null()) {
    for (const auto& item : *s) {
      t.secrets.push_back({item.at("name").get<std::string>(), item.at("secret").get<std::string>(),
                           item.at("path").get<std::string>()});
    }
  }
  std::string on_failure = value_or<std::string>(j, "on_failure", "skip");
  if (on_failure != "skip" && on_failure != "run")
    throw std::invalid_argument("unknown on_failure '" + on_failure + "'");
  t.on_failure = on_failure == "run" ? OnFailure::Run : OnFailure::Skip;
  t.env_file = opt_from_json(j, "env_file");
  t.input_type = value_or<json>(j, "input_type", nullptr);
  t.output_type = value_or<json>(j, "output_type", nullptr);
  t.validate_output = value_or<bool>(j, "validate_output", true);
  if (auto l = j.find("loc"); l != j.end() && !l->is_null()) {
    t.loc.file = value_or<std::string>(*l, "file", "");
    t.loc.line = value_or<int>(*l, "line", 0);
    t.loc.column = value_or<int>(*l, "column", 0);
  }
}

void to_json(json& j, const WorkflowDefinition& w) {
  j = json{
      {"name", w.name},
      {"schedule", opt_to_json(w.schedule)},
      {"concurrency", w.concurrency ? json(*w.concurrency) : json(nullptr)},
      {"tasks", w.tasks},
      {"types", w.types},
      {"imports", w.imports},
      {"env_file", opt_to_json(w.env_file)},
      {"base_dir", w.base_dir},
      {"source_file", w.source_file},
  };
}

void from_json(const json& j, WorkflowDefinition& w) {
  w = WorkflowDefinition{};
  w.name = j.at("name").get<std::string>();
  w.schedule = opt_from_json(j, "schedule");
  if (auto c = j.find("concurrency"); c != j.end() && !c->is_null()) w.concurrency = c->get<int>();
  w.tasks = value_or<std::vector<TaskDefinition>>(j, "tasks", {});
  w.types = value_or<json>(j, "types", json::object());
  w.imports = value_or<json>(j, "imports", json::array());
  w.env_file = opt_from_json(j, "env_file");
  w.base_dir = value_or<std::string>(j, "base_dir", "");
  w.source_file = value_or<std::string>(j, "source_file", "");
}

const TaskDefinition* WorkflowDefinition::find(const std::string& task) const {
  for (const auto& t : tasks) {
    if (t.name == task) return &t;
  }
  return nullptr;
}

}  // namespace ork
