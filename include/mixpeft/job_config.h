// Job files: the TOML (or JSON) file that describes one fine-tuning job, read
// into a JSON object, plus the command-line overrides applied on top of it.
// Torch-free (mixpeft_base). Validating the keys is the trainer's job; this
// module only reads, overrides, and helps word "unknown key" errors.
//
//   nlohmann::json job = mixpeft::config::read_job_file("jobs/sst2-lora.toml");
//   mixpeft::config::apply_override(job, "train.learning_rate=3e-4");
//   mixpeft::config::apply_override(job, "peft.peft_type=LORA");   // bare string
//   mixpeft::config::apply_override(job, "peft.target_modules=[\"query\", \"value\"]");
//   std::string hint = mixpeft::config::closest_match("lerning_rate", known_keys);
//   // hint == "learning_rate"
//
// Errors are mixpeft::Error (mixpeft/error.h), each message starting with
// where it came from: "FILE: ...", "FILE:LINE:COL: ..." or "--set A=B: ...".
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mixpeft::config {

// Reads a job file into a JSON object. The format comes from the extension
// (case-insensitive): ".toml" (TOML 1.0, parsed by toml++) or ".json".
//
// TOML values map to JSON as: integers -> integers (int64), floats -> numbers,
// booleans -> booleans, strings -> strings, dates/times -> ISO 8601 strings
// ("1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "...T07:32:00-08:00"),
// arrays -> arrays, tables (and arrays of tables) -> objects (arrays of
// objects). Key order is not kept (objects are sorted by key).
//
// Errors:
//   kInvalidArgument  another extension ("FILE: unknown job file extension
//                     ".yaml"; accepted: .toml, .json"); a folder; a TOML float
//                     that is inf or nan ("FILE:LINE:COL: train.lr: ...",
//                     JSON cannot hold it); a JSON file whose top level is not
//                     an object.
//   kNotFound         the file does not exist ("FILE: job file not found").
//   kCorrupt          a syntax error: "FILE:LINE:COL: <the parser's description>"
//                     (lines and columns count from 1).
//   kIO               the file exists but cannot be read.
nlohmann::json read_job_file(const std::string& path);

// Applies one command-line override "a.b.c=value" to `job`, creating the
// intermediate objects that are missing (a null `job` becomes an object).
// The key is split at every '.'; spaces around the key and the value are
// trimmed. The value is parsed as a TOML value when it is one -- 42, -1,
// 3e-4, true, "quoted", 'literal', [1, 2], ["a", "b"], {x = 1},
// 2024-01-01 -- and is otherwise taken as the bare text (so
// `--set peft.peft_type=LORA` stores the string "LORA"; `a=` stores "").
// An existing value at the key is replaced, whatever its type.
//
// Errors, all kInvalidArgument, starting "--set ASSIGNMENT: ": no '=', an
// empty key or an empty key segment ("a..b", ".a", "a."), a path that goes
// through a value that is not an object ("--set a.b.c=1: a is a number, not
// a table"), a TOML inf/nan value (quote it for the string), or a `job` that
// is neither null nor an object.
void apply_override(nlohmann::json& job, const std::string& assignment);

// A "did you mean" helper for unknown-key messages: the candidate closest to
// `key` by edit distance (insertions, deletions, substitutions and swaps of
// two neighbours count 1 each), among those within 2 edits, or that `key` is
// a prefix of, or that are a prefix of `key` (at least 3 characters of
// overlap). Matches that change every character of `key` (e.g. "lr" vs
// "id") are not suggestions. Ties go to the earlier candidate. Returns ""
// when none qualifies, or when `key` is empty.
std::string closest_match(const std::string& key, const std::vector<std::string>& candidates);

// The edit distance closest_match uses (optimal string alignment: Levenshtein
// plus adjacent transpositions), in bytes.
int edit_distance(const std::string& a, const std::string& b);

}  // namespace mixpeft::config
