// The custom I/O layer that gives a libfuse 3.14 daemon kernel passthrough
// (see passthrough.hpp and docs/design-passthrough.md for the protocol).
#include "passthrough.hpp"

#include "kernel_abi.hpp"
#include "kernel_io.hpp"
#include "sys/sys.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include <linux/capability.h>
#include <sys/stat.h>
#include <unistd.h>

namespace snapfs::fuse {

namespace {

// The wire layouts and the offsets the kernel reads them at.
using namespace abi;

template <typename T>
T load(const void* base, std::size_t off) noexcept {
  T v;
  std::memcpy(&v, static_cast<const char*>(base) + off, sizeof v);
  return v;
}
template <typename T>
void store(void* base, std::size_t off, T v) noexcept {
  std::memcpy(static_cast<char*>(base) + off, &v, sizeof v);
}

// One daemon per process (libfuse's I/O callbacks get the session's user
// data, which is the Daemon; the hook state is kept apart from it).
// Which KernelPassthrough a session's custom I/O belongs to: libfuse hands
// the callbacks the session's user data, and each connection (the main
// mount, each run's) has its own.
// Set by every install() (always to the same function) while other
// sessions' I/O threads read it: atomic.
std::atomic<KernelPassthrough::Locate> g_locate{nullptr};

KernelPassthrough* kpt_of(void* userdata) noexcept {
  const auto locate = g_locate.load(std::memory_order_acquire);
  KernelPassthrough* k = locate && userdata ? locate(userdata) : nullptr;
  return k && k->installed() ? k : nullptr;
}

// libfuse 3.14 reads a request and dispatches it in the same thread, and our
// handlers reply before they return: what this thread read last is what it
// is answering now.
thread_local std::uint64_t t_unique = 0;
thread_local std::uint32_t t_opcode = 0;
struct Armed {
  std::uint64_t unique = 0;
  std::int32_t backing_id = -1;
  bool patched = false;
};
thread_local Armed t_armed;

// Why FUSE_DEV_IOC_BACKING_OPEN would refuse this root daemon, or "". The
// kernel checks capable(CAP_SYS_ADMIN): the capability in the initial user
// namespace. Root in any other user namespace (a rootless container) has
// euid 0 but fails that check on every open; so does a root whose
// capabilities were dropped. The initial user namespace has a fixed inode
// number (PROC_USER_INIT_INO); if /proc does not say, the first open finds out.
std::string backing_open_refusal() {
  constexpr ino_t kInitialUserNs = 0xEFFFFFFDU;
  if (struct stat st{}; ::stat("/proc/self/ns/user", &st) == 0 && st.st_ino != kInitialUserNs)
    return "unavailable: needs CAP_SYS_ADMIN in the initial user namespace (the daemon runs in a "
           "user namespace)";
  if (auto cap = core::sys::has_capability(::getpid(), CAP_SYS_ADMIN); cap && !*cap)
    return "unavailable: needs root (CAP_SYS_ADMIN, which this root lacks)";
  return {};
}

}  // namespace

struct PassthroughIo {
  static ssize_t read(int fd, void* buf, size_t len, void* userdata) {
    KernelPassthrough* k = kpt_of(userdata);
    const ssize_t n = kernel::raw_read(fd, buf, len);
    if (n < static_cast<ssize_t>(kInHeader)) return n;
    t_opcode = load<std::uint32_t>(buf, kInHdrOpcode);
    t_unique = load<std::uint64_t>(buf, kInHdrUnique);
    if (t_opcode == kOpInit && k && n >= static_cast<ssize_t>(kInHeader + kInitInMin)) {
      const char* in = static_cast<const char*>(buf) + kInHeader;
      const auto flags = load<std::uint32_t>(in, kInitInFlags);
      const auto flags2 = load<std::uint32_t>(in, kInitInFlags2);
      // flags2 means something only with FUSE_INIT_EXT.
      k->offered_.store((flags & kInitExt) && (flags2 & kPassthrough2),
                            std::memory_order_release);
      k->dirops_offered_.store((flags & kParallelDirops) != 0, std::memory_order_release);
      k->init_unique_.store(t_unique, std::memory_order_release);
    }
    return n;
  }

  static ssize_t writev(int fd, struct iovec* iov, int count, void* userdata) {
    KernelPassthrough* k = kpt_of(userdata);
    if (k && count == 2 && iov[0].iov_len == kOutHeader) {
      const auto err = load<std::int32_t>(iov[0].iov_base, kOutHdrError);
      const auto unique = load<std::uint64_t>(iov[0].iov_base, kOutHdrUnique);
      if (err == 0 && unique != 0) {
        if (unique == k->init_unique_.load(std::memory_order_acquire)) patch_init(*k, iov[1]);
        else if (unique == t_armed.unique) patch_open(*k, iov[1]);
      }
    }
    return kernel::raw_writev(fd, iov, count);
  }

  static ssize_t splice_send(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                             unsigned flags, void* /*userdata*/) {
    return kernel::raw_splice(fdin, offin, fdout, offout, len, flags);
  }

  // The INIT reply asks for passthrough if the kernel offered it. The
  // writeback cache is cleared (the kernel refuses passthrough with it; we
  // never ask for it anyway) and max_stack_depth is 1: B must be a plain
  // filesystem (stack depth 0), not FUSE or overlayfs.
  // Also: libfuse 3.14 wants FUSE_CAP_PARALLEL_DIROPS by default but never
  // puts FUSE_PARALLEL_DIROPS in the reply (measured: the kernel then takes
  // a per-directory mutex around every LOOKUP and READDIR, so the lookups of
  // a parallel build or git status in one directory queue up). It is set
  // here when the kernel offered it: the handlers need no per-directory
  // serialization (the inode table's mutex orders what they share).
  static void patch_init(KernelPassthrough& k, iovec& out) {
    k.init_unique_.store(0, std::memory_order_release);
    if (out.iov_len != kInitOutSize) return;  // not the layout we know: leave it
    auto flags = load<std::uint32_t>(out.iov_base, kInitOutFlags);
    if (k.dirops_offered_.load(std::memory_order_acquire)) flags |= kParallelDirops;
    if (k.offered_.load(std::memory_order_acquire)) {
      auto flags2 = load<std::uint32_t>(out.iov_base, kInitOutFlags2);
      flags = (flags | kInitExt) & ~kWritebackCache;
      flags2 |= kPassthrough2;
      store(out.iov_base, kInitOutFlags2, flags2);
      store<std::uint32_t>(out.iov_base, kInitOutMaxStackDepth, 1);
      k.active_.store(true, std::memory_order_release);
    }
    store(out.iov_base, kInitOutFlags, flags);
  }

  // The OPEN/CREATE reply of an armed handler: FOPEN_PASSTHROUGH with the
  // backing id, and no DIRECT_IO. Any open flag other than NOFLUSH and
  // PARALLEL_DIRECT_WRITES (KEEP_CACHE, NONSEEKABLE, ...) would make the
  // kernel fail the open with EIO: such a reply is left as it is.
  static void patch_open(KernelPassthrough& k, iovec& out) {
    std::size_t at = 0;
    if (t_opcode == kOpOpen && out.iov_len == kOpenOutSize) at = 0;
    else if (t_opcode == kOpCreate && out.iov_len == kEntryOutSize + kOpenOutSize)
      at = kEntryOutSize;
    else return;
    auto flags = load<std::uint32_t>(out.iov_base, at + kOpenOutFlags);
    const std::uint32_t allowed = kFopenDirectIo | kFopenNoflush | kFopenParallelDirectWrites;
    if (flags & ~allowed) return;
    flags = (flags & ~kFopenDirectIo) | kFopenPassthrough;
    store(out.iov_base, at + kOpenOutFlags, flags);
    store(out.iov_base, at + kOpenOutBackingId, t_armed.backing_id);
    t_armed.patched = true;
    // Counted before the reply is written: a status read after the open
    // returned includes it.
    k.opens_.fetch_add(1, std::memory_order_relaxed);
  }
};

BackingFile::~BackingFile() {
  if (auto r = kernel::backing_close(devfd_, id_); !r)
    spdlog::debug("snapfs: {}", r.error().message());
}

bool KernelPassthrough::install(fuse_session* se, bool want, bool root, Locate locate) {
  if (!want) {
    not_installed_ = "off (-o kernel_io=off)";
    return false;
  }
  if (!root) {
    not_installed_ = "unavailable: needs root (CAP_SYS_ADMIN)";
    return false;
  }
  if (std::string why = backing_open_refusal(); !why.empty()) {
    not_installed_ = std::move(why);
    return false;
  }
  static const fuse_custom_io io = {
      .writev = PassthroughIo::writev,
      .read = PassthroughIo::read,
      .splice_receive = nullptr,  // every request must pass through read()
      .splice_send = PassthroughIo::splice_send,
  };
  g_locate.store(locate, std::memory_order_release);  // the same for every session
  devfd_ = fuse_session_fd(se);
  // The same descriptor: fuse_session_mount() opened it; from now on
  // libfuse reads and writes it through `io`.
  if (fuse_session_custom_io(se, &io, devfd_) != 0) {
    not_installed_ = "unavailable: fuse_session_custom_io failed";
    return false;
  }
  installed_ = true;
  return true;
}

std::string KernelPassthrough::state() const {
  if (!installed_) return not_installed_;
  if (!offered_.load(std::memory_order_acquire))
    return "unavailable: the kernel does not offer FUSE passthrough (Linux >= 6.9)";
  if (!active()) return "unavailable: INIT reply not patched";
  if (const int e = first_error_.load(std::memory_order_relaxed); e != 0 && opens() == 0)
    return std::string("unavailable: FUSE_DEV_IOC_BACKING_OPEN: ") + std::strerror(e);
  return "active";
}

std::shared_ptr<BackingFile> KernelPassthrough::open_backing(int fd) {
  if (!active()) return nullptr;
  auto id = kernel::backing_open(devfd_, fd);
  if (!id) {
    int expected = 0;
    if (first_error_.compare_exchange_strong(expected, id.error().value()))
      spdlog::info("snapfs: kernel passthrough refused ({}); opens are served by the daemon",
                   id.error().message());
    return nullptr;
  }
  try {
    return std::make_shared<BackingFile>(devfd_, *id);
  } catch (...) {
    (void)kernel::backing_close(devfd_, *id);
    return nullptr;
  }
}

void KernelPassthrough::arm(const BackingFile& b) noexcept {
  t_armed.unique = (t_opcode == kOpOpen || t_opcode == kOpCreate) ? t_unique : 0;
  t_armed.backing_id = b.id();
  t_armed.patched = false;
}

bool KernelPassthrough::disarm() noexcept {
  const bool patched = t_armed.patched;
  t_armed = Armed{};
  return patched;
}

}  // namespace snapfs::fuse
