// Randomised corruption of a valid file (fixed seed, bounded iterations):
// every mutant must either open, with every tensor readable inside the
// buffer, or throw mixpeft::Error. Run under -fsanitize=address,undefined
// to turn a silent out-of-bounds read into a failure.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "io/test_util.h"
#include "mixpeft/safetensors.h"

namespace mixpeft::io {
namespace {

using testing::TempDir;

std::string valid_file() {
  TempDir tmp;
  const std::string path = tmp.file("seed.safetensors");
  std::mt19937 rng(1);
  std::string f32(4 * 6, '\0'), i64(8 * 2, '\0'), bf16(2 * 3, '\0'), u8(5, '\0');
  for (std::string* s : {&f32, &i64, &bf16, &u8}) {
    for (char& c : *s) c = static_cast<char>(rng());
  }
  const char one = 1;
  write_safetensors(path,
                    {{"model.layers.0.w", DType::kF32, {2, 3}, f32.data(), f32.size()},
                     {"ids", DType::kI64, {2}, i64.data(), i64.size()},
                     {"empty", DType::kF16, {0, 4}, nullptr, 0},
                     {"s", DType::kBool, {}, &one, 1},
                     {"h", DType::kBF16, {3, 1}, bf16.data(), bf16.size()},
                     {"bytes", DType::kU8, {5}, u8.data(), u8.size()}},
                    {{"format", "pt"}});
  return read_file(path);
}

uint64_t header_length(const std::string& f) {
  uint64_t n = 0;
  for (int i = 7; i >= 0 && f.size() >= 8; --i) n = (n << 8) | static_cast<uint8_t>(f[i]);
  return n;
}

void set_header_length(std::string& f, uint64_t n) {
  for (int i = 0; i < 8 && i < static_cast<int>(f.size()); ++i) f[i] = static_cast<char>(n >> (8 * i));
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  std::string mutate(const std::string& original) {
    std::string f = original;
    const uint64_t n = header_length(original);
    const int rounds = 1 + static_cast<int>(pick(3));
    for (int r = 0; r < rounds; ++r) mutate_once(f, n);
    return f;
  }

 private:
  uint64_t pick(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  // A position, 80% of the time inside the JSON header.
  std::size_t position(const std::string& f, uint64_t n) {
    if (f.empty()) return 0;
    if (pick(5) > 0 && n > 0 && 8 + n <= f.size()) return 8 + pick(n);
    return pick(f.size());
  }

  void mutate_once(std::string& f, uint64_t n) {
    static const char kInteresting[] = "{}[]\":,-.0123456789eE \\tnulF";
    static const char* kNumbers[] = {"0", "-1", "1", "4", "7", "-0", "1e3", "0.5", "18446744073709551615",
                                     "18446744073709551616", "9223372036854775807", "9223372036854775808",
                                     "4294967296", "3037000500", "99999999999999999999999"};
    switch (pick(9)) {
      case 0: {  // bit flips
        if (f.empty()) return;
        for (int k = 1 + static_cast<int>(pick(4)); k > 0; --k) f[position(f, n)] ^= static_cast<char>(1 << pick(8));
        break;
      }
      case 1: {  // overwrite a byte with a JSON-significant or random one
        if (f.empty()) return;
        f[position(f, n)] = pick(3) ? kInteresting[pick(sizeof kInteresting - 1)] : static_cast<char>(rng_());
        break;
      }
      case 2:  // truncate
        f.resize(pick(f.size() + 1));
        break;
      case 3: {  // random header length: anything, near the real one, or inside the file
        uint64_t v = pick(3) == 0 ? rng_() : pick(2) ? n + pick(17) - 8 : pick(f.size() + 1);
        if (f.size() < 8) f.resize(8, ' ');
        set_header_length(f, v);
        break;
      }
      case 4: {  // splice: copy a chunk of the file over another place
        if (f.size() < 2) return;
        std::size_t from = position(f, n), to = position(f, n), len = 1 + pick(64);
        std::string chunk = f.substr(from, len);
        f.replace(to, std::min(chunk.size(), f.size() - to), chunk);
        break;
      }
      case 5: {  // insert a chunk (the header grows; the length field may follow)
        std::size_t from = position(f, n), to = position(f, n), len = 1 + pick(48);
        std::string chunk = from < f.size() ? f.substr(from, len) : "x";
        f.insert(std::min(to, f.size()), chunk);
        if (pick(2) && f.size() >= 8) set_header_length(f, header_length(f) + chunk.size());
        break;
      }
      case 6: {  // delete a chunk (the length field may follow)
        if (f.empty()) return;
        std::size_t at = position(f, n), len = 1 + pick(32);
        len = std::min(len, f.size() - at);
        f.erase(at, len);
        if (pick(2) && f.size() >= 8) {
          set_header_length(f, header_length(f) - std::min<uint64_t>(len, header_length(f)));
        }
        break;
      }
      case 7: {  // replace a number in the header with an interesting one, keeping the length right
        if (f.size() < 8 + n) return;
        std::string header = f.substr(8, n);
        std::size_t at = header.find_first_of("0123456789", pick(header.size()));
        if (at == std::string::npos) return;
        std::size_t end = header.find_first_not_of("0123456789", at);
        header.replace(at, end - at, kNumbers[pick(sizeof kNumbers / sizeof *kNumbers)]);
        f = f.substr(0, 8) + header + f.substr(8 + n);
        set_header_length(f, header.size());
        break;
      }
      case 8: {  // grow or shrink the data section
        if (pick(2)) f.append(1 + pick(16), static_cast<char>(rng_()));
        else if (!f.empty()) f.resize(f.size() - std::min<std::size_t>(f.size(), 1 + pick(16)));
        break;
      }
    }
  }

  std::mt19937_64 rng_;
};

TEST(Corruption, RandomMutationsOpenOrThrowMixpeftError) {
  const std::string original = valid_file();
  ASSERT_NO_THROW(SafetensorsFile::from_bytes(original, "seed"));
  Mutator mutator(0x5afe7e45);
  constexpr int kIterations = 20000;
  int opened = 0, refused = 0, failures = 0;
  uint64_t checksum = 0;
  std::map<ErrorKind, int> kinds;
  for (int i = 0; i < kIterations && failures < 5; ++i) {
    const std::string bytes = mutator.mutate(original);
    try {
      auto f = SafetensorsFile::from_bytes(bytes, "mutant");
      const uint64_t data_size = bytes.size() - 8 - header_length(bytes);
      uint64_t covered = 0;
      for (const TensorInfo& t : f->tensors()) {
        // Invariants open() promises: in bounds and the right size.
        ASSERT_LE(t.begin, t.end);
        ASSERT_LE(t.end, data_size);
        ASSERT_EQ(t.end - t.begin, static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype));
        const uint8_t* p = f->data(t);
        for (uint64_t k = 0; k < t.end - t.begin; ++k) checksum = checksum * 31 + p[k];
        covered += t.end - t.begin;
      }
      ASSERT_EQ(covered, data_size);  // tensors tile the data section
      ++opened;
    } catch (const Error& e) {
      ++refused;
      ++kinds[e.kind()];
      if (std::string(e.what()).rfind("mutant: ", 0) != 0) {
        ADD_FAILURE() << "iteration " << i << ": message does not start with the label: " << e.what();
        ++failures;
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << i << ": non-mixpeft exception: " << e.what();
      ++failures;
    }
  }
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(opened + refused, kIterations);
  // The mutations must reach both outcomes, or the test proves little.
  EXPECT_GT(opened, kIterations / 100) << "opened " << opened << ", refused " << refused;
  EXPECT_GT(refused, kIterations / 2);
  EXPECT_GT(kinds[ErrorKind::kCorrupt], 0);
  for (const auto& [kind, count] : kinds) {
    EXPECT_TRUE(kind == ErrorKind::kCorrupt || kind == ErrorKind::kUnsupported) << to_string(kind) << " x" << count;
  }
  RecordProperty("opened", opened);
  RecordProperty("refused", refused);
  std::printf("corruption: %d opened, %d refused (checksum %llx)\n", opened, refused,
              static_cast<unsigned long long>(checksum));
}

}  // namespace
}  // namespace mixpeft::io
