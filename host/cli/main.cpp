// ork-host: loads plugins.yaml, runs workflows (`run`), serves the engine and the REST API (`serve`), manages API keys,
// lists plugins, validates YAML.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/dll/runtime_symbol_info.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "api/api.hpp"
#include "api/api_keys.hpp"
#include "api/static_files.hpp"
#include "core/secrets.hpp"
#include "core/types.hpp"
#include "core/util.hpp"
#include "loader/plugin_loader.hpp"
#include "scheduler/cron.hpp"
#include "scheduler/engine.hpp"
#include "workflow/workflow_loader.hpp"

namespace fs = std::filesystem;
using ork::json;

namespace {

struct Options {
  std::string plugins_file;
  std::string home;
  bool verbose = false;
};

std::string default_home() {
  const char* h = std::getenv("ORK_HOME");
  return fs::absolute(h && *h ? h : ".ork").string();
}

ork::PluginsConfig plugins_config(const Options& o) {
  if (!o.plugins_file.empty()) return ork::load_plugins_config(o.plugins_file);
  std::string home = o.home.empty() ? default_home() : fs::absolute(o.home).string();
  if (fs::exists(home + "/plugins.yaml")) return ork::load_plugins_config(home + "/plugins.yaml");
  fs::create_directories(home);
  return ork::default_plugins_config(home);
}

std::vector<std::string> worker_command() {
  if (const char* w = std::getenv("ORK_WORKER_BIN"); w && *w) return {w};
  return {(boost::dll::program_location().parent_path() / "ork-worker").string()};
}

json parse_inputs(const std::vector<std::string>& kvs) {
  json in = json::object();
  for (const auto& kv : kvs) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) throw std::runtime_error("--input expects key=value, got '" + kv + "'");
    std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    try {
      in[k] = json::parse(v);  // numbers, booleans, JSON objects
    } catch (...) {
      in[k] = v;
    }
  }
  return in;
}

// Prints one line per task/run status change: the live progress of `ork-host run`.
void print_event(const ork::EngineEvent& ev) {
  const json& d = ev.data;
  std::string t = ork::now_str().substr(11, 12);
  if (ev.kind == "task") {
    std::string status = d.value("status", "");
    std::string line = "[" + t + "] " + d.value("task_name", "") + " " + status;
    int attempt = d.value("attempt", 0), max = d.value("max_retries", 0);
    if (attempt > 0 && (max > 0 || attempt > 1))
      line += " (attempt " + std::to_string(attempt) + "/" + std::to_string(max + 1) + ")";
    if (d.contains("error") && d["error"].is_object() && status != "success")
      line += ": " + d["error"].value("message", std::string());
    std::cout << line << std::endl;
  } else {
    std::cout << "[" << t << "] run " << d.value("run_id", "") << " " << d.value("status", "") << std::endl;
  }
}

// The engine and everything it needs, wired in the right order (plugins outlive the engine).
struct Host {
  boost::asio::io_context io;
  std::atomic<ork::Engine*> engine{nullptr};
  std::unique_ptr<ork::PluginRegistry> plugins;
  std::unique_ptr<ork::Engine> eng;

  explicit Host(const Options& o) {
    plugins = std::make_unique<ork::PluginRegistry>(plugins_config(o), [this](const std::string& name, const json& ev) {
      if (auto* e = engine.load()) e->notify(name, ev);
    });
    ork::EngineConfig cfg = ork::EngineConfig::from_env();
    char hn[256] = {0};
    gethostname(hn, sizeof hn - 1);
    cfg.host_id = std::string(hn) + "-" + std::to_string(getpid()) + "-" + ork::new_uuid().substr(0, 4);
    cfg.worker_command = worker_command();
    if (const char* r = std::getenv("ORK_RESIDENT_WORKER"); !(r && std::string(r) == "0"))
      cfg.worker_server_command = {cfg.worker_command[0], "--serve"};
    eng = std::make_unique<ork::Engine>(io, *plugins, cfg);
    engine = eng.get();
  }
  ~Host() {
    engine = nullptr;
    eng.reset();
  }
};

// `import:` entries go to the importer plugins named in plugins.yaml.
ork::ImportFn importers(const ork::PluginRegistry& plugins) {
  return [&plugins](const std::string& name, const json& request) { return plugins.import_tasks(name, request); };
}

std::string deploy_file(Host& h, const std::string& path) {
  ork::WorkflowDefinition wf = ork::load_workflow_file(path, importers(*h.plugins));
  ork::Engine& eng = *h.eng;
  eng.deploy(wf, ork::fnv1a_hex(json(wf).dump()));
  return wf.name;
}

// Drives `run_id` (already started or taken over by h's engine; or started by `start`, once progress is watched, so
// tasks that fail at once are shown too) to its end with live progress; prints the tasks and returns the exit code:
// 0 success, 1 failed, 130 cancelled.
int drive(Host& h, std::string run_id, const std::function<std::string()>& start = {}) {
  // Final state per task from the event stream (not a re-read of every row: a 10,000-instance fan-out stays cheap).
  struct Final {
    std::string status;
    json output, error;
    std::map<std::string, int> instances;  // fan-outs: status -> count
  };
  std::map<std::string, Final> finals;
  std::vector<std::string> order;
  std::map<std::string, std::string> instance_status;  // task_id -> status (fan-out instances)
  h.eng->on_event([&](const ork::EngineEvent& ev) {
    print_event(ev);
    const json& d = ev.data;
    if (ev.kind == "task") {
      std::string name = d.value("task_name", ""), status = d.value("status", "");
      if (!finals.count(name)) order.push_back(name);
      Final& f = finals[name];
      if (d.contains("parallel_index") && d["parallel_index"].is_number()) {
        std::string& prev = instance_status[d.value("task_id", "")];
        if (!prev.empty() && --f.instances[prev] == 0) f.instances.erase(prev);
        prev = status;
        ++f.instances[status];
      } else {
        f.status = status;
        f.output = d.value("output", json(nullptr));
        f.error = d.value("error", json(nullptr));
      }
    }
    if (ev.kind == "run" && d.value("run_id", "") == run_id) {
      std::string s = d.value("status", "");
      if (s == "success" || s == "failed" || s == "cancelled") h.io.stop();
    }
  });
  // First Ctrl-C cancels the run (its tasks are stopped); a second one leaves at once (tasks keep running).
  boost::asio::signal_set signals(h.io, SIGINT, SIGTERM);
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec, int) {
    if (ec) return;
    std::cout << "cancelling run " << run_id << " (again to leave now)" << std::endl;
    h.eng->cancel_run(run_id);
    signals.async_wait([&](const boost::system::error_code& ec2, int) {
      if (!ec2) h.io.stop();
    });
  };
  signals.async_wait(on_signal);
  if (start) {
    run_id = start();
    std::cout << "run id " << run_id << std::endl;
  }
  if (h.eng->active_runs() > 0) h.io.run();
  auto run = h.plugins->state().get_run({{"id", run_id}});
  std::string status = run ? run->value("status", "?") : "?";
  std::cout << "\nrun " << run_id << ": " << status << "\n";
  for (const auto& name : order) {
    const Final& f = finals[name];
    std::cout << "  " << name << ": ";
    if (!f.instances.empty()) {
      std::string sep;
      for (const auto& [st, n] : f.instances) std::cout << sep << n << " " << st, sep = ", ";
      std::cout << " (instances)";
    } else {
      std::cout << f.status;
      if (!f.output.is_null()) std::cout << "  output " << f.output.dump();
      if (f.error.is_object() && f.status != "success") std::cout << "  error " << f.error.dump();
    }
    std::cout << "\n";
  }
  return status == "success" ? 0 : status == "cancelled" ? 130 : 1;
}

int cmd_run(const Options& o, const std::string& file, const std::vector<std::string>& inputs) {
  Host h(o);
  std::string name = deploy_file(h, file);
  std::cout << "run of workflow " << name << std::endl;
  json input = parse_inputs(inputs);
  return drive(h, "", [&] { return h.eng->start_run(name, input, "manual"); });
}

int cmd_retry(const Options& o, const std::string& run_id, const std::string& task) {
  Host h(o);
  h.eng->retry(run_id, task);
  if (h.eng->active_runs() == 0) {
    std::cout << "run " << run_id << " reset; another host holds its lease and will continue it\n";
    return 0;
  }
  return drive(h, run_id);
}

int cmd_cancel(const Options& o, const std::string& run_id, const std::string& task) {
  Host h(o);
  if (!h.eng->take(run_id)) {
    h.eng->cancel(run_id, task);
    std::cout << "run " << run_id
              << " marked cancelled; the host driving it stops its tasks at its next lease renewal\n";
    return 0;
  }
  h.eng->cancel(run_id, task);
  return drive(h, run_id);
}

int cmd_deploy(const Options& o, const std::vector<std::string>& files) {
  Host h(o);
  for (const auto& f : files) std::cout << "deployed " << deploy_file(h, f) << " from " << f << "\n";
  return 0;
}

int cmd_tick(const Options& o) {
  Host h(o);
  int fired = h.eng->tick();
  size_t runs = h.eng->active_runs();
  h.eng->stop();
  std::cout << "tick: " << fired << " schedule(s) fired, " << runs << " run(s) advanced\n";
  return 0;
}

std::string home_dir(const Options& o) {
  return o.home.empty() ? default_home() : fs::absolute(o.home).string();
}

int cmd_serve(const Options& o, const std::vector<std::string>& start, const std::vector<std::string>& deploy,
              bool exit_when_idle, std::optional<ork::api::ApiConfig> api_cfg) {
  Host h(o);
  std::unique_ptr<ork::api::ApiServer> api;
  if (api_cfg) {
    api_cfg->home = home_dir(o);
    api_cfg->log_poll_ms = ork::EngineConfig::from_env().heartbeat_interval_ms;
    api = std::make_unique<ork::api::ApiServer>(h.io, *h.eng, *h.plugins, *api_cfg);
    try {
      api->start();
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << "\n";
      return 2;
    }
    std::cout << "API listening on " << api->url() << std::endl;
    if (!api_cfg->static_dir.empty())
      std::cout << "Web UI on " << api->url() << "/ (files in " << api_cfg->static_dir << ")" << std::endl;
    else
      spdlog::info("no web UI served (--no-ui, or no built files: scripts/build-ui builds them; or pass --static-dir)");
  }
  spdlog::info("ork-host serving (state: {}, objects: {}, executors: {})", h.plugins->state().name(),
               h.plugins->objects().name(), h.plugins->executors().size());
  h.eng->on_event([&](const ork::EngineEvent& ev) {
    spdlog::info("{} {}", ev.kind, ev.data.dump());
    if (exit_when_idle && ev.kind == "run" && h.eng->active_runs() <= 1) {
      std::string s = ev.data.value("status", "");
      if (s == "success" || s == "failed" || s == "cancelled")
        boost::asio::post(h.io, [&] {
          if (h.eng->active_runs() == 0 && !h.eng->awaiting_takeover()) h.io.stop();
        });
    }
  });
  boost::asio::signal_set signals(h.io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: releasing leases and stopping", sig);
    if (api) api->stop();
    h.eng->stop();
    h.io.stop();
  });
  h.eng->follow_state_changes();
  h.eng->resume_all();
  for (const auto& f : deploy) std::cout << "deployed " << deploy_file(h, f) << std::endl;
  h.eng->start_schedules();
  for (const auto& f : start) {
    std::string name = deploy_file(h, f);
    std::cout << "started run " << h.eng->start_run(name, json::object(), "manual") << std::endl;
  }
  if (exit_when_idle && h.eng->active_runs() == 0 && !h.eng->awaiting_takeover()) return 0;
  h.io.run();
  return 0;
}

int cmd_apikey(const Options& o, const std::string& action, const std::string& keys_file, const std::string& scope,
               const std::string& name, const std::string& id, bool as_json) {
  std::string path = !keys_file.empty() ? keys_file : ork::api::ApiConfig::from_env().keys_file;
  if (path.empty()) path = home_dir(o) + "/api-keys.json";
  ork::api::ApiKeyStore store(path);
  if (action == "create") {
    auto sc = ork::api::parse_scope(scope);
    if (!sc) {
      std::cerr << "error: --scope must be read, write or admin\n";
      return 2;
    }
    auto [info, key] = store.create(*sc, name);
    if (as_json) {
      json j = info.to_json();
      j["key"] = key;
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << key << "\n";
      std::cerr << "created API key " << info.id << " (scope " << scope << ") in " << path
                << "; it is shown only once: keep it now\n";
    }
    return 0;
  }
  if (action == "list") {
    auto keys = store.list();
    if (as_json) {
      json arr = json::array();
      for (const auto& k : keys) arr.push_back(k.to_json());
      std::cout << arr.dump(2) << "\n";
      return 0;
    }
    std::printf("%-15s %-6s %-20s %-25s %s\n", "ID", "SCOPE", "NAME", "CREATED", "REVOKED");
    for (const auto& k : keys)
      std::printf("%-15s %-6s %-20s %-25s %s\n", k.id.c_str(), ork::api::scope_name(k.scope), k.name.c_str(),
                  k.created_at.c_str(), k.revoked_at.empty() ? "-" : k.revoked_at.c_str());
    return 0;
  }
  if (!store.revoke(id)) {
    std::cerr << "error: no active API key " << id << " in " << path << "\n";
    return 1;
  }
  std::cout << "revoked " << id << "\n";
  return 0;
}

int cmd_plugins(const Options& o) {
  Host h(o);
  std::printf("%-9s %-12s %-12s %-9s %-5s %s\n", "KIND", "NAME", "PLUGIN", "VERSION", "ABI", "LIBRARY");
  for (const auto* p : h.plugins->all()) {
    std::string name = p->name();
    if (auto* e = dynamic_cast<const ork::ExecutorProxy*>(p); e && e->is_default) name += "*";
    std::printf("%-9s %-12s %-12s %-9s %-5s %s\n", p->kind().c_str(), name.c_str(), p->plugin_name().c_str(),
                p->version().c_str(), p->abi().c_str(), p->path().c_str());
  }
  std::printf("(* default executor; host ABI %d.%d; config %s)\n", ORK_ABI_MAJOR, ORK_ABI_MINOR,
              h.plugins->config().source.c_str());
  return 0;
}

// Loads a workflow without starting a host: only importer plugins load, and only when the workflow imports.
ork::WorkflowDefinition load_standalone(const Options& o, const std::string& file) {
  ork::ImporterSet set(plugins_config(o));
  return ork::load_workflow_file(
      file, [&set](const std::string& name, const json& request) { return set.import_tasks(name, request); });
}

int cmd_validate(const Options& o, const std::string& file) {
  ork::WorkflowDefinition wf = load_standalone(o, file);
  std::cout << file << ": ok (workflow " << wf.name << ", " << wf.tasks.size() << " tasks)\n";
  return 0;
}

// Writes JSON Schema (draft 2020-12) for the workflow's types and each task's input/output type.
int cmd_schema_export(const Options& o, const std::string& file, const std::string& out_file) {
  ork::WorkflowDefinition wf = load_standalone(o, file);
  ork::TypeSystem ts = ork::TypeSystem::compile(wf.types);
  std::map<std::string, ork::TypePtr> tasks;
  for (const auto& t : wf.tasks) {
    if (!t.input_type.is_null()) tasks[t.name + ".input"] = ts.parse(t.input_type, "tasks." + t.name + ".input_type");
    if (!t.output_type.is_null())
      tasks[t.name + ".output"] = ts.parse(t.output_type, "tasks." + t.name + ".output_type");
  }
  std::string text = ts.schema_document("Types of workflow " + wf.name, tasks).dump(2) + "\n";
  if (out_file.empty() || out_file == "-") {
    std::cout << text;
    return 0;
  }
  std::ofstream out(out_file, std::ios::binary | std::ios::trunc);
  if (!(out << text) || !out.flush()) throw std::runtime_error("cannot write " + out_file);
  std::cerr << "wrote " << out_file << " (" << ts.named().size() << " types, " << tasks.size() << " task types)\n";
  return 0;
}

// Masks the values of the secrets `wf_name` refers to (belt and braces: the worker already masks what it writes).
json mask_workflow_secrets(Host& h, const std::string& wf_name, const json& value) {
  std::vector<std::string> values;
  try {
    auto rec = h.plugins->state().get_workflow({{"name", wf_name}});
    if (!rec) return value;
    auto wf = (*rec)["definition"].get<ork::WorkflowDefinition>();
    ork::SecretSource src(h.plugins->config().secrets, h.plugins->config().dir);
    for (const auto& t : wf.tasks) {
      for (const auto& [k, v] : t.env)
        if (v.secret)
          if (auto s = src.get(*v.secret)) values.push_back(*s);
      for (const auto& f : t.secrets)
        if (auto s = src.get(f.secret)) values.push_back(*s);
    }
  } catch (const std::exception& e) {
    spdlog::warn("cannot read the workflow's secrets to mask them: {}", e.what());
  }
  return ork::Masker(values).mask(value);
}

int cmd_status(const Options& o, const std::string& run_id) {
  Host h(o);
  auto run = h.plugins->state().get_run({{"id", run_id}});
  if (!run) {
    std::cerr << "no run " << run_id << "\n";
    return 1;
  }
  json out = *run;
  out["tasks"] = h.plugins->state().get_task_runs({{"run_id", run_id}})["tasks"];
  std::cout << mask_workflow_secrets(h, run->value("workflow_name", ""), out).dump(2) << "\n";
  return 0;
}

int cmd_runs(const Options& o) {
  Host h(o);
  auto res = h.plugins->state().list_runs({{"limit", 50}});
  for (const auto& r : res["runs"])
    std::printf("%s  %-20s %-10s %s\n", r.value("id", "").c_str(), r.value("workflow_name", "").c_str(),
                r.value("status", "").c_str(), r.value("created_at", "").c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("ork"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  CLI::App app{"ork-host: the Ork workflow orchestrator host"};
  app.require_subcommand(1);
  Options o;
  app.add_option("--plugins", o.plugins_file,
                 "plugins.yaml to load (default: $ORK_HOME/plugins.yaml or the embedded default)");
  app.add_option("--home", o.home, "state folder for the embedded default (default: $ORK_HOME or ./.ork)");
  app.add_flag("-v,--verbose", o.verbose, "debug logging");

  std::string file, run_id;
  std::vector<std::string> inputs, start;
  bool exit_when_idle = false;
  auto* run = app.add_subcommand("run", "run a workflow once with live progress; exit code 0 only on success");
  run->add_option("workflow", file, "workflow YAML file")->required();
  run->add_option("--input", inputs, "run input key=value (repeatable)");
  auto* serve = app.add_subcommand("serve", "run the engine; resumes unfinished runs");
  serve->add_option("--start", start, "deploy this workflow and start a run of it (repeatable)");
  std::vector<std::string> deploy_files;
  serve->add_option("--deploy", deploy_files, "deploy this workflow (its schedule starts) without starting a run");
  serve->add_flag("--exit-when-idle", exit_when_idle, "exit once no run is active (schedules are not waited for)");
  ork::api::ApiConfig api_cfg = ork::api::ApiConfig::from_env();
  bool no_api = false;
  serve->add_option("--bind", api_cfg.bind, "REST API address (env ORK_API_BIND; default 127.0.0.1)");
  serve->add_option("--port", api_cfg.port, "REST API port, 0 = any free one (env ORK_API_PORT; default 4000)");
  serve
      ->add_option("--auth", api_cfg.auth,
                   "API keys: auto (required once a key exists), on, off (loopback only) (env ORK_API_AUTH)")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  serve->add_option("--api-threads", api_cfg.threads, "REST API threads (env ORK_API_THREADS; default 2)")
      ->check(CLI::Range(1, 64));
  serve->add_option("--static-dir", api_cfg.static_dir,
                    "serve these files outside /api/ (env ORK_API_STATIC_DIR; default: the built web UI)");
  bool no_ui = false;
  serve->add_flag("--no-ui", no_ui, "serve no web UI (only the REST API)");
  serve->add_flag("--no-api", no_api, "run the engine without the REST API");
  auto* apikey = app.add_subcommand("apikey", "manage REST API keys (stored salted and hashed; shown once)");
  apikey->require_subcommand(1);
  std::string keys_file, key_scope, key_name, key_id;
  bool key_json = false;
  apikey->add_option("--keys-file", keys_file, "keys file (env ORK_API_KEYS_FILE; default <home>/api-keys.json)");
  apikey->add_flag("--json", key_json, "JSON output");
  auto* key_create = apikey->add_subcommand("create", "create a key and print it (only this once)");
  key_create->add_option("--scope", key_scope, "read | write | admin")->required();
  key_create->add_option("--name", key_name, "a label for the key");
  auto* key_list = apikey->add_subcommand("list", "list keys (ids, scopes, dates; never the keys)");
  auto* key_revoke = apikey->add_subcommand("revoke", "revoke a key by id");
  key_revoke->add_option("id", key_id, "key id (from list)")->required();
  auto* deploy = app.add_subcommand("deploy", "store workflow definitions (and their schedules) without running them");
  deploy->add_option("workflow", deploy_files, "workflow YAML files")->required();
  auto* tick =
      app.add_subcommand("tick", "one reconciliation pass (due schedules, ready tasks, finished attempts), then exit");
  auto* plugins = app.add_subcommand("plugins", "list the loaded plugins: kind, name, version, ABI");
  auto* validate = app.add_subcommand("validate", "check a workflow YAML file");
  validate->add_option("workflow", file, "workflow YAML file")->required();
  auto* schema = app.add_subcommand("schema", "type schemas of a workflow");
  schema->require_subcommand(1);
  auto* schema_export = schema->add_subcommand("export", "write JSON Schema (draft 2020-12) for every type");
  schema_export->add_option("workflow", file, "workflow YAML file")->required();
  std::string out_file;
  schema_export->add_option("-o,--output", out_file, "output file (default: stdout)");
  auto* status = app.add_subcommand("status", "print a run and its tasks as JSON (secret values masked)");
  status->add_option("run_id", run_id)->required();
  auto* runs = app.add_subcommand("runs", "list recent runs");
  std::string task;
  auto* retry =
      app.add_subcommand("retry", "re-run a finished run's failed and not-run tasks (or --task and downstream)");
  retry->add_option("run_id", run_id)->required();
  retry->add_option("--task", task, "re-run this task and everything downstream of it");
  auto* cancel = app.add_subcommand("cancel", "cancel a run, or one task of it");
  cancel->add_option("run_id", run_id)->required();
  cancel->add_option("--task", task, "cancel only this task (all its instances)");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(o.verbose ? spdlog::level::debug : spdlog::level::info);

  try {
    if (*run) return cmd_run(o, file, inputs);
    if (*serve && no_ui) api_cfg.static_dir.clear();
    if (*serve && !no_ui && api_cfg.static_dir.empty()) api_cfg.static_dir = ork::api::find_ui_dir();
    if (*serve)
      return cmd_serve(o, start, deploy_files, exit_when_idle,
                       no_api ? std::nullopt : std::optional<ork::api::ApiConfig>(api_cfg));
    if (*apikey)
      return cmd_apikey(o,
                        *key_create ? "create"
                        : *key_list ? "list"
                                    : "revoke",
                        keys_file, key_scope, key_name, key_id, key_json);
    if (*deploy) return cmd_deploy(o, deploy_files);
    if (*tick) return cmd_tick(o);
    if (*plugins) return cmd_plugins(o);
    if (*validate) return cmd_validate(o, file);
    if (*schema_export) return cmd_schema_export(o, file, out_file);
    if (*status) return cmd_status(o, run_id);
    if (*runs) return cmd_runs(o);
    if (*retry) return cmd_retry(o, run_id, task);
    if (*cancel) return cmd_cancel(o, run_id, task);
  } catch (const ork::CronError& e) {
    std::cerr << "error: schedule: " << e.what() << "\n";
    return 2;
  } catch (const ork::TypeError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const ork::WorkflowError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
