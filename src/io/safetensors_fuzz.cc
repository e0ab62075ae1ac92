// libFuzzer target for the safetensors header parser (build: see
// CMakeLists.txt, option MIXPEFT_FUZZ). Any input must either be refused with
// mixpeft::Error or open with every tensor readable inside the buffer; any
// other exception, a crash or a sanitizer report is a bug.
//   build-fuzz/src/io/safetensors_fuzz -max_total_time=60 [corpus_dir]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "mixpeft/error.h"
#include "mixpeft/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mixpeft;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    auto file = io::SafetensorsFile::from_bytes(bytes, "fuzz");
    uint64_t covered = 0;
    volatile uint8_t sink = 0;
    for (const io::TensorInfo& t : file->tensors()) {
      const uint8_t* p = file->data(t);
      const uint64_t n = t.end - t.begin;
      if (n != static_cast<uint64_t>(t.numel()) * io::dtype_size(t.dtype)) std::abort();
      for (uint64_t k = 0; k < n; ++k) sink = sink + p[k];
      covered += n;
    }
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i) header = (header << 8) | data[i];
    if (covered != size - 8 - header) std::abort();
  } catch (const Error&) {
    // refused: fine
  } catch (const std::exception& e) {
    std::fprintf(stderr, "non-mixpeft exception: %s\n", e.what());
    std::abort();
  }
  return 0;
}
