#include "api/routes.hpp"

namespace ork::api {

const char* scope_name(Scope s) {
  switch (s) {
    case Scope::none:
      return "none";
    case Scope::read:
      return "read";
    case Scope::write:
      return "write";
    case Scope::admin:
      return "admin";
  }
  return "none";
}

std::optional<Scope> parse_scope(std::string_view s) {
  if (s == "read") return Scope::read;
  if (s == "write") return Scope::write;
  if (s == "admin") return Scope::admin;
  return std::nullopt;
}

const std::vector<RouteSpec>& route_specs() {
  static const std::vector<RouteSpec> routes = {
      {"getHealth", "GET", "/api/v1/health", Scope::none, {}},
      {"getOpenApi", "GET", "/api/v1/openapi.json", Scope::none, {}},
      {"listWorkflows", "GET", "/api/v1/workflows", Scope::read, {"limit", "cursor"}},
      {"deployWorkflow", "POST", "/api/v1/workflows", Scope::write, {"base_dir"}},
      {"getWorkflow", "GET", "/api/v1/workflows/{name}", Scope::read, {}},
      {"deleteWorkflow", "DELETE", "/api/v1/workflows/{name}", Scope::write, {}},
      {"startRun", "POST", "/api/v1/workflows/{name}/runs", Scope::write, {}},
      {"listRuns", "GET", "/api/v1/runs", Scope::read, {"limit", "cursor", "status", "workflow"}},
      {"getRun", "GET", "/api/v1/runs/{id}", Scope::read, {}},
      {"cancelRun", "POST", "/api/v1/runs/{id}/cancel", Scope::write, {}},
      {"retryRun", "POST", "/api/v1/runs/{id}/retry", Scope::write, {}},
      {"listRunTasks", "GET", "/api/v1/runs/{id}/tasks", Scope::read, {"limit", "cursor", "status", "name"}},
      {"getTaskLogs",
       "GET",
       "/api/v1/runs/{id}/tasks/{name}/logs",
       Scope::read,
       {"attempt", "index", "follow", "format"}},
      {"streamEvents", "GET", "/api/v1/events", Scope::read, {"run", "workflow"}},
      {"submitTask", "POST", "/api/v1/tasks", Scope::write, {}},
      {"getTask", "GET", "/api/v1/tasks/{id}", Scope::read, {}},
      {"listApiKeys", "GET", "/api/v1/apikeys", Scope::admin, {}},
      {"createApiKey", "POST", "/api/v1/apikeys", Scope::admin, {}},
      {"revokeApiKey", "DELETE", "/api/v1/apikeys/{id}", Scope::admin, {}},
  };
  return routes;
}

namespace {

std::vector<std::string_view> segments(std::string_view p) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < p.size()) {
    if (p[i] == '/') {
      ++i;
      continue;
    }
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    out.push_back(p.substr(i, j - i));
    i = j;
  }
  return out;
}

bool is_param(std::string_view seg) {
  return seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
}

}  // namespace

std::string url_decode(std::string_view s, bool plus_is_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> path_params(const std::string& path_template) {
  std::vector<std::string> out;
  for (auto seg : segments(path_template))
    if (is_param(seg)) out.emplace_back(seg.substr(1, seg.size() - 2));
  return out;
}

RouteMatch match_route(const std::string& method, const std::string& path) {
  RouteMatch m;
  auto req = segments(path);
  for (const auto& r : route_specs()) {
    auto tpl = segments(r.path);
    if (tpl.size() != req.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (size_t i = 0; ok && i < tpl.size(); ++i) {
      if (is_param(tpl[i]))
        params[std::string(tpl[i].substr(1, tpl[i].size() - 2))] = url_decode(req[i], false);
      else
        ok = tpl[i] == req[i];
    }
    if (!ok) continue;
    m.allowed.emplace_back(r.method);
    if (!m.route && method == r.method) {
      m.route = &r;
      m.params = std::move(params);
    }
  }
  return m;
}

}  // namespace ork::api
