#include "firestore_client.hpp"

#include <algorithm>
#include <ork/plugin.hpp>
#include <thread>

#include "web_util.hpp"

namespace ork::firestore {

using common::HttpRequest;
using common::HttpResponse;

ApiError parse_error(const HttpResponse& r) {
  ApiError e;
  e.http = r.status;
  e.attempts = r.attempts;
  json j = json::parse(r.body, nullptr, false);
  // runQuery answers errors as a one-element array.
  if (j.is_array() && !j.empty()) j = j[0];
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const json& er = j["error"];
    e.status = er.value("status", "");
    e.message = er.value("message", "");
  }
  if (e.message.empty()) e.message = r.body.substr(0, 300);
  return e;
}

Client::Client(ClientOptions o) : o_(std::move(o)), http_(o_.http) {
  root_ = "projects/" + o_.project + "/databases/" + o_.database + "/documents";
  url_root_ = o_.base_url + "/v1/projects/" + common::uri_encode(o_.project) + "/databases/" +
              common::uri_encode(o_.database) + "/documents";
}

HttpResponse Client::post(const std::string& url_suffix, const std::string& body) const {
  HttpRequest req;
  req.method = "POST";
  req.url = url_root_ + url_suffix;
  req.body = body;
  req.set_header("Content-Type", "application/json");
  common::HttpClient::Prepare prep;
  if (o_.credentials) {
    prep = [this](HttpRequest& r) {
      std::string token;
      try {
        token = o_.credentials->access_token();
      } catch (const std::exception& e) {
        throw_unavailable(std::string("state-firestore: Google credentials: ") + e.what());
      }
      if (!token.empty()) r.set_header("Authorization", "Bearer " + token);
    };
  }
  try {
    return http_.send(req, prep);
  } catch (const common::HttpError& e) {
    throw_unavailable(std::string("state-firestore: ") + e.what());
  }
}

void Client::fail(const std::string& what, const HttpResponse& r) const {
  ApiError e = parse_error(r);
  std::string m = "state-firestore: " + what + ": HTTP " + std::to_string(r.status) + " " + e.status + ": " + e.message;
  if (e.status == "NOT_FOUND") throw_not_found(m);
  if (e.status == "ALREADY_EXISTS" || e.status == "FAILED_PRECONDITION" || e.status == "ABORTED") throw_conflict(m);
  if (e.status == "INVALID_ARGUMENT") throw_invalid(m);
  if (r.status == 429 || r.status >= 500 || e.status == "UNAVAILABLE" || e.status == "RESOURCE_EXHAUSTED" ||
      e.status == "DEADLINE_EXCEEDED")
    throw_unavailable(m);
  throw PluginError(ORK_ERR_INTERNAL, m);
}

std::vector<Document> Client::batch_get(const std::vector<std::string>& names) const {
  std::vector<Document> out(names.size());
  constexpr size_t kChunk = 300;
  for (size_t from = 0; from < names.size(); from += kChunk) {
    size_t to = std::min(names.size(), from + kChunk);
    json body{{"documents", json::array()}};
    for (size_t i = from; i < to; ++i) body["documents"].push_back(names[i]);
    HttpResponse r = post(":batchGet", body.dump());
    if (!r.ok()) fail("batchGet", r);
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_array()) throw PluginError(ORK_ERR_INTERNAL, "state-firestore: batchGet: unreadable answer");
    // Answers come in any order: match them by name.
    for (const auto& item : j) {
      if (!item.contains("found")) continue;
      const json& d = item["found"];
      std::string name = d.value("name", "");
      for (size_t i = from; i < to; ++i) {
        if (names[i] == name && out[i].update_time.empty()) {
          out[i].name = name;
          out[i].fields = d.value("fields", json::object());
          out[i].update_time = d.value("updateTime", "");
          break;
        }
      }
    }
    for (size_t i = from; i < to; ++i)
      if (out[i].name.empty()) out[i].name = names[i];
  }
  return out;
}

bool Client::commit(const json& writes, ApiError* err, std::vector<std::string>* update_times) const {
  std::string body = json{{"writes", writes}}.dump();
  for (int attempt = 1;; ++attempt) {
    HttpResponse r = post(":commit", body);
    if (r.ok()) {
      if (update_times) {
        update_times->clear();
        json j = json::parse(r.body, nullptr, false);
        if (j.is_object() && j.contains("writeResults"))
          for (const auto& w : j["writeResults"]) update_times->push_back(w.value("updateTime", ""));
      }
      return true;
    }
    ApiError e = parse_error(r);
    if (e.status == "ABORTED" && attempt < o_.aborted_attempts) {
      // Contention on the documents: back off (50 ms doubling, with jitter) and send again.
      auto base = std::chrono::milliseconds(50 << std::min(attempt - 1, 6));
      auto jitter = std::chrono::milliseconds(std::hash<std::thread::id>{}(std::this_thread::get_id()) % 25);
      std::this_thread::sleep_for(base + jitter);
      continue;
    }
    if (e.status == "FAILED_PRECONDITION" || e.status == "ALREADY_EXISTS" || e.status == "NOT_FOUND") {
      if (err) *err = e;
      return false;
    }
    fail("commit", r);
  }
}

namespace {

// The value of `path` in a document's fields (for cursors); nullValue when absent.
json field_value(const Document& d, const std::string& path) {
  if (path == "__name__") return {{"referenceValue", d.name}};
  auto it = d.fields.find(path);
  return it == d.fields.end() ? json{{"nullValue", nullptr}} : *it;
}

}  // namespace

std::vector<Document> Client::run_query(const std::string& parent, json query, int64_t page_size,
                                        int64_t max_results) const {
  std::string suffix = parent.empty() ? ":runQuery" : "/" + common::uri_encode(parent, true) + ":runQuery";
  json& order = query["orderBy"];
  if (!order.is_array()) order = json::array();
  if (order.empty() || order.back()["field"]["fieldPath"] != "__name__") {
    std::string dir = order.empty() ? "ASCENDING" : order.back().value("direction", "ASCENDING");
    order.push_back({{"field", {{"fieldPath", "__name__"}}}, {"direction", dir}});
  }
  std::vector<Document> out;
  for (;;) {
    int64_t want = page_size;
    if (max_results >= 0) want = std::min<int64_t>(want, max_results - static_cast<int64_t>(out.size()));
    if (want <= 0) break;
    query["limit"] = want;
    HttpResponse r = post(suffix, json{{"structuredQuery", query}}.dump());
    if (!r.ok()) fail("runQuery", r);
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_array()) throw PluginError(ORK_ERR_INTERNAL, "state-firestore: runQuery: unreadable answer");
    int64_t got = 0;
    for (auto& item : j) {
      if (!item.contains("document")) continue;
      json& d = item["document"];
      Document doc;
      doc.name = d.value("name", "");
      doc.fields = d.value("fields", json::object());
      doc.update_time = d.value("updateTime", "");
      out.push_back(std::move(doc));
      ++got;
    }
    if (got < want) break;
    // Next page: after the last document, on every orderBy field (offset applies to the first page only).
    json values = json::array();
    for (const auto& o : order) values.push_back(field_value(out.back(), o["field"]["fieldPath"]));
    query["startAt"] = {{"values", values}, {"before", false}};
    query.erase("offset");
  }
  return out;
}

int64_t Client::count(const std::string& parent, const json& query) const {
  std::string suffix =
      parent.empty() ? ":runAggregationQuery" : "/" + common::uri_encode(parent, true) + ":runAggregationQuery";
  json body{{"structuredAggregationQuery",
             {{"structuredQuery", query}, {"aggregations", {{{"alias", "n"}, {"count", json::object()}}}}}}};
  HttpResponse r = post(suffix, body.dump());
  if (!r.ok()) fail("runAggregationQuery", r);
  json j = json::parse(r.body, nullptr, false);
  if (j.is_array())
    for (const auto& item : j)
      if (item.contains("result")) {
        const json& v = item["result"]["aggregateFields"]["n"];
        if (v.contains("integerValue")) return std::stoll(v["integerValue"].get<std::string>());
      }
  throw PluginError(ORK_ERR_INTERNAL, "state-firestore: runAggregationQuery: unreadable answer");
}

}  // namespace ork::firestore
