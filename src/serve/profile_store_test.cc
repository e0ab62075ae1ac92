// ProfileStore: validation, round trips, all-or-nothing writes, reopening,
// schema checks, paging, bulk puts and concurrent use.
#include "mixpeft/profile_store.h"

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>

#include "core/test_util.h"
#include "data/internal.h"
#include "mixpeft/safetensors.h"
#include "serve/internal.h"

namespace mixpeft::serve {
namespace {

using mixpeft::testing::TempDir;
using mixpeft::testing::throws_error;
using mixpeft::testing::throws_error_exactly;
using mixpeft::testing::throws_error_starting_with;
using FailpointHook = std::function<void(const std::string&)>;

// An X-PEFT profile's tensors: two float32 [6, 16] mask-logit tensors. The
// buffer comes from io::write_safetensors once; `seed` goes into the last
// four data bytes, so profiles differ without writing a file each.
std::string xpeft_tensors(uint32_t seed = 0) {
  static const std::string base = [] {
    TempDir dir;
    std::vector<float> a(6 * 16, 0.25f), b(6 * 16, -0.5f);
    io::write_safetensors(dir.file("adapter_model.safetensors"),
                          {{"xpeft.mask_A", io::DType::kF32, {6, 16}, a.data(), a.size() * sizeof(float)},
                           {"xpeft.mask_B", io::DType::kF32, {6, 16}, b.data(), b.size() * sizeof(float)}});
    return io::read_file(dir.file("adapter_model.safetensors"));
  }();
  std::string t = base;
  std::memcpy(&t[t.size() - sizeof(seed)], &seed, sizeof(seed));
  return t;
}

Profile make_profile(const std::string& name, uint32_t seed = 0) {
  Profile p;
  p.name = name;
  p.kind = "XPEFT";
  p.config = R"({"peft_type": "XPEFT", "num_adapters": 16, "mask_type": "softmax"})";
  p.metadata = R"({"president": "lincoln", "seed": )" + std::to_string(seed) + "}";
  p.tensors = xpeft_tensors(seed);
  return p;
}

// Everything a store holds, as text: two stores (or one store at two times)
// hold the same profiles exactly when their dumps are equal.
std::string dump(const ProfileStore& store) {
  std::string out = "count " + std::to_string(store.count()) + ", bytes " + std::to_string(store.total_bytes()) + "\n";
  std::string after;
  for (;;) {
    std::vector<ProfileMeta> page = store.list(after, 7);
    if (page.empty()) break;
    for (const ProfileMeta& m : page) {
      Profile p = store.get(m.name);
      out += cat(p.name, " ", p.kind, " v", p.version, " c", p.created_at, " u", p.updated_at, " ", p.bytes, " ",
                 p.sha256, " ", p.config, " ", p.metadata, " tensors ", data::detail::sha256_hex(p.tensors), "\n");
    }
    after = page.back().name;
  }
  return out;
}

// Runs `sql` on the file through a connection of its own (another process,
// as far as the store can tell).
void run_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string message = err != nullptr ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

struct InjectedFailure : std::runtime_error {
  InjectedFailure() : std::runtime_error("injected failure") {}
};

// A failpoint hook that throws at the n-th (1-based) time `step` is reached.
FailpointHook fail_at(const std::string& step, int n = 1) {
  auto seen = std::make_shared<int>(0);
  return [=](const std::string& s) {
    if (s == step && ++*seen == n) throw InjectedFailure();
  };
}

TEST(ProfileName, AcceptsTheAllowedCharacters) {
  for (const std::string& name :
       std::vector<std::string>{"a", "president-lincoln", "Profile_01.v2", "0", "a..b", "x-", std::string(64, 'z')}) {
    EXPECT_NO_THROW(check_profile_name(name)) << name;
  }
}

TEST(ProfileName, RefusesAnythingElseNamingTheNameAndTheRule) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "is empty"},
      {".", "starts with '.'"},
      {"..", "starts with '.'"},
      {".hidden", "starts with '.'"},
      {"-rf", "starts with '-'"},
      {"a/b", "has \"/\" at byte 1"},
      {"../etc/passwd", "starts with '.'"},
      {"a\\b", "has \"\\\\\" at byte 1"},
      {"a b", "has \" \" at byte 1"},
      {"a%2Fb", "has \"%\" at byte 1"},
      {"line\nbreak", "has \"\\n\" at byte 4"},
      {"caf\xC3\xA9", "has \"\xC3\" at byte 3"},
      {std::string("nul\0x", 5), "has \"\\x00\" at byte 3"},
      {std::string(65, 'z'), "is 65 bytes long"},
  };
  for (const auto& [name, why] : cases) {
    EXPECT_TRUE(throws_error_starting_with([&] { check_profile_name(name); }, ErrorKind::kInvalidArgument,
                                           "profile name \"",
                                           {why, "1-64 characters of A-Z a-z 0-9 _ . -", "not start with '.' or '-'"}))
        << why;
  }
}

TEST(CheckProfile, RefusesBadKindConfigMetadataAndTensors) {
  Profile ok = make_profile("p1");
  EXPECT_NO_THROW(check_profile(ok));
  Profile no_meta = ok;
  no_meta.metadata = "";  // optional
  EXPECT_NO_THROW(check_profile(no_meta));
  for (const char* kind : {"LORA", "MOSLORA", "ADAMIX"}) {
    Profile p = ok;
    p.kind = kind;
    p.config = "{}";  // no peft_type: nothing to contradict
    EXPECT_NO_THROW(check_profile(p)) << kind;
  }

  auto with = [&](const std::function<void(Profile&)>& change) {
    Profile p = ok;
    change(p);
    return p;
  };
  const std::string where = "profile \"p1\": ";
  EXPECT_TRUE(throws_error_starting_with([&] { check_profile(with([](Profile& p) { p.kind = "lora"; })); },
                                         ErrorKind::kInvalidArgument, where + "kind \"lora\" is not one of",
                                         {"XPEFT, LORA, MOSLORA, ADAMIX"}));
  EXPECT_TRUE(throws_error_starting_with([&] { check_profile(with([](Profile& p) { p.config = "{\"r\": 8"; })); },
                                         ErrorKind::kInvalidArgument, where + "config: not valid JSON: ",
                                         {"line 1"}));
  EXPECT_TRUE(throws_error_starting_with([&] { check_profile(with([](Profile& p) { p.config = "[1]"; })); },
                                         ErrorKind::kInvalidArgument, where + "config: a JSON object expected, got array"));
  EXPECT_TRUE(throws_error_starting_with(
      [&] { check_profile(with([](Profile& p) { p.config = R"({"peft_type": "LORA"})"; })); },
      ErrorKind::kInvalidArgument, where + "config: peft_type \"LORA\" does not match kind \"XPEFT\""));
  EXPECT_TRUE(throws_error_starting_with([&] { check_profile(with([](Profile& p) { p.metadata = "\"x\""; })); },
                                         ErrorKind::kInvalidArgument, where + "metadata: a JSON object expected"));
  EXPECT_TRUE(throws_error_starting_with(
      [&] { check_profile(with([](Profile& p) { p.tensors = p.tensors.substr(0, p.tensors.size() - 1); })); },
      ErrorKind::kCorrupt, where + "tensors"));
  EXPECT_TRUE(throws_error_starting_with([&] { check_profile(with([](Profile& p) { p.tensors.clear(); })); },
                                         ErrorKind::kCorrupt, where + "tensors"));
  EXPECT_TRUE(throws_error_starting_with([&] { check_profile(with([](Profile& p) { p.name = "a/b"; })); },
                                         ErrorKind::kInvalidArgument, "profile name \"a/b\""));
}

TEST(ProfileStore, PutThenGetReturnsTheSameBytes) {
  TempDir dir;
  ProfileStore store(dir.file("profiles.db"));
  EXPECT_EQ(store.path(), dir.file("profiles.db"));
  EXPECT_EQ(store.count(), 0);
  EXPECT_EQ(store.total_bytes(), 0);
  EXPECT_TRUE(store.list().empty());

  Profile p = make_profile("lincoln", 7);
  // The store's clock (system_clock, truncated to seconds), not std::time():
  // glibc's time() reads the coarse clock, up to a tick behind, so near a
  // second boundary it could say "before" the store's stamp (seen in CI).
  auto unix_now = [] {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  int64_t before = unix_now();
  ProfileMeta m = store.put(p);
  int64_t after = unix_now();
  EXPECT_EQ(m.name, "lincoln");
  EXPECT_EQ(m.kind, "XPEFT");
  EXPECT_EQ(m.config, p.config);
  EXPECT_EQ(m.metadata, p.metadata);
  EXPECT_EQ(m.sha256, data::detail::sha256_hex(p.tensors));
  EXPECT_EQ(m.sha256.size(), 64u);
  EXPECT_EQ(m.bytes, static_cast<int64_t>(p.tensors.size()));
  EXPECT_GE(m.created_at, before);
  EXPECT_LE(m.created_at, after);
  EXPECT_EQ(m.updated_at, m.created_at);
  EXPECT_EQ(m.version, 1);

  Profile back = store.get("lincoln");
  EXPECT_EQ(back.tensors, p.tensors);
  EXPECT_EQ(back.config, p.config);
  EXPECT_EQ(back.metadata, p.metadata);
  EXPECT_EQ(back.version, 1);
  ProfileMeta meta = store.get_meta("lincoln");
  EXPECT_EQ(meta.sha256, m.sha256);
  EXPECT_EQ(meta.created_at, m.created_at);
  EXPECT_TRUE(store.exists("lincoln"));
  EXPECT_FALSE(store.exists("washington"));
  EXPECT_EQ(store.count(), 1);
  EXPECT_EQ(store.total_bytes(), m.bytes);

  Profile bare = make_profile("bare");
  bare.metadata = "";
  store.put(bare);
  EXPECT_EQ(store.get("bare").metadata, "");
}

TEST(ProfileStore, ExistingNameNeedsReplace) {
  TempDir dir;
  ProfileStore store(dir.file("profiles.db"));
  store.put(make_profile("x", 1));
  const std::string before = dump(store);
  EXPECT_TRUE(throws_error_starting_with([&] { store.put(make_profile("x", 2)); }, ErrorKind::kInvalidArgument,
                                         dir.file("profiles.db") + ": profile \"x\" exists"));
  EXPECT_EQ(dump(store), before);
  EXPECT_TRUE(throws_error([&] { store.put_many({make_profile("y"), make_profile("x", 2)}); },
                           ErrorKind::kInvalidArgument, {"profile \"x\" exists"}));
  EXPECT_EQ(dump(store), before);  // "y" was not written either
}

TEST(ProfileStore, ReplaceBumpsTheVersionAndKeepsCreatedAt) {
  TempDir dir;
  ProfileStore store(dir.file("profiles.db"));
  ProfileMeta first = store.put(make_profile("x", 1));
  store.put(make_profile("other"));
  Profile changed = make_profile("x", 2);
  changed.metadata = R"({"note": "retrained"})";
  ProfileMeta second = store.put(changed, /*replace=*/true);
  EXPECT_EQ(first.version, 1);
  EXPECT_EQ(second.version, 3);
  EXPECT_EQ(second.created_at, first.created_at);
  EXPECT_GE(second.updated_at, first.updated_at);
  EXPECT_NE(second.sha256, first.sha256);
  Profile back = store.get("x");
  EXPECT_EQ(back.tensors, changed.tensors);
  EXPECT_EQ(back.metadata, changed.metadata);
  EXPECT_EQ(back.version, 3);
  EXPECT_EQ(store.count(), 2);
  // replace=true also creates.
  EXPECT_EQ(store.put(make_profile("new"), true).version, 4);
}

TEST(ProfileStore, VersionsAreNeverReused) {
  TempDir dir;
  ProfileStore store(dir.file("profiles.db"));
  EXPECT_EQ(store.put(make_profile("a", 1)).version, 1);
  store.remove("a");
  EXPECT_FALSE(store.exists("a"));
  // A cache holding ("a", 1) must not mistake the new "a" for the old one.
  EXPECT_EQ(store.put(make_profile("a", 2)).version, 2);
}

TEST(ProfileStore, MissingProfilesAreNotFoundAndBadNamesInvalid) {
  TempDir dir;
  const std::string path = dir.file("profiles.db");
  ProfileStore store(path);
  EXPECT_TRUE(throws_error_exactly([&] { store.get("ghost"); }, ErrorKind::kNotFound, path + ": no profile \"ghost\""));
  EXPECT_TRUE(throws_error_exactly([&] { store.get_meta("ghost"); }, ErrorKind::kNotFound,
                                   path + ": no profile \"ghost\""));
  EXPECT_TRUE(throws_error_exactly([&] { store.remove("ghost"); }, ErrorKind::kNotFound,
                                   path + ": no profile \"ghost\""));
  for (const std::string bad : {"../ghost", "", ".."}) {
    EXPECT_TRUE(throws_error_starting_with([&] { store.get(bad); }, ErrorKind::kInvalidArgument, "profile name"));
    EXPECT_TRUE(throws_error_starting_with([&] { store.get_meta(bad); }, ErrorKind::kInvalidArgument, "profile name"));
    EXPECT_TRUE(throws_error_starting_with([&] { store.exists(bad); }, ErrorKind::kInvalidArgument, "profile name"));
    EXPECT_TRUE(throws_error_starting_with([&] { store.remove(bad); }, ErrorKind::kInvalidArgument, "profile name"));
  }
  EXPECT_TRUE(throws_error_starting_with([&] { store.list("", 0); }, ErrorKind::kInvalidArgument, path + ": list limit 0"));
}

// Every way a write can fail leaves the store exactly as it was, in this
// object and in the file, and takes no version number.
TEST(ProfileStore, AFailedWriteLeavesTheStoreAsItWas) {
  TempDir dir;
  const std::string path = dir.file("profiles.db");
  auto store = std::make_unique<ProfileStore>(path);
  store->put_many({make_profile("a", 1), make_profile("b", 2), make_profile("c", 3)});
  const std::string before = dump(*store);

  // Refused before the transaction starts.
  Profile corrupt = make_profile("d");
  corrupt.tensors[3] = '\x7f';  // the header length now points far past the end
  EXPECT_TRUE(throws_error_starting_with([&] { store->put(corrupt); }, ErrorKind::kCorrupt, "profile \"d\": tensors"));
  Profile bad_config = make_profile("a", 9);
  bad_config.config = "{\"peft_type\": ";
  EXPECT_TRUE(throws_error_starting_with([&] { store->put(bad_config, true); }, ErrorKind::kInvalidArgument,
                                         "profile \"a\": config: not valid JSON"));
  EXPECT_TRUE(throws_error_starting_with(
      [&] { store->put_many({make_profile("e"), corrupt}); }, ErrorKind::kCorrupt, "profile \"d\": tensors"));
  EXPECT_TRUE(throws_error([&] { store->put_many({make_profile("e"), make_profile("e", 1)}); },
                           ErrorKind::kInvalidArgument, {"profile \"e\" given twice"}));
  EXPECT_EQ(dump(*store), before);

  // Failures between statements inside the transaction: after the version
  // counter moved, after a row was written, just before COMMIT; for a new
  // profile, a replaced one, and the third row of a put_many.
  for (const std::string step : {"versioned", "written", "commit"}) {
    SCOPED_TRACE(step);
    detail::ProfileStoreTestHooks::set_failpoint(*store, fail_at(step));
    EXPECT_THROW(store->put(make_profile("d", 4)), InjectedFailure);
    detail::ProfileStoreTestHooks::set_failpoint(*store, fail_at(step));
    EXPECT_THROW(store->put(make_profile("a", 5), /*replace=*/true), InjectedFailure);
    detail::ProfileStoreTestHooks::set_failpoint(*store, fail_at(step, step == "written" ? 3 : 1));
    EXPECT_THROW(store->put_many({make_profile("d", 6), make_profile("b", 7), make_profile("e", 8)}, true),
                 InjectedFailure);
    detail::ProfileStoreTestHooks::set_failpoint(*store, {});
    EXPECT_EQ(dump(*store), before);
  }

  // The same after closing and reopening the file.
  store.reset();
  store = std::make_unique<ProfileStore>(path);
  EXPECT_EQ(dump(*store), before);
  // No failed write used up a version: the next one is 4.
  EXPECT_EQ(store->put(make_profile("d", 4)).version, 4);
}

// Another process holding the write lock: the put fails with kIO after the
// busy timeout and changes nothing; reads go on meanwhile (WAL).
TEST(ProfileStore, ALockHeldElsewhereFailsWritesNotReads) {
  TempDir dir;
  const std::string path = dir.file("profiles.db");
  ProfileStoreOptions options;
  options.busy_timeout_ms = 50;
  ProfileStore store(path, options);
  store.put(make_profile("a", 1));
  const std::string before = dump(store);

  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE; DELETE FROM profiles;", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_TRUE(throws_error_starting_with([&] { store.put(make_profile("b", 2)); }, ErrorKind::kIO,
                                         path + ": starting a write transaction: ", {"locked"}));
  EXPECT_TRUE(throws_error_starting_with([&] { store.remove("a"); }, ErrorKind::kIO, path + ": removing a profile"));
  EXPECT_EQ(dump(store), before);  // the other connection's uncommitted delete is invisible
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);

  EXPECT_EQ(dump(store), before);
  EXPECT_EQ(store.put(make_profile("b", 2)).version, 2);
}

TEST(ProfileStore, ReopeningKeepsEveryProfile) {
  TempDir dir;
  const std::string path = dir.file("profiles.db");
  std::vector<Profile> written;
  for (uint32_t i = 0; i < 20; ++i) written.push_back(make_profile("p" + std::to_string(i), i));
  std::string before;
  {
    ProfileStore store(path);
    for (const Profile& p : written) store.put(p);
    store.put(make_profile("p3", 100), /*replace=*/true);
    written[3] = make_profile("p3", 100);
    store.remove("p7");
    written.erase(written.begin() + 7);
    before = dump(store);
  }
  ProfileStore store(path);
  EXPECT_EQ(dump(store), before);
  EXPECT_EQ(store.count(), static_cast<int64_t>(written.size()));
  for (const Profile& p : written) {
    Profile back = store.get(p.name);
    EXPECT_EQ(back.tensors, p.tensors) << p.name;
    EXPECT_EQ(back.config, p.config) << p.name;
    EXPECT_EQ(back.metadata, p.metadata) << p.name;
  }
  EXPECT_FALSE(store.exists("p7"));
  // Versions go on from where the file left off (20 puts, 1 replace).
  EXPECT_EQ(store.put(make_profile("p7", 7)).version, 22);
}

TEST(ProfileStore, TheFileIsInWalMode) {
  TempDir dir;
  const std::string path = dir.file("profiles.db");
  ProfileStore store(path);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(ProfileStore, RefusesANewerSchema) {
  TempDir dir;
  const std::string path = dir.file("profiles.db");
  { ProfileStore store(path); }
  run_sql(path, "UPDATE store_info SET value = 2 WHERE key = 'schema_version'");
  EXPECT_TRUE(throws_error_exactly([&] { ProfileStore store(path); }, ErrorKind::kUnsupported,
                                   path + ": profile store schema version 2 is newer than this mixpeft reads (1): "
                                          "use a newer mixpeft"));
}

TEST(ProfileStore, RefusesFilesThatAreNotProfileStores) {
  TempDir dir;
  const std::string text = dir.write("notes.txt", std::string(4096, 'x'));
  EXPECT_TRUE(throws_error_starting_with([&] { ProfileStore store(text); }, ErrorKind::kCorrupt, text + ": ",
                                         {"not a database"}));
  const std::string other = dir.file("other.db");
  run_sql(other, "CREATE TABLE users (id INTEGER)");
  EXPECT_TRUE(throws_error_exactly([&] { ProfileStore store(other); }, ErrorKind::kCorrupt,
                                   other + ": not a profile store (an SQLite database without the store_info table)"));
  const std::string nowhere = dir.file("missing/profiles.db");
  EXPECT_TRUE(throws_error_starting_with([&] { ProfileStore store(nowhere); }, ErrorKind::kIO,
                                         nowhere + ": cannot open the profile store: "));
}

TEST(ProfileStore, ListPagesInNameOrder) {
  TempDir dir;
  ProfileStore store(dir.file("profiles.db"));
  std::set<std::string> names;
  std::vector<Profile> profiles;
  for (uint32_t i = 0; i < 25; ++i) {
    std::string name = (i % 2 ? "Zeta-" : "alpha-") + std::to_string(i);  // 'Z' sorts before 'a'
    names.insert(name);
    profiles.push_back(make_profile(name, i));
  }
  store.put_many(profiles);
  std::vector<std::string> seen;
  std::string after;
  int pages = 0;
  for (;;) {
    std::vector<ProfileMeta> page = store.list(after, 10);
    if (page.empty()) break;
    ++pages;
    EXPECT_LE(page.size(), 10u);
    for (const ProfileMeta& m : page) {
      seen.push_back(m.name);
      EXPECT_EQ(m.sha256, data::detail::sha256_hex(xpeft_tensors(static_cast<uint32_t>(
                              std::stoi(m.name.substr(m.name.find('-') + 1))))));
    }
    after = page.back().name;
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, std::vector<std::string>(names.begin(), names.end()));
  EXPECT_EQ(store.list("Zeta-9", 100).front().name, "alpha-0");  // after_name need not exist
  EXPECT_TRUE(store.list("zzz").empty());
}

// A few thousand profiles in one put_many: all there, consecutive versions,
// the list cap holds, sizes add up.
TEST(ProfileStore, PutManyStoresThousandsInOneTransaction) {
  TempDir dir;
  const std::string path = dir.file("profiles.db");
  ProfileStore store(path);
  constexpr uint32_t kCount = 3000;
  std::vector<Profile> profiles;
  int64_t bytes = 0;
  for (uint32_t i = 0; i < kCount; ++i) {
    profiles.push_back(make_profile(cat("user-", 100000 + i), i));
    bytes += static_cast<int64_t>(profiles.back().tensors.size());
  }
  std::vector<int64_t> versions = store.put_many(profiles);
  ASSERT_EQ(versions.size(), kCount);
  for (uint32_t i = 0; i < kCount; ++i) EXPECT_EQ(versions[i], i + 1);
  EXPECT_EQ(store.count(), kCount);
  EXPECT_EQ(store.total_bytes(), bytes);
  for (uint32_t i : {0u, 1u, 1234u, 2999u}) {
    Profile back = store.get(profiles[i].name);
    EXPECT_EQ(back.tensors, profiles[i].tensors);
    EXPECT_EQ(back.metadata, profiles[i].metadata);
    EXPECT_EQ(back.version, i + 1);
  }
  std::vector<ProfileMeta> page = store.list("", 5000);
  EXPECT_EQ(page.size(), static_cast<size_t>(kMaxListLimit));
  EXPECT_EQ(page.front().name, "user-100000");
  EXPECT_EQ(page.back().name, cat("user-", 100000 + kMaxListLimit - 1));

  // Replacing them all is one transaction too.
  for (Profile& p : profiles) p.metadata = "{}";
  versions = store.put_many(profiles, /*replace=*/true);
  EXPECT_EQ(versions.front(), kCount + 1);
  EXPECT_EQ(store.count(), kCount);
  EXPECT_EQ(store.get_meta("user-101234").metadata, "{}");
}

// Threads put, get and remove their own and shared names while another pages
// through the list: no crash, no error but the expected kNotFound, every
// profile read is whole, and the final state is what the threads left.
TEST(ProfileStore, ConcurrentUseIsSafe) {
  TempDir dir;
  ProfileStore store(dir.file("profiles.db"));
  constexpr int kThreads = 4, kOwn = 40, kShared = 5;
  std::atomic<bool> writers_done{false};
  std::atomic<int> errors{0};

  auto check_whole = [&](const Profile& p) {
    // A profile is read in one piece: its stored hash is its tensors' hash.
    if (p.sha256 != data::detail::sha256_hex(p.tensors) || p.bytes != static_cast<int64_t>(p.tensors.size())) {
      ++errors;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < kOwn; ++i) {
          std::string own = cat("own-", t, "-", i);
          store.put(make_profile(own, static_cast<uint32_t>(t * 1000 + i)));
          check_whole(store.get(own));
          if (i % 2 == 0) store.remove(own);
          std::string shared = cat("shared-", i % kShared);
          store.put(make_profile(shared, static_cast<uint32_t>(t)), /*replace=*/true);
          try {
            check_whole(store.get(shared));
            if (i % 7 == t) store.remove(shared);
          } catch (const Error& e) {
            if (e.kind() != ErrorKind::kNotFound) throw;  // another thread removed it first
          }
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << "writer " << t << ": " << e.what();
        ++errors;
      }
    });
  }
  std::thread lister([&] {
    try {
      do {
        std::string after;
        for (;;) {
          std::vector<ProfileMeta> page = store.list(after, 16);
          if (page.empty()) break;
          for (const ProfileMeta& m : page) {
            if (m.name <= after) ++errors;  // pages come in strict name order
            after = m.name;
          }
        }
        store.count();
        store.total_bytes();
      } while (!writers_done);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "lister: " << e.what();
      ++errors;
    }
  });
  for (std::thread& t : threads) t.join();
  writers_done = true;
  lister.join();
  EXPECT_EQ(errors, 0);

  // Each thread kept its odd-numbered own profiles.
  std::set<int64_t> versions;
  int64_t own = 0, bytes = 0;
  std::vector<ProfileMeta> all = store.list("", kMaxListLimit);
  for (const ProfileMeta& m : all) {
    EXPECT_TRUE(versions.insert(m.version).second) << "version " << m.version << " twice";
    bytes += m.bytes;
    if (m.name.rfind("own-", 0) == 0) {
      ++own;
      EXPECT_EQ(std::stoi(m.name.substr(m.name.rfind('-') + 1)) % 2, 1) << m.name;
    } else {
      EXPECT_EQ(m.name.rfind("shared-", 0), 0u) << m.name;
    }
    check_whole(store.get(m.name));
  }
  EXPECT_EQ(own, kThreads * kOwn / 2);
  EXPECT_EQ(store.count(), static_cast<int64_t>(all.size()));
  EXPECT_EQ(store.total_bytes(), bytes);
  EXPECT_EQ(errors, 0);
}

}  // namespace
}  // namespace mixpeft::serve
