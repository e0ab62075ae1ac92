// The X-PEFT adapter bank: N frozen bottleneck adapters per layer, shared by
// every profile. Built from a seed (random), read from a bank folder
// (bank.safetensors + bank_config.json, written by save_bank), or assembled
// from N trained BOTTLENECK adapter folders (pfeiffer placement, same m).
//
// Tensors (float32, row-major; the in-model copy takes the model's dtype):
//   down.weight [L, N, m, d]   down.bias [L, N, m]
//   up.weight   [L, N, d, m]   up.bias   [L, N, d]
// Adapter (l, i) maps h -> h + up_{l,i}(act(down_{l,i}(h))).
//
// The checksum identifies a bank's contents: a profile records the checksum
// of the bank it was trained on and is refused on any other bank.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace mixpeft::peft::xpeft {

struct Bank {
  int64_t num_layers = 0;       // L
  int64_t num_adapters = 0;     // N
  int64_t hidden_size = 0;      // d
  int64_t bottleneck_size = 0;  // m
  std::string activation;       // nn::activation name
  at::Tensor down_weight, down_bias, up_weight, up_bias;  // float32, CPU, contiguous
  std::string checksum;         // bank_checksum(*this), set by every builder
  std::string source;           // for messages: "seed 0", "bank folder x", "3 BOTTLENECK adapters"

  // "L=2 N=8 d=64 m=8 relu" for messages.
  std::string shape_string() const;
};

// "fnv1a64w:<16 hex digits>": 64-bit FNV-1a over little-endian 64-bit words
// (the last one zero-padded) of the text "xpeft-bank/v1 L N d m activation\n"
// followed by the float32 bytes of down.weight, down.bias, up.weight, up.bias.
// Word-wise rather than byte-wise so that a 500 MB bank hashes in well under a second.
std::string bank_checksum(const Bank& bank);

// A random frozen bank, seeded: down.weight ~ N(0, 2 / d) (He normal: ReLU-family
// activation follows), up.weight ~ N(0, init_scale^2 / m), biases 0. With
// these variances one adapter's residual up(act(down h)) has an RMS of about
// init_scale * RMS(h); averaging k adapters (a hard top-k mask) shrinks it
// to about init_scale / k, and a uniform soft mask to init_scale / N, so
// training starts near the base model and the masks learn how far to move.
Bank random_bank(int64_t layers, int64_t adapters, int64_t hidden, int64_t bottleneck, const std::string& activation,
                 double init_scale, uint64_t seed);

// Writes dir/bank.safetensors and dir/bank_config.json (atomically).
void save_bank(const Bank& bank, const std::string& dir);

// Reads a bank folder. Strict: a missing or misshaped tensor, a config that
// disagrees with the tensors, or contents whose checksum differs from the
// recorded one are kCorrupt naming the file.
Bank load_bank(const std::string& dir);

// Stacks N saved BOTTLENECK adapters (folders with adapter_config.json and
// adapter_model.safetensors, placement pfeiffer, all with the same
// bottleneck_size and activation) into a bank for a model whose blocks are
// `block_names` (full parameter-name prefixes, e.g. "bert.encoder.layer.0")
// with hidden size `hidden`. `base_prefix` is the model's base prefix: an
// adapter saved from a base model stores names without it, one saved from a
// task model with it; both are accepted.
Bank bank_from_bottleneck(const std::vector<std::string>& folders, const std::vector<std::string>& block_names,
                          const std::string& base_prefix, int64_t hidden);

}  // namespace mixpeft::peft::xpeft
