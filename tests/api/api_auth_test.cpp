// API keys over real HTTP: `ork-host apikey` creates/lists/revokes keys a running server picks up, scopes per route,
// keys stored only salted and hashed, and the loopback rule (auth off only on loopback; no keys, no public bind).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "api/api_support.hpp"

using namespace ork::test;

namespace {

std::string apikey(const std::string& home, const std::string& args) {
  auto r = run("env ORK_HOME=" + home + " " + kHost + " apikey " + args + " 2>/dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::string out = r.output;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

TEST(ApiAuth, KeysFromTheCliAreRequiredOnceTheyExistWithScopesPerRoute) {
  TempDir dir;
  std::string home = dir / "home";
  Server s(home);
  // No key yet, loopback: open, and the server says so.
  EXPECT_EQ(s.get("/api/v1/runs").status, 200);
  EXPECT_EQ(s.get("/api/v1/health").j()["auth"], false);
  EXPECT_NE(s.log().find("API auth is OFF"), std::string::npos) << s.log();

  std::string read = apikey(home, "create --scope read --name ci-read");
  std::string write = apikey(home, "create --scope write");
  std::string admin = apikey(home, "create --scope admin --name root");
  ASSERT_EQ(read.rfind("ork_k", 0), 0u) << read;
  ASSERT_NE(read, write);

  // The file holds salted hashes, never the keys, and only its owner may read it.
  std::string file = read_file(home + "/api-keys.json");
  EXPECT_EQ(file.find(read), std::string::npos);
  EXPECT_EQ(file.find(read.substr(read.rfind('_') + 1)), std::string::npos);
  json keys = json::parse(file)["keys"];
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_NE(keys[0]["salt"], keys[1]["salt"]);
  EXPECT_EQ(keys[0]["hash"].get<std::string>().size(), 64u);
  struct stat st {};
  ASSERT_EQ(::stat((home + "/api-keys.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // The running server now requires a key (it re-reads the file when it changes).
  auto none = s.get("/api/v1/runs");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.code(), "unauthorized");
  EXPECT_EQ(none.headers["www-authenticate"].rfind("Bearer", 0), 0u);
  EXPECT_EQ(s.call("GET", "/api/v1/runs", "", {{"Authorization", "Bearer ork_kffffffffffff_nope"}}).status, 401);
  EXPECT_EQ(s.call("GET", "/api/v1/runs", "", {{"Authorization", "Bearer " + read + "x"}}).status, 401);
  EXPECT_EQ(s.call("GET", "/api/v1/runs", "", {{"Authorization", "Basic " + read}}).status, 401);
  EXPECT_EQ(s.get("/api/v1/health").status, 200);  // needs no key
  EXPECT_EQ(s.get("/api/v1/health").j()["auth"], true);
  EXPECT_EQ(s.get("/api/v1/openapi.json").status, 200);

  s.key = read;
  EXPECT_EQ(s.get("/api/v1/runs").status, 200);
  EXPECT_EQ(s.get("/api/v1/workflows").status, 200);
  auto denied = s.call("POST", "/api/v1/workflows", "name: x\ntasks:\n  a:\n    command: \"true\"\n",
                       {{"Content-Type", "application/yaml"}});
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(denied.code(), "forbidden");
  EXPECT_EQ(denied.j()["error"]["details"]["required"], "write");
  EXPECT_EQ(denied.j()["error"]["details"]["granted"], "read");
  EXPECT_EQ(s.post("/api/v1/tasks", {{"command", "true"}}).status, 403);
  EXPECT_EQ(s.get("/api/v1/apikeys").status, 403);

  s.key = write;
  auto dep = s.call("POST", "/api/v1/workflows", "name: x\ntasks:\n  a:\n    command: \"true\"\n",
                    {{"Content-Type", "application/yaml"}});
  EXPECT_EQ(dep.status, 201) << dep.body;
  EXPECT_EQ(s.post("/api/v1/workflows/x/runs").status, 201);
  EXPECT_EQ(s.get("/api/v1/runs").status, 200);  // write includes read
  EXPECT_EQ(s.get("/api/v1/apikeys").status, 403);
  EXPECT_EQ(s.call("DELETE", "/api/v1/apikeys/whatever").status, 403);

  s.key = admin;
  auto list = s.get("/api/v1/apikeys");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.j()["keys"].size(), 3u);
  EXPECT_FALSE(list.j()["keys"][0].contains("hash"));
  EXPECT_FALSE(list.j()["keys"][0].contains("salt"));
  EXPECT_EQ(list.j()["keys"][0]["name"], "ci-read");
  EXPECT_EQ(list.body.find(read), std::string::npos);
  // Keys made through the API work at once; the key is in that response only.
  auto made = s.post("/api/v1/apikeys", {{"scope", "read"}, {"name", "from-api"}});
  ASSERT_EQ(made.status, 201) << made.body;
  std::string api_key = made.j()["key"];
  EXPECT_EQ(s.call("GET", "/api/v1/runs", "", {{"Authorization", "Bearer " + api_key}}).status, 200);
  EXPECT_EQ(s.post("/api/v1/apikeys", {{"scope", "root"}}).code(), "invalid_body");
  EXPECT_EQ(s.post("/api/v1/apikeys", json::object()).code(), "invalid_body");
  auto rv = s.call("DELETE", "/api/v1/apikeys/" + made.j()["id"].get<std::string>());
  EXPECT_EQ(rv.status, 204);
  EXPECT_EQ(s.call("GET", "/api/v1/runs", "", {{"Authorization", "Bearer " + api_key}}).status, 401);
  EXPECT_EQ(s.call("DELETE", "/api/v1/apikeys/knothere").code(), "key_not_found");

  // Revoked from the CLI: refused from the next request on.
  std::string read_id = keys[0]["id"];
  std::string listed = apikey(home, "list");
  EXPECT_NE(listed.find(read_id), std::string::npos) << listed;
  EXPECT_NE(listed.find("ci-read"), std::string::npos) << listed;
  EXPECT_EQ(listed.find(read), std::string::npos);
  apikey(home, "revoke " + read_id);
  EXPECT_EQ(s.call("GET", "/api/v1/runs", "", {{"Authorization", "Bearer " + read}}).status, 401);
  auto again = run("env ORK_HOME=" + home + " " + kHost + " apikey revoke " + read_id + " 2>&1");
  EXPECT_EQ(again.exit_code, 1) << again.output;
  auto json_list = json::parse(apikey(home, "--json list"));
  EXPECT_TRUE(json_list[0]["revoked_at"].is_string());
  // Events need a key too.
  s.key.clear();
  SseStream denied_events(s.port(), "/api/v1/events");
  EXPECT_EQ(denied_events.status(), 401);
  SseStream events(s.port(), "/api/v1/events", {{"Authorization", "Bearer " + write}});
  EXPECT_EQ(events.status(), 200);
}

TEST(ApiAuth, AuthOffIsAllowedOnlyOnLoopbackAndSaidAtStart) {
  TempDir dir;
  std::string home = dir / "home";
  apikey(home, "create --scope read");
  Server s(home, "--auth off");
  EXPECT_EQ(s.get("/api/v1/runs").status, 200);  // keys exist, auth is off
  EXPECT_NE(s.log().find("API auth is OFF"), std::string::npos) << s.log();

  auto r = run("env ORK_HOME=" + home + " " + kHost + " serve --bind 0.0.0.0 --port 0 --auth off 2>&1",
               std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("auth can be off only on a loopback address"), std::string::npos) << r.output;
}

TEST(ApiAuth, NonLoopbackBindNeedsKeysAndThenRequiresThem) {
  TempDir dir;
  std::string home = dir / "home";
  auto r = run("env ORK_HOME=" + home + " " + kHost + " serve --bind 0.0.0.0 --port 0 2>&1", std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("without API keys"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ork-host apikey create"), std::string::npos) << r.output;

  std::string key = apikey(home, "create --scope read");
  TempDir logdir;
  Process p("exec env ORK_HOME=" + home + " " + kHost + " serve --bind 0.0.0.0 --port 0", logdir / "log");
  int port = 0;
  ASSERT_TRUE(eventually(
      [&] {
        std::string out = read_file(logdir / "log");
        size_t at = out.find("API listening on http://0.0.0.0:");
        if (at == std::string::npos) return false;
        port = std::stoi(out.substr(at + 32));
        return true;
      },
      std::chrono::seconds(30)))
      << read_file(logdir / "log");
  EXPECT_NE(read_file(logdir / "log").find("API auth on: 1 active API key"), std::string::npos);
  Socket a(port);
  a.write_all(request_text("GET", "/api/v1/runs", "", {}, true));
  EXPECT_EQ(read_response(a).status, 401);
  Socket b(port);
  b.write_all(request_text("GET", "/api/v1/runs", "", {{"Authorization", "Bearer " + key}}, true));
  EXPECT_EQ(read_response(b).status, 200);
  p.kill_group(SIGINT);
  p.wait(std::chrono::seconds(10));
}

}  // namespace
