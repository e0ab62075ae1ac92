// JsonlWriter and read_jsonl.
#include <nlohmann/json.hpp>

#include <fstream>

#include "data/test_util.h"
#include "mixpeft/report.h"

namespace mixpeft::report {
namespace {

using data::testing::TempDir;
using data::testing::throws_error_starting_with;
using nlohmann::json;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(Jsonl, RoundTrip) {
  TempDir dir;
  std::string path = dir.file("metrics.jsonl");
  std::vector<json> records = {
      {{"event", "train"}, {"step", 1}, {"epoch", 0.01}, {"loss", 0.6931}, {"lr", 3e-4}},
      {{"event", "eval"}, {"step", 2}, {"split", "validation"}, {"metrics", {{"accuracy", 0.5}, {"loss", 0.7}}}},
      {{"text", "line\nbreak \"quoted\" caf\xC3\xA9"}},
  };
  {
    JsonlWriter w(path, false);
    EXPECT_EQ(w.path(), path);
    for (const json& r : records) w.write(r);
    // Flushed after each write: readable before the writer is closed.
    EXPECT_EQ(read_jsonl(path), records);
  }
  std::string text = slurp(path);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);  // one compact line each
  EXPECT_EQ(text.substr(0, text.find('\n')), records[0].dump());
  EXPECT_EQ(read_jsonl(path), records);
}

TEST(Jsonl, AppendKeepsAndTruncateDiscards) {
  TempDir dir;
  std::string path = dir.file("m.jsonl");
  JsonlWriter(path, false).write({{"a", 1}});
  JsonlWriter(path, true).write({{"a", 2}});
  EXPECT_EQ(read_jsonl(path), (std::vector<json>{{{"a", 1}}, {{"a", 2}}}));
  JsonlWriter(path, false).write({{"a", 3}});
  EXPECT_EQ(read_jsonl(path), (std::vector<json>{{{"a", 3}}}));
  JsonlWriter(dir.file("new.jsonl"), true).write({{"a", 4}});  // append creates
  EXPECT_EQ(read_jsonl(dir.file("new.jsonl")), (std::vector<json>{{{"a", 4}}}));
}

TEST(Jsonl, AppendAfterAPartialLineStartsANewLine) {
  TempDir dir;
  std::string path = dir.write("m.jsonl", "{\"a\": 1}\n{\"a\": 2, \"b");  // a crash mid-write
  JsonlWriter(path, true).write({{"a", 3}});
  EXPECT_EQ(slurp(path), "{\"a\": 1}\n{\"a\": 2, \"b\n{\"a\":3}\n");
  EXPECT_TRUE(throws_error_starting_with([&] { read_jsonl(path); }, ErrorKind::kCorrupt, path + ":2: "));
}

TEST(Jsonl, NonFiniteAndInvalidUtf8DoNotThrow) {
  TempDir dir;
  std::string path = dir.file("m.jsonl");
  JsonlWriter w(path, false);
  w.write({{"loss", NAN}, {"s", std::string("bad \xFF byte")}});
  std::vector<json> back = read_jsonl(path);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_TRUE(back[0]["loss"].is_null());
  EXPECT_EQ(back[0]["s"], "bad \xEF\xBF\xBD byte");
}

TEST(Jsonl, BlankLinesAndCrlf) {
  TempDir dir;
  std::string path = dir.write("m.jsonl", "{\"a\": 1}\r\n\r\n   \n[1, 2]\n\"s\"");
  EXPECT_EQ(read_jsonl(path), (std::vector<json>{{{"a", 1}}, json({1, 2}), json("s")}));
}

TEST(Jsonl, BadLineNamesPathAndLine) {
  TempDir dir;
  std::string path = dir.write("m.jsonl", "{\"a\": 1}\n\n{\"a\": }\n{\"a\": 3}\n");
  EXPECT_TRUE(throws_error_starting_with([&] { read_jsonl(path); }, ErrorKind::kCorrupt, path + ":3: ", {"syntax error"}));
  try {
    read_jsonl(path);
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("json.exception"), std::string::npos) << e.what();
  }
}

TEST(Jsonl, Errors) {
  TempDir dir;
  std::string missing = dir.file("nope.jsonl");
  EXPECT_TRUE(throws_error_starting_with([&] { read_jsonl(missing); }, ErrorKind::kNotFound, missing + ": "));
  std::string in_missing_dir = dir.file("no/such/dir/m.jsonl");
  EXPECT_TRUE(throws_error_starting_with([&] { JsonlWriter(in_missing_dir, false); }, ErrorKind::kIO, in_missing_dir + ": ",
                           {"cannot open for writing", "No such file"}));
  EXPECT_TRUE(throws_error_starting_with([&] { JsonlWriter(in_missing_dir, true); }, ErrorKind::kIO, in_missing_dir + ": ",
                           {"cannot open for appending"}));
}

TEST(Jsonl, MovedWriterKeepsWriting) {
  TempDir dir;
  std::string path = dir.file("m.jsonl");
  JsonlWriter a(path, false);
  a.write({{"n", 1}});
  JsonlWriter b = std::move(a);
  b.write({{"n", 2}});
  EXPECT_EQ(read_jsonl(path).size(), 2u);
}

}  // namespace
}  // namespace mixpeft::report
