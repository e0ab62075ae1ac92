// mixpeft train JOB: fine-tune a model as a job file says (docs/TRAINING.md).
//
//   $ mixpeft train configs/demo.toml --set train.lr=1e-3
//   $ mixpeft train configs/demo.toml --resume          # continue the last checkpoint
//   $ mixpeft train configs/demo.toml --nproc 2          # data parallel, 2 processes
//
// Writes OUTPUT/{job.json, metrics.jsonl, curves.svg, best/, final/,
// checkpoints/step-N/} and prints a summary table.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "job_util.h"
#include "train_command.h"
#include "mixpeft/report.h"
#include "mixpeft/runtime.h"

namespace mixpeft::cli {
namespace {

// A free TCP port on 127.0.0.1 for the c10d store (bound and released).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  MIXPEFT_CHECK(fd >= 0, ErrorKind::kIO, "--nproc: cannot open a socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  MIXPEFT_CHECK(ok, ErrorKind::kIO, "--nproc: cannot find a free port on 127.0.0.1");
  return ntohs(addr.sin_port);
}

// Starts `n` copies of this program as ranks 0..n-1 of one job and waits for
// them; if one fails the others are stopped.
int launch(const TrainArgs& a) {
  const GlobalOptions& g = global_options();
  const int threads = g.threads > 0 ? g.threads : std::max(1, default_num_threads() / a.nproc);
  const int port = free_port();
  std::vector<std::string> args = {"/proc/self/exe", "--threads", std::to_string(threads), "--device",
                                   g.device_spec, a.pretrain ? "pretrain" : "train", a.job};
  for (const auto& s : a.sets) args.insert(args.end(), {"--set", s});
  if (a.resume) args.push_back("--resume");
  if (!a.resume_from.empty()) args.insert(args.end(), {"--resume-from", a.resume_from});
  if (!a.progress.empty()) args.insert(args.end(), {"--progress", a.progress});
  if (a.stop_after > 0) args.insert(args.end(), {"--stop-after", std::to_string(a.stop_after)});
  std::vector<pid_t> pids;
  std::cerr << "mixpeft: starting " << a.nproc << " processes (" << threads << " thread(s) each), c10d store at 127.0.0.1:"
            << port << "\n";
  std::fflush(nullptr);
  for (int rank = 0; rank < a.nproc; ++rank) {
    const pid_t pid = ::fork();
    MIXPEFT_CHECK(pid >= 0, ErrorKind::kIO, "--nproc: fork failed");
    if (pid == 0) {
      ::setenv("WORLD_SIZE", std::to_string(a.nproc).c_str(), 1);
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> argv;
      for (auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::perror("mixpeft: exec");
      std::_Exit(127);
    }
    pids.push_back(pid);
  }
  int failed_rank = -1, failed_status = 0;
  size_t running = pids.size();
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) break;
    --running;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && failed_rank < 0) {
      for (size_t r = 0; r < pids.size(); ++r)
        if (pids[r] == pid) failed_rank = static_cast<int>(r);
      failed_status = status;
      for (pid_t other : pids)
        if (other != pid) ::kill(other, SIGTERM);
    }
  }
  if (failed_rank >= 0) {
    std::cerr << "mixpeft: rank " << failed_rank << " of " << a.nproc << " failed ("
              << (WIFEXITED(failed_status) ? "exit code " + std::to_string(WEXITSTATUS(failed_status))
                                           : "signal " + std::to_string(WTERMSIG(failed_status)))
              << "); the other processes were stopped\n";
    return 1;
  }
  return 0;
}

std::string percent(int64_t part, int64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f%%", 100.0 * static_cast<double>(part) / static_cast<double>(std::max<int64_t>(1, whole)));
  return buf;
}

std::string number(const nlohmann::json& m, const std::string& key) {
  if (!m.is_object() || !m.contains(key) || !m[key].is_number()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", m[key].get<double>());
  return buf;
}

}  // namespace

void run_train(const TrainArgs& a) {
  if (a.nproc > 1) {
    const int code = launch(a);
    if (code != 0) std::exit(code);
    return;
  }
  train::JobSpec job = load_job(a.job, a.sets, a.pretrain);
  if (!a.progress.empty()) job.train.progress = a.progress;
  train::RunOptions options;
  options.resume = a.resume || !a.resume_from.empty();
  options.resume_from = a.resume_from;
  options.dist = train::DistributedConfig::from_env();
  options.dist.master_port = options.dist.world_size > 1 ? options.dist.master_port : 0;
  options.stop_after_steps = a.stop_after;
  auto r = train::run_training(job, options);
  if (options.dist.rank != 0) return;
  if (a.stop_after > 0 && r.final_dir.empty()) {
    std::cout << "stopped after step " << r.steps << " (--stop-after); continue with --resume\n";
    return;
  }
  auto [metric, greater] = train::default_metric(job.dataset.task);
  if (!job.train.metric.empty()) metric = job.train.metric;
  std::cout << report::format_table(
      {"method", "trainable", "trainable %", "steps", "best step", "best " + metric, "final " + metric, "time"},
      {{job.method(), std::to_string(r.trainable), percent(r.trainable, r.total), std::to_string(r.steps),
        std::to_string(r.best_step), number(r.best_metrics, metric), number(r.final_metrics, metric),
        report::format_duration(r.seconds)}});
  std::cout << "saved: " << r.final_dir << (r.best_dir.empty() ? "" : ", " + r.best_dir) << ", "
            << job.output_dir << "/metrics.jsonl, " << job.output_dir << "/curves.svg\n";
  if (r.early_stopped) std::cout << "stopped early: no improvement in " << job.train.early_stopping_patience
                                 << " evaluations\n";
}

void add_train_options(CLI::App* cmd, TrainArgs& a) {
  cmd->add_option("job", a.job, "Job file (.toml or .json); docs/TRAINING.md lists every key")->required();
  cmd->add_option("--set", a.sets, "Override a key of the job: --set train.lr=1e-3 (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  cmd->add_flag("--resume", a.resume, "Continue from the newest checkpoint in the job's output_dir (if any)");
  cmd->add_option("--resume-from", a.resume_from, "Continue from this checkpoint folder")->type_name("DIR");
  cmd->add_option("--nproc", a.nproc, "Data-parallel processes on this machine (c10d Gloo over a TCPStore)")
      ->check(CLI::Range(1, 256))
      ->type_name("N");
  cmd->add_option("--progress", a.progress, "auto (a bar on a terminal, lines otherwise), bar, plain or off")
      ->check(CLI::IsMember({"auto", "bar", "plain", "off"}));
  cmd->add_option("--stop-after", a.stop_after, "Stop after this many steps as if interrupted (for testing resume)")
      ->group("")  // hidden
      ->type_name("N");
}

void add_train_command(CLI::App& app) {
  static TrainArgs a;
  auto* cmd = app.add_subcommand("train", "Fine-tune a model on a dataset as a job file (TOML or JSON) says");
  add_train_options(cmd, a);
  cmd->callback([] { run_train(a); });
}

}  // namespace mixpeft::cli
