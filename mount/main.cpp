// snapfs and mount.snapfs: main() owns logging (docs/code-style.md §4) and
// turns the command's exceptions into one line on stderr and a named exit code.
//
// Loggers "core", "fuse" and "mount" share one set of sinks: stderr in the
// foreground, syslog (ident "snapfs", LOG_DAEMON) once daemonized, plus a
// sink that remembers the last error-level message so that a daemon child
// can hand the reason for a failed mount back to the waiting parent.
// Levels: info, then SPDLOG_LEVEL (spdlog::cfg::load_env_levels), then
// --log-level. "mount" is also the default logger, so that a bare
// spdlog::error() lands somewhere named.
#include "cli.hpp"
#include "exit_codes.hpp"

#include <snapfs/fuse/printable.hpp>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>

#include <syslog.h>

#include <cstdio>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

namespace {

// Remembers the last few error-level messages. A failed mount typically logs
// the cause (libfuse: "fuse: mount failed: Invalid argument") and then the
// conclusion ("cannot mount B at M"); the parent shows both, conclusion first.
class LastErrorSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string last() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (errors_.empty()) return {};
    std::string out = errors_.back();
    std::string causes;
    for (std::size_t i = 0; i + 1 < errors_.size(); ++i)
      causes += (causes.empty() ? "" : "; ") + errors_[i];
    return causes.empty() ? out : out + " (" + causes + ")";
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (msg.level < spdlog::level::err || msg.level == spdlog::level::off) return;
    std::string line(msg.payload.begin(), msg.payload.end());
    for (auto& c : line) {
      if (c == '\n') c = ' ';
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    constexpr std::size_t kKeep = 3;
    if (errors_.size() == kKeep) errors_.erase(errors_.begin());
    errors_.push_back(std::move(line));
  }
  void flush_() override {}

 private:
  std::vector<std::string> errors_;
};

constexpr std::array kLoggerNames{"core", "fuse", "mount"};

class Logging {
 public:
  Logging() : capture_(std::make_shared<LastErrorSink>()) {
    auto err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    // Every message is escaped as it is laid out (fuse/include/snapfs/fuse/
    // printable.hpp): a file name in it must not drive the terminal or forge
    // a line. The capture sink keeps messages raw: they are escaped where
    // they are finally printed (main() below), once.
    err->set_formatter(
        std::make_unique<snapfs::fuse::EscapingFormatter>("%Y-%m-%d %H:%M:%S.%e %n %l: %v"));
    for (const char* name : kLoggerNames) {
      auto l = std::make_shared<spdlog::logger>(name, spdlog::sinks_init_list{err, capture_});
      l->set_level(spdlog::level::info);
      l->flush_on(spdlog::level::warn);
      spdlog::register_logger(l);
    }
    spdlog::set_default_logger(spdlog::get("mount"));
    spdlog::cfg::load_env_levels();
  }
  ~Logging() { spdlog::shutdown(); }
  Logging(const Logging&) = delete;
  Logging& operator=(const Logging&) = delete;

  snapfs::cli::LogControl control() {
    snapfs::cli::LogControl c;
    c.set_level = [](const std::string& level) {
      const auto lvl = spdlog::level::from_str(level);
      for (const char* name : kLoggerNames) {
        if (auto l = spdlog::get(name)) l->set_level(lvl);
      }
    };
    c.to_syslog = [this] {
      // Called in the daemon child before serve() starts any thread.
      auto sys =
          std::make_shared<spdlog::sinks::syslog_sink_mt>("snapfs", LOG_PID, LOG_DAEMON, true);
      sys->set_formatter(std::make_unique<snapfs::fuse::EscapingFormatter>("%n: %v"));
      for (const char* name : kLoggerNames) {
        if (auto l = spdlog::get(name)) l->sinks() = {sys, capture_};
      }
    };
    c.last_error = [this] { return capture_->last(); };
    return c;
  }

 private:
  std::shared_ptr<LastErrorSink> capture_;
};

}  // namespace

int main(int argc, char** argv) {
  namespace cli = snapfs::cli;
  try {
    Logging logging;
#ifdef SNAPFS_MOUNT_HELPER
    const auto who = cli::Personality::mount_helper;
#else
    const auto who = cli::personality_of(argc > 0 ? argv[0] : nullptr);
#endif
    const bool helper = who == cli::Personality::mount_helper;
    try {
      const int code = cli::run(argc, argv, who, logging.control());
      return helper ? cli::mount8_exit_code(code) : code;
    } catch (const cli::Failure& f) {
      // A Failure names the user's paths (and may carry a daemon child's
      // reason): escaped here, where it is printed (printable.hpp).
      std::fprintf(stderr, "snapfs: %s\n", snapfs::fuse::printable(f.what()).c_str());
      return helper ? cli::mount8_exit_code(f.code()) : f.code();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "snapfs: %s\n", snapfs::fuse::printable(e.what()).c_str());
    return cli::exit_code::failure;
  }
}
