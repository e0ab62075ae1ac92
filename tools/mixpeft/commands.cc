#include "commands.h"

namespace mixpeft::cli {

GlobalOptions& global_options() {
  static GlobalOptions options;
  return options;
}

void add_all_commands(CLI::App& app) {
#define MIXPEFT_CLI_ADD(name) add_##name##_command(app);
  MIXPEFT_CLI_COMMANDS(MIXPEFT_CLI_ADD)
#undef MIXPEFT_CLI_ADD
}

}  // namespace mixpeft::cli
