// Private to src/serve: failure injection for the profile store's tests.
#pragma once

#include <functional>
#include <string>

#include "mixpeft/profile_store.h"

namespace mixpeft::serve::detail {

struct ProfileStoreTestHooks {
  // Calls hook(step) at each step of a put / put_many inside its transaction:
  // "versioned" (the version counter is bumped), "written" (after each
  // profile row) and "commit" (just before COMMIT). A hook that throws stands
  // for a failure at that point (a crash, a full disk): the transaction must
  // then roll back. An empty hook removes it. Not for use while other threads
  // call the store.
  static void set_failpoint(ProfileStore& store, std::function<void(const std::string& step)> hook);
};

}  // namespace mixpeft::serve::detail
