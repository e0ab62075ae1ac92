// ShardedCheckpoint: single files, index + shards, and broken indexes.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "io/test_util.h"
#include "mixpeft/safetensors.h"

namespace mixpeft::io {
namespace {

using testing::TempDir;
using testing::throws_error_starting_with;

// Writes F32 tensors of `n` floats each, element i of tensor k = 100 k + i.
void write_shard(const std::string& path, const std::vector<std::string>& names, int64_t n = 3) {
  std::vector<std::vector<float>> data;
  std::vector<TensorView> views;
  for (std::size_t k = 0; k < names.size(); ++k) {
    data.emplace_back();
    for (int64_t i = 0; i < n; ++i) data.back().push_back(static_cast<float>(100 * k + i));
  }
  for (std::size_t k = 0; k < names.size(); ++k) {
    views.push_back({names[k], DType::kF32, {n}, data[k].data(), data[k].size() * sizeof(float)});
  }
  write_safetensors(path, views);
}

const char* kShard1 = "model-00001-of-00002.safetensors";
const char* kShard2 = "model-00002-of-00002.safetensors";

// Two shards: a.w, a.b in shard 1; b.w in shard 2.
struct Sharded {
  TempDir tmp;
  std::string index_path;
  Sharded() {
    write_shard(tmp.file(kShard1), {"a.w", "a.b"});
    write_shard(tmp.file(kShard2), {"b.w"}, 5);
    index_path = tmp.file("model.safetensors.index.json");
  }
  void write_index(const std::string& weight_map, const std::string& extra = "") {
    write_file_atomic(index_path, R"({"metadata": {"total_size": 44})" + extra + R"(, "weight_map": )" +
                                      weight_map + "}");
  }
  std::string good_map() const {
    return std::string(R"({"a.w": ")") + kShard1 + R"(", "a.b": ")" + kShard1 + R"(", "b.w": ")" + kShard2 +
           R"("})";
  }
};

TEST(ShardedCheckpoint, OpensIndexAndLocatesTensors) {
  Sharded s;
  s.write_index(s.good_map());
  ShardedCheckpoint ckpt = ShardedCheckpoint::open(s.tmp.path());
  EXPECT_EQ(ckpt.location(), s.tmp.path());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a.b", "a.w", "b.w"}));
  EXPECT_TRUE(ckpt.contains("b.w"));
  EXPECT_FALSE(ckpt.contains("c.w"));

  auto [f1, aw] = ckpt.locate("a.w");
  auto [f1b, ab] = ckpt.locate("a.b");
  auto [f2, bw] = ckpt.locate("b.w");
  EXPECT_EQ(f1, f1b);  // each shard is opened once
  EXPECT_NE(f1, f2);
  EXPECT_EQ(f1->path(), s.tmp.file(kShard1));
  EXPECT_EQ(f2->path(), s.tmp.file(kShard2));
  EXPECT_EQ(aw->name, "a.w");
  EXPECT_EQ(bw->shape, std::vector<int64_t>{5});
  float v[5];
  std::memcpy(v, f2->data(*bw), sizeof v);
  EXPECT_EQ(v[4], 4.0f);
  std::memcpy(v, f1->data(*ab), 3 * sizeof(float));
  EXPECT_EQ(v[2], 102.0f);

  EXPECT_TRUE(throws_error_starting_with([&] { ckpt.locate("c.w"); }, ErrorKind::kNotFound, s.tmp.path() + ": ",
                                         {"\"c.w\""}));
  // The index file itself may be given too.
  EXPECT_EQ(ShardedCheckpoint::open(s.index_path).names().size(), 3u);
}

TEST(ShardedCheckpoint, SingleFileFolderAndPath) {
  TempDir tmp;
  write_shard(tmp.file("model.safetensors"), {"x", "y"});
  ShardedCheckpoint dir = ShardedCheckpoint::open(tmp.path());
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(dir.location(), tmp.file("model.safetensors"));
  ShardedCheckpoint file = ShardedCheckpoint::open(tmp.file("model.safetensors"));
  EXPECT_EQ(file.locate("y").second->begin, 12u);
  // model.safetensors wins over an index, as in transformers.
  write_file_atomic(tmp.file("model.safetensors.index.json"), "not json");
  EXPECT_EQ(ShardedCheckpoint::open(tmp.path()).names().size(), 2u);
}

TEST(ShardedCheckpoint, NothingThere) {
  TempDir tmp;
  EXPECT_TRUE(throws_error_starting_with([&] { ShardedCheckpoint::open(tmp.path()); }, ErrorKind::kNotFound,
                                         tmp.path() + ": no checkpoint here",
                                         {"model.safetensors", "model.safetensors.index.json"}));
  EXPECT_TRUE(throws_error_starting_with([&] { ShardedCheckpoint::open(tmp.file("gone")); }, ErrorKind::kNotFound,
                                         tmp.file("gone") + ": "));
  write_file_atomic(tmp.file("model.safetensors"), "junk");
  EXPECT_TRUE(throws_error_starting_with([&] { ShardedCheckpoint::open(tmp.path()); }, ErrorKind::kCorrupt,
                                         tmp.file("model.safetensors") + ": "));
}

TEST(ShardedCheckpoint, MissingShardFile) {
  Sharded s;
  s.write_index(R"({"a.w": "model-00001-of-00002.safetensors", "c.w": "model-00003.safetensors"})");
  EXPECT_TRUE(throws_error_starting_with([&] { ShardedCheckpoint::open(s.tmp.path()); }, ErrorKind::kNotFound,
                                         s.index_path + ": tensor \"c.w\": shard file ", {"model-00003.safetensors"}));
}

TEST(ShardedCheckpoint, TensorNotInItsShard) {
  Sharded s;
  s.write_index(std::string(R"({"a.w": ")") + kShard1 + R"(", "a.b": ")" + kShard1 + R"(", "b.w": ")" + kShard1 +
                R"("})");
  EXPECT_TRUE(throws_error_starting_with([&] { ShardedCheckpoint::open(s.tmp.path()); }, ErrorKind::kCorrupt,
                                         s.index_path + ": tensor \"b.w\" is mapped to shard \"" + kShard1 + "\"",
                                         {"no such tensor"}));
}

TEST(ShardedCheckpoint, PathTraversalInShardName) {
  Sharded s;
  std::filesystem::create_directory(s.tmp.file("sub"));
  write_shard(s.tmp.file("sub/x.safetensors"), {"x"});
  for (const char* bad : {"../model-00001-of-00002.safetensors", "sub/x.safetensors", "/etc/passwd", "..", ".",
                          "", "a\\\\b", "x\\u0000y"}) {
    s.write_index(std::string(R"({"x": ")") + bad + R"("})");
    EXPECT_TRUE(throws_error_starting_with([&] { ShardedCheckpoint::open(s.tmp.path()); }, ErrorKind::kCorrupt,
                                           s.index_path + ": tensor \"x\": shard ", {"not a plain file name"}))
        << bad;
  }
}

TEST(ShardedCheckpoint, TensorInTwoShards) {
  Sharded s;
  write_shard(s.tmp.file(kShard2), {"b.w", "a.w"});  // a.w now also in shard 2
  s.write_index(s.good_map());
  EXPECT_TRUE(throws_error_starting_with([&] { ShardedCheckpoint::open(s.tmp.path()); }, ErrorKind::kCorrupt,
                                         s.index_path + ": tensor \"a.w\" is in two shards", {kShard1, kShard2}));
}

TEST(ShardedCheckpoint, TensorListedTwiceInIndex) {
  Sharded s;
  s.write_index(std::string(R"({"a.w": ")") + kShard1 + R"(", "a.b": ")" + kShard1 + R"(", "b.w": ")" + kShard2 +
                R"(", "a.w": ")" + kShard2 + R"("})");
  EXPECT_TRUE(throws_error_starting_with([&] { ShardedCheckpoint::open(s.tmp.path()); }, ErrorKind::kCorrupt,
                                         s.index_path + ": tensor \"a.w\" is listed twice in weight_map"));
}

TEST(ShardedCheckpoint, ShardTensorMissingFromIndex) {
  Sharded s;
  s.write_index(std::string(R"({"a.w": ")") + kShard1 + R"(", "b.w": ")" + kShard2 + R"("})");
  EXPECT_TRUE(throws_error_starting_with([&] { ShardedCheckpoint::open(s.tmp.path()); }, ErrorKind::kCorrupt,
                                         s.index_path + ": tensor \"a.b\" is in shard", {"not in weight_map"}));
}

TEST(ShardedCheckpoint, MalformedIndex) {
  Sharded s;
  struct Bad {
    std::string text;
    std::string prefix;
  };
  const Bad bads[] = {
      {"{", ": not valid JSON"},
      {"[]", ": must be a JSON object"},
      {R"({"metadata": {}})", ": has no \"weight_map\""},
      {R"({"weight_map": []})", ": \"weight_map\" must be an object"},
      {R"({"weight_map": {"a.w": 3}})", ": weight_map: tensor \"a.w\": shard must be a file name string"},
      {R"({"metadata": {}, "metadata": {}, "weight_map": {}})", ": key \"metadata\" appears twice"},
  };
  for (const Bad& b : bads) {
    write_file_atomic(s.index_path, b.text);
    EXPECT_TRUE(throws_error_starting_with([&] { ShardedCheckpoint::open(s.tmp.path()); }, ErrorKind::kCorrupt,
                                           s.index_path + b.prefix))
        << b.text;
  }
}

TEST(ShardedCheckpoint, CorruptShardNamesTheShard) {
  Sharded s;
  s.write_index(s.good_map());
  write_file_atomic(s.tmp.file(kShard2), std::string("\x08\0\0\0\0\0\0\0{}", 10));  // header length 8 > 2 bytes left
  EXPECT_TRUE(throws_error_starting_with([&] { ShardedCheckpoint::open(s.tmp.path()); }, ErrorKind::kCorrupt,
                                         s.tmp.file(kShard2) + ": "));
}

}  // namespace
}  // namespace mixpeft::io
