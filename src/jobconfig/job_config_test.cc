// Job files (TOML, JSON), --set overrides and closest_match.
#include "mixpeft/job_config.h"

#include <nlohmann/json.hpp>

#include "data/test_util.h"

namespace mixpeft::config {
namespace {

using data::testing::TempDir;
using data::testing::throws_error_starting_with;
using nlohmann::json;

// ---- read_job_file: TOML ------------------------------------------------------------

TEST(ReadJobFile, TomlTypesMapToJson) {
  TempDir dir;
  std::string path = dir.write("job.toml", R"(# a job
name = "sst2-lora"
seed = 42
big = 9007199254740993
negative = -7
enabled = true

[model]
path = 'models/bert-base-uncased'

[train]
learning_rate = 3e-4
epochs = 3
warmup_ratio = 0.1
eval_splits = ["validation", "test"]
mixed = [1, 2.5, "x"]
nested = [[1, 2], [3]]
inline = { a = 1, b = { c = "d" } }

[peft]
peft_type = "LORA"
target_modules = ["query", "value"]

[[schedule]]
step = 10
[[schedule]]
step = 20

[dates]
day = 1979-05-27
clock = 07:32:00
local = 1979-05-27T07:32:00
utc = 1979-05-27T07:32:00Z
offset = 1979-05-27T00:32:00.999999-07:00
)");
  json job = read_job_file(path);
  json expected = {
      {"name", "sst2-lora"},
      {"seed", 42},
      {"big", 9007199254740993LL},
      {"negative", -7},
      {"enabled", true},
      {"model", {{"path", "models/bert-base-uncased"}}},
      {"train",
       {{"learning_rate", 3e-4},
        {"epochs", 3},
        {"warmup_ratio", 0.1},
        {"eval_splits", {"validation", "test"}},
        {"mixed", {1, 2.5, "x"}},
        {"nested", {{1, 2}, {3}}},
        {"inline", {{"a", 1}, {"b", {{"c", "d"}}}}}}},
      {"peft", {{"peft_type", "LORA"}, {"target_modules", {"query", "value"}}}},
      {"schedule", json::array({{{"step", 10}}, {{"step", 20}}})},
      {"dates",
       {{"day", "1979-05-27"},
        {"clock", "07:32:00"},
        {"local", "1979-05-27T07:32:00"},
        {"utc", "1979-05-27T07:32:00Z"},
        {"offset", "1979-05-27T00:32:00.999999-07:00"}}},
  };
  EXPECT_EQ(job, expected) << job.dump(2);
  // Integers stay integers (not doubles), floats stay floats.
  EXPECT_TRUE(job["seed"].is_number_integer());
  EXPECT_EQ(job["big"].get<int64_t>(), 9007199254740993LL);  // not representable as a double
  EXPECT_TRUE(job["train"]["learning_rate"].is_number_float());
  EXPECT_TRUE(job["train"]["epochs"].is_number_integer());
}

TEST(ReadJobFile, EmptyTomlIsAnEmptyObject) {
  TempDir dir;
  json job = read_job_file(dir.write("empty.toml", "# nothing here\n"));
  EXPECT_TRUE(job.is_object());
  EXPECT_TRUE(job.empty());
}

TEST(ReadJobFile, ExtensionIsCaseInsensitive) {
  TempDir dir;
  EXPECT_EQ(read_job_file(dir.write("JOB.TOML", "a = 1\n")), (json{{"a", 1}}));
  EXPECT_EQ(read_job_file(dir.write("JOB.Json", "{\"a\": 1}")), (json{{"a", 1}}));
}

TEST(ReadJobFile, TomlSyntaxErrorGivesFileLineColumn) {
  TempDir dir;
  std::string path = dir.write("bad.toml", "a = 1\n[train]\nlr = = 3\n");
  EXPECT_TRUE(throws_error_starting_with([&] { read_job_file(path); }, ErrorKind::kCorrupt, path + ":3:"));
  try {
    read_job_file(path);
  } catch (const Error& e) {
    std::string msg = e.what();
    // "PATH:3:COL: description": a column number, then a non-empty description.
    std::string rest = msg.substr(path.size() + 3);
    size_t colon = rest.find(": ");
    ASSERT_NE(colon, std::string::npos) << msg;
    EXPECT_GT(std::stoi(rest.substr(0, colon)), 0) << msg;
    EXPECT_GT(rest.size(), colon + 2) << msg;
  }
}

TEST(ReadJobFile, TomlDuplicateKeyIsASyntaxError) {
  TempDir dir;
  std::string path = dir.write("dup.toml", "[train]\nepochs = 1\nepochs = 2\n");
  EXPECT_TRUE(throws_error_starting_with([&] { read_job_file(path); }, ErrorKind::kCorrupt, path + ":3:", {"epochs"}));
}

TEST(ReadJobFile, TomlInfAndNanNameTheKey) {
  TempDir dir;
  std::string inf = dir.write("inf.toml", "[train]\nmax_grad_norm = inf\n");
  EXPECT_TRUE(throws_error_starting_with([&] { read_job_file(inf); }, ErrorKind::kInvalidArgument, inf + ":2:",
                           {"train.max_grad_norm", "inf"}));
  std::string nan = dir.write("nan.toml", "x = [1.0, nan]\n");
  EXPECT_TRUE(throws_error_starting_with([&] { read_job_file(nan); }, ErrorKind::kInvalidArgument, nan + ":1:",
                           {"x[1]", "nan"}));
}

// ---- read_job_file: JSON ------------------------------------------------------------

TEST(ReadJobFile, Json) {
  TempDir dir;
  std::string path = dir.write("job.json", R"({
  // comments are allowed
  "train": {"learning_rate": 0.0003, "epochs": 3, "splits": ["validation"]},
  "peft": {"peft_type": "LORA", "r": 8, "use": true, "x": null}
})");
  json job = read_job_file(path);
  EXPECT_EQ(job, (json{{"train", {{"learning_rate", 0.0003}, {"epochs", 3}, {"splits", {"validation"}}}},
                       {"peft", {{"peft_type", "LORA"}, {"r", 8}, {"use", true}, {"x", nullptr}}}}));
  EXPECT_TRUE(job["train"]["epochs"].is_number_integer());
}

TEST(ReadJobFile, JsonSyntaxErrorGivesFileLineColumn) {
  TempDir dir;
  // Line 3, column 10 is the second ':'.
  std::string path = dir.write("bad.json", "{\n  \"a\": 1,\n  \"b\": 2 : 3\n}\n");
  EXPECT_TRUE(throws_error_starting_with([&] { read_job_file(path); }, ErrorKind::kCorrupt, path + ":3:10: ",
                           {"syntax error"}));
  // The description is nlohmann's, without its "[json.exception...]" prefix.
  try {
    read_job_file(path);
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("json.exception"), std::string::npos) << e.what();
  }
  std::string first = dir.write("first.json", "nope");
  EXPECT_TRUE(throws_error_starting_with([&] { read_job_file(first); }, ErrorKind::kCorrupt, first + ":1:"));
}

TEST(ReadJobFile, JsonTopLevelMustBeAnObject) {
  TempDir dir;
  std::string path = dir.write("list.json", "[1, 2]");
  EXPECT_TRUE(throws_error_starting_with([&] { read_job_file(path); }, ErrorKind::kInvalidArgument, path + ": ",
                           {"JSON object", "array"}));
}

// ---- read_job_file: file errors -----------------------------------------------------

TEST(ReadJobFile, MissingFileIsNotFound) {
  TempDir dir;
  std::string path = dir.file("nope.toml");
  EXPECT_TRUE(throws_error_starting_with([&] { read_job_file(path); }, ErrorKind::kNotFound, path + ": ", {"not found"}));
}

TEST(ReadJobFile, UnknownExtensionListsTheAcceptedOnes) {
  TempDir dir;
  std::string path = dir.write("job.yaml", "a: 1\n");
  EXPECT_TRUE(throws_error_starting_with([&] { read_job_file(path); }, ErrorKind::kInvalidArgument, path + ": ",
                           {"\".yaml\"", ".toml", ".json"}));
  std::string bare = dir.write("job", "a = 1\n");
  EXPECT_TRUE(throws_error_starting_with([&] { read_job_file(bare); }, ErrorKind::kInvalidArgument, bare + ": ",
                           {"(none)", ".toml", ".json"}));
}

TEST(ReadJobFile, FolderIsRejected) {
  TempDir dir;
  std::string sub = dir.file("jobs.toml");
  std::filesystem::create_directory(sub);
  EXPECT_TRUE(throws_error_starting_with([&] { read_job_file(sub); }, ErrorKind::kInvalidArgument, sub + ": ", {"folder"}));
}

// ---- apply_override -----------------------------------------------------------------

json overridden(json job, const std::string& assignment) {
  apply_override(job, assignment);
  return job;
}

TEST(ApplyOverride, TomlValues) {
  json job = {{"train", {{"epochs", 3}}}};
  EXPECT_EQ(overridden(job, "train.epochs=42")["train"]["epochs"], json(42));
  EXPECT_TRUE(overridden(job, "train.epochs=42")["train"]["epochs"].is_number_integer());
  EXPECT_EQ(overridden(job, "train.epochs=-1")["train"]["epochs"], json(-1));
  json lr = overridden(job, "train.learning_rate=3e-4")["train"]["learning_rate"];
  EXPECT_TRUE(lr.is_number_float());
  EXPECT_DOUBLE_EQ(lr.get<double>(), 3e-4);
  EXPECT_EQ(overridden(job, "train.fp16=true")["train"]["fp16"], json(true));
  EXPECT_EQ(overridden(job, "train.fp16=false")["train"]["fp16"], json(false));
  EXPECT_EQ(overridden(job, "name=\"quoted string\"")["name"], json("quoted string"));
  EXPECT_EQ(overridden(job, "name='42'")["name"], json("42"));  // quoted: a string, not a number
  EXPECT_EQ(overridden(job, "sizes=[1, 2]")["sizes"], json({1, 2}));
  EXPECT_EQ(overridden(job, "peft.target_modules=[\"a\",\"b\"]")["peft"]["target_modules"], json({"a", "b"}));
  EXPECT_EQ(overridden(job, "opt={beta1 = 0.9}")["opt"], (json{{"beta1", 0.9}}));
  EXPECT_EQ(overridden(job, "day=2024-01-31")["day"], json("2024-01-31"));
  // The other keys are untouched.
  EXPECT_EQ(overridden(job, "train.fp16=true")["train"]["epochs"], json(3));
}

TEST(ApplyOverride, BareStrings) {
  json job = json::object();
  EXPECT_EQ(overridden(job, "peft.peft_type=LORA")["peft"]["peft_type"], json("LORA"));
  EXPECT_EQ(overridden(job, "model.path=models/bert-base-uncased")["model"]["path"],
            json("models/bert-base-uncased"));
  EXPECT_EQ(overridden(job, "x=a=b")["x"], json("a=b"));  // only the first '=' splits
  EXPECT_EQ(overridden(job, "x=[unclosed")["x"], json("[unclosed"));
  EXPECT_EQ(overridden(job, "x=")["x"], json(""));
  EXPECT_EQ(overridden(job, "x=1\ny = 2")["x"], json("1\ny = 2"));  // not two keys
  EXPECT_EQ(overridden(job, " x = LORA ")["x"], json("LORA"));     // trimmed
}

TEST(ApplyOverride, CreatesIntermediateObjectsAndReplaces) {
  json job;  // null becomes an object
  apply_override(job, "a.b.c=1");
  EXPECT_EQ(job, (json{{"a", {{"b", {{"c", 1}}}}}}));
  apply_override(job, "a.b.d=x");
  EXPECT_EQ(job, (json{{"a", {{"b", {{"c", 1}, {"d", "x"}}}}}}));
  apply_override(job, "a.b=2");  // a table replaced by a scalar
  EXPECT_EQ(job, (json{{"a", {{"b", 2}}}}));
  apply_override(job, "a.n.m=[1]");
  EXPECT_EQ(job["a"]["n"]["m"], json({1}));
  json with_null = {{"a", nullptr}};
  apply_override(with_null, "a.b=1");  // a null on the way becomes a table
  EXPECT_EQ(with_null, (json{{"a", {{"b", 1}}}}));
}

TEST(ApplyOverride, Errors) {
  json job = {{"train", {{"epochs", 3}, {"splits", {"a"}}}}};
  auto bad = [&](const std::string& assignment, const std::vector<std::string>& parts = {}) {
    json copy = job;
    return throws_error_starting_with([&] { apply_override(copy, assignment); }, ErrorKind::kInvalidArgument,
                        "--set " + assignment + ": ", parts);
  };
  EXPECT_TRUE(bad("train.epochs", {"KEY=VALUE"}));
  EXPECT_TRUE(bad("=3", {"empty key"}));
  EXPECT_TRUE(bad("  =3", {"empty key"}));
  EXPECT_TRUE(bad("a..b=3", {"empty key segment"}));
  EXPECT_TRUE(bad(".a=3", {"empty key segment"}));
  EXPECT_TRUE(bad("a.=3", {"empty key segment"}));
  EXPECT_TRUE(bad("train.epochs.x=3", {"train.epochs is a number", "not a table"}));
  EXPECT_TRUE(bad("train.splits.x=3", {"train.splits is an array"}));
  EXPECT_TRUE(bad("train.lr=inf", {"inf"}));
  EXPECT_TRUE(bad("train.lr=nan", {"train.lr is nan"}));
  EXPECT_TRUE(bad("x=[1, nan]", {"x[1] is nan"}));
  // A failed override leaves the job as it was.
  json copy = job;
  EXPECT_ANY_THROW(apply_override(copy, "train.epochs.x=3"));
  EXPECT_EQ(copy, job);
  json array = json::array();
  EXPECT_TRUE(throws_error_starting_with([&] { apply_override(array, "a=1"); }, ErrorKind::kInvalidArgument, "--set a=1: ",
                           {"array"}));
}

// ---- closest_match ------------------------------------------------------------------

TEST(ClosestMatch, EditDistance) {
  EXPECT_EQ(edit_distance("", ""), 0);
  EXPECT_EQ(edit_distance("abc", ""), 3);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3);
  EXPECT_EQ(edit_distance("ab", "ba"), 1);  // a swap is one edit
  EXPECT_EQ(edit_distance("learning_rate", "learning_rate"), 0);
}

TEST(ClosestMatch, Suggestions) {
  std::vector<std::string> keys = {"learning_rate", "epochs", "batch_size", "warmup_ratio", "weight_decay", "lr"};
  EXPECT_EQ(closest_match("lerning_rate", keys), "learning_rate");   // one deletion
  EXPECT_EQ(closest_match("leanring_rate", keys), "learning_rate");  // one swap
  EXPECT_EQ(closest_match("epoch", keys), "epochs");
  EXPECT_EQ(closest_match("batchsize", keys), "batch_size");
  EXPECT_EQ(closest_match("warmup", keys), "warmup_ratio");              // prefix
  EXPECT_EQ(closest_match("weight_decay_rate", keys), "weight_decay");   // candidate is a prefix
  EXPECT_EQ(closest_match("lx", keys), "lr");
  EXPECT_EQ(closest_match("xyz", keys), "");                // nothing close
  EXPECT_EQ(closest_match("optimizer", keys), "");
  EXPECT_EQ(closest_match("id", keys), "");                 // "lr" would change every character
  EXPECT_EQ(closest_match("", keys), "");
  EXPECT_EQ(closest_match("epochs", {}), "");
  EXPECT_EQ(closest_match("ba", {"batch_size"}), "");       // a 2-character prefix is too short
}

TEST(ClosestMatch, ClosestWinsAndTiesGoToTheFirst) {
  EXPECT_EQ(closest_match("rank", {"ranks", "rank_"}), "ranks");
  EXPECT_EQ(closest_match("rank", {"rank_", "ranks"}), "rank_");
  EXPECT_EQ(closest_match("alpa", {"alphas", "alpha"}), "alpha");
}

}  // namespace
}  // namespace mixpeft::config
