// The profile store: one SQLite file, one connection, one mutex.
#include "mixpeft/profile_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "data/internal.h"  // quote, sha256_hex
#include "mixpeft/error.h"
#include "mixpeft/safetensors.h"
#include "serve/internal.h"

namespace mixpeft::serve {

namespace {

using data::detail::quote;

// Bump when the tables change, and teach the constructor to migrate older
// files. A file with a newer schema is refused: this mixpeft would misread it.
constexpr int64_t kSchemaVersion = 1;
constexpr size_t kMaxNameLength = 64;

// The schema. `tensors` is the last column on purpose: SQLite decodes a row's
// columns front to back and does not read the overflow pages of a large blob
// that a query does not ask for, so get_meta and list stay cheap even for
// megabyte LoRA profiles. A rowid table (not WITHOUT ROWID) because its rows
// hold blobs, which is what rowid tables are for; `name` gets SQLite's
// automatic unique index.
constexpr const char* kCreateSchema = R"sql(
CREATE TABLE store_info (
  key TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO store_info (key, value) VALUES ('schema_version', 1), ('last_version', 0);
CREATE TABLE profiles (
  name TEXT PRIMARY KEY NOT NULL,
  kind TEXT NOT NULL,
  config TEXT NOT NULL,
  metadata TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  version INTEGER NOT NULL,
  tensors BLOB NOT NULL
);
-- total_bytes() sums this small covering index instead of reading every row:
-- 8 ms instead of 70 ms at 100k profiles (docs/SERVING.md), and the store's
-- mutex is held meanwhile, so a slow sum would stall every lookup.
CREATE INDEX profiles_bytes ON profiles (bytes);
)sql";

// Columns 0-8 fill a ProfileMeta (read_meta), column 9 is the tensors.
#define MIXPEFT_META_COLUMNS "name, kind, config, metadata, sha256, bytes, created_at, updated_at, version"

std::string quoted(const std::string& name) { return quote(name, 80); }

std::string kinds_list() {
  std::string out;
  for (const char* k : kProfileKinds) out += (out.empty() ? "" : ", ") + std::string(k);
  return out;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The error kind for an SQLite result code. Our SQL is fixed and checked
// against the schema at open, so SQL and usage errors are bugs.
ErrorKind kind_of(int rc) {
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return ErrorKind::kCorrupt;
    case SQLITE_TOOBIG:
      return ErrorKind::kInvalidArgument;
    case SQLITE_ERROR:
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
    case SQLITE_CONSTRAINT:
      return ErrorKind::kInternal;
    default:  // BUSY, LOCKED, IOERR, FULL, CANTOPEN, READONLY, PERM, NOMEM, ...
      return ErrorKind::kIO;
  }
}

// An open SQLite connection and its prepared statements. Not thread-safe:
// ProfileStore::Impl holds the mutex.
class Db {
 public:
  Db(const std::string& path, int busy_timeout_ms) : path_(path) {
    // NOMUTEX: the store's own mutex already serialises every use of the
    // connection, so SQLite's per-call locking would only cost time.
    int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             nullptr);
    if (rc != SQLITE_OK) {
      std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      db_ = nullptr;
      fail(ErrorKind::kIO, path_, ": cannot open the profile store: ", why);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, busy_timeout_ms);
  }
  ~Db() {
    for (auto& entry : statements_) sqlite3_finalize(entry.second);
    sqlite3_close(db_);  // every statement is finalized, so this closes (and checkpoints the WAL)
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }

  [[noreturn]] void fail_sqlite(int rc, const std::string& what) const {
    fail(kind_of(rc), path_, ": ", what, ": ", sqlite3_errmsg(db_));
  }

  // Prepared once and kept: compiling the SQL costs more than a lookup.
  sqlite3_stmt* prepared(const char* sql) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second;
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr);
    if (rc != SQLITE_OK) fail_sqlite(rc, cat("preparing \"", sql, "\""));
    statements_.emplace(sql, st);
    return st;
  }

  // For statements run once (pragmas, schema, transaction control).
  void exec(const char* sql, const std::string& what) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail_sqlite(rc, what);
  }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
};

// One use of a prepared statement. The destructor resets it: a statement
// left mid-result holds its read transaction open, so the connection keeps
// reading an old snapshot and the WAL cannot be checkpointed past it.
class Query {
 public:
  Query(Db& db, const char* sql, const char* what) : db_(db), st_(db.prepared(sql)), what_(what) {}
  ~Query() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  void bind_int(int i, int64_t v) { check(sqlite3_bind_int64(st_, i, v)); }
  // SQLITE_STATIC: the strings outlive the query (they belong to the caller).
  void bind_text(int i, const std::string& s) { check(sqlite3_bind_text64(st_, i, s.data(), s.size(), SQLITE_STATIC, SQLITE_UTF8)); }
  void bind_blob(int i, const std::string& s) {
    // A null pointer would bind NULL, not an empty blob.
    check(sqlite3_bind_blob64(st_, i, s.empty() ? "" : s.data(), s.size(), SQLITE_STATIC));
  }

  // True when a row is ready, false when the statement is done.
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_.fail_sqlite(rc, what_);
  }
  void run() {
    while (step()) {
    }
  }

  int64_t int_at(int col) const { return sqlite3_column_int64(st_, col); }
  std::string text_at(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
    return p == nullptr ? std::string() : std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col)));
  }
  std::string blob_at(int col) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(st_, col));
    return p == nullptr ? std::string() : std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col)));
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) db_.fail_sqlite(rc, what_);
  }
  Db& db_;
  sqlite3_stmt* st_;
  const char* what_;
};

ProfileMeta read_meta(const Query& q) {
  ProfileMeta m;
  m.name = q.text_at(0);
  m.kind = q.text_at(1);
  m.config = q.text_at(2);
  m.metadata = q.text_at(3);
  m.sha256 = q.text_at(4);
  m.bytes = q.int_at(5);
  m.created_at = q.int_at(6);
  m.updated_at = q.int_at(7);
  m.version = q.int_at(8);
  return m;
}

// BEGIN IMMEDIATE ... COMMIT, rolled back unless commit() returned. IMMEDIATE
// takes the write lock up front: a deferred transaction that reads and then
// writes can fail with SQLITE_BUSY when another process wrote in between,
// without the busy timeout helping.
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) { db_.exec("BEGIN IMMEDIATE", "starting a write transaction"); }
  ~Transaction() {
    // A failed COMMIT, or an error SQLite rolled back itself, may or may not
    // leave the transaction open: roll back only if it is.
    if (!committed_ && !sqlite3_get_autocommit(db_.handle())) {
      sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    db_.exec("COMMIT", "committing");
    committed_ = true;
  }

 private:
  Db& db_;
  bool committed_ = false;
};

// A JSON object given as text; "" when `optional` allows none.
void check_json_object(const std::string& text, const std::string& where, bool optional, nlohmann::json* out) {
  if (optional && text.empty()) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix.
    std::string what = e.what();
    size_t bracket = what.find("] ");
    fail(ErrorKind::kInvalidArgument, where, ": not valid JSON: ",
         bracket == std::string::npos ? what : what.substr(bracket + 2));
  }
  MIXPEFT_CHECK(j.is_object(), ErrorKind::kInvalidArgument, where, ": a JSON object expected, got ", j.type_name());
  if (out != nullptr) *out = std::move(j);
}

// A profile checked and ready to write.
struct Prepared {
  const Profile* profile;
  std::string sha256;
};

Prepared prepare(const Profile& p) {
  check_profile(p);
  return {&p, data::detail::sha256_hex(p.tensors)};
}

}  // namespace

void check_profile_name(const std::string& name) {
  constexpr const char* kRule =
      "a profile name is 1-64 characters of A-Z a-z 0-9 _ . - and does not start with '.' or '-'";
  std::string detail;  // what is wrong, empty when nothing is
  if (name.empty()) {
    detail = "is empty";
  } else if (name.size() > kMaxNameLength) {
    detail = cat("is ", name.size(), " bytes long");
  } else if (name[0] == '.' || name[0] == '-') {
    detail = cat("starts with '", name[0], "'");
  } else {
    for (size_t i = 0; i < name.size(); ++i) {
      char c = name[i];
      bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                c == '.' || c == '-';
      if (!ok) {
        detail = cat("has ", quote(std::string(1, c)), " at byte ", i);
        break;
      }
    }
  }
  MIXPEFT_CHECK(detail.empty(), ErrorKind::kInvalidArgument, "profile name ", quoted(name), " ", detail, ": ", kRule);
}

void check_profile(const Profile& p) {
  check_profile_name(p.name);
  const std::string where = cat("profile ", quoted(p.name));
  bool known = false;
  for (const char* k : kProfileKinds) known = known || p.kind == k;
  MIXPEFT_CHECK(known, ErrorKind::kInvalidArgument, where, ": kind ", quote(p.kind, 40), " is not one of ",
                kinds_list());
  nlohmann::json config;
  check_json_object(p.config, where + ": config", false, &config);
  // The config says which method made the tensors; a store that filed them
  // under another kind would hand them to the wrong method at serve time.
  if (config.contains("peft_type")) {
    const nlohmann::json& t = config["peft_type"];
    MIXPEFT_CHECK(t.is_string() && t.get<std::string>() == p.kind, ErrorKind::kInvalidArgument, where,
                  ": config: peft_type ", t.dump(), " does not match kind \"", p.kind, "\"");
  }
  check_json_object(p.metadata, where + ": metadata", true, nullptr);
  // Validated in full (header, offsets, dtypes) so the server never has to
  // distrust what the store hands it. Throws kCorrupt naming the profile.
  io::SafetensorsFile::from_bytes(p.tensors, where + ": tensors");
}

struct ProfileStore::Impl {
  Impl(const std::string& path, const ProfileStoreOptions& options) : db(path, options.busy_timeout_ms) {
    open();
  }

  Db db;
  std::mutex mu;
  std::function<void(const std::string&)> failpoint;

  void hit(const char* step) {
    if (failpoint) failpoint(step);
  }

  void open() {
    // WAL: readers (other processes, a CLI listing profiles) never block the
    // server's writes and the other way round, and a commit appends to one
    // file instead of rewriting pages in place. The first read of the file:
    // a file that is not SQLite fails here (SQLITE_NOTADB, kCorrupt).
    {
      Query q(db, "PRAGMA journal_mode=WAL", "switching to WAL journal mode");
      std::string mode = q.step() ? q.text_at(0) : "";
      MIXPEFT_CHECK(mode == "wal", ErrorKind::kUnsupported, db.path(),
                    ": SQLite cannot use WAL journal mode for this file (it reports \"", mode,
                    "\"); the profile store needs a local file system");
    }
    // synchronous=NORMAL: in WAL mode SQLite then fsyncs at checkpoints, not
    // at every commit. A commit costs a write() instead of an fsync
    // (milliseconds on most disks); the file stays consistent after a power
    // loss, which can only take back the last commits. Profiles come from
    // training runs that still hold them, so that trade is the right one;
    // FULL would be the choice for data that exists nowhere else.
    db.exec("PRAGMA synchronous=NORMAL", "setting synchronous=NORMAL");

    Transaction txn(db);  // the write lock: two processes creating one store must not both create the schema
    bool has_info = false;
    int64_t tables = 0;
    {
      Query q(db, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
              "reading the schema");
      while (q.step()) {
        ++tables;
        has_info = has_info || q.text_at(0) == "store_info";
      }
    }
    if (tables == 0) {
      db.exec(kCreateSchema, "creating the profile store's tables");
      txn.commit();
      return;
    }
    MIXPEFT_CHECK(has_info, ErrorKind::kCorrupt, db.path(),
                  ": not a profile store (an SQLite database without the store_info table)");
    Query q(db, "SELECT value FROM store_info WHERE key = 'schema_version'", "reading the schema version");
    MIXPEFT_CHECK(q.step(), ErrorKind::kCorrupt, db.path(), ": not a profile store (store_info has no schema_version)");
    int64_t version = q.int_at(0);
    MIXPEFT_CHECK(version <= kSchemaVersion, ErrorKind::kUnsupported, db.path(), ": profile store schema version ",
                  version, " is newer than this mixpeft reads (", kSchemaVersion, "): use a newer mixpeft");
    MIXPEFT_CHECK(version >= 1, ErrorKind::kCorrupt, db.path(), ": profile store schema version ", version,
                  " is invalid");
  }

  // Reserves n versions; returns the first. Inside the caller's transaction.
  int64_t reserve_versions(int64_t n) {
    int64_t last = 0;
    {
      Query q(db, "SELECT value FROM store_info WHERE key = 'last_version'", "reading the version counter");
      MIXPEFT_CHECK(q.step(), ErrorKind::kCorrupt, db.path(), ": store_info has no last_version");
      last = q.int_at(0);
    }
    Query q(db, "UPDATE store_info SET value = ?1 WHERE key = 'last_version'", "bumping the version counter");
    q.bind_int(1, last + n);
    q.run();
    hit("versioned");
    return last + 1;
  }

  // Inserts or (with replace) overwrites one checked profile. Inside the
  // caller's transaction.
  void write(const Prepared& prep, bool replace, int64_t version, int64_t now) {
    const Profile& p = *prep.profile;
    bool exists = false;
    {
      Query q(db, "SELECT 1 FROM profiles WHERE name = ?1", "looking up a profile");
      q.bind_text(1, p.name);
      exists = q.step();
    }
    MIXPEFT_CHECK(!exists || replace, ErrorKind::kInvalidArgument, db.path(), ": profile ", quoted(p.name),
                  " exists (replace it to overwrite)");
    // Same parameter numbers in both statements; the UPDATE keeps created_at.
    Query q(db,
            exists ? "UPDATE profiles SET kind = ?2, config = ?3, metadata = ?4, sha256 = ?5, bytes = ?6, "
                     "updated_at = ?8, version = ?9, tensors = ?10 WHERE name = ?1"
                   : "INSERT INTO profiles (name, kind, config, metadata, sha256, bytes, created_at, updated_at, "
                     "version, tensors) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            "writing a profile");
    q.bind_text(1, p.name);
    q.bind_text(2, p.kind);
    q.bind_text(3, p.config);
    q.bind_text(4, p.metadata);
    q.bind_text(5, prep.sha256);
    q.bind_int(6, static_cast<int64_t>(p.tensors.size()));
    if (!exists) q.bind_int(7, now);
    q.bind_int(8, now);
    q.bind_int(9, version);
    q.bind_blob(10, p.tensors);
    q.run();
    hit("written");
  }

  ProfileMeta meta_locked(const std::string& name) {
    Query q(db, "SELECT " MIXPEFT_META_COLUMNS " FROM profiles WHERE name = ?1", "reading a profile");
    q.bind_text(1, name);
    if (!q.step()) fail(ErrorKind::kNotFound, db.path(), ": no profile ", quoted(name));
    return read_meta(q);
  }
};

ProfileStore::ProfileStore(const std::string& path, const ProfileStoreOptions& options)
    : impl_(std::make_unique<Impl>(path, options)) {}

ProfileStore::~ProfileStore() = default;

const std::string& ProfileStore::path() const { return impl_->db.path(); }

ProfileMeta ProfileStore::put(const Profile& profile, bool replace) {
  Prepared prep = prepare(profile);  // validation and hashing outside the lock
  std::lock_guard<std::mutex> lock(impl_->mu);
  Transaction txn(impl_->db);
  int64_t version = impl_->reserve_versions(1);
  impl_->write(prep, replace, version, unix_now());
  ProfileMeta meta = impl_->meta_locked(profile.name);
  impl_->hit("commit");
  txn.commit();
  return meta;
}

std::vector<int64_t> ProfileStore::put_many(const std::vector<Profile>& profiles, bool replace) {
  std::vector<Prepared> prepared;
  prepared.reserve(profiles.size());
  std::set<std::string> names;
  for (const Profile& p : profiles) {
    prepared.push_back(prepare(p));
    MIXPEFT_CHECK(names.insert(p.name).second, ErrorKind::kInvalidArgument, "put_many: profile ", quoted(p.name),
                  " given twice");
  }
  std::vector<int64_t> versions;
  if (profiles.empty()) return versions;
  std::lock_guard<std::mutex> lock(impl_->mu);
  Transaction txn(impl_->db);
  int64_t first = impl_->reserve_versions(static_cast<int64_t>(profiles.size()));
  int64_t now = unix_now();
  for (size_t i = 0; i < prepared.size(); ++i) {
    impl_->write(prepared[i], replace, first + static_cast<int64_t>(i), now);
    versions.push_back(first + static_cast<int64_t>(i));
  }
  impl_->hit("commit");
  txn.commit();
  return versions;
}

Profile ProfileStore::get(const std::string& name) const {
  check_profile_name(name);
  std::lock_guard<std::mutex> lock(impl_->mu);
  Query q(impl_->db, "SELECT " MIXPEFT_META_COLUMNS ", tensors FROM profiles WHERE name = ?1", "reading a profile");
  q.bind_text(1, name);
  if (!q.step()) fail(ErrorKind::kNotFound, path(), ": no profile ", quoted(name));
  Profile p;
  static_cast<ProfileMeta&>(p) = read_meta(q);
  p.tensors = q.blob_at(9);
  return p;
}

ProfileMeta ProfileStore::get_meta(const std::string& name) const {
  check_profile_name(name);
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->meta_locked(name);
}

bool ProfileStore::exists(const std::string& name) const {
  check_profile_name(name);
  std::lock_guard<std::mutex> lock(impl_->mu);
  Query q(impl_->db, "SELECT 1 FROM profiles WHERE name = ?1", "looking up a profile");
  q.bind_text(1, name);
  return q.step();
}

void ProfileStore::remove(const std::string& name) {
  check_profile_name(name);
  std::lock_guard<std::mutex> lock(impl_->mu);
  {
    Query q(impl_->db, "DELETE FROM profiles WHERE name = ?1", "removing a profile");
    q.bind_text(1, name);
    q.run();
  }
  // One statement is its own transaction; changes() counts its rows.
  MIXPEFT_CHECK(sqlite3_changes64(impl_->db.handle()) > 0, ErrorKind::kNotFound, path(), ": no profile ",
                quoted(name));
}

int64_t ProfileStore::count() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Query q(impl_->db, "SELECT count(*) FROM profiles", "counting profiles");
  q.step();
  return q.int_at(0);
}

std::vector<ProfileMeta> ProfileStore::list(const std::string& after_name, int64_t limit) const {
  MIXPEFT_CHECK(limit >= 1, ErrorKind::kInvalidArgument, path(), ": list limit ", limit, " is not positive");
  limit = std::min(limit, kMaxListLimit);
  std::lock_guard<std::mutex> lock(impl_->mu);
  Query q(impl_->db, "SELECT " MIXPEFT_META_COLUMNS " FROM profiles WHERE name > ?1 ORDER BY name LIMIT ?2",
          "listing profiles");
  q.bind_text(1, after_name);
  q.bind_int(2, limit);
  std::vector<ProfileMeta> out;
  while (q.step()) out.push_back(read_meta(q));
  return out;
}

int64_t ProfileStore::total_bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Query q(impl_->db, "SELECT coalesce(sum(bytes), 0) FROM profiles", "summing profile sizes");
  q.step();
  return q.int_at(0);
}

void detail::ProfileStoreTestHooks::set_failpoint(ProfileStore& store,
                                                  std::function<void(const std::string& step)> hook) {
  std::lock_guard<std::mutex> lock(store.impl_->mu);
  store.impl_->failpoint = std::move(hook);
}

}  // namespace mixpeft::serve
