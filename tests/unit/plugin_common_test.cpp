// plugins/common: SigV4 against AWS's published vectors (tests/unit/fixtures/sigv4/vectors.json), the AWS
// credentials chain (env, profile files, a fake container endpoint and IMDSv2), encodings, URL and XML helpers, Azure
// connection strings and SharedKey, and RS256 JWTs verified with the matching public key.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "aws_credentials.hpp"
#include "azure_storage.hpp"
#include "crypto.hpp"
#include "google_auth.hpp"
#include "sigv4.hpp"
#include "support/test_support.hpp"
#include "web_util.hpp"

using namespace ork::common;
using nlohmann::json;
namespace t = ork::test;

namespace {

json load_vectors() {
  return json::parse(t::read_file(std::string(ORK_SOURCE_DIR) + "/tests/unit/fixtures/sigv4/vectors.json"));
}

EnvFn env_of(std::map<std::string, std::string> m) {
  return [m](const std::string& n) -> std::optional<std::string> {
    auto it = m.find(n);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

TEST(SigV4, PublishedVectors) {
  json doc = load_vectors();
  ASSERT_GE(doc["vectors"].size(), 13u);
  for (const auto& v : doc["vectors"]) {
    SCOPED_TRACE(v["name"].get<std::string>());
    bool s3 = v["source"] == "s3-docs";
    AwsCredentials c;
    c.access_key_id = s3 ? "AKIAIOSFODNN7EXAMPLE" : "AKIDEXAMPLE";
    c.secret_access_key = s3 ? "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" : "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    SigV4Input in;
    in.method = v["method"];
    in.path = v["path"];
    in.query = v["query"];
    for (const auto& h : v["headers"]) in.headers.emplace_back(h[0], h[1]);
    in.payload_hash = sha256_hex(v["body"].get<std::string>());
    in.amz_date = v.value("amz_date", "20150830T123600Z");
    in.region = "us-east-1";
    in.service = v.value("service", "service");
    SigV4Result r = sigv4_sign(in, c);
    EXPECT_EQ(r.signed_headers, v["signed_headers"]);
    EXPECT_EQ(r.signature, v["signature"]) << r.canonical_request;
    if (v.contains("canonical_request")) {
      EXPECT_EQ(r.canonical_request, v["canonical_request"]);
    }
    if (v.contains("canonical_request_sha256")) {
      EXPECT_EQ(sha256_hex(r.canonical_request), v["canonical_request_sha256"]);
    }
    if (v.contains("string_to_sign")) {
      EXPECT_EQ(r.string_to_sign, v["string_to_sign"]);
    }
    EXPECT_EQ(r.authorization, "AWS4-HMAC-SHA256 Credential=" + c.access_key_id + "/" + r.credential_scope +
                                   ", SignedHeaders=" + r.signed_headers + ", Signature=" + r.signature);
  }
}

TEST(SigV4, SignRequestMatchesTheS3GetObjectExample) {
  HttpRequest req;
  req.url = "https://examplebucket.s3.amazonaws.com/test.txt";
  req.set_header("Range", "bytes=0-9");
  req.set_header("User-Agent", "not signed");
  AwsCredentials c;
  c.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  sigv4_sign_request(req, c, "us-east-1", "s3", parse_iso8601("2013-05-24T00:00:00Z"), true);
  EXPECT_EQ(req.header("x-amz-date"), "20130524T000000Z");
  EXPECT_EQ(req.header("host"), "examplebucket.s3.amazonaws.com");
  EXPECT_EQ(req.header("authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  // A session token is sent and signed.
  HttpRequest r2;
  r2.url = "https://sts.example/";
  c.session_token = "tok";
  sigv4_sign_request(r2, c, "us-east-1", "sts", parse_iso8601("2013-05-24T00:00:00Z"), false);
  EXPECT_EQ(r2.header("x-amz-security-token"), "tok");
  EXPECT_NE(r2.header("authorization").find("SignedHeaders=host;x-amz-date;x-amz-security-token,"), std::string::npos);
  EXPECT_EQ(r2.header("x-amz-content-sha256"), "");
}

TEST(SigV4, CanonicalQuerySortsAndReencodes) {
  EXPECT_EQ(sigv4_canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
  EXPECT_EQ(sigv4_canonical_query("prefix=a%20b/c&list-type=2"), "list-type=2&prefix=a%20b%2Fc");
  EXPECT_EQ(sigv4_canonical_query("uploads"), "uploads=");
  EXPECT_EQ(sigv4_canonical_query(""), "");
}

TEST(Crypto, KnownAnswers) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // RFC 4231 test case 2.
  EXPECT_EQ(hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // RFC 4648 section 10.
  const char* plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char* enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(base64_encode(plain[i]), enc[i]);
    EXPECT_EQ(base64_decode(enc[i]), plain[i]);
  }
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_THROW(base64_decode("a*b"), std::invalid_argument);
  EXPECT_EQ(random_hex(8).size(), 16u);
  Sha256Stream s;
  s.update("a");
  s.update("bc");
  EXPECT_EQ(s.hex_digest(), sha256_hex("abc"));
}

TEST(WebUtil, EncodingUrlsDatesXml) {
  EXPECT_EQ(uri_encode("a b/ü+~", false), "a%20b%2F%C3%BC%2B~");
  EXPECT_EQ(uri_encode("a b/ü", true), "a%20b/%C3%BC");
  EXPECT_EQ(uri_decode("a%20b%2F%C3%BC%zz+"), "a b/ü%zz+");
  EXPECT_EQ(uri_decode("a+b", true), "a b");
  Url u = parse_url("https://Host.example:8443/p/a%20th?x=1&y");
  EXPECT_EQ(u.scheme, "https");
  EXPECT_EQ(u.host, "Host.example");
  EXPECT_EQ(u.port, "8443");
  EXPECT_EQ(u.path, "/p/a%20th");
  EXPECT_EQ(u.query, "x=1&y");
  EXPECT_EQ(parse_url("http://h:80").authority(), "h");
  EXPECT_EQ(parse_url("127.0.0.1:9000").str(), "http://127.0.0.1:9000/");
  EXPECT_THROW(parse_url("ftp://x"), std::invalid_argument);
  EXPECT_THROW(parse_url("http://h:port/"), std::invalid_argument);
  int64_t ms = parse_iso8601("2015-08-30T12:36:00Z");
  EXPECT_EQ(amz_date(ms), "20150830T123600Z");
  EXPECT_EQ(rfc1123_date(ms), "Sun, 30 Aug 2015 12:36:00 GMT");
  EXPECT_EQ(iso8601_seconds(ms), "2015-08-30T12:36:00Z");
  EXPECT_EQ(parse_iso8601("2015-08-30T12:36:00.250Z"), ms + 250);
  EXPECT_EQ(parse_iso8601("yesterday"), -1);
  std::string xml =
      "<R><Key>a&amp;b &lt;c&gt; &#233;&#x4E2D;</Key><Key/><Key>x</Key><IsTruncated>true</IsTruncated></R>";
  EXPECT_EQ(xml_all(xml, "Key"), (std::vector<std::string>{"a&b <c> é中", "", "x"}));
  EXPECT_EQ(xml_first(xml, "IsTruncated"), "true");
  EXPECT_EQ(xml_first(xml, "Missing"), "");
  EXPECT_EQ(xml_escape("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
  EXPECT_EQ(form_encode({{"a b", "c&d"}, {"e", ""}}), "a%20b=c%26d&e=");
}

// ---- AWS credentials chain

TEST(AwsCredentialsChain, ExplicitThenEnvironment) {
  AwsCredentialsOptions o;
  o.access_key_id = "cfg-id";
  o.secret_access_key = "cfg-secret";
  o.env = env_of({{"AWS_ACCESS_KEY_ID", "env-id"}, {"AWS_SECRET_ACCESS_KEY", "env-secret"}});
  EXPECT_EQ(AwsCredentialsProvider(o).get().access_key_id, "cfg-id");
  o.access_key_id.clear();
  o.secret_access_key.clear();
  o.env = env_of({{"AWS_ACCESS_KEY_ID", "env-id"},
                  {"AWS_SECRET_ACCESS_KEY", "env-secret"},
                  {"AWS_SESSION_TOKEN", "env-token"},
                  {"AWS_REGION", "eu-west-3"}});
  AwsCredentialsProvider p(o);
  auto c = p.get();
  EXPECT_EQ(c.access_key_id, "env-id");
  EXPECT_EQ(c.secret_access_key, "env-secret");
  EXPECT_EQ(c.session_token, "env-token");
  EXPECT_EQ(c.source, "env");
  EXPECT_EQ(p.region_hint(), "eu-west-3");
  AwsCredentialsOptions half;
  half.access_key_id = "only-id";
  EXPECT_THROW(AwsCredentialsProvider(half).get(), std::runtime_error);
}

TEST(AwsCredentialsChain, ProfilesFromSharedFiles) {
  t::TempDir d;
  t::write_file(d / ".aws/credentials",
                "[default]\naws_access_key_id = def-id\naws_secret_access_key = def-secret\n\n"
                "# comment\n[work]\naws_access_key_id=work-id\naws_secret_access_key=work-secret\n"
                "aws_session_token=work-token\n");
  t::write_file(d / ".aws/config",
                "[default]\nregion = us-west-2\n[profile work]\nregion=ap-south-1\n"
                "[profile cfgonly]\naws_access_key_id=c-id\naws_secret_access_key=c-secret\n");
  AwsCredentialsOptions o;
  o.env = env_of({{"HOME", d.str()}, {"AWS_EC2_METADATA_DISABLED", "true"}});
  AwsCredentialsProvider def(o);
  EXPECT_EQ(def.get().access_key_id, "def-id");
  EXPECT_EQ(def.get().source, "profile default");
  EXPECT_EQ(def.region_hint(), "us-west-2");
  o.env = env_of({{"HOME", d.str()}, {"AWS_PROFILE", "work"}, {"AWS_EC2_METADATA_DISABLED", "true"}});
  AwsCredentialsProvider work(o);
  EXPECT_EQ(work.get().session_token, "work-token");
  EXPECT_EQ(work.region_hint(), "ap-south-1");
  o.profile = "cfgonly";
  EXPECT_EQ(AwsCredentialsProvider(o).get().access_key_id, "c-id");
  o.profile = "nope";
  try {
    AwsCredentialsProvider(o).get();
    FAIL() << "no credentials expected";
  } catch (const std::runtime_error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("profile 'nope'"), std::string::npos) << m;
    EXPECT_NE(m.find("AWS_EC2_METADATA_DISABLED"), std::string::npos) << m;
  }
}

class MetadataFake {
 public:
  explicit MetadataFake(const std::string& token = "") {
    std::string py =
        std::string(std::getenv("HOME") ? std::getenv("HOME") : "/root") + "/.pyenv/versions/3.11.7/bin/python3";
    if (!t::fs::exists(py)) py = "python3";
    std::string cmd = py + " " + std::string(ORK_SOURCE_DIR) + "/tests/fakes/aws_metadata.py --port-file " +
                      (dir_ / "port") + (token.empty() ? "" : " --token " + token);
    proc_ = std::make_unique<t::Process>(cmd, dir_ / "log");
    if (!t::eventually([&] { return t::fs::exists(dir_ / "port"); }, std::chrono::seconds(20)))
      throw std::runtime_error("aws_metadata.py did not start: " + t::read_file(dir_ / "log"));
    base_ = "http://127.0.0.1:" + t::read_file(dir_ / "port");
  }
  const std::string& base() const { return base_; }

 private:
  t::TempDir dir_;
  std::unique_ptr<t::Process> proc_;
  std::string base_;
};

TEST(AwsCredentialsChain, ContainerEndpointWithAuthorizationToken) {
  MetadataFake fake("secret-token");
  t::TempDir d;
  t::write_file(d / "token", "secret-token\n");
  AwsCredentialsOptions o;
  o.env = env_of({{"HOME", d.str()},
                  {"AWS_CONTAINER_CREDENTIALS_FULL_URI", fake.base() + "/creds"},
                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", d / "token"}});
  auto c = AwsCredentialsProvider(o).get();
  EXPECT_EQ(c.access_key_id, "container-AKID");
  EXPECT_EQ(c.session_token, "container-TOKEN");
  EXPECT_EQ(c.source, "container");
  EXPECT_EQ(c.expires_ms, parse_iso8601("2099-01-01T00:00:00Z"));
  o.env = env_of({{"HOME", d.str()},
                  {"AWS_CONTAINER_CREDENTIALS_FULL_URI", fake.base() + "/creds"},
                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong"}});
  EXPECT_THROW(AwsCredentialsProvider(o).get(), std::runtime_error);
}

TEST(AwsCredentialsChain, InstanceMetadataV2) {
  MetadataFake fake;
  t::TempDir d;
  AwsCredentialsOptions o;
  o.env = env_of({{"HOME", d.str()}, {"AWS_EC2_METADATA_SERVICE_ENDPOINT", fake.base() + "/"}});
  AwsCredentialsProvider p(o);
  auto c = p.get();
  EXPECT_EQ(c.access_key_id, "imds-AKID");
  EXPECT_EQ(c.secret_access_key, "imds-SECRET");
  EXPECT_EQ(c.source, "imds");
  // Unreachable metadata: an error that names what was tried.
  o.env = env_of({{"HOME", d.str()}, {"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1"}});
  o.metadata_timeout = std::chrono::milliseconds(300);
  try {
    AwsCredentialsProvider(o).get();
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("instance metadata at http://127.0.0.1:1"), std::string::npos) << e.what();
  }
}

// ---- Azure

TEST(Azure, ConnectionStrings) {
  auto dev = parse_azure_connection_string("UseDevelopmentStorage=true");
  EXPECT_EQ(dev.account, "devstoreaccount1");
  EXPECT_EQ(dev.key, kAzuriteKey);
  EXPECT_EQ(dev.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
  auto full = parse_azure_connection_string(
      "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QUJD;EndpointSuffix=core.chinacloudapi.cn");
  EXPECT_EQ(full.blob_endpoint, "https://acct.blob.core.chinacloudapi.cn");
  EXPECT_EQ(full.key, "QUJD");
  auto azurite = parse_azure_connection_string(
      "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + std::string(kAzuriteKey) +
      ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;");
  EXPECT_EQ(azurite.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
  auto sas = parse_azure_connection_string(
      "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=?sv=1&sig=x");
  EXPECT_EQ(sas.account, "acct");
  EXPECT_EQ(sas.sas, "sv=1&sig=x");
  EXPECT_EQ(sas.blob_endpoint, "https://acct.blob.core.windows.net");
  EXPECT_THROW(parse_azure_connection_string("AccountName=a"), std::invalid_argument);
  EXPECT_THROW(parse_azure_connection_string("AccountName=a;AccountKey=***"), std::invalid_argument);
  EXPECT_THROW(parse_azure_connection_string("AccountName=a;Bogus=1;AccountKey=QUJD"), std::invalid_argument);
  try {
    parse_azure_connection_string("AccountName=a;AccountKey=%%secret%%");
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos) << "the key leaked into the error";
  }
}

TEST(Azure, SharedKeyStringToSign) {
  HttpRequest req;
  req.method = "PUT";
  req.url = "http://127.0.0.1:10000/devstoreaccount1/c/a%20b?comp=block&blockid=QQ%3D%3D";
  std::string body = "hello";
  req.body = body;
  req.set_header("Content-Type", "text/plain");
  req.set_header("x-ms-version", "2021-08-06");
  req.set_header("X-MS-Blob-Type", "BlockBlob");
  req.set_header("If-None-Match", "*");
  req.set_header("x-ms-date", "Sun, 30 Aug 2015 12:36:00 GMT");
  EXPECT_EQ(azure_shared_key_string_to_sign(req, "devstoreaccount1"),
            "PUT\n\n\n5\n\ntext/plain\n\n\n\n*\n\n\n"
            "x-ms-blob-type:BlockBlob\nx-ms-date:Sun, 30 Aug 2015 12:36:00 GMT\nx-ms-version:2021-08-06\n"
            "/devstoreaccount1/devstoreaccount1/c/a%20b\nblockid:QQ==\ncomp:block");
  azure_sign_shared_key(req, "devstoreaccount1", kAzuriteKey, parse_iso8601("2015-08-30T12:36:00Z"));
  std::string expect =
      base64_encode(hmac_sha256(base64_decode(kAzuriteKey), azure_shared_key_string_to_sign(req, "devstoreaccount1")));
  EXPECT_EQ(req.header("authorization"), "SharedKey devstoreaccount1:" + expect);
  std::string sas = azure_account_sas("acct", "QUJD", "b", "sco", "rl", parse_iso8601("2030-01-01T00:00:00Z"));
  EXPECT_NE(sas.find("sv=2019-12-12&ss=b&srt=sco&sp=rl&se=2030-01-01T00%3A00%3A00Z&spr=https%2Chttp&sig="),
            std::string::npos)
      << sas;
}

// ---- Google

struct RsaKey {
  std::string private_pem, public_pem;
};
RsaKey make_rsa_key() {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(EVP_RSA_gen(2048), EVP_PKEY_free);
  auto pem = [&](bool priv) {
    std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new(BIO_s_mem()), BIO_free);
    if (priv)
      PEM_write_bio_PrivateKey(b.get(), k.get(), nullptr, nullptr, 0, nullptr, nullptr);
    else
      PEM_write_bio_PUBKEY(b.get(), k.get());
    char* p = nullptr;
    long n = BIO_get_mem_data(b.get(), &p);
    return std::string(p, static_cast<size_t>(n));
  };
  return {pem(true), pem(false)};
}
bool rs256_verify(const std::string& public_pem, const std::string& input, const std::string& sig) {
  std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size())),
                                              BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(PEM_read_bio_PUBKEY(b.get(), nullptr, nullptr, nullptr),
                                                        EVP_PKEY_free);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, k.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
}

TEST(GoogleAuth, Rs256JwtVerifiesWithThePublicKey) {
  RsaKey key = make_rsa_key();
  std::string jwt =
      make_jwt_rs256(R"({"alg":"RS256","typ":"JWT"})", R"({"iss":"sa@p.iam","aud":"x"})", key.private_pem);
  size_t d1 = jwt.find('.'), d2 = jwt.rfind('.');
  ASSERT_NE(d1, d2);
  EXPECT_EQ(base64_decode(jwt.substr(0, d1)), R"({"alg":"RS256","typ":"JWT"})");
  EXPECT_EQ(base64_decode(jwt.substr(d1 + 1, d2 - d1 - 1)), R"({"iss":"sa@p.iam","aud":"x"})");
  std::string sig = base64_decode(jwt.substr(d2 + 1));
  EXPECT_EQ(sig.size(), 256u);
  EXPECT_TRUE(rs256_verify(key.public_pem, jwt.substr(0, d2), sig));
  EXPECT_FALSE(rs256_verify(key.public_pem, jwt.substr(0, d2) + "x", sig));
  EXPECT_THROW(make_jwt_rs256("{}", "{}", "not a key"), std::invalid_argument);
}

TEST(GoogleAuth, KeyFilesAreCheckedAtConstruction) {
  GoogleAuthOptions o;
  o.env = env_of({});
  o.use_metadata_server = false;
  EXPECT_EQ(GoogleCredentials(o).access_token(), "");
  EXPECT_EQ(GoogleCredentials(o).source(), "none");
  o.credentials_json = R"({"type": "service_account", "client_email": "a@b"})";
  EXPECT_THROW(GoogleCredentials{o}, std::runtime_error);
  o.credentials_json = R"({"type": "external_account"})";
  EXPECT_THROW(GoogleCredentials{o}, std::runtime_error);
  o.credentials_json =
      R"({"type": "service_account", "client_email": "sa@p.iam", "private_key": "k", "project_id": "p1"})";
  GoogleCredentials g(o);
  EXPECT_EQ(g.source(), "service_account sa@p.iam");
  EXPECT_EQ(g.project_id(), "p1");
}

}  // namespace
