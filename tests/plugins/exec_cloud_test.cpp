// ork-exec-cloudrun, ork-exec-k8s and ork-exec-fargate through the C ABI, each against its backend: the Cloud Run
// and Kubernetes fakes (tests/fakes/, which really run the job's container as a local process), moto's ECS, and
// recorded ECS answers for the states moto never shows. Pushed status events, env and secrets reaching the job,
// failures with exit codes, cancel, platform timeouts, 429/503 retries, a hanging API, lost jobs, resources.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "crypto.hpp"
#include "http.hpp"
#include "loader/plugin_loader.hpp"
#include "sigv4.hpp"
#include "support/test_support.hpp"
#include "web_util.hpp"

namespace {

using namespace ork::test;
using namespace std::chrono_literals;
using ork::json;
using Clock = std::chrono::steady_clock;

// The executor's pushed events, waited for with a deadline.
class Events {
 public:
  void push(const json& e) {
    {
      std::lock_guard lock(mu_);
      events_.push_back(e);
    }
    cv_.notify_all();
  }
  // The first event for `id` in a terminal state (or `state` when given), or null after `timeout`.
  json wait_for(const std::string& id, const std::string& state = "", std::chrono::milliseconds timeout = 30s) {
    std::unique_lock lock(mu_);
    json found;
    cv_.wait_for(lock, timeout, [&] {
      for (const auto& e : events_) {
        if (e.value("executor_id", "") != id) continue;
        std::string s = e.value("state", "");
        bool match = state.empty() ? (s == "succeeded" || s == "failed" || s == "cancelled") : s == state;
        if (match) {
          found = e;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  size_t terminal_count() {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& e : events_) {
      std::string s = e.value("state", "");
      n += s == "succeeded" || s == "failed" || s == "cancelled";
    }
    return n;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<json> events_;
};

std::string endpoint_of(const std::string& kind) {
  const char* dir = std::getenv("ORK_EMULATORS");
  std::string e = read_file(std::string(dir ? dir : "") + "/" + kind + "/endpoint");
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
  return e;
}

ork::common::HttpResponse http(const std::string& method, const std::string& url, const std::string& body = "",
                               const std::string& content_type = "application/json") {
  ork::common::HttpOptions o;
  o.retry.max_attempts = 1;
  o.timeout = 10s;
  ork::common::HttpClient c(o);
  ork::common::HttpRequest r{method, url, {}, body, ""};
  if (!body.empty()) r.headers.emplace_back("Content-Type", content_type);
  return c.send(r);
}

json http_json(const std::string& method, const std::string& url, const json& body = nullptr) {
  auto r = http(method, url, body.is_null() ? "" : body.dump());
  if (!r.ok()) throw std::runtime_error(method + " " + url + ": HTTP " + std::to_string(r.status) + " " + r.body);
  return json::parse(r.body);
}

std::string unique(const std::string& base) {
  return base + "-" + ork::common::random_hex(4);
}

// The job's script: records what the container saw in $OUT_DIR/$MARK, then sleeps $SLEEP and exits $CODE.
const std::string kScript =
    "printf '%s|%s|%s' \"$ORK_TASK_SPEC_PATH\" \"$ORK_TASK_SECRETS\" \"$PLAIN\" > \"$OUT_DIR/$MARK\"; "
    "sleep \"${SLEEP:-0}\"; exit \"${CODE:-0}\"";

json exec_config(const std::string& mark, const TempDir& dir, json extra_env = json::object(), int timeout = 0) {
  json env{{"ORK_TASK_SPEC_PATH", "runs/R/" + mark + "/spec.json"}, {"OUT_DIR", dir.str()}, {"MARK", mark}};
  for (const auto& [k, v] : extra_env.items()) env[k] = v;
  return {{"task_id", unique(mark)},
          {"run_id", "R"},
          {"task_name", mark},
          {"workflow_name", "w"},
          {"attempt", 1},
          {"spec_key", "runs/R/" + mark + "/spec.json"},
          {"timeout_seconds", timeout},
          {"resources", {{"cpu_millis", 300}, {"memory_mb", 700}}},
          {"worker_command", json::array({"/bin/false"})},
          {"image", nullptr},
          {"env", env}};
}

// The ork_status a plugin call failed with (ORK_OK when it did not).
ork_status code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ork::PluginCallError& e) {
    return e.code();
  }
  return ORK_OK;
}

// Dispatches a 60 s sleep with timeout_seconds 1: the platform's deadline must fail it within 20 s, saying `why`.
void expect_platform_deadline(ork::ExecutorProxy& ex, Events& events, const TempDir& dir, const std::string& why) {
  auto t0 = Clock::now();
  std::string id = ex.dispatch(exec_config("slow", dir, {{"SLEEP", "60"}}, 1))["executor_id"];
  json e = events.wait_for(id);
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["state"], "failed");
  EXPECT_NE(e.value("message", "").find(why), std::string::npos) << e.dump();
  EXPECT_LT(Clock::now() - t0, 20s);
}

// Makes the fake at `ep` answer the next matching request 429, the one after 503.
void inject_429_then_503(const std::string& ep, const std::string& match, const std::string& method = "") {
  for (int status : {429, 503})
    http_json("POST", ep + "/_fake/faults", {{"status", status}, {"count", 1}, {"match", match}, {"method", method}});
}

// ---------------------------------------------------------------- Cloud Run (fake)

class CloudRun : public ::testing::Test {
 protected:
  void SetUp() override {
    ep_ = endpoint_of("cloudrun");
    ASSERT_FALSE(ep_.empty()) << "no cloudrun fake (ORK_EMULATORS)";
    http_json("POST", ep_ + "/_fake/images", {{"sh", {"/bin/sh", "-c"}}});
    job_ = create_job({});
  }
  std::string create_job(const json& labels) {
    std::string job = unique("job");
    json body{{"labels", labels},
              {"template",
               {{"taskCount", 1},
                {"template",
                 {{"containers", json::array({{{"name", "worker"}, {"image", "sh"}, {"args", {kScript}}}})},
                  {"maxRetries", 0},
                  {"timeout", "600s"}}}}}};
    http_json("POST", ep_ + "/v2/projects/p/locations/l/jobs?jobId=" + job, body);
    return job;
  }
  std::unique_ptr<ork::ExecutorProxy> load(json cfg = json::object(), const std::string& job = "") {
    json base{{"project", "p"},         {"location", "l"},   {"job", job.empty() ? job_ : job}, {"endpoint", ep_},
              {"poll_interval_ms", 50}, {"max_attempts", 4}, {"timeout_margin_seconds", 0}};
    for (const auto& [k, v] : cfg.items()) base[k] = v;
    auto ev = events_;
    return ork::load_plugin<ork::ExecutorProxy>("executor", "ork-exec-cloudrun", base,
                                                [ev](const std::string&, const json& e) { ev->push(e); });
  }
  std::string ep_, job_;
  std::shared_ptr<Events> events_ = std::make_shared<Events>();
  TempDir dir_;
};

TEST_F(CloudRun, SuccessIsPushedAndTheJobSeesItsEnv) {
  auto ex = load();
  EXPECT_EQ(ex->poll_interval_ms(), 0u);  // pushes through its own poller
  std::string id = ex->dispatch(exec_config("ok", dir_, {{"PLAIN", "v1"}}))["executor_id"];
  EXPECT_EQ(id.rfind("projects/p/locations/l/jobs/" + job_ + "/executions/", 0), 0u) << id;
  json e = events_->wait_for(id);
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["state"], "succeeded") << e.dump();
  EXPECT_EQ(e["exit_code"], 0);
  EXPECT_EQ(read_file(dir_ / "ok"), "runs/R/ok/spec.json||v1");
  EXPECT_EQ(ex->status({{"executor_id", id}})["state"], "succeeded");
}

TEST_F(CloudRun, ANonZeroExitFailsTheAttempt) {
  auto ex = load();
  std::string id = ex->dispatch(exec_config("bad", dir_, {{"CODE", "3"}}))["executor_id"];
  json e = events_->wait_for(id);
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["state"], "failed");
  EXPECT_NE(e.value("message", "").find("code 3"), std::string::npos) << e.dump();
}

TEST_F(CloudRun, CancelStopsTheExecution) {
  auto ex = load();
  std::string id = ex->dispatch(exec_config("long", dir_, {{"SLEEP", "60"}}))["executor_id"];
  ASSERT_FALSE(events_->wait_for(id, "running").is_null());
  auto t0 = Clock::now();
  ex->cancel({{"executor_id", id}, {"grace_ms", 1000}});
  json e = events_->wait_for(id);
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["state"], "cancelled") << e.dump();
  EXPECT_LT(Clock::now() - t0, 15s);
  EXPECT_NO_THROW(ex->cancel({{"executor_id", id}, {"grace_ms", 0}}));  // finished: still fine
  json got = http_json("GET", ep_ + "/v2/" + id);
  EXPECT_EQ(got["cancelledCount"], 1);
}

TEST_F(CloudRun, TheTaskTimeoutBecomesTheExecutionTimeout) {
  auto ex = load();
  expect_platform_deadline(*ex, *events_, dir_, "timed out");
}

TEST_F(CloudRun, RunIsRetriedOn429And503WithoutADuplicateExecution) {
  auto ex = load();
  inject_429_then_503(ep_, job_ + ":run");
  std::string id = ex->dispatch(exec_config("retry", dir_))["executor_id"];
  ASSERT_FALSE(events_->wait_for(id).is_null());
  json list = http_json("GET", ep_ + "/v2/projects/p/locations/l/jobs/" + job_ + "/executions");
  EXPECT_EQ(list["executions"].size(), 1u);
  // Status polls get the same treatment: a 503 on the execution is retried, the event still arrives.
  http_json("POST", ep_ + "/_fake/faults", {{"status", 503}, {"count", 2}, {"match", job_ + "/executions/"}});
  std::string id2 = ex->dispatch(exec_config("retry2", dir_))["executor_id"];
  EXPECT_EQ(events_->wait_for(id2).value("state", ""), "succeeded");
}

TEST_F(CloudRun, AHangingApiFailsTheDispatchAfterTheRequestTimeout) {
  auto ex = load({{"timeout_ms", 300}, {"max_attempts", 1}});
  http_json("POST", ep_ + "/_fake/faults", {{"status", 0}, {"delay", 3}, {"count", 1}, {"match", job_ + ":run"}});
  auto t0 = Clock::now();
  EXPECT_EQ(code_of([&] { ex->dispatch(exec_config("hang", dir_)); }), ORK_ERR_UNAVAILABLE);
  EXPECT_LT(Clock::now() - t0, 2500ms);
  http_json("DELETE", ep_ + "/_fake/faults");
}

TEST_F(CloudRun, ALostExecutionIsReportedFailed) {
  auto ex = load();
  std::string id = ex->dispatch(exec_config("lost", dir_, {{"SLEEP", "60"}}))["executor_id"];
  ASSERT_FALSE(events_->wait_for(id, "running").is_null());
  http_json("DELETE", ep_ + "/v2/" + id);
  json e = events_->wait_for(id);
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["state"], "failed");
  EXPECT_NE(e.value("message", "").find("not found"), std::string::npos) << e.dump();
}

TEST_F(CloudRun, PendingUntilTheExecutionStarts) {
  std::string job = create_job({{"fake-start-delay", "1.5"}});
  auto ex = load({}, job);
  std::string id = ex->dispatch(exec_config("late", dir_))["executor_id"];
  EXPECT_EQ(ex->status({{"executor_id", id}})["state"], "pending");
  EXPECT_EQ(events_->wait_for(id).value("state", ""), "succeeded");
}

TEST_F(CloudRun, SecretsGoAsEnvOrAreRefused) {
  auto ex = load();
  std::string id =
      ex->dispatch(exec_config("sec", dir_, {{"ORK_TASK_SECRETS", R"({"env":{"K":"s3cr3t"}})"}}))["executor_id"];
  ASSERT_EQ(events_->wait_for(id).value("state", ""), "succeeded");
  EXPECT_EQ(read_file(dir_ / "sec"), R"(runs/R/sec/spec.json|{"env":{"K":"s3cr3t"}}|)");
  auto strict = load({{"secrets", "refuse"}});
  EXPECT_EQ(code_of([&] {
              strict->dispatch(exec_config("sec2", dir_, {{"ORK_TASK_SECRETS", "{}"}}));
            }),
            ORK_ERR_UNSUPPORTED);
}

TEST_F(CloudRun, BadConfigIsRefused) {
  EXPECT_THROW(load({{"bogus", 1}}), std::exception);
  EXPECT_THROW(ork::load_plugin<ork::ExecutorProxy>("executor", "ork-exec-cloudrun",
                                                    {{"project", "p"}, {"location", "l"}, {"endpoint", ep_}}),
               std::exception);
  EXPECT_THROW(load({{"secrets", "file"}}), std::exception);
  auto ex = load();
  EXPECT_EQ(code_of([&] {
              ex->status({{"executor_id", "projects/x/locations/l/jobs/j/executions/e"}});
            }),
            ORK_ERR_INVALID);
}

// ---------------------------------------------------------------- Kubernetes (fake)

class K8s : public ::testing::Test {
 protected:
  void SetUp() override {
    ep_ = endpoint_of("k8s");
    ASSERT_FALSE(ep_.empty()) << "no k8s fake (ORK_EMULATORS)";
    http_json("POST", ep_ + "/_fake/images", {{"sh", {"/bin/sh", "-c"}}});
    ns_ = unique("ns");
    http_json("POST", ep_ + "/_fake/config", {{"tokens", {{ns_, "tok-" + ns_}}}});
    kubeconfig_ = dir_ / "kubeconfig";
    write_file(kubeconfig_,
               "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
               "clusters:\n- name: fake\n  cluster:\n    server: " +
                   ep_ +
                   "\ncontexts:\n- name: test\n  context:\n    cluster: fake\n    user: me\n"
                   "    namespace: " +
                   ns_ + "\nusers:\n- name: me\n  user:\n    token: tok-" + ns_ + "\n");
  }
  std::unique_ptr<ork::ExecutorProxy> load(json cfg = json::object()) {
    json base{{"image", "sh"},          {"args", {kScript}}, {"kubeconfig", kubeconfig_},
              {"poll_interval_ms", 50}, {"max_attempts", 4}, {"deadline_margin_seconds", 0}};
    for (const auto& [k, v] : cfg.items()) base[k] = v;
    auto ev = events_;
    return ork::load_plugin<ork::ExecutorProxy>("executor", "ork-exec-k8s", base,
                                                [ev](const std::string&, const json& e) { ev->push(e); });
  }
  json api(const std::string& method, const std::string& path) {
    ork::common::HttpOptions o;
    o.retry.max_attempts = 1;
    ork::common::HttpClient c(o);
    auto r = c.send({method, ep_ + path, {{"Authorization", "Bearer tok-" + ns_}}, {}, ""});
    json j = json::parse(r.body, nullptr, false);
    j["_status"] = r.status;
    return j;
  }
  std::string ep_, ns_, kubeconfig_;
  std::shared_ptr<Events> events_ = std::make_shared<Events>();
  TempDir dir_;
};

TEST_F(K8s, AJobRunsWithEnvResourcesLabelsAndSecrets) {
  auto ex = load({{"ttl_seconds_after_finished", 60}, {"labels", {{"team", "data"}}}});
  json cfg = exec_config("ok", dir_, {{"PLAIN", "v"}, {"ORK_TASK_SECRETS", R"({"env":{"K":"s3cr3t"}})"}}, 30);
  std::string id = ex->dispatch(cfg)["executor_id"];
  EXPECT_EQ(id.rfind(ns_ + "/ork-ok-", 0), 0u) << id;
  json e = events_->wait_for(id);
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["state"], "succeeded") << e.dump();
  EXPECT_EQ(read_file(dir_ / "ok"), R"(runs/R/ok/spec.json|{"env":{"K":"s3cr3t"}}|v)");
  std::string name = id.substr(id.find('/') + 1);
  json job = api("GET", "/apis/batch/v1/namespaces/" + ns_ + "/jobs/" + name);
  ASSERT_EQ(job["_status"], 200);
  EXPECT_EQ(job["spec"]["backoffLimit"], 0);
  EXPECT_EQ(job["spec"]["activeDeadlineSeconds"], 30);
  EXPECT_EQ(job["spec"]["ttlSecondsAfterFinished"], 60);
  EXPECT_EQ(job["metadata"]["labels"]["app.kubernetes.io/managed-by"], "ork");
  EXPECT_EQ(job["metadata"]["labels"]["team"], "data");
  EXPECT_EQ(job["metadata"]["annotations"]["ork.dev/task-id"], cfg["task_id"]);
  const json& c = job["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["resources"]["limits"]["cpu"], "300m");
  EXPECT_EQ(c["resources"]["requests"]["memory"], "700Mi");
  EXPECT_EQ(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
  // The secret value is not in the Job: the env var refers to a Secret the Job owns.
  EXPECT_EQ(job.dump().find("s3cr3t"), std::string::npos);
  json secret = api("GET", "/api/v1/namespaces/" + ns_ + "/secrets/" + name + "-secrets");
  ASSERT_EQ(secret["_status"], 200);
  EXPECT_EQ(secret["metadata"]["ownerReferences"][0]["uid"], job["metadata"]["uid"]);
  // Cancelling a finished Job changes nothing; deleting it (as its TTL does) collects its Secret.
  ex->cancel({{"executor_id", id}, {"grace_ms", 0}});
  EXPECT_EQ(ex->status({{"executor_id", id}})["state"], "succeeded");
  EXPECT_EQ(api("DELETE", "/apis/batch/v1/namespaces/" + ns_ + "/jobs/" + name)["_status"], 200);
  EXPECT_EQ(api("GET", "/api/v1/namespaces/" + ns_ + "/secrets/" + name + "-secrets")["_status"], 404);
}

// With polling out of the way (an hour), the watch alone brings running and the final state; the plugin's
// destruction ends its open watch at once.
TEST_F(K8s, TheWatchPushesChangesWithoutPolling) {
  auto ex = load({{"poll_interval_ms", 3600000}});
  std::string id = ex->dispatch(exec_config("w", dir_, {{"SLEEP", "1"}}))["executor_id"];
  EXPECT_FALSE(events_->wait_for(id, "running", 10s).is_null());
  json e = events_->wait_for(id, "", 10s);
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["state"], "succeeded");
  auto bad = ex->dispatch(exec_config("w2", dir_, {{"CODE", "4"}}))["executor_id"].get<std::string>();
  json f = events_->wait_for(bad, "", 10s);
  EXPECT_EQ(f.value("state", ""), "failed");
  EXPECT_EQ(f.value("exit_code", json()), 4);
  auto t0 = Clock::now();
  ex.reset();
  EXPECT_LT(Clock::now() - t0, 3s);
}

TEST_F(K8s, AFailedPodReportsItsExitCode) {
  auto ex = load();
  std::string id = ex->dispatch(exec_config("bad", dir_, {{"CODE", "3"}}))["executor_id"];
  json e = events_->wait_for(id);
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["state"], "failed");
  EXPECT_EQ(e["exit_code"], 3);
  EXPECT_NE(e.value("message", "").find("BackoffLimitExceeded"), std::string::npos) << e.dump();
}

TEST_F(K8s, CancelDeletesTheJobAndStopsThePod) {
  auto ex = load();
  std::string id = ex->dispatch(exec_config("long", dir_, {{"SLEEP", "60"}}))["executor_id"];
  ASSERT_FALSE(events_->wait_for(id, "running").is_null());
  ASSERT_TRUE(eventually([&] { return fs::exists(dir_ / "long"); }, 10s));
  ex->cancel({{"executor_id", id}, {"grace_ms", 1000}});
  json e = events_->wait_for(id);
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["state"], "cancelled");
  std::string name = id.substr(id.find('/') + 1);
  EXPECT_EQ(api("GET", "/apis/batch/v1/namespaces/" + ns_ + "/jobs/" + name)["_status"], 404);
  EXPECT_NO_THROW(ex->cancel({{"executor_id", id}, {"grace_ms", 0}}));
}

TEST_F(K8s, ActiveDeadlineEndsAHangingJob) {
  auto ex = load();
  expect_platform_deadline(*ex, *events_, dir_, "DeadlineExceeded");
}

TEST_F(K8s, CreateIsRetriedOn429And503) {
  auto ex = load();
  inject_429_then_503(ep_, "/namespaces/" + ns_ + "/jobs", "POST");
  std::string id = ex->dispatch(exec_config("retry", dir_))["executor_id"];
  EXPECT_EQ(events_->wait_for(id).value("state", ""), "succeeded");
}

TEST_F(K8s, ALostJobIsReportedFailedAndAPendingPodIsPending) {
  auto ex = load({{"annotations", {{"fake.ork.dev/start-delay", "30"}}}});
  std::string id = ex->dispatch(exec_config("lost", dir_))["executor_id"];
  EXPECT_EQ(ex->status({{"executor_id", id}})["state"], "pending");
  std::string name = id.substr(id.find('/') + 1);
  EXPECT_EQ(api("DELETE", "/apis/batch/v1/namespaces/" + ns_ + "/jobs/" + name)["_status"], 200);
  json e = events_->wait_for(id);
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["state"], "failed");
  EXPECT_NE(e.value("message", "").find("not found"), std::string::npos) << e.dump();
}

TEST_F(K8s, AuthComesFromTheKubeconfigAndAWrongTokenIsRefused) {
  auto ok = load();
  EXPECT_NO_THROW(ok->status({{"executor_id", ns_ + "/none"}}));
  auto bad = load({{"token", "wrong"}});
  EXPECT_EQ(code_of([&] { bad->dispatch(exec_config("x", dir_)); }), ORK_ERR_INVALID);
  EXPECT_THROW(load({{"auth", "in_cluster"}}), std::exception);  // not in a pod here
  EXPECT_THROW(load({{"kubeconfig", dir_ / "missing"}}), std::exception);
  EXPECT_THROW(load({{"image", nullptr}}), std::exception);
}

TEST_F(K8s, FanOutOf200JobsAllFinish) {
  auto ex = load({{"poll_interval_ms", 200}});
  std::vector<std::string> ids;
  auto t0 = Clock::now();
  for (int i = 0; i < 200; ++i) ids.push_back(ex->dispatch(exec_config("f" + std::to_string(i), dir_))["executor_id"]);
  auto dispatched = Clock::now() - t0;
  size_t ok = 0;
  for (const auto& id : ids) ok += events_->wait_for(id, "", 120s).value("state", "") == "succeeded";
  EXPECT_EQ(ok, ids.size());
  std::printf("k8s fake: 200 dispatches in %lld ms, all finished in %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(dispatched).count()),
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()));
}

// The API server over HTTPS with client certificates: the kubeconfig's CA (inline -data), client certificate (a file
// relative to the kubeconfig) and key (inline) reach the TLS handshake; without the client certificate, or trusting
// another CA, no call goes through.
TEST(K8sTls, KubeconfigCaAndClientCertificate) {
  TempDir d;
  std::string gen =
      "cd " + d.str() +
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=ork-test-ca"
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.crt -days 1 -subj /CN=other-ca"
      " && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext"
      " && openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1"
      " && openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 1 -extfile san.ext"
      " && openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=ork"
      " && openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 1";
  auto g = run(gen + " 2>&1");
  ASSERT_EQ(g.exit_code, 0) << g.output;
  Process fake("exec python3 " + std::string(ORK_SOURCE_DIR) + "/tests/fakes/k8s_fake.py --port 0 --data " + d.str() +
                   "/data --tls-cert " + d.str() + "/srv.crt --tls-key " + d.str() + "/srv.key --tls-client-ca " +
                   d.str() + "/ca.crt > " + d.str() + "/port",
               d / "fake.log");
  ASSERT_TRUE(eventually([&] { return read_file(d / "port").find("ready") == 0; }, 20s)) << read_file(d / "fake.log");
  std::string port = read_file(d / "port").substr(6);
  port.erase(port.find_last_not_of("\n") + 1);
  auto b64 = [&](const std::string& f) { return ork::common::base64_encode(read_file(d / f)); };
  auto kubeconfig = [&](const std::string& ca, bool client) {
    std::string user = client ? "    client-certificate: client.crt\n    client-key-data: " + b64("client.key") + "\n"
                              : "    token: t\n";
    write_file(d / "kubeconfig",
               "apiVersion: v1\nkind: Config\ncurrent-context: tls\nclusters:\n- name: c\n  cluster:\n"
               "    server: https://127.0.0.1:" +
                   port + "\n    certificate-authority-data: " + b64(ca) +
                   "\ncontexts:\n- name: tls\n  context: {cluster: c, user: u}\n"
                   "users:\n- name: u\n  user:\n" +
                   user);
    return json{{"image", "sh"}, {"kubeconfig", d / "kubeconfig"}, {"max_attempts", 1}, {"timeout_ms", 5000}};
  };
  auto ex = ork::load_plugin<ork::ExecutorProxy>("executor", "ork-exec-k8s", kubeconfig("ca.crt", true));
  std::string id = ex->dispatch(exec_config("tls", d))["executor_id"];
  EXPECT_EQ(id.rfind("default/ork-tls-", 0), 0u) << id;
  EXPECT_NO_THROW(ex->status({{"executor_id", id}}));
  auto no_client = ork::load_plugin<ork::ExecutorProxy>("executor", "ork-exec-k8s", kubeconfig("ca.crt", false));
  EXPECT_EQ(code_of([&] { no_client->dispatch(exec_config("tls2", d)); }), ORK_ERR_UNAVAILABLE);
  auto other_ca = ork::load_plugin<ork::ExecutorProxy>("executor", "ork-exec-k8s", kubeconfig("other.crt", true));
  EXPECT_EQ(code_of([&] { other_ca->dispatch(exec_config("tls3", d)); }), ORK_ERR_UNAVAILABLE);
}

// In a pod: KUBERNETES_SERVICE_HOST/PORT, the service account's token, CA and namespace. The fake demands that
// token for the namespace; what the token file holds is what is sent (a wrong token is refused).
TEST(K8sTls, InClusterServiceAccount) {
  TempDir d;
  auto g = run("cd " + d.str() +
               " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=ork-ca"
               " && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext"
               " && openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1"
               " && openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 1"
               " -extfile san.ext 2>&1");
  ASSERT_EQ(g.exit_code, 0) << g.output;
  Process fake("exec python3 " + std::string(ORK_SOURCE_DIR) + "/tests/fakes/k8s_fake.py --port 0 --data " + d.str() +
                   "/data --tls-cert " + d.str() + "/srv.crt --tls-key " + d.str() + "/srv.key > " + d.str() + "/port",
               d / "fake.log");
  ASSERT_TRUE(eventually([&] { return read_file(d / "port").find("ready") == 0; }, 20s)) << read_file(d / "fake.log");
  std::string port = read_file(d / "port").substr(6);
  port.erase(port.find_last_not_of("\n") + 1);
  auto c = run("curl -sf --cacert " + d.str() + "/ca.crt -X POST https://127.0.0.1:" + port +
               "/_fake/config -d '{\"tokens\": {\"in-pod\": \"sa-token\"}}' 2>&1");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  std::string sa = d / "sa";
  fs::create_directories(sa);
  fs::copy_file(d / "ca.crt", sa + "/ca.crt");
  write_file(sa + "/namespace", "in-pod\n");
  write_file(sa + "/token", "sa-token\n");
  ::setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", port.c_str(), 1);
  json cfg{{"image", "sh"}, {"auth", "in_cluster"}, {"service_account_dir", sa}, {"max_attempts", 1}};
  auto ex = ork::load_plugin<ork::ExecutorProxy>("executor", "ork-exec-k8s", cfg);
  std::string id = ex->dispatch(exec_config("pod", d))["executor_id"];
  EXPECT_EQ(id.rfind("in-pod/ork-pod-", 0), 0u) << id;
  write_file(sa + "/token", "rotated-wrong\n");
  auto fresh = ork::load_plugin<ork::ExecutorProxy>("executor", "ork-exec-k8s", cfg);
  EXPECT_EQ(code_of([&] { fresh->dispatch(exec_config("pod2", d)); }), ORK_ERR_INVALID);  // 401
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
}

// ---------------------------------------------------------------- Fargate (moto ECS, recorded answers)

// One signed ECS or EC2 call to `ep`.
ork::common::HttpResponse aws(const std::string& ep, const std::string& service, const std::string& target,
                              const std::string& body, const std::string& content_type) {
  ork::common::HttpOptions o;
  o.retry.max_attempts = 1;
  ork::common::HttpClient c(o);
  ork::common::HttpRequest r{"POST", ep + "/", {{"Content-Type", content_type}}, body, ""};
  if (!target.empty()) r.headers.emplace_back("X-Amz-Target", target);
  ork::common::AwsCredentials creds{"test", "test", "", 0, "test"};
  return c.send(r, [&](ork::common::HttpRequest& q) {
    ork::common::sigv4_sign_request(q, creds, "us-east-1", service, ork::common::now_epoch_ms(), false);
  });
}

json ecs(const std::string& ep, const std::string& action, const json& body) {
  auto r = aws(ep, "ecs", "AmazonEC2ContainerServiceV20141113." + action, body.dump(), "application/x-amz-json-1.1");
  if (!r.ok()) throw std::runtime_error(action + ": HTTP " + std::to_string(r.status) + " " + r.body);
  return json::parse(r.body);
}

std::string ec2_first(const std::string& ep, const std::string& action, const std::string& tag) {
  auto r = aws(ep, "ec2", "", "Action=" + action + "&Version=2016-11-15", "application/x-www-form-urlencoded");
  if (!r.ok()) throw std::runtime_error(action + ": HTTP " + std::to_string(r.status));
  return ork::common::xml_first(r.body, tag);
}

class Fargate : public ::testing::Test {
 protected:
  void SetUp() override {
    ep_ = endpoint_of("moto");
    ASSERT_FALSE(ep_.empty()) << "no moto (ORK_EMULATORS)";
    cluster_ = unique("ork");
    ecs(ep_, "CreateCluster", {{"clusterName", cluster_}});
    ecs(ep_, "RegisterTaskDefinition",
        {{"family", cluster_ + "-worker"},
         {"requiresCompatibilities", {"FARGATE"}},
         {"networkMode", "awsvpc"},
         {"cpu", "256"},
         {"memory", "512"},
         {"containerDefinitions",
          json::array({{{"name", "worker"}, {"image", "ork-worker"}, {"memory", 512}, {"essential", true}}})}});
    subnet_ = ec2_first(ep_, "DescribeSubnets", "subnetId");
    sg_ = ec2_first(ep_, "DescribeSecurityGroups", "groupId");
    ASSERT_FALSE(subnet_.empty());
  }
  std::unique_ptr<ork::ExecutorProxy> load(const std::string& endpoint, json cfg = json::object()) {
    json base{{"cluster", cluster_},     {"task_definition", cluster_ + "-worker"},
              {"subnets", {subnet_}},    {"security_groups", {sg_}},
              {"endpoint", endpoint},    {"region", "us-east-1"},
              {"access_key_id", "test"}, {"secret_access_key", "test"},
              {"poll_interval_ms", 50}};
    for (const auto& [k, v] : cfg.items()) base[k] = v;
    auto ev = events_;
    return ork::load_plugin<ork::ExecutorProxy>("executor", "ork-exec-fargate", base,
                                                [ev](const std::string&, const json& e) { ev->push(e); });
  }
  std::string ep_, cluster_, subnet_, sg_;
  std::shared_ptr<Events> events_ = std::make_shared<Events>();
  TempDir dir_;
};

TEST_F(Fargate, RunTaskWithOverridesThenStoppedIsSucceeded) {
  auto ex = load(ep_);
  std::string arn = ex->dispatch(exec_config("ok", dir_, {{"PLAIN", "v"}}))["executor_id"];
  EXPECT_NE(arn.find(":task/" + cluster_ + "/"), std::string::npos) << arn;
  json e = events_->wait_for(arn);
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["state"], "succeeded") << e.dump();
  json t = ecs(ep_, "DescribeTasks", {{"cluster", cluster_}, {"tasks", {arn}}})["tasks"][0];
  EXPECT_EQ(t["overrides"]["cpu"], "512");  // 300 millicpu, 700 MiB -> the smallest Fargate size: 0.5 vCPU, 1 GiB
  EXPECT_EQ(t["overrides"]["memory"], "1024");
  json env = t["overrides"]["containerOverrides"][0]["environment"];
  EXPECT_NE(env.dump().find(R"({"name":"PLAIN","value":"v"})"), std::string::npos) << env.dump();
  EXPECT_EQ(t["overrides"]["containerOverrides"][0]["name"], "worker");
}

TEST_F(Fargate, StopTaskIsCancelled) {
  auto ex = load(ep_, {{"poll_interval_ms", 5000}});
  std::string arn = ex->dispatch(exec_config("c", dir_))["executor_id"];
  ex->cancel({{"executor_id", arn}, {"grace_ms", 0}});
  EXPECT_EQ(ex->status({{"executor_id", arn}})["state"], "cancelled");
  EXPECT_NO_THROW(ex->cancel({{"executor_id", arn}, {"grace_ms", 0}}));
}

TEST_F(Fargate, UnknownTaskIsFailedAndUnknownClusterIsInvalid) {
  auto ex = load(ep_);
  json st = ex->status({{"executor_id", "arn:aws:ecs:us-east-1:123456789012:task/" + cluster_ + "/nope"}});
  EXPECT_EQ(st["state"], "failed");
  EXPECT_NE(st.value("message", "").find("not found"), std::string::npos);
  auto other = load(ep_, {{"cluster", "no-such-cluster-" + cluster_}});
  EXPECT_NE(code_of([&] { other->dispatch(exec_config("x", dir_)); }), ORK_OK);
}

TEST_F(Fargate, ResourcesTooLargeForFargateAreInvalid) {
  auto ex = load(ep_);
  json cfg = exec_config("big", dir_);
  cfg["resources"] = {{"cpu_millis", 32000}, {"memory_mb", 1024}};
  EXPECT_EQ(code_of([&] { ex->dispatch(cfg); }), ORK_ERR_INVALID);
}

// Answers shaped like the ECS API reference's, for what moto never does.
class FargateRecorded : public Fargate {
 protected:
  void SetUp() override {
    Fargate::SetUp();
    std::string port_file = dir_ / "port";
    server_ = std::make_unique<Process>(
        "exec python3 " + std::string(ORK_SOURCE_DIR) + "/tests/fakes/recorded_http.py --port 0 > " + port_file,
        dir_ / "server.log");
    ASSERT_TRUE(eventually([&] { return read_file(port_file).find("ready") == 0; }, 20s))
        << read_file(dir_ / "server.log");
    rec_ = "http://127.0.0.1:" + read_file(port_file).substr(6);
    while (!rec_.empty() && rec_.back() == '\n') rec_.pop_back();
  }
  void script(const json& responses) { http_json("POST", rec_ + "/_script", {{"responses", responses}}); }
  static json task(const std::string& last, const json& extra = json::object()) {
    json t{{"taskArn", kArn},
           {"lastStatus", last},
           {"desiredStatus", last == "STOPPED" ? "STOPPED" : "RUNNING"},
           {"containers", json::array({{{"name", "worker"}, {"lastStatus", last}}})}};
    for (const auto& [k, v] : extra.items()) t[k] = v;
    return {{"tasks", json::array({t})}, {"failures", json::array()}};
  }
  static constexpr const char* kArn = "arn:aws:ecs:us-east-1:123456789012:task/c/0123456789abcdef";
  std::unique_ptr<Process> server_;
  std::string rec_;
};

TEST_F(FargateRecorded, ProvisioningAndPendingArePendingThenExitCode1IsFailed) {
  auto ex = load(rec_, {{"poll_interval_ms", 3600000}});
  json stopped = task(
      "STOPPED", {{"stopCode", "EssentialContainerExited"}, {"stoppedReason", "Essential container in task exited"}});
  stopped["tasks"][0]["containers"][0]["exitCode"] = 1;
  script({{{"match", "RunTask"}, {"body", task("PROVISIONING")}},
          {{"match", "DescribeTasks"}, {"body", task("PROVISIONING")}},
          {{"match", "DescribeTasks"}, {"body", task("PENDING")}},
          {{"match", "DescribeTasks"}, {"body", task("RUNNING")}},
          {{"match", "DescribeTasks"}, {"body", task("DEPROVISIONING")}},
          {{"match", "DescribeTasks"}, {"body", stopped}}});
  std::string arn = ex->dispatch(exec_config("r", dir_))["executor_id"];
  EXPECT_EQ(arn, kArn);
  std::vector<std::string> states;
  for (int i = 0; i < 5; ++i) states.push_back(ex->status({{"executor_id", arn}})["state"]);
  EXPECT_EQ(states, (std::vector<std::string>{"pending", "pending", "running", "running", "failed"}));
  json reqs = http_json("GET", rec_ + "/_requests");
  json run = reqs[0]["body"];
  EXPECT_EQ(run["launchType"], "FARGATE");
  EXPECT_EQ(run["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"], "DISABLED");
  EXPECT_EQ(run["clientToken"].get<std::string>().size(), 64u);
  EXPECT_EQ(reqs[1]["body"]["tasks"][0], kArn);
}

TEST_F(FargateRecorded, ExitCodeAndReasonsReachTheEvent) {
  auto ex = load(rec_);
  json stopped =
      task("STOPPED", {{"stopCode", "EssentialContainerExited"}, {"stoppedReason", "Essential container exited"}});
  stopped["tasks"][0]["containers"][0]["exitCode"] = 1;
  script({{{"match", "RunTask"}, {"body", task("PENDING")}}, {{"match", "DescribeTasks"}, {"body", stopped}}});
  std::string arn = ex->dispatch(exec_config("r", dir_))["executor_id"];
  json e = events_->wait_for(arn);
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["state"], "failed");
  EXPECT_EQ(e["exit_code"], 1);
  EXPECT_NE(e.value("message", "").find("EssentialContainerExited"), std::string::npos) << e.dump();
}

TEST_F(FargateRecorded, MissingFailedToStartUserStopAndThrottling) {
  auto ex = load(rec_, {{"poll_interval_ms", 3600000}});
  json missing{{"tasks", json::array()}, {"failures", json::array({{{"arn", kArn}, {"reason", "MISSING"}}})}};
  json no_start = task("STOPPED", {{"stopCode", "TaskFailedToStart"},
                                   {"stoppedReason", "CannotPullContainerError: pull image manifest"}});
  json user = task("STOPPED", {{"stopCode", "UserInitiated"}, {"stoppedReason", "Task stopped by user"}});
  user["tasks"][0]["containers"][0]["exitCode"] = 143;
  script({{{"match", "DescribeTasks"},
           {"status", 400},
           {"body", {{"__type", "ThrottlingException"}, {"message", "Rate exceeded"}}}},
          {{"match", "DescribeTasks"}, {"body", missing}},
          {{"match", "DescribeTasks"}, {"body", no_start}},
          {{"match", "DescribeTasks"}, {"body", user}},
          {{"match", "DescribeTasks"},
           {"status", 400},
           {"body", {{"__type", "ClusterNotFoundException"}, {"message", "Cluster not found."}}}}});
  json st = ex->status({{"executor_id", kArn}});  // throttled once, then MISSING
  EXPECT_EQ(st["state"], "failed");
  EXPECT_NE(st.value("message", "").find("not found"), std::string::npos);
  st = ex->status({{"executor_id", kArn}});
  EXPECT_EQ(st["state"], "failed");
  EXPECT_TRUE(st["exit_code"].is_null());
  EXPECT_NE(st.value("message", "").find("CannotPullContainerError"), std::string::npos) << st.dump();
  EXPECT_EQ(ex->status({{"executor_id", kArn}})["state"], "cancelled");
  EXPECT_EQ(code_of([&] { ex->status({{"executor_id", kArn}}); }), ORK_ERR_INVALID);
}

// An API that echoes what it was sent in an error: the secret values never reach the error the host sees.
TEST_F(FargateRecorded, SecretsAreRedactedFromErrors) {
  auto ex = load(rec_);
  std::string bundle = R"({"env":{"DB_PASSWORD":"hunter2-x"},"files":[{"name":"k","path":"k.pem","value":"PEMDATA"}]})";
  script({{{"match", "RunTask"},
           {"status", 400},
           {"body",
            {{"__type", "InvalidParameterException"},
             {"message", "bad environment: hunter2-x, PEMDATA, " + json(bundle).dump()}}}}});
  std::string message;
  try {
    ex->dispatch(exec_config("s", dir_, {{"ORK_TASK_SECRETS", bundle}}));
  } catch (const ork::PluginCallError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("InvalidParameterException"), std::string::npos) << message;
  EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
  EXPECT_EQ(message.find("PEMDATA"), std::string::npos) << message;
  EXPECT_NE(message.find("***"), std::string::npos) << message;
}

}  // namespace
