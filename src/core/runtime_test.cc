#include "mixpeft/runtime.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "mixpeft/error.h"

namespace mixpeft {
namespace {

TEST(Runtime, ParsesDevices) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  try {
    parse_device("tpu");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("tpu"), std::string::npos);
  }
  if (!torch::cuda::is_available()) {
    try {
      parse_device("cuda");
      FAIL();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    }
  }
}

TEST(Runtime, DefaultThreadsUsesEveryCore) {
  EXPECT_GE(default_num_threads(), 1);
  set_num_threads(0);
  EXPECT_EQ(at::get_num_threads(), default_num_threads());
}

}  // namespace
}  // namespace mixpeft
