// The run's own process (C) of `snapfs run`, and how P forwards signals to
// it and waits for it (run_cmd.cpp has the rest: the daemon's side of the
// conversation, and the steps in order).
#pragma once

#include <snapfs/core/unique_fd.hpp>

#include <array>
#include <csignal>
#include <cstddef>
#include <optional>

#include <sys/types.h>

namespace snapfs::cli::run {

// One datagram on a SOCK_SEQPACKET socket, with `pass_fd` if not -1.
// Async-signal-safe (C sends its reports between fork and exec).
bool send_datagram(int sock, const void* data, std::size_t len, int pass_fd) noexcept;

// P keeps the forwarded signals (INT, TERM, HUP, QUIT) blocked from before
// the fork to its exit and reads them from a signalfd while it waits for C
// (RunProcess::wait): no handler runs at an arbitrary point, and none is
// lost between the fork and the wait. A signal P ignores stays ignored,
// for CMD too (exec keeps SIG_IGN), and is not forwarded. The destructor
// puts the mask back.
class Forwarding {
 public:
  Forwarding();
  Forwarding(const Forwarding&) = delete;
  Forwarding& operator=(const Forwarding&) = delete;
  ~Forwarding();

  int fd() const noexcept { return fd_.get(); }
  // Every signal waiting on the signalfd, passed on to `child`, except
  // those the terminal sent the whole process group already.
  void forward(pid_t child) const noexcept;
  // In C, right after fork (async-signal-safe): the mask P had.
  void child_defaults() const noexcept;

 private:
  sigset_t set_{};
  sigset_t mask_{};
  bool session_leader_ = false;
  core::UniqueFd fd_;
};

// What C tells P on their socket pair before CMD runs: that the view is
// mounted (with its /dev/fuse descriptor), or which step failed with which
// errno. A successful exec closes C's end (SOCK_CLOEXEC): P reads EOF.
enum class Step : int { mounted, unshare, private_mounts, detach, open_fuse, mount, chdir, exec };
struct Record {
  Step step;
  int err;
};

// Everything C needs, prepared by P before fork: C keeps to syscalls.
struct ChildPlan {
  const Forwarding* signals;
  int close_control;     // P's descriptors C must not keep: the control socket
  int close_parent_end;  // and P's end of the pair (EOF for C when P dies)
  const char* source;    // "snapfs-run-<id>"
  const char* target;    // M, canonical, without its leading '/'
  const char* name;      // its last component
  dev_t m_dev;           // M's root as P found it (the snapfs mount's root)
  ino_t m_ino;
  const char* options;   // the mount options after "fd=N"
  const char* cwd;       // chdir here once the daemon serves the view, or nullptr
  char* const* argv;
};

// C: makes its mount namespace, mounts the run's view at M, reports it on
// `sock` with the /dev/fuse descriptor, waits for P's go, executes CMD.
[[noreturn]] void child_main(const ChildPlan& p, int sock) noexcept;

// The next record from C (with the descriptor that came with it, if any),
// or nothing at EOF.
std::optional<Record> next_record(int sock, core::UniqueFd& fd);

// C from P's side: killed and reaped unless waited for.
class RunProcess {
 public:
  RunProcess(pid_t pid, const Forwarding& signals) : pid_(pid), signals_(signals) {}
  RunProcess(const RunProcess&) = delete;
  RunProcess& operator=(const RunProcess&) = delete;
  ~RunProcess();

  // Waits for C to end, forwarding signals meanwhile; its status as a
  // shell gives it (128 + N if signal N ended it).
  int wait();

 private:
  int reap();

  pid_t pid_;
  const Forwarding& signals_;
};

}  // namespace snapfs::cli::run
