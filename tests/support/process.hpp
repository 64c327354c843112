// Child processes for tests: run a command (fork + execvp, never a shell),
// or run a function in a forked child, optionally under another uid, and
// wait for either with a deadline instead of hoping a sleep was long enough.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace snapfs::test {

using namespace std::chrono_literals;

struct ExitStatus {
  bool exited = false;     // normal exit; `code` is valid
  int code = -1;
  int signal = 0;          // killed by this signal (SIGKILL after a timeout)
  bool timed_out = false;  // the deadline passed and we killed it
  bool ok() const noexcept { return exited && code == 0; }
  std::string describe() const;  // "exit 0", "signal SIGBUS", "timed out after ..."
};

struct CommandResult {
  ExitStatus status;
  std::string output;  // stdout and stderr, interleaved
};

// Finds `name` in $PATH, and in /usr/sbin and /sbin (mkfs lives there and a
// non-login root shell may not have them in PATH). Empty if absent.
std::string find_program(std::string_view name);

// Runs argv[0] (looked up with find_program) with stdin from /dev/null and
// stdout+stderr captured. After `timeout` the child is killed with SIGKILL.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = 60s);

// Runs `fn` in a forked child; its return value becomes the exit code. The
// child never returns into the test framework (it _exit()s, also if `fn`
// throws: code 125). Killed after `timeout`. The caller must not have other
// threads holding locks that `fn` needs (tests fork from a single thread).
ExitStatus run_in_child(const std::function<int()>& fn, std::chrono::milliseconds timeout = 60s);

// The same, after dropping every privilege: setgroups({}), setresgid(gid),
// setresuid(uid) in the child. Exit code 124 if dropping failed.
ExitStatus run_as(uid_t uid, gid_t gid, const std::function<int()>& fn,
                  std::chrono::milliseconds timeout = 60s);

// A child running `fn` while the caller goes on: forked at construction
// (from the calling thread, which should be the only one doing anything:
// a fork while another thread holds a lock, the allocator's for one, can
// leave the child stuck), as root or, with a uid, after dropping every
// privilege as run_as() does. wait() reaps it, killing it with SIGKILL
// after `timeout`; the destructor kills and reaps it if nobody waited.
class Child {
public:
  Child(uid_t uid, gid_t gid, const std::function<int()>& fn);
  explicit Child(const std::function<int()>& fn);
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();
  ExitStatus wait(std::chrono::milliseconds timeout = 60s);

private:
  pid_t pid_ = -1;
  ExitStatus status_;
};

}  // namespace snapfs::test
