// Unicode and regex building blocks, checked against Python semantics (the
// fixtures were made with Python 3.11 str methods and the `regex` module).
#include <gtest/gtest.h>

#include "tokenizers/byte_level.h"
#include "tokenizers/regex.h"
#include "tokenizers/unicode.h"

namespace mixpeft::tok::detail {
namespace {

TEST(Utf8, LossyDecodingReplacesMaximalInvalidSubparts) {
  // Python: bytes.decode("utf-8", "replace").
  EXPECT_EQ(utf8_lossy("abc"), "abc");
  EXPECT_EQ(utf8_lossy("\xE4\xB8"), "\xEF\xBF\xBD");                    // truncated: one U+FFFD
  EXPECT_EQ(utf8_lossy("a\xF0\x9F\x98"), "a\xEF\xBF\xBD");              // truncated 4-byte
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");        // overlong
  EXPECT_EQ(utf8_lossy("\xFFz"), "\xEF\xBF\xBDz");
}

TEST(Utf8, FindInvalid) {
  EXPECT_EQ(find_invalid_utf8("h\xC3\xA9llo \xF0\x9F\x98\x80"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("ab\x80"), 2u);
  EXPECT_EQ(find_invalid_utf8("ab\xE4\xB8"), 2u);
}

TEST(Unicode, PerCharacterLowercaseLikePython) {
  // 'İ'.lower() == 'i̇' (two code points); per character, Σ -> σ even at a word end.
  EXPECT_EQ(lowercase_chars("\xC4\xB0"), "i\xCC\x87");
  EXPECT_EQ(lowercase_chars("\xCE\x9F\xCE\xA3"), "\xCE\xBF\xCF\x83");
  EXPECT_EQ(lowercase_chars("ÀB\xC3\x9F"), "àb\xC3\x9F");
}

TEST(Unicode, NormalizationAndAccents) {
  EXPECT_EQ(normalize("e\xCC\x81", NormForm::kNFC), "\xC3\xA9");
  EXPECT_EQ(normalize("\xC3\xA9", NormForm::kNFD), "e\xCC\x81");
  EXPECT_EQ(normalize("\xEF\xBC\xA1", NormForm::kNFKC), "A");  // fullwidth A
  EXPECT_EQ(strip_accents("r\xC3\xA9sum\xC3\xA9"), "resume");
}

TEST(Unicode, CharacterClassesLikeHfBert) {
  EXPECT_TRUE(is_bert_punctuation('$'));  // ASCII symbol counts as punctuation in HF
  EXPECT_TRUE(is_bert_punctuation(0x2014));  // EM DASH, Pd
  EXPECT_FALSE(is_bert_punctuation(0x20AC));  // EURO SIGN, Sc
  EXPECT_TRUE(is_bert_control(0x200B));   // ZERO WIDTH SPACE, Cf
  EXPECT_FALSE(is_bert_control('\t'));
  EXPECT_TRUE(is_bert_whitespace(0x3000));
  EXPECT_TRUE(is_cjk(0x4E2D));
  EXPECT_FALSE(is_cjk(0x3042));  // hiragana is not in HF's CJK ranges
  EXPECT_TRUE(is_python_space(0x1C));
  EXPECT_TRUE(is_python_space(0x85));
  EXPECT_FALSE(is_python_space(0xFEFF));
}

TEST(Regex, BackslashSMatchesWhiteSpacePropertyLikePythonRegex) {
  EXPECT_EQ(python_to_pcre2(R"([^\s\p{L}]|\S+|\\s)"),
            R"([^\p{White_Space}\p{L}]|\P{White_Space}+|\\s)");
  Regex re(R"(\s+)", "test", ErrorKind::kInternal);
  std::vector<Span> spans;
  re.find_all("a\xC2\x85" "b", spans);  // U+0085 NEL is White_Space
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0], Span(1, 3));
  spans.clear();
  re.find_all("a\xEF\xBB\xBF" "b\xE1\xA0\x8E", spans);  // U+FEFF, U+180E are not
  EXPECT_TRUE(spans.empty());
}

TEST(Regex, FindsAllMatchesLeftToRight) {
  // GPT-2's tail: "\s+(?!\S)" leaves the last space of a run to the next word.
  Regex re(R"( ?\p{L}+| ?\p{N}+|\s+(?!\S)|\s+)", "test", ErrorKind::kInternal);
  std::vector<Span> spans;
  re.find_all("ab 12  cd", spans);
  EXPECT_EQ(spans, (std::vector<Span>{{0, 2}, {2, 5}, {5, 6}, {6, 9}}));
}

TEST(Regex, CompileErrorNamesWhere) {
  try {
    Regex re("(a", "tokenizer.json: pre_tokenizer.pattern", ErrorKind::kUnsupported);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("tokenizer.json: pre_tokenizer.pattern"),
              std::string::npos);
  }
}

TEST(ByteLevel, TableMatchesGpt2) {
  // GPT-2: space -> U+0120 'Ġ', newline -> U+010A 'Ċ', '!' stays.
  EXPECT_EQ(byte_to_unicode()[' '], "\xC4\xA0");
  EXPECT_EQ(byte_to_unicode()['\n'], "\xC4\x8A");
  EXPECT_EQ(byte_to_unicode()['!'], "!");
  EXPECT_EQ(unicode_to_byte(0x120), ' ');
  EXPECT_EQ(unicode_to_byte(0x4E2D), -1);
  std::string out;
  append_token_bytes("\xC4\xA0world", out);
  EXPECT_EQ(out, " world");
}

}  // namespace
}  // namespace mixpeft::tok::detail
