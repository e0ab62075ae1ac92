// Datasets for fine-tuning: JSONL / CSV / TSV readers, a validated dataset
// spec, tokenization into examples (cached on disk), and a deterministic
// batcher with dynamic padding and length grouping. Torch-free
// (mixpeft_base): batches are flat row-major int64 vectors plus a shape.
//
//   auto spec = mixpeft::data::DatasetSpec::from_json(config["dataset"]);
//   auto tok = mixpeft::tok::Tokenizer::load("models/bert-base-uncased");
//   mixpeft::data::Dataset ds = mixpeft::data::load_dataset(spec, *tok);
//   mixpeft::data::BatchOptions bo;
//   bo.batch_size = 32; bo.seed = 42; bo.pad_id = mixpeft::data::pad_id_for(*tok);
//   mixpeft::data::Batcher batcher(ds.train, ds.task, bo);
//   for (uint64_t epoch = 0; epoch < 3; ++epoch) {
//     auto plan = batcher.plan(epoch);            // a pure function of (seed, epoch)
//     for (size_t b = 0; b < plan.size(); ++b) {  // resume: start at the saved b
//       mixpeft::data::Batch batch = batcher.collate(plan[b]);
//       ...
//     }
//   }
//
// docs/DATA.md describes the formats, the config keys, the cache and every
// error message. Errors are mixpeft::Error (mixpeft/error.h); messages start
// with where: "FILE:LINE: ...", "FILE: ..." or "dataset.KEY: ...". Kinds:
// kCorrupt for a file that breaks its format (malformed JSON, wrong field
// count, unterminated quote), kNotFound for a missing file or column,
// kInvalidArgument for a bad spec or data that does not fit it (unknown
// label, empty split, a text that is not a string), kIO for the OS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mixpeft::tok {
class Tokenizer;
}

namespace mixpeft::data {

// ---- Tables: records read from one file ----------------------------------------

enum class Format {
  kAuto,   // from the extension: .jsonl/.json -> JSONL, .csv -> CSV, .tsv -> TSV
  kJsonl,  // one JSON object per line; blank lines skipped
  kCsv,    // RFC 4180, comma-separated, header row
  kTsv,    // tab-separated, header row (GLUE layout)
  kText,   // plain text (.txt): one record per document, documents separated by
           // blank lines, in one column "text" (for language modelling)
};

enum class Quoting {
  kAuto,  // CSV: kCsv; TSV: kNone (GLUE's TSVs hold bare quote characters)
  kCsv,   // RFC 4180: "a field", "" for a quote inside, newlines allowed inside
  kNone,  // no quoting: a quote character is data; a record is one line
};

const char* to_string(Format format);    // "auto", "jsonl", "csv", "tsv", "text"
const char* to_string(Quoting quoting);  // "auto", "csv", "none"

struct ReadOptions {
  Format format = Format::kAuto;
  Quoting quoting = Quoting::kAuto;
  // CSV/TSV: the first record names the columns (default true). false (e.g.
  // GLUE's CoLA train.tsv): the columns are named "0", "1", ...
  bool header = true;
};

enum class FieldType {
  kMissing,  // JSONL: this record has no such key
  kNull,     // JSON null
  kString,   // a JSON string, or any CSV/TSV field
  kInteger,  // a JSON integer (text holds its decimal digits)
  kFloat,    // a JSON non-integer number (text holds its shortest round-trip form)
  kBool,     // JSON true/false (text "true"/"false")
  kOther,    // a JSON array or object (text holds it as compact JSON)
};
const char* to_string(FieldType type);  // "missing", "null", "string", ...

struct Field {
  FieldType type = FieldType::kMissing;
  std::string text;
};

struct Row {
  int64_t line = 0;           // 1-based line where the record starts
  std::vector<Field> fields;  // one per Table::columns
};

struct Table {
  std::string path;  // as given; every message names it
  Format format = Format::kJsonl;
  // CSV/TSV: the header. JSONL: every key seen, in order of first appearance.
  std::vector<std::string> columns;
  std::vector<Row> rows;

  // Index of `name` in columns, or -1.
  int column_index(std::string_view name) const;
  // Index of `name`; throws kNotFound "PATH: no column "NAME" (columns: a, b)",
  // with `hint` appended when not empty.
  size_t require_column(std::string_view name, std::string_view hint = {}) const;
  // "PATH:LINE" of a row, for messages.
  std::string where(const Row& row) const;
};

// The format `path`'s extension names; kInvalidArgument for another extension.
Format detect_format(const std::string& path);
// Reads a whole file. kNotFound / kIO when it cannot be read; kCorrupt, naming
// PATH:LINE, for a malformed JSON line ("PATH:3: malformed JSON: ..."), a
// line that is not an object, a record with the wrong number of fields
// ("PATH:7: expected 3 fields, found 2"), an unterminated quoted field, a
// stray character after a closing quote, or a duplicate header name. An
// empty file gives a table without columns or rows (load_dataset reports the
// empty split). A UTF-8 byte order mark is skipped; CRLF line ends are
// accepted; blank lines are skipped in every format.
Table read_table(const std::string& path, const ReadOptions& options = {});
// The same on text in memory; `path` only names it in messages and, with
// Format::kAuto, picks the format.
Table parse_table(std::string_view text, const std::string& path, const ReadOptions& options = {});

// ---- The dataset spec ------------------------------------------------------------

enum class Task {
  kClassification,  // text (+ text_pair) -> one of N labels
  kRegression,      // text (+ text_pair) -> a float (e.g. STS-B similarity)
  kCausalLm,        // prompt + completion, loss on the completion only
};
const char* to_string(Task task);  // "classification", "regression", "causal_lm"

// Which column holds what (JSON key "columns"). Each default is the column
// name it maps to; only the keys that the task uses are accepted.
struct Columns {
  std::string text = "text";              // classification, regression
  std::string text_pair;                  // optional second sentence; "" (default) = none
  std::string label = "label";            // classification, regression
  std::string prompt = "prompt";          // causal_lm; "" = no prompt (plain language modelling)
  std::string completion = "completion";  // causal_lm
};

// JSON form (every key but task/train/validation optional):
//   {"task": "classification", "train": "data/train.tsv", "validation": "data/dev.tsv",
//    "test": "data/test.tsv", "format": "auto", "quoting": "auto", "header": true,
//    "columns": {"text": "sentence1", "text_pair": "sentence2", "label": "label"},
//    "labels": ["0", "1"], "max_length": 128, "add_eos": true, "cache_dir": "runs/cache"}
struct DatasetSpec {
  Task task = Task::kClassification;
  std::string train;       // required
  std::string validation;  // required
  std::string test;        // optional ("" = none); its label/completion column may be absent
  ReadOptions read;        // format, quoting, header: the same for every split
  Columns columns;
  // Classification: the label names; a label's id is its index. Empty
  // (default): the sorted set of the train labels, numerically when every
  // label is an integer, else by bytes. Integers in JSON are written as
  // decimal strings ("labels": [0, 1] is ["0", "1"]).
  std::vector<std::string> labels;
  // Tokens per example, special tokens included. 0 (default): the
  // tokenizer's model_max_length, or no limit when it has none. Longer
  // examples are truncated: pairs longest-first as HF does; causal_lm cuts
  // the prompt from the left, then the completion from the right.
  size_t max_length = 0;
  // causal_lm: append the eos token after the completion (default true), so
  // the model learns to stop. Needs a tokenizer with an eos token.
  bool add_eos = true;
  // causal_lm: concatenate the tokenized examples of each split (in file
  // order, each with its bos/eos) and cut them into blocks of max_length
  // tokens, as HF's run_clm group_texts (the last, shorter block is kept).
  // Examples are then not truncated. Default false. Needs a max_length
  // (dataset.max_length or the tokenizer's model_max_length).
  bool pack = false;
  // Folder for the tokenization cache, created when missing. "" (default):
  // no cache, tokenize on every load. Not part of the cache key.
  std::string cache_dir;

  // Parses and validates a JSON object. Unknown keys are rejected naming
  // the valid ones; relative paths (files, cache_dir) are taken relative to
  // `base_dir` when it is not empty. `where` starts messages ("dataset.KEY: ...").
  static DatasetSpec from_json(const nlohmann::json& json, const std::string& base_dir = "",
                               const std::string& where = "dataset");
  // The JSON form (every key, defaults included); from_json(to_json()) == *this.
  nlohmann::json to_json() const;
  // Throws kInvalidArgument ("dataset.KEY: ...") for a missing train or
  // validation file, duplicate labels, labels with a task other than
  // classification, an empty column name, or text_pair equal to text.
  void validate(const std::string& where = "dataset") const;
};

// ---- Tokenized examples --------------------------------------------------------

constexpr int32_t kIgnoreIndex = -100;  // label of a position without loss (PyTorch/HF)

struct Example {
  std::vector<int32_t> input_ids;       // special tokens included
  std::vector<int32_t> token_type_ids;  // classification/regression: per the pair template; causal_lm: empty
  // causal_lm: one per input id, aligned (not shifted: the model shifts, as
  // HF does): the id on completion (and eos) positions, kIgnoreIndex on the
  // prompt (and bos). Empty for the other tasks.
  std::vector<int32_t> labels;
  int64_t label = -1;     // classification: index into Dataset::label_names; -1 = unlabeled test row
  float target = 0.0f;    // regression target; NaN = unlabeled test row
  int32_t prompt_length = 0;  // causal_lm: leading positions that are prompt (bos included)
  std::string reference;      // causal_lm: the completion text, untruncated (for BLEU/ROUGE)
  int64_t line = 0;           // line of the source record
  size_t length() const { return input_ids.size(); }
};

struct Split {
  std::string name;  // "train", "validation", "test"
  std::string path;  // source file; "" for an absent test split
  std::vector<Example> examples;
  size_t size() const { return examples.size(); }
  size_t num_tokens() const;
  size_t max_length() const;  // longest example, 0 when empty
};

struct Dataset {
  Task task = Task::kClassification;
  std::vector<std::string> label_names;  // classification: id -> label
  Split train, validation, test;         // test.path is "" when the spec has none
  bool has_test() const { return !test.path.empty(); }
  // Cache: the file used ("" when caching is off), whether this load read it
  // (true) or tokenized and wrote it (false), and the key (hex SHA-256 of
  // the files' bytes, the tokenizer's tokenizer.json and the spec).
  std::string cache_path;
  bool from_cache = false;
  std::string fingerprint;
};

// Reads, checks and tokenizes every split, or reads them from the cache.
// Every check runs before any tokenization, so a bad label or column fails
// fast, and nothing is cached until every split succeeded. Errors:
// kNotFound for a missing file or column ("PATH: no column "sentence"
// (columns: idx, text, label); set dataset.columns.text"); kInvalidArgument
// for an empty split ("PATH: the validation split has no records"), a label
// outside the label set ("PATH:12: label "neutral" is not a known label
// (labels: "negative", "positive")"), a regression label that is not a
// number, a text that is not a string, an example with no tokens, or an
// empty completion without eos; the reader's kCorrupt errors. A tokenizer
// error is rethrown with the record's "PATH:LINE: " in front. A cache file
// that cannot be read back is ignored and rewritten.
Dataset load_dataset(const DatasetSpec& spec, const tok::Tokenizer& tokenizer);

// Id to pad batches with: the tokenizer's pad token, else its eos token (as
// HF users set pad = eos for GPT-2). kInvalidArgument when it has neither.
int64_t pad_id_for(const tok::Tokenizer& tokenizer);

// ---- Batching --------------------------------------------------------------------

struct BatchOptions {
  size_t batch_size = 8;  // rows per batch; must be > 0
  uint64_t seed = 42;     // with the epoch, fixes the order (see Batcher)
  // Shuffle every epoch (default true; false for evaluation: file order).
  bool shuffle = true;
  // Put examples of similar length together, as HF's LengthGroupedSampler
  // (default false). Less padding, hence faster; batches are less random.
  bool group_by_length = false;
  // Mega-batch size for grouping, in batches. 0 (default): HF's choice,
  // min(n / (4 * batch_size), 50), at least 1.
  size_t mega_batch_mult = 0;
  // Drop a last batch smaller than batch_size (default false, as HF).
  bool drop_last = false;
  // Padding id for input_ids; required (>= 0); see pad_id_for().
  int64_t pad_id = -1;
  // Round the padded length up to a multiple of this (0 = off, default).
  size_t pad_to_multiple_of = 0;
};

// One padded batch. Right padding; all tensors are row-major.
struct Batch {
  int64_t rows = 0, cols = 0;           // [rows, cols] = [batch, longest length]
  std::vector<size_t> indices;          // example index of each row
  std::vector<int64_t> input_ids;       // [rows, cols], padded with pad_id
  std::vector<int64_t> attention_mask;  // [rows, cols], 1 = token, 0 = padding
  std::vector<int64_t> token_type_ids;  // [rows, cols] padded with 0; empty for causal_lm
  // classification: [rows] class ids (-1 for unlabeled rows);
  // causal_lm: [rows, cols] token labels, kIgnoreIndex on prompt and padding;
  // regression: empty.
  std::vector<int64_t> labels;
  std::vector<float> targets;  // regression: [rows]; otherwise empty
};

// Batches of one split. The order is a pure function of (seed, epoch):
//   1. rng = std::mt19937_64(splitmix64(splitmix64(seed) ^ epoch));
//   2. shuffle: Fisher-Yates, i = n-1 down to 1, j = uniform(rng, i+1),
//      swap(p[i], p[j]); uniform(rng, k) draws x = rng() until
//      x < 2^64-1 - ((2^64-1) mod k), then returns x mod k. Both the engine
//      and this draw are fully specified, so every standard library gives
//      the same order (std::shuffle and std::uniform_int_distribution
//      would not);
//   3. group_by_length: HF's get_length_grouped_indices on that
//      permutation: cut into mega-batches of mega_batch_mult * batch_size,
//      sort each by length, longest first (stable), then swap the longest
//      example overall into position 0; without shuffle, a stable sort of
//      the whole split by length, longest first;
//   4. cut into batches of batch_size.
// Resuming at (epoch, batch index b) is plan(epoch)[b...]: nothing else is
// needed. The Batcher keeps a pointer to `examples`: they must outlive it.
class Batcher {
 public:
  Batcher(const std::vector<Example>& examples, Task task, BatchOptions options);
  Batcher(const Split& split, Task task, BatchOptions options)
      : Batcher(split.examples, task, std::move(options)) {}

  size_t num_examples() const { return examples_->size(); }
  size_t num_batches() const;
  const BatchOptions& options() const { return options_; }
  // The order of the examples in this epoch (a permutation of 0..n-1).
  std::vector<size_t> order(uint64_t epoch) const;
  // The example indices of every batch of this epoch.
  std::vector<std::vector<size_t>> plan(uint64_t epoch) const;
  // Pads the given examples into one batch (kInvalidArgument for an empty
  // list or an index out of range).
  Batch collate(const std::vector<size_t>& indices) const;
  // plan(epoch)[index] collated (recomputes the plan: O(n) per call).
  Batch batch(uint64_t epoch, size_t index) const;

 private:
  const std::vector<Example>* examples_;
  Task task_;
  BatchOptions options_;
};

// The seeding and draw of the Batcher, exposed for tests and for tools that
// must reproduce the order elsewhere.
uint64_t splitmix64(uint64_t x);
uint64_t epoch_seed(uint64_t seed, uint64_t epoch);  // splitmix64(splitmix64(seed) ^ epoch)
std::vector<size_t> shuffled_indices(size_t n, uint64_t seed, uint64_t epoch);
// HF get_length_grouped_indices applied to a given permutation.
std::vector<size_t> length_grouped(const std::vector<size_t>& permutation,
                                   const std::vector<size_t>& lengths, size_t batch_size,
                                   size_t mega_batch_mult);

}  // namespace mixpeft::data
