// Hand-made malicious safetensors files: each must be refused with the right
// error kind and a message that starts with the file and names the tensor.
#include <gtest/gtest.h>

#include "io/test_util.h"
#include "mixpeft/safetensors.h"

namespace mixpeft::io {
namespace {

using testing::make_file;
using testing::make_file_with_length;
using testing::TempDir;
using testing::throws_error_starting_with;

constexpr const char* kLabel = "/x/evil.safetensors";

struct Case {
  const char* name;
  std::string bytes;
  ErrorKind kind;
  std::string prefix;               // after "<label>: "
  std::vector<std::string> parts;   // the message must contain each
};

// {"<name>": {"dtype": .., "shape": .., "data_offsets": ..}} from raw JSON pieces.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

std::vector<Case> cases() {
  const std::string d16(16, '\x01');
  return {
      {"Empty", "", ErrorKind::kCorrupt, "file is 0 bytes", {}},
      {"FiveBytes", std::string("\x05\0\0\0\0", 5), ErrorKind::kCorrupt, "file is 5 bytes", {}},
      {"LengthPastEnd", make_file_with_length(1000, "{}"), ErrorKind::kCorrupt, "header length 1000",
       {"past the end", "10 bytes"}},
      {"Length2Pow63", make_file_with_length(uint64_t{1} << 63, "{}"), ErrorKind::kCorrupt,
       "header length 9223372036854775808", {"exceeds the limit"}},
      {"LengthAllOnes", make_file_with_length(~uint64_t{0}, "{}"), ErrorKind::kCorrupt,
       "header length 18446744073709551615", {"exceeds the limit"}},
      {"Length100MBPlusOne", make_file_with_length(100'000'001, "{}"), ErrorKind::kCorrupt,
       "header length 100000001", {"exceeds the limit of 100000000"}},
      {"InvalidJson", make_file(R"({"w":{"dtype":)"), ErrorKind::kCorrupt, "header is not valid JSON", {}},
      {"TrailingGarbage", make_file("{} x"), ErrorKind::kCorrupt, "header is not valid JSON", {}},
      {"EmptyHeader", make_file(""), ErrorKind::kCorrupt, "header is not valid JSON", {}},
      {"BadUtf8InName", make_file("{\"w\xff\":{}}"), ErrorKind::kCorrupt, "header is not valid JSON", {}},
      {"JsonArray", make_file("[1, 2]"), ErrorKind::kCorrupt, "header: must be a JSON object, got an array", {}},
      {"JsonString", make_file("\"hi\""), ErrorKind::kCorrupt, "header: must be a JSON object, got a string", {}},
      {"DeepNesting", make_file(std::string(100000, '[')), ErrorKind::kCorrupt,
       "header: must be a JSON object, got an array", {}},
      {"EntryNotObject", make_file(R"({"w": 5})"), ErrorKind::kCorrupt, "tensor \"w\": entry must be an object",
       {"got 5"}},
      {"MissingDtype", make_file(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "abcd"), ErrorKind::kCorrupt,
       "tensor \"w\": missing field \"dtype\"", {}},
      {"MissingOffsets", make_file(R"({"w":{"dtype":"F32","shape":[1]}})", "abcd"), ErrorKind::kCorrupt,
       "tensor \"w\": missing field \"data_offsets\"", {}},
      {"ExtraField", make_file(R"({"w":{"dtype":"F32","shape":[],"data_offsets":[0,4],"x":1}})", "abcd"),
       ErrorKind::kCorrupt, "tensor \"w\": unexpected field \"x\"", {}},
      {"FieldTwice", make_file(R"({"w":{"dtype":"F32","dtype":"F32","shape":[],"data_offsets":[0,4]}})", "abcd"),
       ErrorKind::kCorrupt, "tensor \"w\": field \"dtype\" appears twice", {}},
      {"UnknownDtype", make_file("{" + entry("w", "\"F33\"", "[1]", "[0,4]") + "}", "abcd"), ErrorKind::kCorrupt,
       "tensor \"w\": unknown dtype \"F33\"", {}},
      {"ForeignDtype", make_file("{" + entry("w", "\"F8_E4M3\"", "[4]", "[0,4]") + "}", "abcd"),
       ErrorKind::kUnsupported, "tensor \"w\": dtype \"F8_E4M3\"", {"mixpeft reads"}},
      {"DtypeNotString", make_file("{" + entry("w", "4", "[1]", "[0,4]") + "}", "abcd"), ErrorKind::kCorrupt,
       "tensor \"w\": dtype must be a string, got 4", {}},
      {"ShapeNotArray", make_file("{" + entry("w", "\"F32\"", "{}", "[0,4]") + "}", "abcd"), ErrorKind::kCorrupt,
       "tensor \"w\": shape must be an array, got an object", {}},
      {"ShapeNegative", make_file("{" + entry("w", "\"F32\"", "[2,-1]", "[0,4]") + "}", "abcd"),
       ErrorKind::kCorrupt, "tensor \"w\": shape[1] must be a non-negative integer, got -1", {}},
      {"ShapeFloat", make_file("{" + entry("w", "\"F32\"", "[1.5]", "[0,4]") + "}", "abcd"), ErrorKind::kCorrupt,
       "tensor \"w\": shape[0] must be a non-negative integer, got 1.5", {}},
      {"ShapeNested", make_file("{" + entry("w", "\"F32\"", "[[1]]", "[0,4]") + "}", "abcd"),
       ErrorKind::kCorrupt, "tensor \"w\": shape[0] must be a non-negative integer, got an array", {}},
      {"ShapeEntryOverInt64", make_file("{" + entry("w", "\"U8\"", "[9223372036854775808]", "[0,4]") + "}", "abcd"),
       ErrorKind::kCorrupt, "tensor \"w\": shape[0] = 9223372036854775808 is too large", {}},
      {"ShapeEntryOverUint64",
       make_file("{" + entry("w", "\"U8\"", "[18446744073709551616]", "[0,4]") + "}", "abcd"), ErrorKind::kCorrupt,
       "tensor \"w\": shape[0] must be a non-negative integer, got 18446744073709551616", {}},
      {"ShapeProductOverflows",
       make_file("{" + entry("w", "\"U8\"", "[4294967296,4294967296]", "[0,4]") + "}", "abcd"),
       ErrorKind::kCorrupt, "tensor \"w\": shape [4294967296, 4294967296] of U8 is too large", {}},
      {"ShapeProductOverInt64",
       make_file("{" + entry("w", "\"U8\"", "[3037000500,3037000500]", "[0,4]") + "}", "abcd"),
       ErrorKind::kCorrupt, "tensor \"w\": shape [3037000500, 3037000500] of U8 is too large", {}},
      {"ByteSizeOverflows",
       make_file("{" + entry("w", "\"F64\"", "[2305843009213693952]", "[0,4]") + "}", "abcd"),
       ErrorKind::kCorrupt, "tensor \"w\": shape [2305843009213693952] of F64 is too large", {}},
      {"ZeroDimHidesHugeOnes",  // numel 0 is fine even with huge other dims, but 0 bytes != 4
       make_file("{" + entry("w", "\"U8\"", "[0,9223372036854775807]", "[0,4]") + "}", "abcd"),
       ErrorKind::kCorrupt, "tensor \"w\": data_offsets [0, 4] hold 4 bytes but U8 [0, 9223372036854775807] needs 0",
       {}},
      {"OffsetsReversed", make_file("{" + entry("w", "\"F32\"", "[1]", "[8,4]") + "}", std::string(8, 'x')),
       ErrorKind::kCorrupt, "tensor \"w\": data_offsets [8, 4] are reversed", {}},
      {"OffsetsOutOfRange", make_file("{" + entry("w", "\"F32\"", "[4]", "[0,16]") + "}", std::string(8, 'x')),
       ErrorKind::kCorrupt, "tensor \"w\": data_offsets [0, 16] run past the data section, which holds 8 bytes", {}},
      {"OffsetHuge",
       make_file("{" + entry("w", "\"F32\"", "[1]", "[18446744073709551612,18446744073709551615]") + "}", "abcd"),
       ErrorKind::kCorrupt, "tensor \"w\": data_offsets [18446744073709551612, 18446744073709551615] run past", {}},
      {"OffsetNegative", make_file("{" + entry("w", "\"F32\"", "[1]", "[-4,0]") + "}", "abcd"), ErrorKind::kCorrupt,
       "tensor \"w\": data_offsets[0] must be a non-negative integer, got -4", {}},
      {"OffsetsThree", make_file("{" + entry("w", "\"F32\"", "[1]", "[0,4,8]") + "}", "abcd"), ErrorKind::kCorrupt,
       "tensor \"w\": data_offsets must have exactly 2 entries", {}},
      {"OffsetsOne", make_file("{" + entry("w", "\"F32\"", "[1]", "[4]") + "}", "abcd"), ErrorKind::kCorrupt,
       "tensor \"w\": data_offsets must have exactly 2 entries", {}},
      {"NumelMismatch", make_file("{" + entry("h.0.w", "\"F32\"", "[2,2]", "[0,12]") + "}", std::string(12, 'x')),
       ErrorKind::kCorrupt, "tensor \"h.0.w\": data_offsets [0, 12] hold 12 bytes but F32 [2, 2] needs 16", {}},
      {"Overlap",
       make_file("{" + entry("a", "\"F32\"", "[2]", "[0,8]") + "," + entry("b", "\"F32\"", "[2]", "[4,12]") + "}",
                 std::string(12, 'x')),
       ErrorKind::kCorrupt, "tensors \"a\" [0, 8] and \"b\" [4, 12] overlap", {}},
      {"SameRegionTwice",
       make_file("{" + entry("a", "\"F32\"", "[4]", "[0,16]") + "," + entry("b", "\"I32\"", "[4]", "[0,16]") + "}",
                 d16),
       ErrorKind::kCorrupt, "tensors \"a\" [0, 16] and \"b\" [0, 16] overlap", {}},
      {"EmptyTensorInsideAnother",
       make_file("{" + entry("a", "\"F32\"", "[4]", "[0,16]") + "," + entry("z", "\"F32\"", "[0]", "[8,8]") + "}",
                 d16),
       ErrorKind::kCorrupt, "tensors \"a\" [0, 16] and \"z\" [8, 8] overlap", {}},
      {"Hole",
       make_file("{" + entry("a", "\"F32\"", "[1]", "[0,4]") + "," + entry("b", "\"F32\"", "[1]", "[8,12]") + "}",
                 std::string(12, 'x')),
       ErrorKind::kCorrupt, "bytes [4, 8) of the data section before tensor \"b\" belong to no tensor", {}},
      {"TrailingData", make_file("{" + entry("a", "\"F32\"", "[1]", "[0,4]") + "}", std::string(8, 'x')),
       ErrorKind::kCorrupt, "the data section holds 8 bytes but the tensors cover only 4", {}},
      {"DuplicateName",
       make_file("{" + entry("w", "\"F32\"", "[1]", "[0,4]") + "," + entry("w", "\"F32\"", "[1]", "[4,8]") + "}",
                 std::string(8, 'x')),
       ErrorKind::kCorrupt, "tensor \"w\": appears twice in the header", {}},
      {"MetadataValueNumber", make_file(R"({"__metadata__":{"format":"pt","n":1}})"), ErrorKind::kCorrupt,
       "__metadata__: value of \"n\" must be a string, got 1", {}},
      {"MetadataValueObject", make_file(R"({"__metadata__":{"n":{}}})"), ErrorKind::kCorrupt,
       "__metadata__: value of \"n\" must be a string, got an object", {}},
      {"MetadataArray", make_file(R"({"__metadata__":["a"]})"), ErrorKind::kCorrupt,
       "__metadata__: must be an object of strings, got an array", {}},
      {"MetadataTwice", make_file(R"({"__metadata__":{},"__metadata__":{}})"), ErrorKind::kCorrupt,
       "header: \"__metadata__\" appears twice", {}},
      {"MetadataKeyTwice", make_file(R"({"__metadata__":{"k":"a","k":"b"}})"), ErrorKind::kCorrupt,
       "__metadata__: key \"k\" appears twice", {}},
      {"ControlCharsEscaped", make_file("{\"w\\u001b[2J\": 1}"), ErrorKind::kCorrupt,
       "tensor \"w\\x1b[2J\": entry must be an object", {}},
  };
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }  // not a byte dump

class Malicious : public ::testing::TestWithParam<Case> {};

TEST_P(Malicious, IsRefusedWithContext) {
  const Case& c = GetParam();
  EXPECT_TRUE(throws_error_starting_with([&] { SafetensorsFile::from_bytes(c.bytes, kLabel); }, c.kind,
                                         std::string(kLabel) + ": " + c.prefix, c.parts))
      << c.name;
}

INSTANTIATE_TEST_SUITE_P(Headers, Malicious, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(MaliciousFile, SameChecksThroughOpen) {
  TempDir tmp;
  for (const Case& c : cases()) {
    const std::string path = tmp.file(std::string(c.name) + ".safetensors");
    write_file_atomic(path, c.bytes);
    EXPECT_TRUE(throws_error_starting_with([&] { SafetensorsFile::open(path); }, c.kind,
                                           path + ": " + c.prefix)) << c.name;
  }
}

TEST(MaliciousFile, HugeNamesAreCutInMessages) {
  const std::string name(1 << 20, 'n');
  try {
    SafetensorsFile::from_bytes(make_file("{\"" + name + "\": 1}"), kLabel);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
    EXPECT_LT(std::string(e.what()).size(), 500u);
    EXPECT_NE(std::string(e.what()).find("(1048576 bytes)"), std::string::npos) << e.what();
  }
}

TEST(MaliciousFile, ValidEdgeCasesStillOpen) {
  // Zero-size tensors may share an offset with each other and with a neighbour's edge.
  auto f = SafetensorsFile::from_bytes(
      make_file("{" + entry("z1", "\"F32\"", "[0,5]", "[0,0]") + "," + entry("a", "\"F32\"", "[1]", "[0,4]") + "," +
                    entry("z2", "\"I8\"", "[3,0]", "[4,4]") + "," + entry("z3", "\"I8\"", "[0]", "[4,4]") + "}  ",
                "abcd"),
      kLabel);
  EXPECT_EQ(f->tensors().size(), 4u);
  EXPECT_EQ(f->tensors()[1].name, "a");  // header order is kept
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data(f->get("a"))), 4), "abcd");
  // Leading whitespace, "-0" and shape/offset order inside an entry do not matter.
  auto g = SafetensorsFile::from_bytes(
      make_file(" \n{\"w\":{\"data_offsets\":[-0,4],\"shape\":[],\"dtype\":\"I32\"}}", "wxyz"), kLabel);
  EXPECT_EQ(g->get("w").shape, std::vector<int64_t>{});
  EXPECT_EQ(g->get("w").numel(), 1);
}

}  // namespace
}  // namespace mixpeft::io
