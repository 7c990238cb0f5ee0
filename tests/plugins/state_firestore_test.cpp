// state-firestore beyond the conformance suite, against the Firestore emulator (fixture `firestore`): two plugin
// instances racing for tasks and leases, retries through a fault-injecting proxy (429 / 503 / ABORTED), the
// service-account token path, chunked run creation over the write limit (and its rollback), bad config.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/util.hpp"
#include "loader/plugin_loader.hpp"
#include "support/plugin_support.hpp"
#include "support/test_support.hpp"

using ork::test::code_of;

namespace {

using ork::json;
using ork::StateProxy;
namespace t = ork::test;

std::string emulator_endpoint() {
  std::string e = t::read_file(std::string(ORK_FIRESTORE_DIR) + "/endpoint");
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
  return e;
}

// A config on a collection prefix of its own (so each test sees an empty store).
json config(const std::string& endpoint = emulator_endpoint()) {
  std::string prefix = "t" + ork::new_uuid().substr(0, 8) + "_";
  return {{"project", "ork-firestore-test"}, {"emulator_host", endpoint}, {"collection_prefix", prefix}};
}

std::unique_ptr<StateProxy> open(const json& cfg) {
  return ork::load_plugin<StateProxy>("state", "ork-state-firestore", cfg);
}

json run_record(const std::string& id, const std::string& status = "pending") {
  return {{"id", id}, {"workflow_name", "wf"}, {"status", status}, {"created_at", ork::format_time(ork::now_ms())}};
}

json task_record(const std::string& run_id, const std::string& id, const std::string& name, int64_t seq) {
  return {{"id", id}, {"run_id", run_id}, {"task_name", name}, {"status", "pending"}, {"seq", seq}};
}

// One whole answer (Content-Length, chunked, or until the peer closes).
std::string read_response(int u) {
  char tmp[65536];
  std::string resp;
  size_t head_end = std::string::npos;
  for (ssize_t n; (n = ::recv(u, tmp, sizeof tmp, 0)) > 0;) {
    resp.append(tmp, static_cast<size_t>(n));
    if (head_end == std::string::npos) head_end = resp.find("\r\n\r\n");
    if (head_end == std::string::npos) continue;
    std::string head = resp.substr(0, head_end);
    for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (size_t p = head.find("content-length:"); p != std::string::npos) {
      if (resp.size() >= head_end + 4 + std::stoul(head.substr(p + 15))) break;
    } else if (head.find("transfer-encoding: chunked") != std::string::npos) {
      if (resp.size() >= 5 && resp.compare(resp.size() - 5, 5, "0\r\n\r\n") == 0) break;
    }
  }
  return resp;
}

// ---- A tiny HTTP/1.1 proxy in front of the emulator: one request per connection (answers carry Connection:
// close), optional injected faults on requests whose target contains `match`, and a /token endpoint.

class FaultProxy {
 public:
  explicit FaultProxy(std::string upstream_port) : upstream_port_(std::stoi(upstream_port)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0)
      throw std::runtime_error("proxy: bind/listen failed");
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~FaultProxy() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // The next `count` requests whose target contains `match` get `status` with `body` instead of the emulator's
  // answer; with `after`, the request reaches the emulator first (an answer lost after the write applied).
  void fault(const std::string& match, int status, const std::string& body, int count, bool after = false) {
    std::lock_guard lk(mu_);
    faults_.push_back({match, status, body, count, after});
  }
  int seen(const std::string& match) {
    std::lock_guard lk(mu_);
    int n = 0;
    for (const auto& r : log_)
      if (r.find(match) != std::string::npos) ++n;
    return n;
  }
  std::vector<std::string> authorizations() {
    std::lock_guard lk(mu_);
    return auth_;
  }
  std::vector<std::string> token_requests() {
    std::lock_guard lk(mu_);
    return token_bodies_;
  }

 private:
  struct Fault {
    std::string match;
    int status;
    std::string body;
    int count;
    bool after;
  };

  static std::string strip(std::string s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(0, 1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.pop_back();
    return s;
  }

  static bool read_request(int c, std::string& head, std::string& body) {
    std::string buf;
    char tmp[65536];
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
    }
    head = buf.substr(0, end + 2);
    body = buf.substr(end + 4);
    size_t length = 0;
    std::string lower = head;
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (size_t p = lower.find("content-length:"); p != std::string::npos) length = std::stoul(head.substr(p + 15));
    while (body.size() < length) {
      ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      body.append(tmp, static_cast<size_t>(n));
    }
    return true;
  }

  static void send_all(int c, const std::string& s) {
    for (size_t off = 0; off < s.size();) {
      ssize_t n = ::send(c, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }

  static std::string answer(int status, const std::string& body) {
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + body;
  }

  void loop() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::thread([this, c] {
        serve(c);
        ::close(c);
      }).detach();
    }
  }

  void serve(int c) {
    std::string head, body;
    if (!read_request(c, head, body)) return;
    std::string target = head.substr(0, head.find("\r\n"));
    std::string lower = head;
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string late;  // an answer that replaces the emulator's
    {
      std::lock_guard lk(mu_);
      log_.push_back(target);
      if (target.find("/token") != std::string::npos) {
        token_bodies_.push_back(body);
        send_all(c, answer(200, R"({"access_token": "tok-1", "expires_in": 3600, "token_type": "Bearer"})"));
        return;
      }
      if (size_t p = lower.find("authorization:"); p != std::string::npos)
        auth_.push_back(strip(head.substr(p + 14, head.find("\r\n", p) - p - 14)));
      for (auto& f : faults_) {
        if (f.count > 0 && target.find(f.match) != std::string::npos) {
          --f.count;
          if (f.after) {
            late = answer(f.status, f.body);
            break;
          }
          send_all(c, answer(f.status, f.body));
          return;
        }
      }
    }
    // Forward with Connection: close and relay the whole answer.
    int u = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(u);
      return;
    }
    std::string out;
    size_t line = 0;
    for (size_t pos = 0; pos < head.size(); pos = line + 2) {
      line = head.find("\r\n", pos);
      std::string h = head.substr(pos, line - pos);
      std::string hl = lower.substr(pos, line - pos);
      // The emulator reads a bearer token as a Firebase JWT: the proxy checks tokens (auth_) and does not pass them.
      if (hl.rfind("connection:", 0) == 0 || hl.rfind("authorization:", 0) == 0) continue;
      out += h + "\r\n";
    }
    out += "Connection: close\r\n\r\n" + body;
    send_all(u, out);
    std::string resp = read_response(u);
    ::close(u);
    send_all(c, late.empty() ? resp : late);
  }

  int fd_ = -1, port_ = 0, upstream_port_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<Fault> faults_;
  std::vector<std::string> log_, auth_, token_bodies_;
};

// GET http://127.0.0.1:<port><target> straight to the emulator; the answer's body.
std::string emulator_get(const std::string& target) {
  std::string e = emulator_endpoint();
  int port = std::stoi(e.substr(e.rfind(':') + 1));
  int u = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(u);
    throw std::runtime_error("cannot reach the emulator");
  }
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  ::send(u, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp = read_response(u);
  ::close(u);
  size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

std::string emulator_port() {
  std::string e = emulator_endpoint();
  return e.substr(e.rfind(':') + 1);
}

// ---- Tests

TEST(FirestoreState, TwoInstancesRacingForTasksAndLeasesEachWinOnce) {
  json cfg = config();
  auto a = open(cfg), b = open(cfg);
  std::string run_id = ork::new_uuid();
  json tasks = json::array();
  std::vector<std::string> ids;
  for (int i = 0; i < 60; ++i) {
    ids.push_back(ork::new_uuid());
    tasks.push_back(task_record(run_id, ids.back(), "t" + std::to_string(i), i));
  }
  a->create_run({{"run", run_record(run_id)}, {"tasks", tasks}});
  std::vector<std::string> runs;
  for (int i = 0; i < 20; ++i) {
    runs.push_back(ork::new_uuid());
    a->create_run({{"run", run_record(runs.back(), "running")}, {"tasks", json::array()}});
  }
  std::map<std::string, int> won_tasks, won_leases;
  std::mutex mu;
  std::barrier go(2);
  auto host = [&](StateProxy& s, const std::string& owner) {
    go.arrive_and_wait();
    for (size_t i = 0; i < ids.size(); ++i) {
      json r = s.try_acquire_task({{"run_id", run_id}, {"id", ids[i]}});
      if (r["acquired"].get<bool>()) {
        std::lock_guard lk(mu);
        won_tasks[ids[i]]++;
      }
      if (i < runs.size() && s.acquire_lease({{"run_id", runs[i]}, {"owner", owner}, {"ttl_ms", 60000}})["acquired"]) {
        std::lock_guard lk(mu);
        won_leases[runs[i]]++;
      }
    }
  };
  std::thread ta([&] { host(*a, "host-a"); });
  std::thread tb([&] { host(*b, "host-b"); });
  ta.join();
  tb.join();
  EXPECT_EQ(won_tasks.size(), ids.size());
  for (const auto& [id, n] : won_tasks) EXPECT_EQ(n, 1) << id;
  EXPECT_EQ(won_leases.size(), runs.size());
  for (const auto& [id, n] : won_leases) EXPECT_EQ(n, 1) << id;
  for (const auto& t : a->get_task_runs({{"run_id", run_id}})["tasks"]) EXPECT_EQ(t["attempt"], 1);
}

TEST(FirestoreState, RetriesThrottlingUnavailableAndAbortedAnswers) {
  FaultProxy proxy(emulator_port());
  json cfg = config(proxy.endpoint());
  auto s = open(cfg);
  std::string run_id = ork::new_uuid(), tid = ork::new_uuid();
  proxy.fault(":commit", 429, R"({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow down"}})", 2);
  s->create_run({{"run", run_record(run_id)}, {"tasks", {task_record(run_id, tid, "a", 0)}}});
  EXPECT_EQ(proxy.seen(":commit"), 3) << "two 429 answers, then the commit";
  proxy.fault(":batchGet", 503, R"({"error": {"code": 503, "status": "UNAVAILABLE", "message": "down"}})", 1);
  proxy.fault(":commit", 409, R"({"error": {"code": 409, "status": "ABORTED", "message": "contention"}})", 2);
  json r = s->try_acquire_task({{"run_id", run_id}, {"id", tid}});
  EXPECT_TRUE(r["acquired"].get<bool>()) << r.dump();
  EXPECT_EQ(r["task"]["attempt"], 1);
  EXPECT_EQ(proxy.seen(":commit"), 6) << "two ABORTED answers, then the commit";
  // A commit that took effect although its answer was lost (503 after applying): the retry fails its precondition,
  // and the plugin recognises its own write (the token it wrote), so the task is won, not lost to nobody.
  std::string tid2 = ork::new_uuid(), tid3 = ork::new_uuid();
  s->add_task_runs(
      {{"run_id", run_id}, {"tasks", {task_record(run_id, tid2, "b", 1), task_record(run_id, tid3, "c", 2)}}});
  proxy.fault(":commit", 503, R"({"error": {"code": 503, "status": "UNAVAILABLE", "message": "lost"}})", 1, true);
  r = s->try_acquire_task({{"run_id", run_id}, {"id", tid3}});
  EXPECT_TRUE(r["acquired"].get<bool>()) << r.dump();
  EXPECT_EQ(r["task"]["attempt"], 1);
  json lost_cfg = cfg;
  lost_cfg["max_attempts"] = 1;
  auto once = open(lost_cfg);
  proxy.fault(":commit", 503, R"({"error": {"code": 503, "status": "UNAVAILABLE", "message": "down"}})", 5);
  EXPECT_EQ(code_of([&] {
              once->try_acquire_task({{"run_id", run_id}, {"id", tid2}});
            }),
            ORK_ERR_UNAVAILABLE)
      << "without retries a 503 is UNAVAILABLE";
  EXPECT_EQ(s->get_task_runs({{"run_id", run_id}, {"status", {"pending"}}})["tasks"].size(), 1u);
}

TEST(FirestoreState, ServiceAccountKeyIsExchangedForABearerToken) {
  FaultProxy proxy(emulator_port());
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(EVP_RSA_gen(2048), EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), k.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* p = nullptr;
  long len = BIO_get_mem_data(bio.get(), &p);
  json key{{"type", "service_account"},
           {"project_id", "ork-firestore-test"},
           {"private_key_id", "k1"},
           {"private_key", std::string(p, static_cast<size_t>(len))},
           {"client_email", "ork@ork-firestore-test.iam.gserviceaccount.com"},
           {"token_uri", proxy.endpoint() + "/token"}};
  json cfg = config(proxy.endpoint());
  cfg.erase("project");  // taken from the key
  cfg["credentials_json"] = key.dump();
  auto s = open(cfg);
  std::string run_id = ork::new_uuid();
  s->create_run({{"run", run_record(run_id)}, {"tasks", json::array()}});
  EXPECT_EQ((*s->get_run({{"id", run_id}}))["id"], run_id);
  auto tokens = proxy.token_requests();
  ASSERT_EQ(tokens.size(), 1u) << "the token is cached";
  EXPECT_NE(tokens[0].find("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"), std::string::npos)
      << tokens[0];
  // The assertion is an RS256 JWT signed by the key, for the datastore scope, addressed to the token_uri.
  std::string jwt = tokens[0].substr(tokens[0].find("assertion=") + 10);
  if (size_t amp = jwt.find('&'); amp != std::string::npos) jwt.resize(amp);
  size_t d1 = jwt.find('.'), d2 = jwt.rfind('.');
  ASSERT_NE(d1, d2);
  auto b64url = [](std::string s) {
    for (auto& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (s.size() % 4) s += '=';
    std::string out(s.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    while (!out.empty() && out.back() == '\0') out.pop_back();
    return out;
  };
  json claims = json::parse(b64url(jwt.substr(d1 + 1, d2 - d1 - 1)));
  EXPECT_EQ(claims["iss"], key["client_email"]);
  EXPECT_EQ(claims["aud"], key["token_uri"]);
  EXPECT_EQ(claims["scope"], "https://www.googleapis.com/auth/datastore");
  std::string sig = b64url(jwt.substr(d2 + 1)), input = jwt.substr(0, d2);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  ASSERT_EQ(EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, k.get()), 1);
  EXPECT_EQ(EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1)
      << "the JWT signature does not verify with the key's public half";
  auto auth = proxy.authorizations();
  ASSERT_GE(auth.size(), 2u);
  for (const auto& h : auth) EXPECT_EQ(h, "Bearer tok-1");
}

TEST(FirestoreState, RunCreationOverTheWriteLimitIsChunkedAndRolledBackOnFailure) {
  json cfg = config();
  auto s = open(cfg);
  std::string run_id = ork::new_uuid();
  json tasks = json::array();
  for (int i = 0; i < 1200; ++i) tasks.push_back(task_record(run_id, ork::new_uuid(), "t" + std::to_string(i), i));
  s->create_run({{"run", run_record(run_id)}, {"tasks", tasks}});
  json got = s->get_task_runs({{"run_id", run_id}})["tasks"];
  ASSERT_EQ(got.size(), 1200u);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i]["id"], tasks[i]["id"]) << i;
  EXPECT_EQ(code_of([&] { s->create_run({{"run", run_record(run_id)}, {"tasks", tasks}}); }), ORK_ERR_CONFLICT);
  EXPECT_EQ(s->get_task_runs({{"run_id", run_id}})["tasks"].size(), 1200u);

  // Commits of 10 writes; task 45's id is too long for a Firestore document id, so the 5th commit fails.
  json small = cfg;
  small["max_writes_per_commit"] = 10;
  auto c = open(small);
  std::string bad_run = ork::new_uuid();
  json bad = json::array();
  for (int i = 0; i < 60; ++i) bad.push_back(task_record(bad_run, ork::new_uuid(), "t" + std::to_string(i), i));
  bad[45]["id"] = std::string(1600, 'x');
  int code = code_of([&] { c->create_run({{"run", run_record(bad_run)}, {"tasks", bad}}); });
  EXPECT_NE(code, ORK_OK);
  EXPECT_FALSE(c->get_run({{"id", bad_run}})) << "a half-written run is never visible";
  // Rolled back: the id is free and no task of the failed attempt is left under it.
  c->create_run({{"run", run_record(bad_run)}, {"tasks", json::array()}});
  EXPECT_TRUE(c->get_task_runs({{"run_id", bad_run}})["tasks"].empty());
  // A chunked run is visible only once complete; fan-out additions are chunked too.
  std::string ok_run = ork::new_uuid();
  bad[45]["id"] = ork::new_uuid();
  for (auto& tk : bad) tk["run_id"] = ok_run;
  c->create_run({{"run", run_record(ok_run)}, {"tasks", bad}});
  EXPECT_EQ(c->get_task_runs({{"run_id", ok_run}})["tasks"].size(), 60u);
  EXPECT_TRUE(c->list_runs({{"workflow_name", "wf"}})["total"].get<int64_t>() >= 2);
  json fan = json::array();
  for (int i = 0; i < 25; ++i) {
    json tk = task_record(ok_run, ork::new_uuid(), "fan", 60);
    tk["parallel_index"] = i;
    fan.push_back(tk);
  }
  c->add_task_runs({{"run_id", ok_run}, {"tasks", fan}});
  EXPECT_EQ(c->get_task_runs({{"run_id", ok_run}})["tasks"].size(), 85u);
  EXPECT_EQ(code_of([&] { c->add_task_runs({{"run_id", ok_run}, {"tasks", {fan[3]}}}); }), ORK_ERR_CONFLICT);
}

TEST(FirestoreState, BigJsonValuesAreSplitIntoPartsAndReplacedCleanly) {
  json cfg = config();
  cfg["inline_json_limit"] = 1000;
  auto s = open(cfg);
  std::string run_id = ork::new_uuid(), tid = ork::new_uuid();
  s->create_run({{"run", run_record(run_id)}, {"tasks", {task_record(run_id, tid, "a", 0)}}});
  json big = json::array();
  for (int i = 0; i < 400; ++i) big.push_back(std::string(50, static_cast<char>('a' + i % 26)) + "漢😀");
  for (int round = 0; round < 3; ++round) {
    big.push_back(round);
    EXPECT_TRUE(s->update_task_run({{"run_id", run_id},
                                    {"id", tid},
                                    {"set", {{"output", big}}},
                                    {"expect", {{"status", "pending"}}}})["updated"]
                    .get<bool>());
    EXPECT_EQ(s->get_task_runs({{"run_id", run_id}})["tasks"][0]["output"], big);
  }
  EXPECT_TRUE(s->update_task_run({{"run_id", run_id},
                                  {"id", tid},
                                  {"set", {{"status", "success"}}},
                                  {"expect", {{"output", big}}}})["updated"]
                  .get<bool>())
      << "expect compares a split value as a whole";
  // The stored parts are exactly those of the last value: earlier generations were deleted when it was replaced.
  json listed = json::parse(emulator_get("/v1/projects/ork-firestore-test/databases/(default)/documents/" +
                                         cfg["collection_prefix"].get<std::string>() + "runs/" + run_id + "/tasks/" +
                                         tid + "/blobs?pageSize=1000"));
  ASSERT_TRUE(listed.contains("documents")) << listed.dump();
  std::set<std::string> generations;
  for (const auto& d : listed["documents"]) {
    std::string name = d["name"];
    std::string leaf = name.substr(name.rfind('/') + 1);  // output.<gen>.<i>
    generations.insert(leaf.substr(0, leaf.rfind('.')));
  }
  EXPECT_GT(listed["documents"].size(), 3u) << "a 24 kB value in parts of 4 kB";
  EXPECT_EQ(generations.size(), 1u) << listed.dump().substr(0, 500);
}

TEST(FirestoreState, BadConfigIsRefusedWithAClearMessage) {
  auto refused = [](const json& cfg, const std::string& needle) {
    try {
      open(cfg);
      ADD_FAILURE() << "accepted " << cfg.dump();
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  std::string ep = emulator_endpoint();
  ::unsetenv("GOOGLE_CLOUD_PROJECT");
  refused({{"emulator_host", ep}}, "\"project\"");
  refused({{"project", "p"}, {"emulator_host", ep}, {"colour", "red"}}, "unknown config field \"colour\"");
  refused({{"project", "p"}, {"emulator_host", "ftp://x"}}, "endpoint");
  refused({{"project", "p"}, {"emulator_host", ep}, {"collection_prefix", "a/b"}}, "collection_prefix");
  refused({{"project", "p"}, {"emulator_host", ep}, {"max_writes_per_commit", 1000}}, "max_writes_per_commit");
  refused({{"project", "p"}, {"emulator_host", ep}, {"timeout_ms", "soon"}}, "timeout_ms");
  refused({{"project", "p"}, {"emulator_host", ep}, {"credentials_json", "{not json"}}, "credentials");
  refused(json::array(), "object");
}

}  // namespace
