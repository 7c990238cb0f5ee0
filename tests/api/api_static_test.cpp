// The web UI's files as `ork-host serve` serves them: content types, caching (immutable hashed assets, revalidated
// index.html), ETag/304, HEAD, the single-page-app fallback, path traversal, and where the files are found.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "api/api_support.hpp"

using namespace ork::test;

namespace {

const std::string kIndex =
    "<!doctype html><title>Ork</title><script type=module src=/assets/index-AbC123xy.js></script>";

void write_ui(const std::string& dir) {
  write_file(dir + "/index.html", kIndex);
  write_file(dir + "/favicon.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>");
  write_file(dir + "/assets/index-AbC123xy.js", "console.log('ork')");
  write_file(dir + "/assets/index-DeF456zz.css", "body{}");
  write_file(dir + "/assets/inter-Gh789.woff2", std::string("wOF2\0\1", 6));
}

class Static : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    write_ui(*dir_ / "ui");
    write_file(*dir_ / "secret.txt", "not for the web");
    srv_ = std::make_unique<Server>(*dir_ / "home", "--static-dir " + (*dir_ / "ui"));
  }
  static void TearDownTestSuite() {
    srv_.reset();
    dir_.reset();
  }
  static Server& s() { return *srv_; }
  static inline std::unique_ptr<TempDir> dir_;
  static inline std::unique_ptr<Server> srv_;
};

TEST_F(Static, ContentTypesAndCaching) {
  auto r = s().get("/");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, kIndex);
  EXPECT_EQ(r.headers["content-type"], "text/html; charset=utf-8");
  EXPECT_EQ(r.headers["cache-control"], "no-cache");
  EXPECT_EQ(r.headers["x-content-type-options"], "nosniff");
  EXPECT_NE(r.headers["content-security-policy"].find("default-src 'self'"), std::string::npos);
  struct Case {
    const char* path;
    const char* type;
    const char* cache;
  };
  for (const Case& c :
       {Case{"/assets/index-AbC123xy.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
        Case{"/assets/index-DeF456zz.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
        Case{"/assets/inter-Gh789.woff2", "font/woff2", "public, max-age=31536000, immutable"},
        Case{"/favicon.svg", "image/svg+xml", "no-cache"}}) {
    auto a = s().get(c.path);
    ASSERT_EQ(a.status, 200) << c.path;
    EXPECT_EQ(a.headers["content-type"], c.type) << c.path;
    EXPECT_EQ(a.headers["cache-control"], c.cache) << c.path;
    EXPECT_FALSE(a.headers["etag"].empty()) << c.path;
  }
  EXPECT_EQ(s().get("/assets/inter-Gh789.woff2").body, std::string("wOF2\0\1", 6));
}

TEST_F(Static, ClientRoutesFallBackToIndexButMissingFilesAre404) {
  for (const char* route : {"/runs/1b2c3d4e-aaaa-bbbb-cccc-1234567890ab", "/workflows/data_pipeline", "/runs"}) {
    auto r = s().get(std::string(route) + "?task=fetch");
    ASSERT_EQ(r.status, 200) << route;
    EXPECT_EQ(r.body, kIndex) << route;
    EXPECT_EQ(r.headers["cache-control"], "no-cache") << route;
  }
  auto missing = s().get("/assets/index-Old0000.js");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.code(), "not_found");
  auto api = s().get("/api/v1/nope");
  EXPECT_EQ(api.status, 404);
  EXPECT_EQ(api.code(), "route_not_found");
  EXPECT_EQ(s().call("POST", "/runs/x", "{}").status, 404);  // only GET and HEAD serve files
}

TEST_F(Static, EtagRevalidationAnswers304) {
  std::string etag = s().get("/").headers["etag"];
  ASSERT_FALSE(etag.empty());
  auto r = s().call("GET", "/index.html", "", {{"If-None-Match", etag}});
  EXPECT_EQ(r.status, 304);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.headers["etag"], etag);
  EXPECT_EQ(s().call("GET", "/", "", {{"If-None-Match", "\"other\", W/" + etag}}).status, 304);
  EXPECT_EQ(s().call("GET", "/", "", {{"If-None-Match", "\"other\""}}).status, 200);
  // a changed file gets a new validator
  write_file(*dir_ / "ui/favicon.svg", "<svg xmlns='http://www.w3.org/2000/svg' width='2'/>");
  std::string before = s().get("/favicon.svg").headers["etag"];
  write_file(*dir_ / "ui/favicon.svg", "<svg xmlns='http://www.w3.org/2000/svg' width='33'/>");
  EXPECT_NE(s().get("/favicon.svg").headers["etag"], before);
}

TEST_F(Static, HeadSendsTheHeadersWithoutTheBody) {
  Socket sock(s().port());
  sock.write_all(request_text("HEAD", "/assets/index-AbC123xy.js", "", {}, false));
  std::string& b = sock.buf();
  while (b.find("\r\n\r\n") == std::string::npos) ASSERT_TRUE(sock.fill(std::chrono::seconds(10)));
  std::string head = b.substr(0, b.find("\r\n\r\n"));
  b.erase(0, head.size() + 4);
  EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u) << head;
  EXPECT_NE(head.find("Content-Length: 18"), std::string::npos) << head;
  // no body followed: the next response on the same connection parses from its first byte
  sock.write_all(request_text("GET", "/favicon.svg", "", {}, false));
  auto next = read_response(sock);
  EXPECT_EQ(next.status, 200);
  EXPECT_EQ(next.headers["content-type"], "image/svg+xml");
}

TEST_F(Static, NoPathLeavesTheStaticDir) {
  for (const char* p :
       {"/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt", "/assets/%2e%2e/../secret.txt"}) {
    auto r = s().get(p);
    EXPECT_EQ(r.status, 404) << p;
    EXPECT_EQ(r.body.find("not for the web"), std::string::npos) << p;
  }
}

TEST(StaticDir, FoundBesideTheBinaryAndSwitchedOffWithNoUi) {
  TempDir d;
  // an installed layout: <prefix>/bin/ork-host and <prefix>/share/ork/ui
  fs::create_directories(d / "prefix/bin");
  fs::copy_file(kHost, d / "prefix/bin/ork-host");
  ::chmod((d / "prefix/bin/ork-host").c_str(), 0755);
  write_ui(d / "prefix/share/ork/ui");
  {
    Server srv(d / "home", "", "", d / "prefix/bin/ork-host");
    EXPECT_TRUE(eventually([&] { return srv.log().find("Web UI on http://127.0.0.1:") != std::string::npos; },
                           std::chrono::seconds(10)))
        << srv.log();
    auto r = srv.get("/runs/abc");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, kIndex);
  }
  {
    Server srv(d / "home2", "--no-ui", "", d / "prefix/bin/ork-host");
    auto r = srv.get("/");
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.code(), "route_not_found");
    EXPECT_EQ(srv.get("/api/v1/health").status, 200);
  }
  {
    write_ui(d / "elsewhere");
    write_file(d / "elsewhere/index.html", "<!doctype html><title>custom</title>");
    Server srv(d / "home3", "", "ORK_API_STATIC_DIR=" + (d / "elsewhere"), d / "prefix/bin/ork-host");
    EXPECT_EQ(srv.get("/").body, "<!doctype html><title>custom</title>");
  }
}

}  // namespace
