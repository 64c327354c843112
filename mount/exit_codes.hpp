// Exit codes of the snapfs command (gocryptfs `internal/exitcodes`).
//
// The command may throw `Failure` anywhere below main(); main() prints its
// message as one line on stderr and exits with its code. Scripts can rely on
// these numbers: they are documented in `snapfs --help` and never reused.
#pragma once

#include <stdexcept>
#include <string>

namespace snapfs::cli {

namespace exit_code {
inline constexpr int ok = 0;
// The daemon failed to mount or serve, a syscall failed, the daemon's reply
// could not be read. Also the code of a daemon that stopped on an error.
inline constexpr int failure = 1;
// Bad command line: unknown subcommand, option or -o option, bad value,
// missing argument (what CLI11 and mount(8) call a usage error).
inline constexpr int usage = 2;
// B is missing, not a directory or not readable.
inline constexpr int bad_backing = 3;
// M is missing, not a directory, already a mount point, or not writable by
// a non-root user (fusermount3 refuses it).
inline constexpr int bad_mountpoint = 4;
// B and M overlap: B == M, B inside M or M inside B.
inline constexpr int overlap = 5;
// umount/status/conflicts: M is not a snapfs mount.
inline constexpr int not_snapfs = 6;
// umount: the file system is busy (files are open); `--lazy` detaches it.
inline constexpr int busy = 7;
// The caller may not do this: allow_other as a user without
// `user_allow_other` in /etc/fuse.conf, umount of another user's mount, a
// run started by a user or from within a run's view.
inline constexpr int not_permitted = 8;
// run: the host lacks what a run needs: a mount namespace (unshare), a
// private mount propagation, /dev/fuse, a FUSE mount of its own. (9 is
// kept for no_such_run, docs/design-run.md.)
inline constexpr int host_lacks = 10;
}  // namespace exit_code

// mount(8) passes a helper's exit status on as its own, and documents its
// own codes: 1 incorrect invocation or permissions, 32 mount failure. The
// mount.snapfs helper speaks that language (the detail is in its message).
inline int mount8_exit_code(int code) noexcept {
  switch (code) {
    case exit_code::ok: return 0;
    case exit_code::usage:
    case exit_code::not_permitted: return 1;
    default: return 32;  // host_lacks included
  }
}

// Every error the command reports: a one-line message (without the
// "snapfs: " prefix, which main() adds) and the exit code.
class Failure : public std::runtime_error {
 public:
  Failure(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  [[nodiscard]] int code() const noexcept { return code_; }

 private:
  int code_;
};

}  // namespace snapfs::cli
