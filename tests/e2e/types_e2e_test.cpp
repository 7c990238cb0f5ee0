// End-to-end: typed contracts, expressions, env files and secrets through `ork-host` with the embedded default plugins.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "e2e/e2e_support.hpp"

using namespace ork::test;
using ork::json;

namespace {

struct Env {
  TempDir dir;
  std::string home = dir / "home";
  std::string prefix(const std::string& extra = "") const {
    return "ORK_HOME=" + home + " ORK_HEARTBEAT_INTERVAL_MS=200 ORK_CANCEL_GRACE_MS=500 " + extra + " ";
  }
  std::string workflow(const std::string& yaml, const std::string& name = "wf.yaml") const {
    std::string p = dir / name;
    write_file(p, yaml);
    return p;
  }
  CmdResult host(const std::string& args, const std::string& extra = "") const {
    return run(prefix(extra) + kHost + " " + args + " 2>&1");
  }
  json tasks() const {
    json run = last_run(home);
    json out = json::object();
    for (auto& t : run["tasks"]) out[t["task_name"].get<std::string>()] = t;
    out["_run"] = run;
    return out;
  }
};

// Every regular file under `root` whose bytes contain `needle`.
std::vector<std::string> files_containing(const std::string& root, const std::string& needle) {
  std::vector<std::string> hits;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file() && read_file(e.path().string()).find(needle) != std::string::npos)
      hits.push_back(e.path().string());
  return hits;
}

const char* kTypes = R"(
types:
  Listing:
    files: list[str]
    count: int
    generated_at: datetime_utc
  Summary:
    name: str
    size: int
    tags: list[str] = []
)";

}  // namespace

TEST(TypesE2E, TypedRunRendersExpressionsEnvAndDefaults) {
  Env e;
  write_file(e.dir / "settings.env", "REGION=eu-west\nGREETING='hello world'\n");
  auto r = e.host("run " + e.workflow(std::string("name: typed_ok\nenv_file: settings.env\n") + kTypes + R"~(
tasks:
  discover:
    command: |
      echo '{"files": ["a.csv", "bb.csv"], "count": 2, "generated_at": "2024-01-15T10:00:00Z"}'
    output: Listing
  each:
    foreach: discover.files
    input_type:
      item: str
      first: str
      total: int
      mode: str = "fast"
    input:
      first: "{{ discover.files[0] }}"
      total: "{{ discover.count }}"
    env:
      WHO: "{{ ctx.task_name }}#{{ ctx.parallel_index }} of {{ ctx.workflow_name }}"
      ITEM: "{{ item }}"
    output: Summary
    command: |
      printf '{"name": "%s", "size": %s, "who": "%s", "region": "%s", "greeting": "%s", "input": %s}\n' \
        "$ITEM" "${#ITEM}" "$WHO" "$REGION" "$GREETING" "$(cat)"
  report:
    depends_on: [each]
    input_type:
      each: list[Summary]
      run: str
      since: datetime
    input:
      run: "{{ ctx.run_id }}"
      since: "{{ discover.generated_at }}"
    command: cat
)~"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto t = e.tasks();
  const json& each = t["_run"]["tasks"];
  std::vector<json> instances;
  for (const auto& row : each)
    if (row["task_name"] == "each") instances.push_back(row["output"]);
  ASSERT_EQ(instances.size(), 2u);
  EXPECT_EQ(instances[1]["name"], "bb.csv");
  EXPECT_EQ(instances[1]["size"], 6);
  EXPECT_EQ(instances[1]["tags"], json::array());  // output default filled in
  EXPECT_EQ(instances[1]["who"], "each#1 of typed_ok");
  EXPECT_EQ(instances[1]["region"], "eu-west");
  EXPECT_EQ(instances[1]["greeting"], "hello world");
  const json& in = instances[1]["input"];
  EXPECT_EQ(in["item"], "bb.csv");
  EXPECT_EQ(in["first"], "a.csv");
  EXPECT_EQ(in["total"], 2);      // a whole-value expression keeps its JSON type
  EXPECT_EQ(in["mode"], "fast");  // input default filled in before dispatch
  EXPECT_EQ(in["discover"]["count"], 2);
  const json& rep = t["report"]["output"];
  EXPECT_EQ(rep["run"], t["_run"]["id"]);
  EXPECT_EQ(rep["since"], "2024-01-15T10:00:00Z");
  ASSERT_EQ(rep["each"].size(), 2u);
  EXPECT_EQ(rep["each"][0]["name"], "a.csv");
}

TEST(TypesE2E, OutputTypeViolationFailsTheTaskNamingTheField) {
  Env e;
  auto r = e.host("run " + e.workflow(std::string("name: typed_bad_output\n") + kTypes + R"(
tasks:
  discover:
    retries: 1
    command: |
      echo '{"files": ["a.csv", 7], "count": 2, "generated_at": "2024-01-15T10:00:00"}'
    output: Listing
  after:
    depends_on: [discover]
    command: cat
  unchecked:
    command: |
      echo '{"files": 5}'
    output: Listing
    validate_output: false
)"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  auto t = e.tasks();
  EXPECT_EQ(t["discover"]["status"], "failed");
  EXPECT_EQ(t["discover"]["attempt"], 2);  // an output violation is retried like any failure
  const json& err = t["discover"]["error"];
  EXPECT_EQ(err["type"], "output_validation_error");
  EXPECT_EQ(err["message"],
            "task 'discover' (workflow 'typed_bad_output'): output does not match its type Listing: output.files[1]: "
            "expected str, got int 7; output.generated_at: expected datetime_utc, got str \"2024-01-15T10:00:00\"");
  EXPECT_EQ(err["details"]["errors"][0], json({{"path", "output.files[1]"}, {"expected", "str"}, {"actual", "int 7"}}));
  EXPECT_EQ(t["after"]["status"], "skipped");
  EXPECT_EQ(t["unchecked"]["status"], "success");
  EXPECT_NE(
      r.output.find("discover failed (attempt 2/2): task 'discover' (workflow 'typed_bad_output'): output does not "
                    "match"),
      std::string::npos)
      << r.output;
  // ... and `ork-host status` shows it.
  auto st = e.host("status " + t["_run"]["id"].get<std::string>());
  ASSERT_EQ(st.exit_code, 0) << st.output;
  EXPECT_NE(st.output.find("output.files[1]: expected str, got int 7"), std::string::npos) << st.output;

  // An input that does not match (here from the run input) fails before dispatch, without retries.
  r = e.host("run " +
             e.workflow(R"(
name: typed_bad_input
tasks:
  needs:
    retries: 3
    input_type: {n: int, when: date}
    command: cat
)",
                        "in.yaml") +
             " --input n=abc --input when=2024-02-30");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  t = e.tasks();
  EXPECT_EQ(t["needs"]["attempt"], 1);
  EXPECT_EQ(t["needs"]["error"]["type"], "input_validation_error");
  EXPECT_EQ(t["needs"]["error"]["message"],
            "task 'needs' (workflow 'typed_bad_input'): input does not match its type {n: int, when: date}: input.n: "
            "expected int, got str \"abc\"; input.when: expected date, got str \"2024-02-30\"");
  EXPECT_FALSE(fs::exists(e.home + "/objects/runs/" + t["_run"]["id"].get<std::string>() + "/" +
                          t["needs"]["id"].get<std::string>() + "/spec.json"));  // never dispatched
}

TEST(TypesE2E, ValidateReportsMismatchesAndDeployRefusesThem) {
  Env e;
  std::string wf = e.workflow(std::string("name: typed_mismatch\n") + kTypes + R"(
tasks:
  discover:
    command: "true"
    output: Listing
  use:
    input_type:
      count: str
      names: list[int]
    inputs:
      count:
        ref: tasks.discover.output.count
      names:
        ref: tasks.discover.output.files
    command: cat
  other:
    input:
      x: "{{ discover.missing }}"
    command: cat
)");
  auto v = e.host("validate " + wf);
  EXPECT_EQ(v.exit_code, 2) << v.output;
  EXPECT_NE(v.output.find(wf + ":23:14: tasks.use.inputs.count.ref: input 'count' expects str but '{{ discover.count "
                               "}}' is int (task 'discover' output type Listing)"),
            std::string::npos)
      << v.output;
  EXPECT_NE(v.output.find(wf + ":25:14: tasks.use.inputs.names.ref: input 'names' expects list[int] but '{{ "
                               "discover.files }}' is list[str]"),
            std::string::npos)
      << v.output;
  EXPECT_NE(v.output.find(wf + ":29:10: tasks.other.input.x: '{{ discover.missing }}': discover (Listing) has no "
                               "field 'missing' (fields: count, files, generated_at)"),
            std::string::npos)
      << v.output;
  auto d = e.host("deploy " + wf);
  EXPECT_EQ(d.exit_code, 2) << d.output;
  EXPECT_NE(d.output.find("expects str but"), std::string::npos) << d.output;
  auto r = e.host("run " + wf);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(last_run(e.home), json::object());  // nothing ran
}

TEST(TypesE2E, SchemaExportIsValidDraft2020) {
  Env e;
  std::string wf = e.workflow(std::string("name: typed_schema\n") + kTypes + R"(
tasks:
  discover:
    command: "true"
    output: Listing
  each:
    command: "true"
    input_type: {name: str, level: "Literal['debug', 'info'] = 'info'"}
)");
  auto x = e.host("schema export " + wf + " -o " + (e.dir / "schema.json"));
  ASSERT_EQ(x.exit_code, 0) << x.output;
  json schema = json::parse(read_file(e.dir / "schema.json"));
  EXPECT_EQ(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
  for (const char* k : {"Listing", "Summary", "discover.output", "each.input"})
    EXPECT_TRUE(schema["$defs"].contains(k)) << k;
  // A real validator agrees with ours on good and bad values.
  const std::string py = "/root/.pyenv/versions/3.11.7/bin/python3";
  ASSERT_TRUE(fs::exists(py));
  write_file(e.dir / "check.py", R"(
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
def ok(name, value):
    s = dict(schema); s["$ref"] = "#/$defs/" + name
    return Draft202012Validator(s, format_checker=Draft202012Validator.FORMAT_CHECKER).is_valid(value)
print(ok("Listing", {"files": ["a"], "count": 1, "generated_at": "2024-01-15T10:00:00Z"}),
      ok("Listing", {"files": [1], "count": 1, "generated_at": "2024-01-15T10:00:00Z"}),
      ok("Listing", {"files": [], "count": 1, "generated_at": "2024-01-15T10:00:00"}),
      ok("each.input", {"name": "x"}), ok("each.input", {"name": "x", "level": "trace"}))
)");
  auto c = run(py + " " + (e.dir / "check.py") + " " + (e.dir / "schema.json") + " 2>&1");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_EQ(c.output, "True False False True False\n");
}

TEST(TypesE2E, SecretsReachTheTaskAndAreMaskedEverywhere) {
  Env e;
  const std::string from_env = "tok-9f3a1c77e2-from-env", from_file = "pw-51be0d4a-from-file",
                    file_secret = "{\"key\": \"sa-2c8d77f0\"}";
  fs::create_directories(e.home);
  write_file(e.home + "/secrets.env", "db_password=" + from_file + "\nprojects/p/sa-key='" + file_secret + "'\n");
  ::chmod((e.home + "/secrets.env").c_str(), 0600);
  const std::string seen = e.dir / "seen";
  std::string wf = e.workflow(R"~(
name: secret_flow
tasks:
  use:
    env:
      TOKEN:
        secret: api_token
      DB_PASSWORD:
        secret: db_password
      PLAIN: not-secret
    secrets:
      - name: sa
        secret: projects/p/sa-key
        path: sa.json
    command: |
      printf '%s|%s|%s' "$TOKEN" "$DB_PASSWORD" "$(cat "$ORK_SECRETS_DIR/sa.json")" > )~" +
                              seen + R"~(
      env | grep -c '^ORK_SECRET_' > )~" +
                              seen + R"~(.leaked || true
      echo "stdout says $TOKEN and $DB_PASSWORD"
      echo "stderr says $TOKEN" >&2
      printf 'split: %s' "$TOKEN" | fold -w 5
      echo
      echo "{\"echo\": \"$TOKEN\", \"plain\": \"$PLAIN\"}"
  leak_error:
    env:
      TOKEN:
        secret: api_token
    command: |
      echo "cannot log in with $TOKEN" >&2
      exit 3
  missing:
    env:
      NOPE:
        secret: not_configured
    command: "true"
  plain:
    command: |
      env | grep -c '^ORK_SECRET_' > )~" +
                              seen + R"~(.plain || true
)~");
  auto r = e.host("run " + wf, "ORK_SECRET_API_TOKEN=" + from_env);
  EXPECT_EQ(r.exit_code, 1) << r.output;  // leak_error and missing fail
  // The task got the real values, and no other ORK_SECRET_* variable.
  EXPECT_EQ(read_file(seen), from_env + "|" + from_file + "|" + file_secret);
  EXPECT_EQ(read_file(seen + ".leaked"), "0\n");
  // A task without secrets runs on a thread of the resident worker: the host's ORK_SECRET_* are hidden there too.
  EXPECT_EQ(read_file(seen + ".plain"), "0\n");
  auto t = e.tasks();
  EXPECT_EQ(t["use"]["status"], "success");
  EXPECT_EQ(t["use"]["output"], json({{"echo", "***"}, {"plain", "not-secret"}}));
  EXPECT_EQ(t["leak_error"]["status"], "failed");
  EXPECT_NE(t["leak_error"]["error"].dump().find("cannot log in with ***"), std::string::npos)
      << t["leak_error"]["error"].dump();
  EXPECT_EQ(t["missing"]["error"]["type"], "secret_error");
  EXPECT_EQ(t["missing"]["error"]["message"],
            "task 'missing': env.NOPE: secret 'not_configured' not found (set ORK_SECRET_NOT_CONFIGURED in the host's "
            "environment or add 'not_configured=...' to " +
                e.home + "/secrets.env)");
  // The log has the masked lines.
  std::string run_id = t["_run"]["id"], task_id = t["use"]["id"];
  std::string log = read_file(e.home + "/objects/runs/" + run_id + "/" + task_id + "/attempt-1.log");
  EXPECT_NE(log.find("stdout says *** and ***"), std::string::npos) << log;
  EXPECT_NE(log.find("stderr says ***"), std::string::npos) << log;
  // spec.json names the secret variables but holds no values.
  json spec = json::parse(read_file(e.home + "/objects/runs/" + run_id + "/" + task_id + "/spec.json"));
  EXPECT_EQ(spec["secret_env"], json({"DB_PASSWORD", "TOKEN"}));
  EXPECT_EQ(spec["env"], json({{"PLAIN", "not-secret"}}));

  // Nowhere under the home folder (state DB, WAL, objects, logs), nor in what ork-host printed or `status` shows.
  auto st = e.host("status " + run_id, "ORK_SECRET_API_TOKEN=" + from_env);
  ASSERT_EQ(st.exit_code, 0) << st.output;
  EXPECT_NE(st.output.find("***"), std::string::npos);
  for (const std::string& s : {from_env, from_file, std::string("sa-2c8d77f0")}) {
    auto hits = files_containing(e.home + "/objects", s);
    for (const auto& f : files_containing(e.home, s))
      if (f != e.home + "/secrets.env") hits.push_back(f);
    EXPECT_TRUE(hits.empty()) << s << " found in " << testing::PrintToString(hits);
    EXPECT_EQ(r.output.find(s), std::string::npos) << r.output;
    EXPECT_EQ(st.output.find(s), std::string::npos) << st.output;
  }
  // The folded line ("split: tok-9 f3a1c ...") is not the secret as such; the unsplit one never appears.
  EXPECT_EQ(log.find(from_env), std::string::npos);
}

TEST(TypesE2E, SecretsFileReadableByOthersIsRefused) {
  Env e;
  fs::create_directories(e.home);
  write_file(e.home + "/secrets.env", "k=v\n");
  ::chmod((e.home + "/secrets.env").c_str(), 0644);
  auto r = e.host("run " + e.workflow(R"(
name: loose_secrets
tasks:
  use:
    env:
      K:
        secret: k
    command: "true"
)"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  auto t = e.tasks();
  EXPECT_EQ(t["use"]["error"]["type"], "secret_error");
  EXPECT_NE(t["use"]["error"]["message"].get<std::string>().find("is readable by group or others (mode 0644); run: "
                                                                 "chmod 600"),
            std::string::npos);
}

TEST(TypesE2E, TypedContractsExampleRuns) {
  Env e;
  auto r = run(e.prefix() + std::string(ORK_SOURCE_DIR) + "/examples/typed-contracts/run.sh " + kHost + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("with ***"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("demo-token-123"), std::string::npos) << r.output;
  auto t = e.tasks();
  EXPECT_EQ(t["report"]["output"], json({{"title", "Row counts"}, {"total_rows", 5}, {"files", 2}, {"signed", true}}));
}
