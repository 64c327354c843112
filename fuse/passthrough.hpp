// Kernel FUSE passthrough from libfuse 3.14 (docs/design-passthrough.md).
//
// With passthrough the kernel serves read, write and mmap of an open straight
// from a backing file the daemon registered: here, that open's private
// snapshot. libfuse 3.14 cannot ask for it, so this file is the one place
// that speaks the newer protocol: it installs a custom I/O layer on the
// session (fuse_session_custom_io) that
//   - sees every request header as it is read (the unique id and opcode of
//     the request the current thread is about to handle, and the INIT
//     request's offer of FUSE_PASSTHROUGH);
//   - patches two kinds of replies as they are written: the INIT reply
//     (ask for passthrough) and the OPEN/CREATE reply that the handler armed
//     with a backing id (FOPEN_PASSTHROUGH + backing_id).
// Everything it patches is checked first (lengths, unique ids, flags); a
// reply that does not look exactly as expected is sent unchanged, and the
// open is then served by the daemon (direct_io), which is always correct.
#pragma once

#include "fuse_api.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace snapfs::fuse {

// One registered backing file (FUSE_DEV_IOC_BACKING_OPEN). The kernel looks
// the id up when the opener processes the OPEN reply and then holds its own
// reference, so the id must live until RELEASE; readers that share one
// snapshot share one id. Closed (BACKING_CLOSE) with the last reference.
class BackingFile {
public:
  BackingFile(int devfd, int id) noexcept : devfd_(devfd), id_(id) {}
  BackingFile(const BackingFile&) = delete;
  BackingFile& operator=(const BackingFile&) = delete;
  ~BackingFile();
  int id() const noexcept { return id_; }

private:
  int devfd_;
  int id_;
};

class KernelPassthrough {
public:
  // After fuse_session_mount(): installs the custom I/O on `se` if `want`
  // (the mount did not turn it off) and the daemon runs as root, which
  // FUSE_DEV_IOC_BACKING_OPEN requires (CAP_SYS_ADMIN in the initial user
  // namespace). Returns false (and why()) when it did not. `locate` finds
  // the KernelPassthrough of a session from its user data (each FUSE
  // connection has its own).
  using Locate = KernelPassthrough* (*)(void* userdata) noexcept;
  bool install(fuse_session* se, bool want, bool root, Locate locate);
  // From init(): whether the custom I/O is installed (splice receive must
  // then stay off, or requests would bypass it).
  bool installed() const noexcept { return installed_; }
  // The kernel offered FUSE_PASSTHROUGH in INIT (known from the INIT
  // request on; the reply that makes it active() is written after it).
  bool offered() const noexcept { return offered_.load(std::memory_order_acquire); }

  // True once the kernel offered FUSE_PASSTHROUGH and the INIT reply asked
  // for it. Until then, and when false, every open is daemon-served.
  bool active() const noexcept { return active_.load(std::memory_order_acquire); }
  // Human-readable state for `snapfs status`.
  std::string state() const;

  // Registers the open file `fd` as a backing file. Errors: EPERM (not
  // root, or in a user namespace), ELOOP (B is itself stacked: FUSE,
  // overlayfs), EINVAL/ENOTTY (kernel without passthrough). The first
  // failure is remembered for state().
  std::shared_ptr<BackingFile> open_backing(int fd);

  // Called by an OPEN/CREATE handler right before fuse_reply_open/create in
  // the same thread: the reply to the request this thread is handling
  // carries `b`. Returns whether the reply was patched (call after the
  // reply); disarms either way.
  void arm(const BackingFile& b) noexcept;
  bool disarm() noexcept;

  std::uint64_t opens() const noexcept { return opens_.load(std::memory_order_relaxed); }

private:
  friend struct PassthroughIo;
  bool installed_ = false;
  int devfd_ = -1;
  std::atomic<bool> offered_{false};
  std::atomic<bool> dirops_offered_{false};  // FUSE_PARALLEL_DIROPS in INIT
  std::atomic<bool> active_{false};
  std::atomic<std::uint64_t> init_unique_{0};
  std::atomic<std::uint64_t> opens_{0};
  std::atomic<int> first_error_{0};
  std::string not_installed_;  // why install() declined
};

}  // namespace snapfs::fuse
