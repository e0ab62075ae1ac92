// The tokenization cache: hit, miss, invalidation, atomic writes, and that a
// hit really reads the file.
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/test_util.h"
#include "mixpeft/data.h"
#include "mixpeft/safetensors.h"

namespace mixpeft::data {
namespace {

using testing::bert;
using testing::gpt2;
using testing::TempDir;
using testing::throws_error_starting_with;
using Ids = std::vector<int32_t>;

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void expect_same(const Split& a, const Split& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.path, b.path);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const Example &x = a.examples[i], &y = b.examples[i];
    EXPECT_EQ(x.input_ids, y.input_ids);
    EXPECT_EQ(x.token_type_ids, y.token_type_ids);
    EXPECT_EQ(x.labels, y.labels);
    EXPECT_EQ(x.label, y.label);
    EXPECT_TRUE(x.target == y.target || (std::isnan(x.target) && std::isnan(y.target)));
    EXPECT_EQ(x.prompt_length, y.prompt_length);
    EXPECT_EQ(x.reference, y.reference);
    EXPECT_EQ(x.line, y.line);
  }
}

void expect_same(const Dataset& a, const Dataset& b) {
  EXPECT_EQ(a.task, b.task);
  EXPECT_EQ(a.label_names, b.label_names);
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  expect_same(a.train, b.train);
  expect_same(a.validation, b.validation);
  EXPECT_EQ(a.has_test(), b.has_test());
  if (a.has_test()) expect_same(a.test, b.test);
}

struct Fixture {
  TempDir dir;
  DatasetSpec spec;
  Fixture() {
    spec.task = Task::kClassification;
    spec.train = dir.write("train.tsv", "sentence\tlabel\nHello world\tpos\ndon't\tneg\n\nhello\tpos\n");
    spec.validation = dir.write("dev.tsv", "sentence\tlabel\nworld\tneg\n");
    spec.test = dir.write("test.tsv", "sentence\nhello\n");
    spec.columns.text = "sentence";
    spec.cache_dir = dir.file("cache/nested");
  }
};

TEST(Cache, MissThenHit) {
  Fixture f;
  Dataset first = load_dataset(f.spec, bert());
  EXPECT_FALSE(first.from_cache);
  EXPECT_EQ(first.cache_path, f.spec.cache_dir + "/dataset-" + first.fingerprint + ".safetensors");
  EXPECT_TRUE(std::filesystem::exists(first.cache_path));  // the folder was created
  Dataset second = load_dataset(f.spec, bert());
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(second.cache_path, first.cache_path);
  expect_same(first, second);
  EXPECT_EQ(second.label_names, (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(second.test.examples[0].label, -1);
  EXPECT_EQ(second.train.examples[2].line, 5);
}

TEST(Cache, AHitReadsTheFile) {
  Fixture f;
  Dataset first = load_dataset(f.spec, bert());
  // Rewrite the cache with other ids under the same key: a load that really
  // reads the cache returns them.
  auto file = io::SafetensorsFile::open(first.cache_path);
  std::vector<io::TensorView> views;
  std::vector<int32_t> fake;
  for (const io::TensorInfo& t : file->tensors()) {
    io::TensorView v{t.name, t.dtype, t.shape, file->data(t), static_cast<size_t>(t.end - t.begin)};
    if (t.name == "train.input_ids") {
      fake.assign(static_cast<size_t>(t.numel()), 7);
      v.data = fake.data();
    }
    views.push_back(v);
  }
  std::map<std::string, std::string> meta = file->metadata();
  std::string tmp = first.cache_path + ".new";
  io::write_safetensors(tmp, views, meta);
  file.reset();
  std::filesystem::rename(tmp, first.cache_path);
  Dataset second = load_dataset(f.spec, bert());
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(second.train.examples[0].input_ids, (Ids{7, 7, 7, 7}));
  EXPECT_EQ(second.validation.examples[0].input_ids, first.validation.examples[0].input_ids);
}

TEST(Cache, ChangedFileInvalidates) {
  Fixture f;
  Dataset first = load_dataset(f.spec, bert());
  f.dir.write("dev.tsv", "sentence\tlabel\nworld\tpos\n");
  Dataset second = load_dataset(f.spec, bert());
  EXPECT_FALSE(second.from_cache);
  EXPECT_NE(second.fingerprint, first.fingerprint);
  EXPECT_EQ(second.validation.examples[0].label, 1);
  EXPECT_EQ(files_in(f.spec.cache_dir).size(), 2u);  // the old entry stays; nothing is removed
  EXPECT_TRUE(load_dataset(f.spec, bert()).from_cache);
}

TEST(Cache, ChangedSpecOrTokenizerInvalidates) {
  Fixture f;
  Dataset base = load_dataset(f.spec, bert());
  DatasetSpec longer = f.spec;
  longer.max_length = 3;
  Dataset a = load_dataset(longer, bert());
  EXPECT_FALSE(a.from_cache);
  EXPECT_NE(a.fingerprint, base.fingerprint);
  EXPECT_EQ(a.train.examples[0].input_ids, (Ids{101, 7592, 102}));
  Dataset b = load_dataset(f.spec, gpt2());
  EXPECT_FALSE(b.from_cache);
  EXPECT_NE(b.fingerprint, base.fingerprint);
  EXPECT_EQ(b.train.examples[0].input_ids, (Ids{15496, 995}));
  // The cache folder is not part of the key.
  DatasetSpec moved = f.spec;
  moved.cache_dir = f.dir.file("elsewhere");
  Dataset c = load_dataset(moved, bert());
  EXPECT_FALSE(c.from_cache);
  EXPECT_EQ(c.fingerprint, base.fingerprint);
}

TEST(Cache, WritesAtomicallyLeavingNoTemporaryFiles) {
  Fixture f;
  Dataset ds = load_dataset(f.spec, bert());
  EXPECT_EQ(files_in(f.spec.cache_dir),
            (std::vector<std::string>{"dataset-" + ds.fingerprint + ".safetensors"}));
}

TEST(Cache, CorruptCacheIsRewritten) {
  Fixture f;
  Dataset first = load_dataset(f.spec, bert());
  f.dir.write("cache/nested/dataset-" + first.fingerprint + ".safetensors", "garbage");
  Dataset second = load_dataset(f.spec, bert());
  EXPECT_FALSE(second.from_cache);
  expect_same(first, second);
  EXPECT_TRUE(load_dataset(f.spec, bert()).from_cache);
}

TEST(Cache, NothingIsCachedWhenLoadingFails) {
  Fixture f;
  f.dir.write("dev.tsv", "sentence\tlabel\nworld\tmaybe\n");
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(f.spec, bert()); }, ErrorKind::kInvalidArgument,
                                         f.spec.validation + ":2: label \"maybe\" is not a known label"));
  EXPECT_TRUE(!std::filesystem::exists(f.spec.cache_dir) || files_in(f.spec.cache_dir).empty());
}

TEST(Cache, CausalLmAndRegressionRoundTrip) {
  TempDir d;
  DatasetSpec c;
  c.task = Task::kCausalLm;
  c.train = d.write("train.jsonl",
                    "{\"prompt\": \"Hello\", \"completion\": \" world\"}\n"
                    "{\"prompt\": \"The quick brown fox\", \"completion\": \" jumps \xE2\x82\xAC\"}\n");
  c.validation = c.train;
  c.test = d.write("test.jsonl", "{\"prompt\": \"Hello\"}\n");
  c.cache_dir = d.file("cache");
  Dataset a = load_dataset(c, gpt2());
  Dataset b = load_dataset(c, gpt2());
  EXPECT_TRUE(b.from_cache);
  expect_same(a, b);
  EXPECT_EQ(b.train.examples[1].reference, " jumps \xE2\x82\xAC");
  EXPECT_EQ(b.train.examples[0].labels, (Ids{kIgnoreIndex, 995, 50256}));

  DatasetSpec r;
  r.task = Task::kRegression;
  r.train = d.write("train.csv", "text,label\nhello,0.5\nworld,4.75\n");
  r.validation = r.train;
  r.test = d.write("test.csv", "text\nhello\n");
  r.cache_dir = d.file("cache");
  Dataset x = load_dataset(r, bert());
  Dataset y = load_dataset(r, bert());
  EXPECT_TRUE(y.from_cache);
  expect_same(x, y);
  EXPECT_FLOAT_EQ(y.train.examples[1].target, 4.75f);
  EXPECT_TRUE(std::isnan(y.test.examples[0].target));
}

TEST(Cache, UnwritableCacheFolder) {
  Fixture f;
  f.dir.write("blocker", "a file, not a folder");
  f.spec.cache_dir = f.dir.file("blocker/cache");
  EXPECT_TRUE(throws_error_starting_with([&] { load_dataset(f.spec, bert()); }, ErrorKind::kIO,
                                         f.spec.cache_dir + ": cannot create the cache folder"));
}

}  // namespace
}  // namespace mixpeft::data
