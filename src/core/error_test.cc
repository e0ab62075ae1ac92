#include "mixpeft/error.h"

#include <gtest/gtest.h>

namespace mixpeft {
namespace {

TEST(Error, CarriesKindAndMessage) {
  try {
    MIXPEFT_CHECK(1 + 1 == 3, ErrorKind::kCorrupt, "file.bin: tensor ", "w", " is ", 3, " bytes");
    FAIL() << "MIXPEFT_CHECK did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
    EXPECT_STREQ(e.what(), "file.bin: tensor w is 3 bytes");
  }
}

TEST(Error, CheckPassesWhenTrue) {
  EXPECT_NO_THROW(MIXPEFT_CHECK(true, ErrorKind::kInternal, "never"));
  EXPECT_STREQ(to_string(ErrorKind::kNotFound), "not found");
}

}  // namespace
}  // namespace mixpeft
