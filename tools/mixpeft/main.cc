// mixpeft: the command-line tool.
//
//   $ mixpeft --help
//   $ mixpeft --threads 2 env --no-bench
//
// Exit codes: 0 success (and --help, --version, no command: prints help);
// 2 usage error (unknown command or option, bad value); 1 a command failed:
// `mixpeft: <kind>: <message>` on stderr.
#include <exception>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include "commands.h"
#include "mixpeft/error.h"
#include "mixpeft/runtime.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Runs once the whole command line has parsed, before the command's callback.
void apply_global_options() {
  mixpeft::cli::GlobalOptions& g = mixpeft::cli::global_options();
  mixpeft::prefer_avx512_kernels();  // before any tensor operation
  mixpeft::set_num_threads(g.threads);
  mixpeft::use_caching_cpu_allocator();
  g.device = mixpeft::parse_device(g.device_spec);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mixpeft: parameter-efficient fine-tuning of Hugging Face transformer models "
               "on LibTorch",
               "mixpeft"};
  app.set_version_flag("--version", std::string("mixpeft ") + MIXPEFT_VERSION);
  app.require_subcommand(0, 1);
  // Global options may also follow the command: `mixpeft env --threads 1`.
  app.fallthrough();

  mixpeft::cli::GlobalOptions& g = mixpeft::cli::global_options();
  app.add_option("--threads", g.threads,
                 "Threads for LibTorch and OpenBLAS (default 0 = every core this process may "
                 "use; fewer leaves cores free, more oversubscribes them)")
      ->check(CLI::Range(0, 65536))
      ->type_name("N");
  app.add_option("--device", g.device_spec,
                 "Where tensors live: cpu (default), cuda or cuda:N (needs a CUDA build of "
                 "LibTorch)")
      ->type_name("DEVICE");
  app.parse_complete_callback(apply_global_options);

  mixpeft::cli::add_all_commands(app);
  // Set after the commands are added so that they do not inherit it.
  app.footer("Run 'mixpeft <command> --help' for a command's options.");
  app.failure_message([](const CLI::App* parsed, const CLI::Error& e) {
    std::string command = "mixpeft";
    for (const CLI::App* sub : parsed->get_subcommands()) command += " " + sub->get_name();
    return "mixpeft: " + std::string(e.what()) + "\nRun '" + command + " --help' for usage.\n";
  });

  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) {
      std::cout << app.help();
    }
    return 0;
  } catch (const CLI::ExtrasError& e) {
    // Not a known command and not an option of the chosen command.
    if (app.get_subcommands().empty() && !app.remaining().empty()) {
      std::cerr << "mixpeft: unknown command '" << app.remaining().front()
                << "'; run 'mixpeft --help' for the list\n";
      return kExitUsage;
    }
    app.exit(e);
    return kExitUsage;
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive here too, with exit code 0.
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  } catch (const mixpeft::Error& e) {
    std::cerr << "mixpeft: " << mixpeft::to_string(e.kind()) << ": " << e.what() << "\n";
    return kExitFailure;
  } catch (const c10::Error& e) {
    std::cerr << "mixpeft: internal error: " << e.what_without_backtrace() << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "mixpeft: internal error: " << e.what() << "\n";
    return kExitFailure;
  }
}
