// The cloud object plugins beyond the conformance suite, each against its emulator (the ctest fixtures write the
// endpoint to build/emulators/<kind>/endpoint): S3 virtual-host addressing, credentials from the environment, key
// prefixes and error mapping; Azure connection strings, SAS tokens and small blocks; GCS STORAGE_EMULATOR_HOST,
// retries on injected 503/429 and resumable chunks. ORK_EMULATOR_DIR names the emulator's folder.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>

#include "azure_storage.hpp"
#include "crypto.hpp"
#include "http.hpp"
#include "loader/plugin_loader.hpp"
#include "support/test_support.hpp"
#include "web_util.hpp"

namespace {

using ork::json;
using ork::ObjectProxy;
using ork::PluginCallError;
namespace t = ork::test;

using ork::test::emulator_file;
using ork::test::ScopedEnv;

std::unique_ptr<ObjectProxy> open(const std::string& lib, const json& cfg) {
  return ork::load_plugin<ObjectProxy>("object", lib, cfg);
}

ork_status code_of(const std::function<void()>& f, std::string* msg = nullptr) {
  try {
    f();
    return ORK_OK;
  } catch (const PluginCallError& e) {
    if (msg) *msg = e.what();
    return e.code();
  }
}

std::string load_error(const std::string& lib, const json& cfg) {
  try {
    open(lib, cfg);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string ns() {
  return "cloud-test/" + ork::common::random_hex(6) + "/";
}

// ---- S3 (moto)

json s3_cfg(const std::string& bucket) {
  return {{"bucket", bucket},        {"endpoint", emulator_file("endpoint")}, {"region", "us-east-1"},
          {"access_key_id", "test"}, {"secret_access_key", "test"},           {"create_bucket", true}};
}

TEST(S3, VirtualHostAddressingSeesThePathStyleObjects) {
  std::string port = emulator_file("port"), k = ns() + "vhost key ü.txt";
  json v = s3_cfg("ork-vhost");
  v["endpoint"] = "http://localhost:" + port;  // requests go to ork-vhost.localhost:PORT ...
  v["addressing"] = "virtual";
  v["connect_to"] = "127.0.0.1:" + port;  // ... dialed at 127.0.0.1 (no DNS for *.localhost here)
  auto virt = open("ork-object-s3", v);
  auto path = open("ork-object-s3", s3_cfg("ork-vhost"));
  virt->put(k, "through the virtual host");
  EXPECT_EQ(path->get(k).value_or(""), "through the virtual host");
  path->put(k + ".2", "through the path");
  EXPECT_EQ(virt->list(k), (std::vector<std::string>{k, k + ".2"}));
  virt->del(k);
  EXPECT_FALSE(path->get(k));
}

TEST(S3, CredentialsFromTheEnvironmentAndAKeyPrefix) {
  ScopedEnv id("AWS_ACCESS_KEY_ID", "env-key"), secret("AWS_SECRET_ACCESS_KEY", "env-secret");
  ScopedEnv region("AWS_REGION", "us-east-1");
  json cfg = s3_cfg("ork-prefixed");
  cfg.erase("access_key_id");
  cfg.erase("secret_access_key");
  cfg.erase("region");
  cfg["prefix"] = "tenant-a";
  auto scoped = open("ork-object-s3", cfg);
  auto whole = open("ork-object-s3", s3_cfg("ork-prefixed"));
  std::string k = ns() + "x.json";
  scoped->put(k, "{}");
  EXPECT_EQ(whole->get("tenant-a/" + k).value_or(""), "{}");
  EXPECT_EQ(scoped->list(k), std::vector<std::string>{k});
  EXPECT_TRUE(whole->list(k).empty());
}

TEST(S3, ErrorsAreMappedAndSecretsStayOut) {
  json missing = s3_cfg("ork-no-such-bucket");
  missing["create_bucket"] = false;
  missing["secret_access_key"] = "very-secret-value";
  auto s = open("ork-object-s3", missing);
  std::string msg;
  EXPECT_EQ(code_of([&] { (void)s->get("a"); }, &msg), ORK_ERR_INVALID);
  EXPECT_NE(msg.find("NoSuchBucket"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("very-secret-value"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { s->put("a", "x"); }), ORK_ERR_INVALID);

  json down = s3_cfg("ork-any");
  down["endpoint"] = "http://127.0.0.1:1";
  down["create_bucket"] = false;
  down["max_attempts"] = 2;
  down["timeout_ms"] = 500;
  auto d = open("ork-object-s3", down);
  EXPECT_EQ(code_of([&] { (void)d->get("a"); }), ORK_ERR_UNAVAILABLE);

  EXPECT_NE(load_error("ork-object-s3", {{"endpoint", "http://x"}}).find("\"bucket\""), std::string::npos);
  EXPECT_NE(load_error("ork-object-s3", {{"bucket", "abc"}, {"bogus", 1}}).find("unknown config field \"bogus\""),
            std::string::npos);
  EXPECT_NE(load_error("ork-object-s3", {{"bucket", "abc"}, {"addressing", "dns"}}).find("addressing"),
            std::string::npos);
  EXPECT_NE(load_error("ork-object-s3", {{"bucket", "abc"}, {"part_size", 1024}}).find("part_size"), std::string::npos);
}

// ---- Azure (azurite)

std::string azurite_blob_endpoint() {
  return emulator_file("endpoint") + "/devstoreaccount1";
}

TEST(Azure, ConnectionStringAndSasTokens) {
  std::string cs =
      "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + std::string(ork::common::kAzuriteKey) +
      ";BlobEndpoint=" + azurite_blob_endpoint() + ";";
  auto keyed =
      open("ork-object-azure", {{"connection_string", cs}, {"container", "ork-sas"}, {"create_container", true}});
  std::string k = ns() + "via key.txt";
  keyed->put(k, "signed with SharedKey");

  int64_t in_an_hour = ork::common::now_epoch_ms() + 3600 * 1000;
  std::string full =
      ork::common::azure_account_sas("devstoreaccount1", ork::common::kAzuriteKey, "b", "sco", "racwdl", in_an_hour);
  auto sas = open("ork-object-azure",
                  {{"connection_string", "BlobEndpoint=" + azurite_blob_endpoint() + ";SharedAccessSignature=" + full},
                   {"container", "ork-sas"}});
  EXPECT_EQ(sas->get(k).value_or(""), "signed with SharedKey");
  sas->put(k + ".sas", "written with a SAS");
  EXPECT_EQ(keyed->get(k + ".sas").value_or(""), "written with a SAS");
  EXPECT_EQ(sas->list(k).size(), 2u);
  sas->del(k + ".sas");

  std::string read_only =
      ork::common::azure_account_sas("devstoreaccount1", ork::common::kAzuriteKey, "b", "sco", "rl", in_an_hour);
  auto ro = open("ork-object-azure",
                 {{"endpoint", azurite_blob_endpoint()}, {"sas_token", "?" + read_only}, {"container", "ork-sas"}});
  EXPECT_EQ(ro->get(k).value_or(""), "signed with SharedKey");
  EXPECT_EQ(code_of([&] { ro->put(k, "refused"); }), ORK_ERR_INVALID);
  EXPECT_EQ(keyed->get(k).value_or(""), "signed with SharedKey");

  std::string wrong_key = ork::common::base64_encode(std::string(64, 'k'));
  auto wrong = open("ork-object-azure", {{"account", "devstoreaccount1"},
                                         {"account_key", wrong_key},
                                         {"endpoint", azurite_blob_endpoint()},
                                         {"container", "ork-sas"}});
  std::string msg;
  EXPECT_EQ(code_of([&] { (void)wrong->get(k); }, &msg), ORK_ERR_INVALID);
  EXPECT_EQ(msg.find(wrong_key), std::string::npos);
  EXPECT_NE(load_error("ork-object-azure", {{"connection_string", "AccountName=x"}, {"container", "abc"}})
                .find("AccountKey or SharedAccessSignature"),
            std::string::npos);
  EXPECT_NE(load_error("ork-object-azure", {{"connection_string", cs}, {"container", "Bad_Name"}}).find("container"),
            std::string::npos);
}

TEST(Azure, SmallBlocksAndConditionalBlockList) {
  auto s = open("ork-object-azure", {{"account", "devstoreaccount1"},
                                     {"account_key", ork::common::kAzuriteKey},
                                     {"endpoint", azurite_blob_endpoint()},
                                     {"container", "ork-blocks"},
                                     {"create_container", true},
                                     {"block_threshold", 1},
                                     {"block_size", 65536}});
  std::string k = ns() + "blocks.bin", data;
  for (int i = 0; i < 300 * 1024 + 7; ++i) data.push_back(static_cast<char>((i * 31) & 0xff));
  s->put(k, data, {{"if_none_match", true}});
  EXPECT_TRUE(s->get(k).value_or("") == data);
  EXPECT_EQ(code_of([&] { s->put(k, "other", {{"if_none_match", true}}); }), ORK_ERR_CONFLICT);
  s->put(k, "x");  // overwrite through blocks again
  EXPECT_EQ(s->get(k).value_or(""), "x");
}

// ---- GCS (tests/fakes/gcs_fake.py)

json gcs_cfg() {
  return {{"bucket", "ork-gcs-test"},
          {"endpoint", emulator_file("endpoint")},
          {"create_bucket", true},
          {"project", "ork-test"}};
}

json fake_call(const std::string& method, const std::string& path, const json& body = nullptr) {
  ork::common::HttpClient http;
  std::string b = body.is_null() ? "" : body.dump();
  ork::common::HttpRequest req{method, emulator_file("endpoint") + path, {{"Content-Type", "application/json"}}, b, ""};
  auto r = http.send(req);
  return json::parse(r.body);
}

TEST(Gcs, StorageEmulatorHostSelectsTheEndpoint) {
  std::string host = emulator_file("endpoint").substr(7);  // host:port, as the Google libraries take it
  ScopedEnv e("STORAGE_EMULATOR_HOST", host);
  json cfg = gcs_cfg();
  cfg.erase("endpoint");
  auto s = open("ork-object-gcs", cfg);
  std::string k = ns() + "emu.txt";
  s->put(k, "via STORAGE_EMULATOR_HOST");
  EXPECT_EQ(open("ork-object-gcs", gcs_cfg())->get(k).value_or(""), "via STORAGE_EMULATOR_HOST");
}

TEST(Gcs, RetriesInjected503And429ThenGivesUp) {
  auto s = open("ork-object-gcs", gcs_cfg());
  std::string k = ns() + "retry.txt";
  int before = fake_call("GET", "/_fake/stats")["requests"];
  fake_call("POST", "/_fake/faults", {{"status", 503}, {"count", 2}, {"match", "/o"}});
  s->put(k, "after two 503s");
  fake_call("POST", "/_fake/faults", {{"status", 429}, {"count", 1}, {"match", "/o/"}});
  EXPECT_EQ(s->get(k).value_or(""), "after two 503s");
  json stats = fake_call("GET", "/_fake/stats");
  EXPECT_EQ(stats["faults_left"], 0);
  EXPECT_GE(stats["requests"].get<int>() - before, 5);  // 3 puts + 2 gets (+ the stats/faults calls)

  json once = gcs_cfg();
  once["max_attempts"] = 1;
  auto s1 = open("ork-object-gcs", once);
  fake_call("POST", "/_fake/faults", {{"status", 503}, {"count", 1}, {"match", "/o/"}});
  EXPECT_EQ(code_of([&] { (void)s1->get(k); }), ORK_ERR_UNAVAILABLE);
  EXPECT_EQ(s1->get(k).value_or(""), "after two 503s");
}

TEST(Gcs, ResumableUploadInSmallChunks) {
  json cfg = gcs_cfg();
  cfg["resumable_threshold"] = 0;
  cfg["chunk_size"] = 262144;
  auto s = open("ork-object-gcs", cfg);
  std::string k = ns() + "chunks.bin", data;
  for (int i = 0; i < (1 << 20) + 1; ++i) data.push_back(static_cast<char>((i * 7) & 0xff));
  s->put(k, data, {{"if_none_match", true}});
  EXPECT_TRUE(s->get(k).value_or("") == data);
  EXPECT_EQ(code_of([&] { s->put(k, "again", {{"if_none_match", true}}); }), ORK_ERR_CONFLICT);
  // A fault in the middle of the session: the chunk is resent and the object is still whole.
  fake_call("POST", "/_fake/faults", {{"status", 503}, {"count", 1}, {"match", "/upload/"}});
  s->put(k, data.substr(3));
  EXPECT_TRUE(s->get(k).value_or("") == data.substr(3));
  EXPECT_NE(load_error("ork-object-gcs", {{"bucket", "abc"}, {"chunk_size", 300000}}).find("256 KiB"),
            std::string::npos);
}

TEST(Gcs, ConditionalCreateWhoseAnswerWasLostIsStillOurs) {
  auto s = open("ork-object-gcs", gcs_cfg());
  std::string k = ns() + "lost-answer.json";
  // The upload is committed, then answered 503; the retry meets 412 and the plugin finds its own bytes there.
  fake_call("POST", "/_fake/faults", {{"status", 503}, {"count", 1}, {"match", "/upload/"}, {"after", true}});
  s->put(k, R"({"mine": true})", {{"if_none_match", true}});
  EXPECT_EQ(s->get(k).value_or(""), R"({"mine": true})");
  EXPECT_EQ(fake_call("GET", "/_fake/stats")["faults_left"], 0);
  // Someone else's object under the same lost-answer pattern stays a conflict.
  std::string other = ns() + "lost-other.json";
  s->put(other, "theirs");
  fake_call("POST", "/_fake/faults", {{"status", 503}, {"count", 1}, {"match", "/upload/"}, {"after", true}});
  EXPECT_EQ(code_of([&] { s->put(other, "mine", {{"if_none_match", true}}); }), ORK_ERR_CONFLICT);
  EXPECT_EQ(s->get(other).value_or(""), "theirs");
}

// A fresh RSA key as a service-account JSON key file whose token_uri is the fake's /token; the fake is told to
// trust the public key, so the whole exchange (RS256 JWT -> access token -> bearer on every request) is checked.
std::string service_account_key(const std::string& dir) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(EVP_RSA_gen(2048), EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(b.get(), k.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* p = nullptr;
  long len = BIO_get_mem_data(b.get(), &p);
  std::string pem(p, static_cast<size_t>(len));
  BIGNUM *n = nullptr, *e = nullptr;
  EVP_PKEY_get_bn_param(k.get(), OSSL_PKEY_PARAM_RSA_N, &n);
  EVP_PKEY_get_bn_param(k.get(), OSSL_PKEY_PARAM_RSA_E, &e);
  char* nh = BN_bn2hex(n);
  fake_call("POST", "/_fake/trust", {{"n", nh}, {"e", BN_get_word(e)}});
  OPENSSL_free(nh);
  BN_free(n);
  BN_free(e);
  std::string path = dir + "/sa.json";
  t::write_file(path, json{{"type", "service_account"},
                           {"project_id", "ork-test"},
                           {"private_key_id", "k1"},
                           {"private_key", pem},
                           {"client_email", "ork@ork-test.iam.gserviceaccount.com"},
                           {"token_uri", emulator_file("endpoint") + "/token"}}
                          .dump());
  return path;
}

TEST(Gcs, ServiceAccountKeyAndMetadataServerTokens) {
  fake_call("POST", "/_fake/auth", {{"bucket", "ork-gcs-auth"}});
  t::TempDir d;
  json cfg = gcs_cfg();
  cfg["bucket"] = "ork-gcs-auth";
  cfg["credentials_file"] = service_account_key(d.str());
  cfg.erase("project");  // taken from the key's project_id
  auto s = open("ork-object-gcs", cfg);
  std::string k = ns() + "authed.txt";
  s->put(k, "with a service-account token");
  EXPECT_EQ(s->get(k).value_or(""), "with a service-account token");

  json anon = gcs_cfg();
  anon["bucket"] = "ork-gcs-auth";
  anon["create_bucket"] = false;
  std::string msg;
  EXPECT_EQ(code_of([&] { (void)open("ork-object-gcs", anon)->get(k); }, &msg), ORK_ERR_INVALID);
  EXPECT_NE(msg.find("401"), std::string::npos) << msg;

  ScopedEnv meta("GCE_METADATA_HOST", emulator_file("endpoint").substr(7));
  ScopedEnv no_key("GOOGLE_APPLICATION_CREDENTIALS", "");
  anon["anonymous"] = false;  // no key given: the metadata server
  EXPECT_EQ(open("ork-object-gcs", anon)->get(k).value_or(""), "with a service-account token");

  // A key the token endpoint does not trust: the exchange fails with Google's error text.
  t::TempDir d2;
  std::string untrusted = d2 / "sa.json";
  json key = json::parse(t::read_file(cfg["credentials_file"]));
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> other(EVP_RSA_gen(2048), EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(b.get(), other.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* p = nullptr;
  long len = BIO_get_mem_data(b.get(), &p);
  key["private_key"] = std::string(p, static_cast<size_t>(len));
  t::write_file(untrusted, key.dump());
  cfg["credentials_file"] = untrusted;
  cfg["create_bucket"] = false;
  EXPECT_EQ(code_of([&] { (void)open("ork-object-gcs", cfg)->get(k); }, &msg), ORK_ERR_UNAVAILABLE);
  EXPECT_NE(msg.find("Invalid JWT Signature"), std::string::npos) << msg;
}

}  // namespace
