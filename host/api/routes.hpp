// The REST API's route table: method, path template, required scope and accepted query parameters of every route.
// The server binds a handler to each entry; tests check openapi.json and docs/api.md against it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ork::api {

// Access levels, each including the ones before it. `none` routes need no key.
enum class Scope { none = 0, read = 1, write = 2, admin = 3 };

const char* scope_name(Scope s);
std::optional<Scope> parse_scope(std::string_view s);

struct RouteSpec {
  const char* operation_id;
  const char* method;
  const char* path;  // "/api/v1/runs/{id}/tasks/{name}/logs"
  Scope scope;
  std::vector<std::string> query;  // accepted query parameters; others are refused with 400
};

// Every route, in documentation order.
const std::vector<RouteSpec>& route_specs();

// Path parameter names of a template, in order ("/runs/{id}" → {"id"}).
std::vector<std::string> path_params(const std::string& path_template);

struct RouteMatch {
  const RouteSpec* route = nullptr;           // null when nothing matched
  std::map<std::string, std::string> params;  // decoded path parameters
  std::vector<std::string> allowed;           // methods of the routes whose path matched (405 Allow)
};

// Matches a request path (raw, without the query) against the table; parameters are percent-decoded.
RouteMatch match_route(const std::string& method, const std::string& path);

// Percent-decoding; `plus_is_space` for query strings. Invalid escapes are kept as they are.
std::string url_decode(std::string_view s, bool plus_is_space);

}  // namespace ork::api
