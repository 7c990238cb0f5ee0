// env_file parsing, the local secret source (environment, 0600 file) and masking of secret values.
#include "core/secrets.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <random>

#include "support/test_support.hpp"

using ork::json;
using ork::Masker;
using ork::MaskStream;
using ork::parse_dotenv;
using ork::test::TempDir;
using ork::test::write_file;

namespace {

std::map<std::string, std::string> parse(const std::string& text, bool secret_names = false) {
  std::map<std::string, std::string> out;
  for (const auto& e : parse_dotenv(text, secret_names)) out[e.key] = e.value;
  return out;
}

std::string dotenv_error(const std::string& text) {
  try {
    parse_dotenv(text);
  } catch (const ork::DotenvError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(Dotenv, Syntax) {
  auto m = parse(
      "# comment\n"
      "\n"
      "PLAIN=value\n"
      "export EXPORTED=yes\n"
      "  SPACED =  trimmed value   \n"
      "COMMENTED=abc # a comment\n"
      "HASH=a#b\n"
      "SINGLE='literal $HOME \\n # kept'\n"
      "DOUBLE=\"line1\\nline2\\t\\\"q\\\"\"\n"
      "MULTI=\"first\n"
      "second\"\n"
      "EMPTY=\n"
      "REPEATED=1\n"
      "REPEATED=2\n"
      "CRLF=x\r\n");
  EXPECT_EQ(m["PLAIN"], "value");
  EXPECT_EQ(m["EXPORTED"], "yes");
  EXPECT_EQ(m["SPACED"], "trimmed value");
  EXPECT_EQ(m["COMMENTED"], "abc");
  EXPECT_EQ(m["HASH"], "a#b");
  EXPECT_EQ(m["SINGLE"], "literal $HOME \\n # kept");
  EXPECT_EQ(m["DOUBLE"], "line1\nline2\t\"q\"");
  EXPECT_EQ(m["MULTI"], "first\nsecond");
  EXPECT_EQ(m["EMPTY"], "");
  EXPECT_EQ(m["REPEATED"], "2");
  EXPECT_EQ(m["CRLF"], "x");
  EXPECT_EQ(m.size(), 11u);
}

TEST(Dotenv, ErrorsNameTheLine) {
  EXPECT_EQ(dotenv_error("A=1\nnot a pair\n"), "line 2: expected KEY=value, got 'not a pair'");
  EXPECT_EQ(dotenv_error("1BAD=x\n"),
            "line 1: invalid name '1BAD' (letters, digits and '_', not starting with a digit)");
  EXPECT_EQ(dotenv_error("A=ok\nB=\"open\nstill open\n"), "line 2: unterminated \"quoted value\"");
  EXPECT_EQ(dotenv_error("A='x' trailing\n"), "line 1: unexpected text after the closing quote: 'trailing'");
  EXPECT_EQ(dotenv_error("a/b=1\n").substr(0, 24), "line 1: invalid name 'a/");
  // Secret names may carry path-like characters.
  EXPECT_EQ(parse("projects/p/secrets/api-key=v\n", true)["projects/p/secrets/api-key"], "v");
}

TEST(SecretSource, EnvironmentThenPrivateFile) {
  TempDir dir;
  const std::string file = dir / "secrets.env";
  write_file(file, "api_key=from-file\nprojects/p/db-password=pw\n");
  ::chmod(file.c_str(), 0600);
  ork::SecretSource src({{"file", "secrets.env"}}, dir.str());
  EXPECT_EQ(src.file(), file);
  EXPECT_EQ(src.env_name("projects/p/db-password"), "ORK_SECRET_PROJECTS_P_DB_PASSWORD");
  EXPECT_EQ(src.get("api_key"), "from-file");
  EXPECT_EQ(src.get("projects/p/db-password"), "pw");
  EXPECT_EQ(src.get("nope"), std::nullopt);
  ::setenv("ORK_SECRET_API_KEY", "from-env", 1);
  EXPECT_EQ(src.get("api_key"), "from-env");
  ::unsetenv("ORK_SECRET_API_KEY");
  // The file is re-read when it changes.
  write_file(file, "api_key=rotated-value\n");
  EXPECT_EQ(src.get("api_key"), "rotated-value");
  try {
    src.require("missing_one");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "secret 'missing_one' not found (set ORK_SECRET_MISSING_ONE in the host's "
              "environment or add 'missing_one=...' to " +
                  file + ")");
  }
}

TEST(SecretSource, RefusesAFileOthersCanRead) {
  TempDir dir;
  const std::string file = dir / "secrets.env";
  write_file(file, "k=v\n");
  ::chmod(file.c_str(), 0644);
  ork::SecretSource src({{"file", file}}, "");
  try {
    src.get("k");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "secrets file " + file + " is readable by group or others (mode 0644); run: chmod 600 " + file);
  }
  ::chmod(file.c_str(), 0600);
  EXPECT_EQ(src.get("k"), "v");
  // No file at all holds no secrets; no error.
  EXPECT_EQ(ork::SecretSource({{"file", dir / "absent.env"}}, "").get("k"), std::nullopt);
}

TEST(Masking, TextAndJson) {
  Masker m({"s3cret", "s3cret-longer", "", "multi\nline"});
  EXPECT_EQ(m.mask(std::string_view("a s3cret-longer and s3cret; s3crets")), "a *** and ***; ***s");
  EXPECT_EQ(m.mask(std::string_view("only line here")), "only *** here");
  EXPECT_EQ(m.mask(std::string_view("multi\nline")), "***");
  json j = {{"k", "x s3cret"}, {"s3cret", {1, "s3cret", true}}};
  EXPECT_EQ(m.mask(j), json({{"k", "x ***"}, {"***", {1, "***", true}}}));
  EXPECT_TRUE(Masker({"", "***"}).empty());
}

TEST(Masking, StreamHoldsBackPossibleSecretStarts) {
  Masker m({"hunter2", "pass"});
  MaskStream s(m);
  EXPECT_EQ(s.feed("my pw is hun"), "my pw is ");  // "hun" may start "hunter2"
  EXPECT_EQ(s.feed("ter2 ok"), "*** ok");
  EXPECT_EQ(s.feed(" hunt"), " ");
  EXPECT_EQ(s.feed("ing"), "hunting");
  EXPECT_EQ(s.feed(" pa"), " ");
  EXPECT_EQ(s.finish(), "pa");  // the end of the stream: nothing more can complete it
}

TEST(Masking, StreamNeverLeaksWhateverTheChunking) {
  const std::vector<std::string> secrets = {"Zr7-secret-VALUE", "abcab", "xyz"};
  Masker m(secrets);
  std::string text;
  std::mt19937 rng(7);
  const std::string alphabet = "abcxyz -Zr7sV\n";
  for (int i = 0; i < 4000; ++i) {
    if (rng() % 50 == 0) text += secrets[rng() % secrets.size()];
    text += alphabet[rng() % alphabet.size()];
  }
  for (int round = 0; round < 50; ++round) {
    MaskStream s(m);
    std::string out;
    for (size_t pos = 0; pos < text.size();) {
      size_t n = 1 + rng() % 37;
      out += s.feed(std::string_view(text).substr(pos, n));
      pos += n;
    }
    out += s.finish();
    for (const auto& sec : secrets) EXPECT_EQ(out.find(sec), std::string::npos) << "round " << round;
    EXPECT_EQ(out, m.mask(std::string_view(text))) << "round " << round;
  }
}
