// BERT-style post-LN encoder shared by bert and roberta.
#pragma once

#include <memory>
#include <string>

#include "mixpeft/model.h"
#include "models/config.h"

namespace mixpeft::models {

struct EncoderFamily {
  std::string model_type;    // "bert", "roberta"
  std::string class_prefix;  // "Bert", "Roberta"
  std::string base_prefix;   // "bert", "roberta"
  // RoBERTa: position ids count real tokens from padding_idx + 1, and the
  // classification head is dense -> tanh -> out_proj on <s> (no pooler).
  bool roberta;
};

std::shared_ptr<Model> make_encoder(const ConfigView& config, const std::string& architecture,
                                    const EncoderFamily& family);

}  // namespace mixpeft::models
