// The route table (host/api/routes.cpp) against the OpenAPI document the server serves and against docs/api.md:
// same routes, operation ids, scopes, path and query parameters; every error code the sources use is documented.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "api/routes.hpp"
#include "api/service.hpp"

using ork::api::json;
namespace fs = std::filesystem;

namespace {

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const json& doc() {
  static const json d = json::parse(ork::api::openapi_json());
  return d;
}

// Parameters of an operation (resolving $ref into components.parameters), by location.
std::set<std::string> params(const json& op, const std::string& in) {
  std::set<std::string> out;
  for (const auto& p : op.value("parameters", json::array())) {
    json q = p;
    if (p.contains("$ref")) {
      std::string name = p["$ref"].get<std::string>().substr(std::string("#/components/parameters/").size());
      q = doc()["components"]["parameters"][name];
    }
    if (q["in"] == in) out.insert(q["name"].get<std::string>());
  }
  return out;
}

TEST(OpenApi, EmbeddedDocumentIsTheSourceFileAndValidJson) {
  EXPECT_EQ(doc(), json::parse(read(ORK_OPENAPI_FILE)));
  EXPECT_EQ(doc()["openapi"].get<std::string>().rfind("3.0", 0), 0u);
}

TEST(OpenApi, EveryRouteIsDocumentedExactly) {
  std::set<std::string> ops;
  for (const auto& r : ork::api::route_specs()) {
    SCOPED_TRACE(std::string(r.method) + " " + r.path);
    ASSERT_TRUE(doc()["paths"].contains(r.path)) << "path missing from openapi.json";
    const json& item = doc()["paths"][r.path];
    ASSERT_TRUE(item.contains(lower(r.method))) << "method missing from openapi.json";
    const json& op = item[lower(r.method)];
    EXPECT_EQ(op["operationId"], r.operation_id);
    EXPECT_TRUE(ops.insert(r.operation_id).second) << "duplicate operation id";
    EXPECT_EQ(op["x-ork-scope"], ork::api::scope_name(r.scope));
    EXPECT_EQ(op["security"].empty(), r.scope == ork::api::Scope::none);
    auto pp = ork::api::path_params(r.path);
    EXPECT_EQ(params(op, "path"), std::set<std::string>(pp.begin(), pp.end()));
    EXPECT_EQ(params(op, "query"), std::set<std::string>(r.query.begin(), r.query.end()));
    EXPECT_TRUE(op.contains("responses") && !op["responses"].empty());
    if (r.scope != ork::api::Scope::none) {
      EXPECT_TRUE(op["responses"].contains("401"));
      EXPECT_TRUE(op["responses"].contains("403"));
    }
  }
}

TEST(OpenApi, NothingIsDocumentedThatTheRouterLacks) {
  for (const auto& [path, item] : doc()["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      bool found = false;
      for (const auto& r : ork::api::route_specs()) found = found || (r.path == path && lower(r.method) == method);
      EXPECT_TRUE(found) << method << " " << path << " is in openapi.json but not in the route table";
    }
  }
}

TEST(OpenApi, RouterMatchesTemplatesAndReportsAllowedMethods) {
  auto m = ork::api::match_route("GET", "/api/v1/runs/r%2D1/tasks/load%20data/logs");
  ASSERT_NE(m.route, nullptr);
  EXPECT_STREQ(m.route->operation_id, "getTaskLogs");
  EXPECT_EQ(m.params["id"], "r-1");
  EXPECT_EQ(m.params["name"], "load data");
  m = ork::api::match_route("PATCH", "/api/v1/workflows/x");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allowed, (std::vector<std::string>{"GET", "DELETE"}));
  EXPECT_EQ(ork::api::match_route("GET", "/api/v1/runs/a/b").route, nullptr);
}

// Every error code the API sources can return is in the Error schema's enum, and the enum has no stale codes.
TEST(OpenApi, ErrorCodesInTheSourcesAreTheDocumentedOnes) {
  const json& e = doc()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"];
  std::set<std::string> documented(e.begin(), e.end());
  std::set<std::string> used;
  for (const auto& f : fs::directory_iterator(std::string(ORK_SOURCE_DIR) + "/host/api")) {
    if (f.path().extension() != ".cpp") continue;
    std::string src = read(f.path().string());
    // ApiError(404, "code", ...), error_response(405, "code", ...), write_plain(413, "code", ...)
    for (const char* call : {"ApiError(", "error_response(", "write_plain("}) {
      for (size_t at = src.find(call); at != std::string::npos; at = src.find(call, at + 1)) {
        size_t q1 = src.find('"', at), comma = src.find(',', at);
        if (q1 == std::string::npos || comma == std::string::npos || q1 < comma) continue;  // a declaration
        size_t q2 = src.find('"', q1 + 1);
        std::string between = src.substr(comma + 1, q1 - comma - 1);
        if (between.find_first_not_of(" \n") != std::string::npos) continue;  // code is not a literal here
        used.insert(src.substr(q1 + 1, q2 - q1 - 1));
      }
    }
  }
  ASSERT_GT(used.size(), 15u);
  for (const auto& c : used) EXPECT_TRUE(documented.count(c)) << "error code '" << c << "' is not in openapi.json";
  for (const auto& c : documented) EXPECT_TRUE(used.count(c)) << "documented error code '" << c << "' is never used";
}

// docs/api.md has one "### `METHOD /path`" section per route with its scope, and lists every error code.
TEST(OpenApi, UserDocsCoverEveryRouteAndErrorCode) {
  std::string md = read(std::string(ORK_SOURCE_DIR) + "/docs/api.md");
  ASSERT_FALSE(md.empty());
  std::set<std::string> headings;
  std::istringstream in(md);
  std::string line;
  std::map<std::string, std::string> scope_line;  // heading -> the "Scope: `x`" line after it
  std::string current;
  while (std::getline(in, line)) {
    if (line.rfind("### `", 0) == 0 && line.back() == '`') {
      current = line.substr(5, line.size() - 6);
      headings.insert(current);
    } else if (!current.empty() && line.rfind("Scope: `", 0) == 0 && !scope_line.count(current)) {
      scope_line[current] = line.substr(8, line.find('`', 8) - 8);
    }
  }
  std::set<std::string> routes;
  for (const auto& r : ork::api::route_specs()) {
    std::string h = std::string(r.method) + " " + r.path;
    routes.insert(h);
    EXPECT_TRUE(headings.count(h)) << "docs/api.md lacks a section '### `" << h << "`'";
    EXPECT_EQ(scope_line[h], ork::api::scope_name(r.scope)) << h;
  }
  for (const auto& h : headings) {
    if (h.find("/api/") != std::string::npos) {
      EXPECT_TRUE(routes.count(h)) << "docs/api.md documents unknown " << h;
    }
  }
  const json& e = doc()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"];
  for (const auto& c : e)
    EXPECT_NE(md.find("`" + c.get<std::string>() + "`"), std::string::npos) << "docs/api.md lacks error code " << c;
}

}  // namespace
