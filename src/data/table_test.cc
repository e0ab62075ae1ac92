// Readers: JSONL, CSV (RFC 4180), TSV (GLUE), their errors and options.
#include "data/test_util.h"
#include "mixpeft/data.h"

namespace mixpeft::data {
namespace {

using testing::TempDir;
using testing::throws_error_starting_with;

std::vector<std::string> texts(const Table& t, size_t col) {
  std::vector<std::string> out;
  for (const Row& r : t.rows) out.push_back(r.fields.at(col).text);
  return out;
}

std::vector<int64_t> lines(const Table& t) {
  std::vector<int64_t> out;
  for (const Row& r : t.rows) out.push_back(r.line);
  return out;
}

// ---- JSONL ------------------------------------------------------------------------------

TEST(Jsonl, TypesColumnsAndLineNumbers) {
  std::string text =
      "{\"text\": \"hi \\\"there\\\"\", \"label\": 1}\n"
      "\n"
      "   \n"
      "{\"label\": \"pos\", \"text\": \"b\", \"score\": 2.5, \"ok\": true, \"x\": null, \"v\": [1, 2]}\r\n"
      "{\"text\": \"c\"}";  // no final newline
  Table t = parse_table(text, "d.jsonl");
  EXPECT_EQ(t.format, Format::kJsonl);
  EXPECT_EQ(t.columns, (std::vector<std::string>{"text", "label", "score", "ok", "x", "v"}));
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(lines(t), (std::vector<int64_t>{1, 4, 5}));  // blank lines skipped but counted
  EXPECT_EQ(t.rows[0].fields[0].text, "hi \"there\"");
  EXPECT_EQ(t.rows[0].fields[1].type, FieldType::kInteger);
  EXPECT_EQ(t.rows[0].fields[1].text, "1");
  EXPECT_EQ(t.rows[0].fields[2].type, FieldType::kMissing);  // row 1 has no "score"
  EXPECT_EQ(t.rows[1].fields[1].type, FieldType::kString);
  EXPECT_EQ(t.rows[1].fields[1].text, "pos");
  EXPECT_EQ(t.rows[1].fields[2].type, FieldType::kFloat);
  EXPECT_EQ(t.rows[1].fields[2].text, "2.5");
  EXPECT_EQ(t.rows[1].fields[3].type, FieldType::kBool);
  EXPECT_EQ(t.rows[1].fields[4].type, FieldType::kNull);
  EXPECT_EQ(t.rows[1].fields[5].type, FieldType::kOther);
  EXPECT_EQ(t.rows[1].fields[5].text, "[1,2]");
  EXPECT_EQ(t.rows[2].fields[0].text, "c");
  EXPECT_EQ(t.rows[2].fields[1].type, FieldType::kMissing);
  EXPECT_EQ(t.where(t.rows[1]), "d.jsonl:4");
}

TEST(Jsonl, ByteOrderMarkAndUnicode) {
  Table t = parse_table("\xEF\xBB\xBF{\"text\": \"caf\\u00e9 \xE2\x82\xAC\"}\n", "d.jsonl");
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].fields[0].text, "caf\xC3\xA9 \xE2\x82\xAC");
}

TEST(Jsonl, MalformedLineNamesFileAndLine) {
  std::string text = "{\"text\": \"a\"}\n\n{\"text\": \"b\",}\n";
  EXPECT_TRUE(throws_error_starting_with([&] { parse_table(text, "data/train.jsonl"); }, ErrorKind::kCorrupt,
                                         "data/train.jsonl:3: malformed JSON: column "));
  EXPECT_TRUE(throws_error_starting_with([&] { parse_table("{\"a\": 1}\n{\"a\": 2} {\"a\": 3}\n", "x.jsonl"); },
                                         ErrorKind::kCorrupt, "x.jsonl:2: malformed JSON: "));
  EXPECT_TRUE(throws_error_starting_with([&] { parse_table("{\"text\": \"\xFF\"}\n", "x.jsonl"); }, ErrorKind::kCorrupt,
                                         "x.jsonl:1: malformed JSON: "));
}

TEST(Jsonl, LineThatIsNotAnObject) {
  EXPECT_TRUE(throws_error_starting_with([&] { parse_table("{\"a\": 1}\n[1, 2]\n", "x.jsonl"); }, ErrorKind::kCorrupt,
                                         "x.jsonl:2: expected a JSON object, found an array"));
  EXPECT_TRUE(throws_error_starting_with([&] { parse_table("\"text\"\n", "x.jsonl"); }, ErrorKind::kCorrupt,
                                         "x.jsonl:1: expected a JSON object, found a single value"));
}

// ---- CSV --------------------------------------------------------------------------------

TEST(Csv, QuotingEdgeCases) {
  std::string text =
      "text,label\n"
      "plain,0\n"
      "\"with, comma\",1\n"
      "\"say \"\"hi\"\"\",0\n"       // escaped quotes
      "\"two\nlines\",1\n"            // newline inside quotes: record spans lines 5-6
      "\"\",0\r\n"                    // quoted empty field, CRLF
      ",1\n"                          // unquoted empty field
      "a\"b,0\n"                      // a quote inside an unquoted field is data
      "\"crlf\r\ninside\",1\n"        // CRLF inside quotes kept
      "caf\xC3\xA9,\"\"";             // last record without newline
  Table t = parse_table(text, "d.csv");
  EXPECT_EQ(t.columns, (std::vector<std::string>{"text", "label"}));
  EXPECT_EQ(texts(t, 0), (std::vector<std::string>{"plain", "with, comma", "say \"hi\"", "two\nlines", "", "",
                                                   "a\"b", "crlf\r\ninside", "caf\xC3\xA9"}));
  EXPECT_EQ(texts(t, 1), (std::vector<std::string>{"0", "1", "0", "1", "0", "1", "0", "1", ""}));
  EXPECT_EQ(lines(t), (std::vector<int64_t>{2, 3, 4, 5, 7, 8, 9, 10, 12}));
  for (const Row& r : t.rows) EXPECT_EQ(r.fields[0].type, FieldType::kString);
}

TEST(Csv, BlankLinesAndTrailingEmptyField) {
  Table t = parse_table("a,b,c\n\n1,2,\n\r\n4,,6\n", "d.csv");
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(lines(t), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(t.rows[0].fields[2].text, "");
  EXPECT_EQ(t.rows[1].fields[1].text, "");
}

TEST(Csv, WrongFieldCountAfterMultilineRecord) {
  // The record on lines 2-3 spans a newline: the bad record is on line 4.
  std::string text = "text,label\n\"a\nb\",1\nonly-one-field\n";
  EXPECT_TRUE(throws_error_starting_with([&] { parse_table(text, "d.csv"); }, ErrorKind::kCorrupt,
                                         "d.csv:4: expected 2 fields, found 1"));
  EXPECT_TRUE(throws_error_starting_with([&] { parse_table("a,b\n1,2,3\n", "d.csv"); }, ErrorKind::kCorrupt,
                                         "d.csv:2: expected 2 fields, found 3"));
}

TEST(Csv, UnterminatedQuoteNamesTheLineItOpens) {
  std::string text = "text,label\nok,1\n\"never closed,0\nmore,1\n";
  EXPECT_TRUE(throws_error_starting_with([&] { parse_table(text, "d.csv"); }, ErrorKind::kCorrupt,
                                         "d.csv:3: field 1: quoted field is never closed"));
}

TEST(Csv, CharacterAfterClosingQuote) {
  EXPECT_TRUE(throws_error_starting_with([&] { parse_table("text,label\n\"a\"b,1\n", "d.csv"); }, ErrorKind::kCorrupt,
                                         "d.csv:2: field 1: unexpected \"b\" after a closing quote"));
}

TEST(Csv, DuplicateHeaderColumn) {
  EXPECT_TRUE(throws_error_starting_with([&] { parse_table("text,label,text\n1,2,3\n", "d.csv"); }, ErrorKind::kCorrupt,
                                         "d.csv:1: header: column \"text\" appears twice (fields 1 and 3)"));
}

TEST(Csv, NoHeaderNamesColumnsByIndex) {
  ReadOptions o;
  o.header = false;
  Table t = parse_table("x,1\ny,0\n", "d.csv", o);
  EXPECT_EQ(t.columns, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(texts(t, 0), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(lines(t), (std::vector<int64_t>{1, 2}));
}

TEST(Csv, EmptyFileHasNoRecords) {
  Table t = parse_table("", "d.csv");
  EXPECT_TRUE(t.columns.empty());
  EXPECT_TRUE(t.rows.empty());
  Table h = parse_table("text,label\n", "d.csv");
  EXPECT_EQ(h.columns.size(), 2u);
  EXPECT_TRUE(h.rows.empty());
}

// ---- TSV --------------------------------------------------------------------------------

// Lines in the style of GLUE's SST-2 / MNLI TSVs: quote characters are
// data, never quoting (SST-2 has sentences that start with a lone quote).
const char* kGlueLike =
    "sentence\tlabel\n"
    "\" the film is strictly routine . \t0\n"
    "it 's a \"charming\" and often affecting journey . \t1\n"
    "a \"\"doubled\"\" quote and a trailing one\"\t1\n";

TEST(Tsv, GlueQuotesAreData) {
  Table t = parse_table(kGlueLike, "train.tsv");
  EXPECT_EQ(t.format, Format::kTsv);
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(texts(t, 0),
            (std::vector<std::string>{"\" the film is strictly routine . ",
                                      "it 's a \"charming\" and often affecting journey . ",
                                      "a \"\"doubled\"\" quote and a trailing one\""}));
  EXPECT_EQ(texts(t, 1), (std::vector<std::string>{"0", "1", "1"}));
}

TEST(Tsv, CsvQuotingIsAnOption) {
  ReadOptions o;
  o.quoting = Quoting::kCsv;
  // The same GLUE file read with CSV quoting breaks: the lone quote that
  // starts line 2 opens a field that the quote before "charming" on line 3 closes.
  EXPECT_TRUE(throws_error_starting_with([&] { parse_table(kGlueLike, "train.tsv", o); }, ErrorKind::kCorrupt,
                                         "train.tsv:3: field 1: unexpected \"c\" after a closing quote"));
  Table t = parse_table("a\tb\n\"x\ty\"\t\"1\"\"\"\n", "q.tsv", o);
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].fields[0].text, "x\ty");
  EXPECT_EQ(t.rows[0].fields[1].text, "1\"");
}

TEST(Tsv, NoQuotingForCsvIsAnOptionToo) {
  ReadOptions o;
  o.quoting = Quoting::kNone;
  Table t = parse_table("a,b\n\"x,1\n", "d.csv", o);
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].fields[0].text, "\"x");
}

TEST(Tsv, WrongFieldCount) {
  std::string text = "idx\tsentence\tlabel\n0\ta b\t1\n1\tno label here\n";
  EXPECT_TRUE(throws_error_starting_with([&] { parse_table(text, "dev.tsv"); }, ErrorKind::kCorrupt,
                                         "dev.tsv:3: expected 3 fields, found 2 (fields are separated by tabs)"));
}

TEST(Tsv, CrlfAndEmptyFields) {
  Table t = parse_table("a\tb\r\n\t1\r\nx\t\r\n", "d.tsv");
  EXPECT_EQ(texts(t, 0), (std::vector<std::string>{"", "x"}));
  EXPECT_EQ(texts(t, 1), (std::vector<std::string>{"1", ""}));
}

// ---- formats and files ------------------------------------------------------------------

TEST(Format, FromExtension) {
  EXPECT_EQ(detect_format("a/b.jsonl"), Format::kJsonl);
  EXPECT_EQ(detect_format("b.JSON"), Format::kJsonl);
  EXPECT_EQ(detect_format("b.Csv"), Format::kCsv);
  EXPECT_EQ(detect_format("glue/SST-2/train.tsv"), Format::kTsv);
  EXPECT_TRUE(throws_error_starting_with([] { detect_format("data/train.xml"); }, ErrorKind::kInvalidArgument,
                                         "data/train.xml: cannot tell the format from the extension .xml",
                                         {"dataset.format"}));
  EXPECT_TRUE(throws_error_starting_with([] { detect_format("data.d/train"); }, ErrorKind::kInvalidArgument,
                                         "data.d/train: cannot tell the format from the extension (none)"));
}

TEST(Format, ExplicitFormatOverridesExtension) {
  ReadOptions o;
  o.format = Format::kTsv;
  Table t = parse_table("a\tb\n1\t2\n", "data.txt", o);
  EXPECT_EQ(t.format, Format::kTsv);
  EXPECT_EQ(t.rows.size(), 1u);
}

TEST(ReadTable, FromDisk) {
  TempDir dir;
  std::string p = dir.write("train.csv", "text,label\n\"x, y\",1\n");
  Table t = read_table(p);
  EXPECT_EQ(t.path, p);
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].fields[0].text, "x, y");
}

TEST(ReadTable, MissingFile) {
  TempDir dir;
  std::string p = dir.file("nope.jsonl");
  EXPECT_TRUE(throws_error_starting_with([&] { read_table(p); }, ErrorKind::kNotFound, p + ": "));
}

TEST(ReadTable, RequireColumnListsTheColumns) {
  Table t = parse_table("idx,sentence,label\n0,a,1\n", "d.csv");
  EXPECT_EQ(t.require_column("label"), 2u);
  EXPECT_EQ(t.column_index("nope"), -1);
  EXPECT_TRUE(throws_error_starting_with([&] { t.require_column("text", "set dataset.columns.text"); },
                                         ErrorKind::kNotFound,
                                         "d.csv: no column \"text\" (columns: \"idx\", \"sentence\", \"label\"); "
                                         "set dataset.columns.text"));
}

}  // namespace
}  // namespace mixpeft::data
