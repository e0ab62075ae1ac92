// The LibTorch model side of `mixpeft serve`: one frozen base model, every
// profile applied per row of a mixed batch. Torch-free header.
//
// How a profile is applied (docs/SERVING.md):
//   LORA, MOSLORA, ADAMIX (LoRA variant)  as plain LoRA (Method::export_lora:
//       MoSLoRA's A' = M A, AdaMix's averaged experts): each targeted Linear
//       adds x A^T (s B)^T for the rows of that profile.
//   XPEFT  the profile's combined bank adapter of each layer (down, up),
//       computed once from its masks and the server's bank, applied after
//       each block's feed-forward to that profile's rows.
//   modules_to_save (a classification head): replaces those Linear layers'
//       weights for the profile's rows. Only Linear layers can be served so.
// Materialised adapters live in an AdapterCache keyed on (name, version).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "mixpeft/serve.h"

namespace mixpeft::serve {

struct BackendOptions {
  std::string model_dir;      // config.json + model.safetensors (+ tokenizer files, optional)
  std::string tokenizer_dir;  // "" = model_dir when it holds a tokenizer; without one, only input_ids
  // The X-PEFT bank every X-PEFT profile must have been trained on (a folder
  // written by XpeftMethod::save_bank). "" = each profile's own bank settings
  // (random banks rebuild from bank_seed; bank_path is read relative to the
  // server's working directory). Either way a profile's bank_checksum must
  // match the bank it is applied with.
  std::string bank_dir;
  int64_t cache_bytes = int64_t(256) << 20;  // bound of the materialised-adapter cache
  int64_t max_seq_len = 512;                 // tokens per text after tokenizing: 400 beyond
};

std::unique_ptr<Backend> make_torch_backend(const BackendOptions& options, ProfileStore& store);

}  // namespace mixpeft::serve
