// Reader/writer round trips, the on-disk byte layout, atomic writes and the
// HF fixtures. Malicious inputs: malicious_test.cc; random corruption:
// corruption_test.cc; checkpoint folders: sharded_test.cc.
#include "mixpeft/safetensors.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "io/test_util.h"

namespace mixpeft::io {
namespace {

using testing::make_file;
using testing::TempDir;
using testing::throws_error_starting_with;

const DType kAllDTypes[] = {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kI64,
                            DType::kI32, DType::kI16, DType::kI8,  DType::kU8,   DType::kBool};

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(DType, NamesSizesAndParsing) {
  const char* names[] = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"};
  const std::size_t sizes[] = {8, 4, 2, 2, 8, 4, 2, 1, 1, 1};
  for (std::size_t i = 0; i < 10; ++i) {
    EXPECT_STREQ(dtype_name(kAllDTypes[i]), names[i]);
    EXPECT_EQ(dtype_size(kAllDTypes[i]), sizes[i]) << names[i];
    EXPECT_EQ(parse_dtype(names[i], "ctx"), kAllDTypes[i]);
  }
  EXPECT_TRUE(throws_error_starting_with([] { parse_dtype("f32", "cfg.json: field x"); }, ErrorKind::kUnsupported,
                                         "cfg.json: field x: ", {"\"f32\""}));
}

TEST(TensorInfo, Numel) {
  TensorInfo t;
  EXPECT_EQ(t.numel(), 1);  // 0-d scalar
  t.shape = {2, 3, 4};
  EXPECT_EQ(t.numel(), 24);
  t.shape = {5, 0};
  EXPECT_EQ(t.numel(), 0);
  t.shape = {int64_t{1} << 40, int64_t{1} << 40};
  EXPECT_TRUE(throws_error_starting_with([&] { t.numel(); }, ErrorKind::kInvalidArgument, "tensor"));
}

// Random bytes of `dtype`, valid for it (BOOL only 0/1).
std::string random_bytes(DType dtype, std::size_t n, std::mt19937& rng) {
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(dtype == DType::kBool ? rng() % 2 : rng() % 256);
  return out;
}

struct Sample {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

std::vector<Sample> every_dtype_sample() {
  std::mt19937 rng(7);
  std::vector<Sample> out;
  const std::vector<int64_t> shapes[] = {{3, 5}, {2, 3, 4}, {7}, {1, 1, 9}, {4, 2}};
  for (std::size_t i = 0; i < 10; ++i) {
    DType d = kAllDTypes[i];
    const auto& shape = shapes[i % 5];
    int64_t numel = 1;
    for (int64_t s : shape) numel *= s;
    out.push_back({cat("t.", i, ".", dtype_name(d)), d, shape, random_bytes(d, numel * dtype_size(d), rng)});
  }
  out.push_back({"scalar.f64", DType::kF64, {}, random_bytes(DType::kF64, 8, rng)});
  out.push_back({"empty.bf16", DType::kBF16, {3, 0, 2}, ""});
  out.push_back({"scalar.bool", DType::kBool, {}, "\x01"});
  return out;
}

std::vector<TensorView> views_of(const std::vector<Sample>& samples) {
  std::vector<TensorView> views;
  for (const Sample& s : samples) views.push_back({s.name, s.dtype, s.shape, s.bytes.data(), s.bytes.size()});
  return views;
}

TEST(Safetensors, RoundTripEveryDtype) {
  TempDir tmp;
  const std::string path = tmp.file("all.safetensors");
  const auto samples = every_dtype_sample();
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "ünïcode \"quoted\"\n"}};
  write_safetensors(path, views_of(samples), meta);

  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->path(), path);
  EXPECT_EQ(file->metadata(), meta);
  ASSERT_EQ(file->tensors().size(), samples.size());
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const TensorInfo& t = file->tensors()[i];  // header order = given order
    const Sample& s = samples[i];
    EXPECT_EQ(t.name, s.name);
    EXPECT_EQ(t.dtype, s.dtype) << s.name;
    EXPECT_EQ(t.shape, s.shape) << s.name;
    EXPECT_EQ(t.end - t.begin, s.bytes.size()) << s.name;
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(file->data(t)), s.bytes.size()), s.bytes) << s.name;
    EXPECT_EQ(&file->get(s.name), &t);
  }
  EXPECT_EQ(file->find("absent"), nullptr);

  // The in-memory reader sees the same, and re-writing what was read gives
  // the identical file.
  const std::string bytes = read_file(path);
  auto copy = SafetensorsFile::from_bytes(bytes, "copy");
  std::vector<TensorView> again;
  for (const TensorInfo& t : copy->tensors()) {
    again.push_back({t.name, t.dtype, t.shape, copy->data(t), static_cast<std::size_t>(t.end - t.begin)});
  }
  write_safetensors(tmp.file("again.safetensors"), again, copy->metadata());
  EXPECT_EQ(read_file(tmp.file("again.safetensors")), bytes);
}

TEST(Safetensors, WrittenBytesFollowTheFormat) {
  TempDir tmp;
  const std::string path = tmp.file("layout.safetensors");
  const float a[2] = {1.0f, -2.0f};
  const int16_t b[3] = {1, -1, 256};
  write_safetensors(path,
                    {{"b\"x", DType::kI16, {3}, b, sizeof b}, {"a", DType::kF32, {1, 2}, a, sizeof a}},
                    {{"format", "pt"}});
  const std::string bytes = read_file(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + n + sizeof a + sizeof b);
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"b\"x":{"dtype":"I16","shape":[3],"data_offsets":[0,6]},)"
      R"("a":{"dtype":"F32","shape":[1,2],"data_offsets":[6,14]}})";
  std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  EXPECT_EQ(bytes.substr(8, n), padded);
  // Raw little-endian data right after the header, in the given order.
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n, b, sizeof b), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n + sizeof b, a, sizeof a), 0);
  EXPECT_EQ(static_cast<uint8_t>(bytes[8 + n + 4]), 0x00);  // 256 as LE i16: 00 01
  EXPECT_EQ(static_cast<uint8_t>(bytes[8 + n + 5]), 0x01);
}

TEST(Safetensors, NoTensorsNoMetadata) {
  TempDir tmp;
  write_safetensors(tmp.file("e.safetensors"), {});
  const std::string bytes = read_file(tmp.file("e.safetensors"));
  EXPECT_EQ(bytes, make_file("{}      "));
  auto f = SafetensorsFile::open(tmp.file("e.safetensors"));
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_TRUE(f->metadata().empty());
  // The reference reader accepts "__metadata__": null as no metadata.
  auto g = SafetensorsFile::from_bytes(make_file(R"({"__metadata__":null})"), "n");
  EXPECT_TRUE(g->metadata().empty());
}

TEST(Safetensors, WriterRejectsBadInputAndLeavesExistingFile) {
  TempDir tmp;
  const std::string path = tmp.file("keep.safetensors");
  const float v[4] = {1, 2, 3, 4};
  write_safetensors(path, {{"w", DType::kF32, {4}, v, sizeof v}});
  const std::string before = read_file(path);

  EXPECT_TRUE(throws_error_starting_with([&] { write_safetensors(path, {{"w", DType::kF32, {2, 2}, v, 12}}); },
                                         ErrorKind::kInvalidArgument, path + ": tensor \"w\": ",
                                         {"nbytes is 12", "F32 [2, 2] needs 16"}));
  EXPECT_TRUE(throws_error_starting_with(
      [&] { write_safetensors(path, {{"w", DType::kF32, {1}, v, 4}, {"w", DType::kF32, {1}, v, 4}}); },
      ErrorKind::kInvalidArgument, path + ": tensor \"w\"", {"twice"}));
  EXPECT_TRUE(throws_error_starting_with([&] { write_safetensors(path, {{"__metadata__", DType::kF32, {1}, v, 4}}); },
                                         ErrorKind::kInvalidArgument, path + ": ", {"reserved"}));
  EXPECT_TRUE(throws_error_starting_with([&] { write_safetensors(path, {{"w", DType::kF32, {-1}, v, 4}}); },
                                         ErrorKind::kInvalidArgument, path + ": tensor \"w\""));
  EXPECT_TRUE(throws_error_starting_with([&] { write_safetensors(path, {{"w", DType::kF32, {1}, nullptr, 4}}); },
                                         ErrorKind::kInvalidArgument, path + ": tensor \"w\"", {"null"}));
  EXPECT_TRUE(throws_error_starting_with([&] { write_safetensors(path, {{"bad\xff", DType::kF32, {1}, v, 4}}); },
                                         ErrorKind::kInvalidArgument, path + ": ", {"UTF-8"}));
  EXPECT_TRUE(throws_error_starting_with([&] { write_safetensors(path, {}, {{"k", "\xc3"}}); },
                                         ErrorKind::kInvalidArgument, path + ": ", {"UTF-8"}));
  EXPECT_EQ(read_file(path), before);
  EXPECT_EQ(dir_entries(tmp.path()), std::vector<std::string>{"keep.safetensors"});  // no temp files left

  // Replacing works and leaves no temporary file behind either.
  write_safetensors(path, {{"x", DType::kF32, {2}, v, 8}});
  EXPECT_EQ(SafetensorsFile::open(path)->tensors().at(0).name, "x");
  EXPECT_EQ(dir_entries(tmp.path()), std::vector<std::string>{"keep.safetensors"});
}

TEST(Safetensors, WriteFailuresAreIOErrors) {
  TempDir tmp;
  const std::string missing = tmp.file("no/such/dir/x.safetensors");
  EXPECT_TRUE(throws_error_starting_with([&] { write_safetensors(missing, {}); }, ErrorKind::kIO, missing + ": "));
  EXPECT_TRUE(throws_error_starting_with([&] { write_file_atomic(missing, "x"); }, ErrorKind::kIO, missing + ": "));
  if (::geteuid() != 0) {  // root ignores folder permissions
    std::filesystem::create_directory(tmp.file("ro"));
    ::chmod(tmp.file("ro").c_str(), 0555);
    EXPECT_TRUE(throws_error_starting_with([&] { write_file_atomic(tmp.file("ro/f"), "x"); }, ErrorKind::kIO,
                                           tmp.file("ro/f") + ": "));
    ::chmod(tmp.file("ro").c_str(), 0755);
  }
}

TEST(FileHelpers, AtomicWriteAndRead) {
  TempDir tmp;
  const std::string path = tmp.file("f.json");
  write_file_atomic(path, "first");
  EXPECT_EQ(read_file(path), "first");
  std::string big(3 << 20, '\0');  // over the 1 MiB write buffer
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 + 7);
  write_file_atomic(path, big);
  EXPECT_EQ(read_file(path), big);
  write_file_atomic(path, "");
  EXPECT_EQ(read_file(path), "");
  EXPECT_EQ(dir_entries(tmp.path()), std::vector<std::string>{"f.json"});
  EXPECT_TRUE(throws_error_starting_with([&] { read_file(tmp.file("nope")); }, ErrorKind::kNotFound,
                                         tmp.file("nope") + ": "));
  EXPECT_TRUE(throws_error_starting_with([&] { read_file(tmp.path()); }, ErrorKind::kIO, tmp.path() + ": "));
}

TEST(Safetensors, OpenErrors) {
  TempDir tmp;
  EXPECT_TRUE(throws_error_starting_with([&] { SafetensorsFile::open(tmp.file("missing")); }, ErrorKind::kNotFound,
                                         tmp.file("missing") + ": "));
  EXPECT_TRUE(throws_error_starting_with([&] { SafetensorsFile::open(tmp.path()); }, ErrorKind::kIO, tmp.path() + ": ",
                                         {"not a regular file"}));
  write_file_atomic(tmp.file("empty"), "");
  EXPECT_TRUE(throws_error_starting_with([&] { SafetensorsFile::open(tmp.file("empty")); }, ErrorKind::kCorrupt,
                                         tmp.file("empty") + ": file is 0 bytes"));
  write_file_atomic(tmp.file("short"), std::string("\x02\0\0\0\0", 5));
  EXPECT_TRUE(throws_error_starting_with([&] { SafetensorsFile::open(tmp.file("short")); }, ErrorKind::kCorrupt,
                                         tmp.file("short") + ": file is 5 bytes"));
  write_file_atomic(tmp.file("bad"), make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})"));
  EXPECT_TRUE(throws_error_starting_with([&] { SafetensorsFile::open(tmp.file("bad")); }, ErrorKind::kCorrupt,
                                         tmp.file("bad") + ": tensor \"w\": ", {"data_offsets [0, 8]"}));
}

TEST(Safetensors, LookupErrors) {
  const float v[2] = {1, 2};
  TempDir tmp;
  write_safetensors(tmp.file("a.safetensors"), {{"w", DType::kF32, {2}, v, 8}});
  auto f = SafetensorsFile::open(tmp.file("a.safetensors"));
  EXPECT_TRUE(throws_error_starting_with([&] { f->get("v"); }, ErrorKind::kNotFound, tmp.file("a.safetensors") + ": ",
                                         {"\"v\""}));
  TensorInfo forged = f->get("w");
  forged.end = 1 << 20;
  EXPECT_TRUE(throws_error_starting_with([&] { f->data(forged); }, ErrorKind::kInvalidArgument,
                                         tmp.file("a.safetensors") + ": tensor \"w\""));
}

// ---------------------------------------------------------------- HF fixtures

struct Listed {
  std::string dtype;  // as the README spells it: float32 / int64
  std::vector<int64_t> shape;
};

// Parses tests/data/fixtures/README.txt: per "== <arch>/" section, the tensor
// lists of reference.safetensors and adapter/adapter_model.safetensors.
std::map<std::string, std::map<std::string, Listed>> readme_listing() {
  std::ifstream in(std::string(MIXPEFT_TEST_DATA) + "/fixtures/README.txt");
  std::map<std::string, std::map<std::string, Listed>> out;  // "arch/file" -> tensors
  std::string line, arch, file;
  const std::regex section(R"(^== (\w+)/ .*)");
  const std::regex list_start(R"(^\s+(reference\.safetensors|adapter/adapter_model\.safetensors) tensors.*:$)");
  const std::regex entry(R"(^\s+(\S+)\s+(float32|int64)\s+\[([0-9, ]*)\]$)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, section)) {
      arch = m[1];
      file.clear();
    } else if (std::regex_match(line, m, list_start)) {
      file = m[1];
    } else if (!file.empty() && std::regex_match(line, m, entry)) {
      Listed l{m[2], {}};
      std::stringstream dims(m[3].str());
      std::string d;
      while (std::getline(dims, d, ',')) l.shape.push_back(std::stoll(d));
      out[arch + "/" + file][m[1]] = l;
    } else {
      file.clear();
    }
  }
  return out;
}

const char* kArchs[] = {"gpt2", "bert", "bert_cls", "roberta_cls", "llama", "qwen2"};

TEST(Fixtures, ReferenceFilesMatchTheReadme) {
  auto listing = readme_listing();
  ASSERT_EQ(listing.size(), 9u);  // 6 reference files + 3 adapters
  for (const auto& [key, tensors] : listing) {
    SCOPED_TRACE(key);
    auto f = SafetensorsFile::open(std::string(MIXPEFT_TEST_DATA) + "/fixtures/" + key);
    ASSERT_EQ(f->tensors().size(), tensors.size());
    for (const auto& [name, want] : tensors) {
      const TensorInfo* t = f->find(name);
      ASSERT_NE(t, nullptr) << name;
      EXPECT_STREQ(dtype_name(t->dtype), want.dtype == "float32" ? "F32" : "I64") << name;
      EXPECT_EQ(t->shape, want.shape) << name;
    }
  }
  EXPECT_EQ(listing.at("gpt2/reference.safetensors").at("logits").shape, (std::vector<int64_t>{2, 16, 256}));
}

TEST(Fixtures, ModelFilesOpen) {
  struct Spot {
    const char* arch;
    const char* name;
    std::vector<int64_t> shape;
  };
  const Spot spots[] = {
      {"gpt2", "transformer.wte.weight", {256, 64}},
      {"gpt2", "transformer.h.0.attn.c_attn.weight", {64, 192}},  // Conv1D [in, out]
      {"bert", "embeddings.position_embeddings.weight", {64, 64}},
      {"bert_cls", "classifier.weight", {3, 64}},
      {"roberta_cls", "classifier.out_proj.bias", {3}},
      {"llama", "model.layers.1.self_attn.v_proj.weight", {32, 64}},  // GQA: 2 kv heads x 16
      {"qwen2", "model.layers.0.self_attn.q_proj.bias", {64}},
  };
  for (const char* arch : kArchs) {
    auto f = SafetensorsFile::open(std::string(MIXPEFT_TEST_DATA) + "/fixtures/" + arch + "/model.safetensors");
    EXPECT_GT(f->tensors().size(), 20u) << arch;
    EXPECT_EQ(f->metadata().at("format"), "pt") << arch;
    for (const TensorInfo& t : f->tensors()) EXPECT_EQ(t.dtype, DType::kF32) << arch << " " << t.name;
  }
  for (const Spot& s : spots) {
    auto f = SafetensorsFile::open(std::string(MIXPEFT_TEST_DATA) + "/fixtures/" + s.arch + "/model.safetensors");
    EXPECT_EQ(f->get(s.name).shape, s.shape) << s.arch << " " << s.name;
  }
  auto gpt2 = SafetensorsFile::open(std::string(MIXPEFT_TEST_DATA) + "/fixtures/gpt2/model.safetensors");
  EXPECT_EQ(gpt2->find("lm_head.weight"), nullptr);  // tied to wte
}

}  // namespace
}  // namespace mixpeft::io
