// RoBERTa (RobertaModel, RobertaForSequenceClassification): the BERT encoder
// with position ids that start at padding_idx + 1 and skip padding, and a
// dense -> tanh -> out_proj classification head on <s>.
#include "models/bert/bert.h"

namespace mixpeft::models {

std::shared_ptr<Model> make_roberta(const ConfigView& config, const std::string& architecture) {
  return make_encoder(config, architecture, {"roberta", "Roberta", "roberta", /*roberta=*/true});
}

}  // namespace mixpeft::models
