#include "loader/plugin_loader.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace ork {
namespace fs = std::filesystem;

const char* kind_name(int32_t kind) {
  switch (kind) {
    case ORK_KIND_STATE:
      return "state";
    case ORK_KIND_OBJECT:
      return "object";
    case ORK_KIND_EXECUTOR:
      return "executor";
    case ORK_KIND_IMPORTER:
      return "importer";
    default:
      return "unknown";
  }
}

namespace {

int32_t kind_from_name(const std::string& k) {
  if (k == "state") return ORK_KIND_STATE;
  if (k == "object") return ORK_KIND_OBJECT;
  if (k == "executor") return ORK_KIND_EXECUTOR;
  if (k == "importer") return ORK_KIND_IMPORTER;
  return 0;
}

std::vector<std::string> split_path(const char* v) {
  std::vector<std::string> out;
  if (!v) return out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ':'))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string message_of(const ork_buf& b) {
  if (!b.data || !b.size) return "";
  try {
    auto j = json::parse(b.data, b.data + b.size);
    if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"];
  } catch (...) {
  }
  return std::string(b.data, b.size);
}

}  // namespace

std::string find_plugin_library(const std::string& library, std::vector<std::string>* searched) {
  if (library.find('/') != std::string::npos) {
    if (searched) searched->push_back(library);
    return fs::exists(library) ? fs::absolute(library).string() : "";
  }
  std::vector<std::string> dirs = split_path(std::getenv("ORK_PLUGIN_PATH"));
  std::error_code ec;
  auto exe = boost::dll::program_location(ec);
  if (!ec) {
    dirs.push_back((exe.parent_path().parent_path() / "lib").string());
    dirs.push_back((exe.parent_path().parent_path() / "lib" / "ork" / "plugins").string());
  }
  std::vector<std::string> names{library};
  if (library.rfind("lib", 0) != 0) names.insert(names.begin(), "lib" + library + ".so");
  if (library.size() < 3 || library.substr(library.size() - 3) != ".so") names.push_back(library + ".so");
  for (const auto& d : dirs) {
    if (searched) searched->push_back(d);
    for (const auto& n : names) {
      fs::path p = fs::path(d) / n;
      if (fs::is_regular_file(p, ec)) return fs::absolute(p).string();
    }
  }
  return "";
}

struct LoadedPlugin::Impl {
  boost::dll::shared_library lib;
  ork_host_services services{};
  std::string name;
  NotifyFn notify;
};

LoadedPlugin::LoadedPlugin() : impl_(std::make_unique<Impl>()) {}

LoadedPlugin::~LoadedPlugin() {
  if (inst_ && desc_ && desc_->destroy) desc_->destroy(inst_);
}

void LoadedPlugin::open(const PluginSpec& spec, int32_t kind, NotifyFn notify) {
  kind_ = spec.kind;
  name_ = spec.name;
  std::string ctx = spec.where + ": " + spec.kind + " plugin '" + spec.name + "'";
  std::vector<std::string> searched;
  path_ = find_plugin_library(spec.library, &searched);
  if (path_.empty()) {
    std::string dirs;
    for (const auto& d : searched) dirs += (dirs.empty() ? "" : ", ") + d;
    throw PluginLoadError(ctx + ": library '" + spec.library + "' not found (searched ORK_PLUGIN_PATH and: " + dirs +
                          ")");
  }
  try {
    impl_->lib.load(path_, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw PluginLoadError(ctx + ": cannot load " + path_ + ": " + e.what());
  }
  if (!impl_->lib.has(ORK_PLUGIN_ENTRY_SYMBOL))
    throw PluginLoadError(ctx + ": " + path_ +
                          " does not export the symbol '" ORK_PLUGIN_ENTRY_SYMBOL "' (not an Ork plugin)");
  auto& entry = impl_->lib.get<const ork_plugin_descriptor*()>(ORK_PLUGIN_ENTRY_SYMBOL);
  desc_ = entry();
  if (!desc_) throw PluginLoadError(ctx + ": " + path_ + ": " ORK_PLUGIN_ENTRY_SYMBOL "() returned no descriptor");
  std::string host_abi = std::to_string(ORK_ABI_MAJOR) + "." + std::to_string(ORK_ABI_MINOR);
  if (desc_->abi_major != ORK_ABI_MAJOR) {
    auto v = abi();
    desc_ = nullptr;
    throw PluginLoadError(ctx + ": " + path_ + " (symbol " ORK_PLUGIN_ENTRY_SYMBOL ") was built for plugin ABI " + v +
                          ", this host speaks ABI " + host_abi + ": major versions differ, rebuild the plugin");
  }
  if (desc_->struct_size < offsetof(ork_plugin_descriptor, free_buffer) + sizeof(desc_->free_buffer) ||
      !desc_->create || !desc_->destroy || !desc_->vtable || !desc_->free_buffer) {
    desc_ = nullptr;
    throw PluginLoadError(ctx + ": " + path_ + ": descriptor is incomplete (struct_size or members missing)");
  }
  if (desc_->kind != kind) {
    std::string actual = kind_name(desc_->kind);
    desc_ = nullptr;
    throw PluginLoadError(ctx + ": " + path_ + " is a " + actual + " plugin, expected " + kind_name(kind));
  }
  if (desc_->abi_minor > ORK_ABI_MINOR)
    spdlog::warn("{}: {} was built for newer ABI {} than the host's {}", ctx, path_, abi(), host_abi);

  impl_->name = spec.name;
  impl_->notify = std::move(notify);
  impl_->services.struct_size = sizeof(ork_host_services);
  impl_->services.host_ctx = impl_.get();
  impl_->services.log = [](void* c, int32_t level, const char* msg) {
    auto* self = static_cast<Impl*>(c);
    auto lvl = level <= ORK_LOG_DEBUG  ? spdlog::level::debug
               : level == ORK_LOG_INFO ? spdlog::level::info
               : level == ORK_LOG_WARN ? spdlog::level::warn
                                       : spdlog::level::err;
    spdlog::log(lvl, "[{}] {}", self->name, msg ? msg : "");
  };
  impl_->services.now_ms = [](void*) -> int64_t {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  impl_->services.notify = [](void* c, const char* ev) {
    auto* self = static_cast<Impl*>(c);
    if (!self->notify || !ev) return;
    try {
      self->notify(self->name, json::parse(ev));
    } catch (const std::exception& e) {
      spdlog::warn("[{}] dropped malformed notify event: {}", self->name, e.what());
    }
  };
  ork_buf err{nullptr, 0};
  ork_plugin_instance* inst = nullptr;
  std::string cfg = spec.config.is_null() ? "{}" : spec.config.dump();
  ork_status st = desc_->create(cfg.c_str(), &impl_->services, &inst, &err);
  if (st != ORK_OK || !inst) {
    std::string m = message_of(err);
    free_buf(err);
    throw PluginLoadError(ctx + ": " + path_ + ": create failed: " + (m.empty() ? "no instance" : m));
  }
  free_buf(err);
  inst_ = inst;
}

std::string LoadedPlugin::info() const {
  if (desc_->struct_size < offsetof(ork_plugin_descriptor, info_json) + sizeof(desc_->info_json)) return "";
  return desc_->info_json ? desc_->info_json : "";
}

void LoadedPlugin::free_buf(ork_buf& b) const {
  if (b.data && desc_) desc_->free_buffer(b.data);
  b = ork_buf{nullptr, 0};
}

void LoadedPlugin::fail(ork_status st, ork_buf& buf, const char* op) const {
  std::string m = message_of(buf);
  free_buf(buf);
  throw PluginCallError(
      st, kind_ + " plugin '" + name_ + "' " + op + ": " + (m.empty() ? "error " + std::to_string(st) : m));
}

json LoadedPlugin::call(size_t offset, const char* op, const json& args) const {
  if (offset + sizeof(ork_json_fn) > vtable_size())
    throw PluginCallError(ORK_ERR_UNSUPPORTED,
                          kind_ + " plugin '" + name_ + "' (ABI " + abi() + ") does not implement " + op);
  ork_json_fn fn;
  std::memcpy(&fn, static_cast<const char*>(vtable()) + offset, sizeof fn);
  if (!fn) throw PluginCallError(ORK_ERR_UNSUPPORTED, kind_ + " plugin '" + name_ + "' does not implement " + op);
  std::string a = args.dump();
  ork_buf out{nullptr, 0};
  ork_status st = fn(inst_, a.data(), a.size(), &out);
  if (st != ORK_OK) fail(st, out, op);
  json r;
  try {
    r = (out.data && out.size) ? json::parse(out.data, out.data + out.size) : json::object();
  } catch (const std::exception& e) {
    free_buf(out);
    throw PluginCallError(ORK_ERR_INTERNAL, kind_ + " plugin '" + name_ + "' " + op + ": returned invalid JSON");
  }
  free_buf(out);
  return r;
}

template <class VT>
static size_t member_offset(ork_json_fn VT::*m) {
  static const VT probe{};
  return static_cast<size_t>(reinterpret_cast<const char*>(&(probe.*m)) - reinterpret_cast<const char*>(&probe));
}

json StateProxy::op(ork_json_fn ork_state_vtable::*m, const char* name, const json& a) const {
  return call(member_offset(m), name, a);
}

std::optional<json> StateProxy::maybe(ork_json_fn ork_state_vtable::*m, const char* name, const json& a) const {
  try {
    return call(member_offset(m), name, a);
  } catch (const PluginCallError& e) {
    if (e.code() == ORK_ERR_NOT_FOUND) return std::nullopt;
    throw;
  }
}

json ExecutorProxy::op(ork_json_fn ork_executor_vtable::*m, const char* name, const json& a) const {
  return call(member_offset(m), name, a);
}

uint32_t ExecutorProxy::poll_interval_ms() const {
  return static_cast<const ork_executor_vtable*>(vtable())->poll_interval_ms;
}

json ImporterProxy::import_tasks(const json& a) const {
  return call(offsetof(ork_importer_vtable, import_tasks), "import_tasks", a);
}

namespace {
const ork_object_vtable& ovt(const void* v) {
  return *static_cast<const ork_object_vtable*>(v);
}
}  // namespace

std::optional<std::string> ObjectProxy::get(const std::string& key) const {
  ork_buf out{nullptr, 0};
  ork_status st = ovt(vtable()).get(inst_, key.c_str(), &out);
  if (st == ORK_ERR_NOT_FOUND) {
    free_buf(out);
    return std::nullopt;
  }
  if (st != ORK_OK) fail(st, out, "get");
  std::string r(out.data ? out.data : "", out.size);
  free_buf(out);
  return r;
}

void ObjectProxy::put(const std::string& key, std::string_view data, const json& opts) const {
  ork_buf err{nullptr, 0};
  std::string o = opts.dump();
  ork_status st = ovt(vtable()).put(inst_, key.c_str(), data.data(), data.size(), o.c_str(), &err);
  if (st != ORK_OK) fail(st, err, "put");
  free_buf(err);
}

void ObjectProxy::del(const std::string& key) const {
  ork_buf err{nullptr, 0};
  ork_status st = ovt(vtable()).del(inst_, key.c_str(), &err);
  if (st != ORK_OK) fail(st, err, "delete");
  free_buf(err);
}

std::vector<std::string> ObjectProxy::list(const std::string& prefix) const {
  ork_buf out{nullptr, 0};
  ork_status st = ovt(vtable()).list(inst_, prefix.c_str(), &out);
  if (st != ORK_OK) fail(st, out, "list");
  std::vector<std::string> keys;
  try {
    keys = json::parse(out.data, out.data + out.size).get<std::vector<std::string>>();
  } catch (const std::exception&) {
    free_buf(out);
    throw PluginCallError(ORK_ERR_INTERNAL, "object plugin '" + name_ + "' list: returned invalid JSON");
  }
  free_buf(out);
  return keys;
}

bool ObjectProxy::streams() const {
  return vtable_size() >= offsetof(ork_object_vtable, get_file) + sizeof(ovt(vtable()).get_file) &&
         ovt(vtable()).put_file && ovt(vtable()).get_file;
}

void ObjectProxy::put_file(const std::string& key, const std::string& path, const json& opts) const {
  if (streams()) {
    ork_buf err{nullptr, 0};
    std::string o = opts.dump();
    ork_status st = ovt(vtable()).put_file(inst_, key.c_str(), path.c_str(), o.c_str(), &err);
    if (st == ORK_OK) return free_buf(err);
    if (st != ORK_ERR_UNSUPPORTED) fail(st, err, "put_file");
    free_buf(err);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw PluginCallError(ORK_ERR_INVALID, "put_file: cannot read " + path);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  put(key, data, opts);
}

bool ObjectProxy::get_file(const std::string& key, const std::string& path) const {
  if (streams()) {
    ork_buf err{nullptr, 0};
    ork_status st = ovt(vtable()).get_file(inst_, key.c_str(), path.c_str(), &err);
    if (st == ORK_OK || st == ORK_ERR_NOT_FOUND) {
      free_buf(err);
      return st == ORK_OK;
    }
    if (st != ORK_ERR_UNSUPPORTED) fail(st, err, "get_file");
    free_buf(err);
  }
  auto data = get(key);
  if (!data) return false;
  std::string tmp = path + ".ork-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(data->data(), static_cast<std::streamsize>(data->size()));
    if (!out.flush()) throw PluginCallError(ORK_ERR_INTERNAL, "get_file: cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw PluginCallError(ORK_ERR_INTERNAL, "get_file: cannot rename into " + path + ": " + ec.message());
  return true;
}

std::optional<json> ObjectProxy::get_json(const std::string& key) const {
  auto v = get(key);
  if (!v) return std::nullopt;
  try {
    return json::parse(*v);
  } catch (const std::exception& e) {
    throw PluginCallError(ORK_ERR_INTERNAL, "object '" + key + "' is not valid JSON: " + e.what());
  }
}

template <class Proxy>
std::unique_ptr<Proxy> load_plugin(const std::string& kind, const std::string& library, const json& config,
                                   NotifyFn notify) {
  auto p = std::make_unique<Proxy>();
  PluginSpec spec{kind, kind, library, config, false, "<direct load>"};
  p->open(spec, kind_from_name(kind), std::move(notify));
  return p;
}

template std::unique_ptr<StateProxy> load_plugin<StateProxy>(const std::string&, const std::string&, const json&,
                                                             NotifyFn);
template std::unique_ptr<ObjectProxy> load_plugin<ObjectProxy>(const std::string&, const std::string&, const json&,
                                                               NotifyFn);
template std::unique_ptr<ExecutorProxy> load_plugin<ExecutorProxy>(const std::string&, const std::string&, const json&,
                                                                   NotifyFn);
template std::unique_ptr<ImporterProxy> load_plugin<ImporterProxy>(const std::string&, const std::string&, const json&,
                                                                   NotifyFn);

PluginRegistry::PluginRegistry(const PluginsConfig& cfg, NotifyFn notify) : cfg_(cfg) {
  for (const auto& spec : cfg.plugins) {
    int32_t k = kind_from_name(spec.kind);
    if (k == ORK_KIND_STATE) {
      if (state_) throw PluginLoadError(spec.where + ": a second state plugin ('" + spec.name + "'): only one allowed");
      state_ = std::make_unique<StateProxy>();
      state_->open(spec, k, notify);
    } else if (k == ORK_KIND_OBJECT) {
      if (objects_)
        throw PluginLoadError(spec.where + ": a second object plugin ('" + spec.name + "'): only one allowed");
      objects_ = std::make_unique<ObjectProxy>();
      objects_->open(spec, k, notify);
    } else if (k == ORK_KIND_EXECUTOR) {
      auto e = std::make_unique<ExecutorProxy>();
      e->open(spec, k, notify);
      e->is_default = spec.is_default;
      if (spec.is_default) {
        if (!default_executor_.empty())
          throw PluginLoadError(spec.where + ": executors '" + default_executor_ + "' and '" + spec.name +
                                "' are both marked default");
        default_executor_ = spec.name;
      }
      executors_[spec.name] = std::move(e);
    } else if (k == ORK_KIND_IMPORTER) {
      auto i = std::make_unique<ImporterProxy>();
      i->open(spec, k, notify);
      importers_[spec.name] = std::move(i);
    }
  }
  if (!state_) throw PluginLoadError(cfg.source + ": no state plugin configured");
  if (!objects_) throw PluginLoadError(cfg.source + ": no object plugin configured");
  if (executors_.empty()) throw PluginLoadError(cfg.source + ": no executor plugin configured");
  if (default_executor_.empty()) {
    if (executors_.size() > 1)
      throw PluginLoadError(cfg.source + ": several executors and none marked `default: true`");
    default_executor_ = executors_.begin()->first;
    executors_.begin()->second->is_default = true;
  }
}

ExecutorProxy* PluginRegistry::executor(const std::string& name) const {
  auto it = executors_.find(name.empty() ? default_executor_ : name);
  return it == executors_.end() ? nullptr : it->second.get();
}

ImporterProxy* PluginRegistry::importer(const std::string& name) const {
  auto it = importers_.find(name);
  return it == importers_.end() ? nullptr : it->second.get();
}

namespace {

[[noreturn]] void no_importer(const std::string& name, const PluginsConfig& cfg) {
  throw PluginLoadError("no importer plugin named '" + name + "' in " + cfg.source +
                        " (add {kind: importer, name: " + name + ", library: ...} to its plugins list)");
}

}  // namespace

json PluginRegistry::import_tasks(const std::string& name, const json& request) const {
  ImporterProxy* i = importer(name);
  if (!i) no_importer(name, cfg_);
  return i->import_tasks(request);
}

json ImporterSet::import_tasks(const std::string& name, const json& request) {
  auto it = loaded_.find(name);
  if (it == loaded_.end()) {
    const PluginSpec* spec = nullptr;
    for (const auto& s : cfg_.plugins)
      if (s.kind == "importer" && s.name == name) spec = &s;
    if (!spec) no_importer(name, cfg_);
    auto p = std::make_unique<ImporterProxy>();
    p->open(*spec, ORK_KIND_IMPORTER, {});
    it = loaded_.emplace(name, std::move(p)).first;
  }
  return it->second->import_tasks(request);
}

std::vector<const LoadedPlugin*> PluginRegistry::all() const {
  std::vector<const LoadedPlugin*> v{state_.get(), objects_.get()};
  for (const auto& [n, e] : executors_) v.push_back(e.get());
  for (const auto& [n, i] : importers_) v.push_back(i.get());
  return v;
}

json PluginRegistry::object_store_ref() const {
  return {{"library", objects_->path()}, {"config", [&] {
                                            for (const auto& s : cfg_.plugins)
                                              if (s.kind == "object") return s.config;
                                            return json::object();
                                          }()}};
}

}  // namespace ork
