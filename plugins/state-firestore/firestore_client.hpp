// The slice of the Firestore REST API v1 that state-firestore uses (batchGet, commit, runQuery with cursors,
// runAggregationQuery), over plugins/common's HTTP client, with Google auth or none (emulator).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "google_auth.hpp"
#include "http.hpp"

namespace ork::firestore {

using json = nlohmann::json;

struct ClientOptions {
  std::string base_url;  // http(s)://host[:port], no trailing '/'
  std::string project, database = "(default)";
  common::HttpOptions http;
  std::unique_ptr<common::GoogleCredentials> credentials;  // null: no Authorization header (emulator)
  int aborted_attempts = 5;                                // ABORTED (409) commits are retried this often
};

// One document as read: `name` (full resource name), `fields` (Firestore Value map), `update_time`.
struct Document {
  std::string name;
  json fields = json::object();
  std::string update_time;
};

// A Firestore error answer: HTTP status, gRPC status name ("FAILED_PRECONDITION", ...) and message.
struct ApiError {
  int http = 0;
  std::string status, message;
  int attempts = 1;  // > 1: an earlier attempt may have been applied
};

class Client {
 public:
  explicit Client(ClientOptions o);

  // "projects/P/databases/D/documents"
  const std::string& root() const { return root_; }
  // root() + "/" + path
  std::string doc_name(const std::string& path) const { return root_ + "/" + path; }

  // The documents named (full names), in order; a missing one has an empty update_time.
  std::vector<Document> batch_get(const std::vector<std::string>& names) const;

  // Commits `writes` atomically. Returns true, or false with `err` set for FAILED_PRECONDITION, ALREADY_EXISTS and
  // NOT_FOUND (preconditions); throws PluginError on anything else. `update_times` gets each write's updateTime.
  bool commit(const json& writes, ApiError* err, std::vector<std::string>* update_times = nullptr) const;

  // Runs `query` (a structuredQuery) under `parent` (a document path below root, or "" for root) and returns every
  // document, fetching `page_size` at a time with a cursor on the query's orderBy fields plus __name__.
  std::vector<Document> run_query(const std::string& parent, json query, int64_t page_size,
                                  int64_t max_results = -1) const;
  // COUNT(*) of `query` (a structuredQuery without orderBy/limit).
  int64_t count(const std::string& parent, const json& query) const;

 private:
  common::HttpResponse post(const std::string& url_suffix, const std::string& body) const;
  [[noreturn]] void fail(const std::string& what, const common::HttpResponse& r) const;

  ClientOptions o_;
  std::string root_, url_root_;
  common::HttpClient http_;
};

// Parses Google's error JSON.
ApiError parse_error(const common::HttpResponse& r);

}  // namespace ork::firestore
