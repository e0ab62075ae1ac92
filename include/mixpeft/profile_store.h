// The profile store of `mixpeft serve`: every adapter profile the server can
// apply, in one SQLite file. A profile is what `mixpeft train` saves for one
// adapter (adapter_config.json + adapter_model.safetensors) under a name, with
// a JSON metadata object. Torch-free (mixpeft_base).
//
//   using namespace mixpeft::serve;
//   ProfileStore store("profiles.db");            // created if missing
//   Profile p;
//   p.name = "president-lincoln";
//   p.kind = "XPEFT";
//   p.config = io::read_file("run/final/adapter_config.json");
//   p.tensors = io::read_file("run/final/adapter_model.safetensors");
//   ProfileMeta m = store.put(p, /*replace=*/false);   // m.version, m.sha256
//   Profile back = store.get("president-lincoln");
//   for (const ProfileMeta& x : store.list("", 100)) ...   // first page
//
// Errors are mixpeft::Error (mixpeft/error.h):
//   kInvalidArgument  a bad profile name, kind, config or metadata; put of an
//                     existing name without replace; list with limit < 1
//   kNotFound         get / get_meta / remove of a name the store lacks
//   kCorrupt          tensors that are not a valid safetensors buffer (checked
//                     before anything is written); a file that is not SQLite
//                     or not a profile store
//   kUnsupported      a store written by a newer mixpeft (newer schema)
//   kIO               SQLite could not open, read or write the file, or the
//                     file stayed locked by another process for longer than
//                     the busy timeout
// Messages about the store start with its path; messages about a profile's
// contents start with `profile "NAME"`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mixpeft::serve {

namespace detail {
struct ProfileStoreTestHooks;  // src/serve/internal.h: failure injection for tests
}

// What the store keeps about a profile, the tensors aside: cheap to fetch.
struct ProfileMeta {
  std::string name;      // see check_profile_name
  std::string kind;      // one of kProfileKinds
  std::string config;    // adapter_config.json: a JSON object, stored byte for byte as given
  std::string metadata;  // a JSON object, byte for byte as given; "" for none
  // Set by the store (put ignores what the caller puts here):
  std::string sha256;      // lowercase hex SHA-256 of the tensors: an ETag for caches and clients
  int64_t bytes = 0;       // size of the tensors in bytes
  int64_t created_at = 0;  // unix seconds of the first put of this name (kept by replace)
  int64_t updated_at = 0;  // unix seconds of the put that wrote the current contents
  // Store-wide counter, bumped by every put, replace included, and never
  // reused: a profile removed and put again gets a new, larger version, so a
  // cache keyed on (name, version) can never serve stale tensors.
  int64_t version = 0;
};

// A whole profile. For put, fill name, kind, config, tensors and optionally
// metadata.
struct Profile : ProfileMeta {
  std::string tensors;  // adapter_model.safetensors, the file's bytes
};

// The kinds a profile may have: the PEFT methods whose adapters the server
// applies per request (peft_type in adapter_config.json).
inline constexpr const char* kProfileKinds[] = {"XPEFT", "LORA", "MOSLORA", "ADAMIX"};

// Most profiles one list() call returns; larger limits are cut to this, so a
// client pages with after_name = the last name it got until a page is empty.
inline constexpr int64_t kMaxListLimit = 1000;

// Throws kInvalidArgument, naming the name and the rule, unless `name` is 1-64
// characters of A-Z a-z 0-9 _ . - and does not start with '.' or '-' (which
// also rules out "." and ".."). Names go into URLs, file names and logs as
// they are, so nothing that needs escaping or could walk a path is allowed.
void check_profile_name(const std::string& name);

// Validates a profile as put() does, without a store: the name, the kind,
// config (a JSON object whose "peft_type", when present, equals kind),
// metadata ("" or a JSON object), and the tensors (kCorrupt unless
// io::SafetensorsFile::from_bytes accepts them).
void check_profile(const Profile& profile);

struct ProfileStoreOptions {
  // How long a call waits for a lock another process (another server, a CLI)
  // holds on the file before failing with kIO. Inside one process calls wait
  // for each other on a mutex instead, without a limit.
  int busy_timeout_ms = 5000;
};

// One SQLite database file holding profiles. Opening creates the file and
// its schema when missing, and checks the schema version of an existing one.
//
// Thread-safe: any thread may call any method at any time. The store has one
// SQLite connection guarded by one mutex, so calls run one after another; a
// get_meta takes microseconds (docs/SERVING.md), which is far below a model
// forward pass. Several processes may open the same file: SQLite's file locks
// and WAL mode keep them consistent (readers do not block the writer).
//
// Every method that takes a profile name checks it first (check_profile_name):
// an invalid name is kInvalidArgument, never kNotFound or false, so a server
// can answer "bad request" rather than "no such profile".
//
// Durability: WAL journal, synchronous=NORMAL. A put that returned survives a
// crash of the process; after a power loss or OS crash the last puts may be
// lost, but the file is never left half-written.
class ProfileStore {
 public:
  explicit ProfileStore(const std::string& path, const ProfileStoreOptions& options = {});
  ~ProfileStore();
  ProfileStore(const ProfileStore&) = delete;
  ProfileStore& operator=(const ProfileStore&) = delete;

  const std::string& path() const;

  // Stores `profile` (check_profile first, so nothing is written for a bad
  // one). An existing name is kInvalidArgument unless `replace`, which
  // overwrites everything but created_at. All or nothing: one transaction.
  // Returns what the store now holds (with the new version).
  ProfileMeta put(const Profile& profile, bool replace = false);
  // put() for many profiles in one transaction: all are stored or none (a bad
  // profile, a name given twice, or an existing name without `replace` leaves
  // the store as it was). Far faster than one put per profile, which pays one
  // commit each. Returns the new versions, in the order of `profiles`.
  std::vector<int64_t> put_many(const std::vector<Profile>& profiles, bool replace = false);

  // kNotFound naming the profile and the store when absent.
  Profile get(const std::string& name) const;
  // Everything but the tensors (which SQLite then does not read from disk).
  ProfileMeta get_meta(const std::string& name) const;
  bool exists(const std::string& name) const;
  // kNotFound when absent.
  void remove(const std::string& name);

  // count and total_bytes scan a small index (microseconds and a few
  // milliseconds at 100k profiles): fine for a status page, not per request.
  int64_t count() const;
  // Up to `limit` (capped at kMaxListLimit) profiles whose names sort after
  // `after_name` ("" for the first page), in name order (bytewise: 'Z' < 'a').
  // limit < 1 is kInvalidArgument.
  std::vector<ProfileMeta> list(const std::string& after_name = "", int64_t limit = kMaxListLimit) const;
  // Sum of every profile's tensor bytes (not the file size, which adds
  // configs, indexes and free pages).
  int64_t total_bytes() const;

 private:
  friend struct detail::ProfileStoreTestHooks;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixpeft::serve
