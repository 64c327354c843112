// `snapfs run`: a command served through a FUSE connection of its own
// (docs/design-run.md).
//
// The daemon listens on a control socket, B/.snapfs/daemons/<id>.control
// (SOCK_SEQPACKET, 0600 in directories only the daemon's owner may enter).
// `snapfs run` asks it for a run (`begin`), mounts a connection of /dev/fuse
// at M in a mount namespace of the command's own, and hands the daemon that
// descriptor (`attach`): the daemon serves it with the same request handlers
// as M, on a Conn (daemon_state.hpp) of its own, in threads of its own. So
// every request of the command and of everything it starts is the run's,
// and the kernel's caches of the run are its own.
//
// The messages: include/snapfs/fuse/control.hpp.
//
// What a run sees in this slice is the live view: the frozen tree, the
// private changes and the publish at once come in later slices.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct fuse_session;

namespace snapfs::fuse {

struct Daemon;
struct Conn;

// One run, from `begin` to `end` (or its `snapfs run` gone).
struct Run {
  std::uint64_t id = 0;
  uid_t uid = 0;  // of the `snapfs run` that began it
  pid_t pid = 0;
  std::vector<std::string> argv;
  std::string cwd;
  std::chrono::system_clock::time_point start;
};

class Runs {
public:
  explicit Runs(Daemon& d) noexcept : d_(d) {}
  ~Runs();
  Runs(const Runs&) = delete;
  Runs& operator=(const Runs&) = delete;

  // Binds and listens on B/.snapfs/daemons/<id>.control and starts taking
  // requests. False (logged) if B gave no room for it: the mount is served,
  // without runs.
  bool start();
  // At the daemon's exit, once M's own loop has ended: stops taking
  // requests, ends every run's connection (its processes get ENOTCONN, as
  // after a daemon crash) and waits for every thread of this class.
  void stop() noexcept;

  // The socket's path ("" without one), for user.snapfs.daemon.
  const std::string& control_path() const noexcept { return path_; }
  // Runs begun and not ended; connections still served (a run's connection
  // outlives its run while a process it started still uses M).
  std::size_t live() const;
  std::size_t connections() const;
  // user.snapfs.daemon's "run" of connection `c`: null, or {"id": N}.
  static std::string run_json(const Conn& c);

private:
  // A run's connection while the daemon serves it.
  struct Session {
    std::uint64_t run_id = 0;
    std::unique_ptr<Conn> conn;
    ::fuse_session* se = nullptr;
    std::thread loop;
    std::atomic<bool> loop_returned{false};
    std::atomic<bool> done{false};
  };
  // One `snapfs run` talking to us.
  struct Client {
    int fd = -1;  // closed by its thread at its end (under mu_)
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void accept_loop() noexcept;
  void serve_client(Client& cl) noexcept;
  // The session of run `run_id` on the descriptor `devfd` (taken).
  bool attach(std::uint64_t run_id, int devfd, std::string& why);
  void serve_session(Session& s) noexcept;
  // Makes the loop of `s` return, and waits for it.
  void end_session(Session& s) noexcept;
  // Joins and frees what has finished. Under mu_.
  void reap_locked(std::list<std::unique_ptr<Session>>& dead_sessions,
                   std::list<std::unique_ptr<Client>>& dead_clients);
  std::string list_json(uid_t viewer) const;

  Daemon& d_;
  std::string path_;
  int listen_fd_ = -1;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> next_id_{1};
  mutable std::mutex mu_;  // leaf: the lists below
  std::list<Run> runs_;
  std::list<std::unique_ptr<Session>> sessions_;
  std::list<std::unique_ptr<Client>> clients_;
};

}  // namespace snapfs::fuse
