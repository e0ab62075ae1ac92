// Trains a byte-level BPE tokenizer from text, as Hugging Face tokenizers'
// BpeTrainer does with a ByteLevel pre-tokenizer; the result loads in mixpeft
// (Tokenizer::load) and in HF (`PreTrainedTokenizerFast.from_pretrained`).
//
//   mixpeft::tok::BpeTrainer trainer({});            // vocab 8192, <s> </s> <pad>
//   trainer.feed_file("corpus.txt");
//   mixpeft::tok::BpeTrainResult r = trainer.train();
//   r.tokenizer->save_pretrained("out/tokenizer");  // tokenizer.json + tokenizer_config.json
//
// The algorithm, step by step (HF BpeTrainer::do_train, the same merges):
//   1. Each line of the input (split after '\n', the '\n' kept, as HF's
//      train_from_files reads files) is pre-tokenized: GPT-2's regex (or
//      split_pattern), then every byte becomes one of the 256 byte-level
//      symbols. Identical words are counted once with their frequency.
//      Special tokens in the text are ordinary text here, as in HF.
//   2. Ids: the special tokens first (0..k-1, in the order given), then the
//      256 byte symbols sorted by code point ("!" = k, ..., "Ġ" for the space
//      byte = k + 220: GPT-2's own order), then one id per merge.
//   3. Repeatedly merge the most frequent adjacent pair, counted over all
//      words with their frequencies, until the vocabulary has vocab_size
//      tokens or the best pair occurs fewer than min_frequency times.
//      Tie-break: among pairs of equal count, the smallest (left id, right
//      id) wins, i.e. the pair whose left token is oldest, then whose right
//      token is oldest (HF's `Merge` ordering). A merge joins the
//      non-overlapping occurrences left to right ("aaa" -> "aa" "a").
//      Pair counts are updated incrementally from each merged word; a max-heap
//      holds every pair with a count that may be stale, and a popped entry
//      whose count changed is pushed back with the current one (lazy
//      invalidation, as HF does), so a merge costs time in proportion to the
//      words that contain the pair, not to the corpus.
//   4. Output: vocab (id order) and merges (rank order) of an HF "BPE" model
//      with ByteLevel pre-tokenizer and decoder, the special tokens as
//      special added tokens, and a TemplateProcessing post-processor that
//      prepends bos (add_bos) and/or appends eos (add_eos).
// The result is a pure function of the fed bytes (in feed order) and the
// options: no hashing order, thread or clock enters it.
//
// Errors are mixpeft::Error: kInvalidArgument for bad options, text that is
// not UTF-8 (naming the file and line) or no text at all; kNotFound for a
// missing input file; kIO when reading fails.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mixpeft/tokenizer.h"

namespace mixpeft::tok {

struct BpeTrainerOptions {
  // Tokens in the final vocabulary: special tokens + 256 byte symbols +
  // merges. Default 8192. Must be at least specials + 256. Larger: fewer
  // tokens per text (shorter sequences) but a larger embedding table and
  // longer training; training stops earlier when pairs run out (min_frequency).
  size_t vocab_size = 8192;
  // A pair seen fewer times than this (over the whole input) is never merged;
  // training stops there even below vocab_size. Default 2 (a pair seen once
  // teaches nothing). 0 or 1: merge until vocab_size or no pair is left.
  uint64_t min_frequency = 2;
  // Special tokens, ids 0..k-1 in this order; never split when encoding,
  // dropped by decode(..., skip_special_tokens=true). Default LLaMA-style
  // "<s>", "</s>", "<pad>" (byte-level BPE needs no unknown token).
  std::vector<std::string> special_tokens = {"<s>", "</s>", "<pad>"};
  // Roles written to tokenizer_config.json; each must be in special_tokens
  // ("" = none). Defaults "<s>", "</s>", "<pad>", no unk.
  std::string bos_token = "<s>", eos_token = "</s>", pad_token = "<pad>", unk_token;
  // Template: prepend bos to every encoded text (LLaMA) / append eos. Default
  // true / false, like LLaMA's tokenizers.
  bool add_bos = true, add_eos = false;
  // model_max_length in tokenizer_config.json: the default limit for
  // truncation and max-length padding (mixpeft's data pipeline cuts
  // examples there unless a job sets max_length). Default 256, the context
  // of the small models this project trains from scratch; set it to the
  // model's max_position_embeddings. 0 writes none (no limit).
  size_t model_max_length = 256;
  // Pre-tokenization regex (python `regex` syntax). Empty (default): GPT-2's
  // pattern. E.g. Llama-3's pattern splits digits in groups of three.
  std::string split_pattern;
  // Read "Hello" as " Hello" (GPT-2/RoBERTa style). Default false (Llama-3,
  // Qwen): the first word of a text is not a "Ġword" token.
  bool add_prefix_space = false;
  // Stop reading input after this many bytes (whole lines only). Default 0:
  // read everything. Memory grows with the distinct words, not the bytes.
  uint64_t max_input_bytes = 0;
};

struct BpeTrainStats {
  uint64_t bytes = 0;           // input bytes fed (after the max_input_bytes cut)
  uint64_t lines = 0;           // input lines fed
  bool truncated = false;       // max_input_bytes stopped the input early
  uint64_t words = 0;           // pre-tokenized words, counted with repeats
  uint64_t distinct_words = 0;  // different words
  size_t merges = 0;            // merges learned
  size_t vocab_size = 0;        // tokens in the result (specials included)
  // Why training stopped: "vocab_size reached", "min_frequency" (the best
  // pair was rarer) or "no pairs left" (every word is one token).
  std::string stop_reason;
  // Tokens the trained tokenizer gives for the fed text (without template
  // tokens), counted per distinct word; bytes / tokens is the compression.
  uint64_t tokens = 0;
  double feed_seconds = 0;   // reading, pre-tokenizing, counting words (all feed calls)
  double train_seconds = 0;  // train(): the merges, building the tokenizer, counting tokens
};

struct BpeTrainResult {
  ByteLevelBpeSpec spec;                 // vocab, merges, specials, template
  std::unique_ptr<Tokenizer> tokenizer;  // Tokenizer::from_byte_level_bpe(spec)
  BpeTrainStats stats;
};

class BpeTrainer {
 public:
  // Throws kInvalidArgument on inconsistent options (vocab_size below
  // specials + 256, a role token not in special_tokens, duplicate or empty
  // specials, add_bos without bos_token, a bad split_pattern).
  explicit BpeTrainer(BpeTrainerOptions options);
  ~BpeTrainer();
  BpeTrainer(const BpeTrainer&) = delete;
  BpeTrainer& operator=(const BpeTrainer&) = delete;

  // Feeds UTF-8 text, split into lines after each '\n'. `where` names the
  // text in errors ("corpus.txt"); invalid UTF-8 throws kInvalidArgument
  // with where, line and byte offset. Returns false once max_input_bytes is
  // reached (the rest of the text, and every later feed, is ignored).
  bool feed_text(std::string_view text, const std::string& where = "text");
  // Feeds a file, read in blocks (any size). kNotFound when it is missing.
  bool feed_file(const std::string& path);

  // Learns the merges from everything fed so far and builds the tokenizer.
  // Throws kInvalidArgument when no word was fed. Can be called again (more
  // feeding in between is allowed).
  BpeTrainResult train() const;

  const BpeTrainerOptions& options() const { return options_; }

 private:
  bool feed_line(std::string_view line, const std::string& where, uint64_t line_no);

  struct PreTokenizerHolder;
  BpeTrainerOptions options_;
  std::unique_ptr<PreTokenizerHolder> pre_tokenizer_;
  std::unordered_map<std::string, uint64_t> word_counts_;
  BpeTrainStats fed_;  // bytes, lines, truncated, words, feed_seconds
  std::vector<std::string> words_buffer_;
};

}  // namespace mixpeft::tok
