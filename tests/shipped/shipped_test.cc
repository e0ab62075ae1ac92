// What the repository ships, checked: every job file under configs/ parses,
// and models/mixpeft-base is the trained base that docs/BASE_MODEL.md
// describes (its architecture, its tokenizer, BF16 weights that predict
// English far better than an untrained model of the same shape).
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "mixpeft/job_config.h"
#include "mixpeft/model.h"
#include "mixpeft/safetensors.h"
#include "mixpeft/tokenizer.h"
#include "mixpeft/train.h"

namespace {

namespace fs = std::filesystem;

const std::string kRoot = std::string(MIXPEFT_TEST_DATA) + "/../..";

TEST(Shipped, EveryJobFileParses) {
  int jobs = 0;
  for (const auto& entry : fs::directory_iterator(kRoot + "/configs")) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    nlohmann::json job = mixpeft::config::read_job_file(entry.path().string());
    // pretrain jobs may leave [peft] out (mixpeft pretrain makes it FULL).
    if (!job.contains("peft")) job["peft"] = {{"peft_type", "FULL"}};
    EXPECT_NO_THROW(mixpeft::train::JobSpec::from_json(job, ""));
    ++jobs;
  }
  EXPECT_GE(jobs, 3);
}

// Mean next-token loss (nats) of `model` on `text`.
double lm_loss(mixpeft::Model& model, const mixpeft::tok::Tokenizer& tok, const std::string& text) {
  std::vector<int64_t> ids;
  for (auto id : tok.encode(text)) ids.push_back(id);
  mixpeft::ModelInputs in;
  in.input_ids = torch::tensor(ids, torch::kLong).unsqueeze(0);
  torch::NoGradGuard no_grad;
  at::Tensor logits = model.forward(in).logits[0];
  const int64_t n = logits.size(0) - 1;
  return torch::nn::functional::cross_entropy(logits.slice(0, 0, n), in.input_ids[0].slice(0, 1, n + 1))
      .item<double>();
}

TEST(Shipped, BaseModelIsTrained) {
  const std::string dir = kRoot + "/models/mixpeft-base";
  auto file = mixpeft::io::SafetensorsFile::open(dir + "/model.safetensors");
  for (const auto& t : file->tensors()) EXPECT_EQ(t.dtype, mixpeft::io::DType::kBF16) << t.name;

  auto model = mixpeft::load_model(dir);
  model->eval();
  const nlohmann::json recipe = nlohmann::json::parse(mixpeft::io::read_file(kRoot + "/configs/base-llama.json"));
  for (const char* key : {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                          "vocab_size", "max_position_embeddings", "tie_word_embeddings"})
    EXPECT_EQ(model->config()[key], recipe[key]) << key;
  EXPECT_EQ(mixpeft::io::read_file(dir + "/tokenizer.json"),
            mixpeft::io::read_file(kRoot + "/models/mixpeft-base-tokenizer/tokenizer.json"));

  auto tok = mixpeft::tok::Tokenizer::load(dir);
  // Public-domain prose outside the pretraining corpus (Moby-Dick, chapter 1).
  const std::string text =
      "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, "
      "and nothing particular to interest me on shore, I thought I would sail about a little and see the "
      "watery part of the world. It is a way I have of driving off the spleen and regulating the circulation.";
  const double trained = lm_loss(*model, *tok, text);
  mixpeft::LoadOptions fresh_options;
  fresh_options.init_seed = 1;
  auto fresh = mixpeft::create_model(model->config(), fresh_options);
  fresh->eval();
  const double untrained = lm_loss(*fresh, *tok, text);
  // ln(8192) = 9.01 is a uniform guess; the shipped base's held-out loss is 4.51.
  EXPECT_GT(untrained, 8.5);
  EXPECT_LT(trained, 6.0) << "untrained: " << untrained;
}

}  // namespace
