// `mixpeft tokenizer train` end to end: what it prints, the folder it writes
// (loaded back through Tokenizer::load), and its errors and exit codes.
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "cli_test_util.h"
#include "mixpeft/tokenizer.h"
#include <nlohmann/json.hpp>

namespace {

using mixpeft::testing::CliRun;
using mixpeft::testing::has;
using mixpeft::testing::run_cli;
using mixpeft::testing::slurp;

const std::string kCorpus =
    std::string(MIXPEFT_TEST_DATA) + "/fixtures/tokenizers/bpe_train/corpus.txt";

std::string temp_dir(const std::string& tag) {
  std::string dir = ::testing::TempDir() + "mixpeft_tokcli_" + tag + "_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(TokenizerCli, TrainWritesALoadableTokenizerAndReportsCompression) {
  const std::string out = temp_dir("train") + "/tok";
  CliRun r = run_cli("tokenizer train --input '" + kCorpus + "' '" + kCorpus +
                     "' --vocab-size 600 --out '" + out + "' --max-length 128");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "read     43654 bytes")) << r.out;  // the file twice
  EXPECT_TRUE(has(r.out, "trained  vocab 600 = 3 special + 256 bytes + 341 merges (vocab_size reached)"))
      << r.out;
  EXPECT_TRUE(has(r.out, "bytes per token")) << r.out;
  EXPECT_TRUE(has(r.out, "saved    " + out + "/tokenizer.json, " + out + "/tokenizer_config.json"))
      << r.out;
  EXPECT_EQ(r.err, "");

  auto tok = mixpeft::tok::Tokenizer::load(out);
  EXPECT_EQ(tok->vocab_size(), 600u);
  EXPECT_EQ(tok->special_ids().bos, 0);
  EXPECT_EQ(tok->model_max_length(), 128u);
  std::vector<mixpeft::tok::TokenId> ids = tok->encode("the tokenizer merges pairs");
  EXPECT_EQ(ids.front(), 0);  // bos
  EXPECT_EQ(tok->decode(ids, true), "the tokenizer merges pairs");
}

TEST(TokenizerCli, SpecialsRolesAndTemplateOptions) {
  const std::string out = temp_dir("roles");
  CliRun r = run_cli("tokenizer train --input '" + kCorpus + "' --vocab-size 300 --out '" + out +
                     "' --special '<|endoftext|>' '<|pad|>' --bos '' --eos '<|endoftext|>' "
                     "--pad '<|pad|>' --add-eos --max-bytes 5000");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "(stopped at --max-bytes)")) << r.out;
  auto cfg = nlohmann::json::parse(slurp(out + "/tokenizer_config.json"));
  EXPECT_TRUE(cfg["bos_token"].is_null());
  EXPECT_EQ(cfg["eos_token"], "<|endoftext|>");
  EXPECT_EQ(cfg["pad_token"], "<|pad|>");
  auto tok = mixpeft::tok::Tokenizer::load(out);
  EXPECT_EQ(tok->token_to_id("<|endoftext|>"), 0);
  EXPECT_EQ(tok->encode("the").back(), 0);  // eos appended, no bos

  r = run_cli("tokenizer train --input '" + kCorpus + "' --vocab-size 300 --out '" + out +
              "' --special '' --bos '' --eos '' --pad ''");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "vocab 300 = 0 special + 256 bytes + 44 merges")) << r.out;
  EXPECT_EQ(mixpeft::tok::Tokenizer::load(out)->token_to_id("!"), 0);
}

TEST(TokenizerCli, ErrorsNameTheProblem) {
  const std::string dir = temp_dir("errors");
  CliRun r = run_cli("tokenizer train --input '" + dir + "/missing.txt' --out '" + dir + "/o'");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has(r.err, "mixpeft: not found: " + dir + "/missing.txt: no such file")) << r.err;

  r = run_cli("tokenizer train --input '" + kCorpus + "' --vocab-size 100 --out '" + dir + "/o'");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has(r.err, "vocab_size 100 is smaller than the 3 special tokens + 256 byte symbols"))
      << r.err;
  EXPECT_TRUE(has(r.err, "use at least 259")) << r.err;

  std::ofstream(dir + "/empty.txt").close();
  r = run_cli("tokenizer train --input '" + dir + "/empty.txt' --out '" + dir + "/o'");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has(r.err, "no text to train on")) << r.err;

  std::ofstream(dir + "/latin1.txt") << "ok\ncaf\xe9\n";
  r = run_cli("tokenizer train --input '" + dir + "/latin1.txt' --out '" + dir + "/o'");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has(r.err, dir + "/latin1.txt:2: not UTF-8")) << r.err;

  r = run_cli("tokenizer train --input '" + kCorpus + "' --pad '[PAD]' --out '" + dir + "/o'");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has(r.err, "pad_token '[PAD]' is not one of the special tokens")) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/o"));  // nothing written on failure

  EXPECT_EQ(run_cli("tokenizer").code, 2);  // needs a subcommand
  EXPECT_EQ(run_cli("tokenizer train --out x").code, 2);  // --input missing
}

}  // namespace
