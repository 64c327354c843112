// run_facts: measures the kernel facts that docs/design-run.md ("Kernel
// facts") relies on, one subcommand per fact. Each sets up a tiny in-memory
// low-level FUSE filesystem (two connections where the fact is about two),
// checks the fact with asserts on what the daemon and the callers saw, and
// prints one line "R<n>: <what was observed>".
//
// Exit status of a fact: 0 the fact holds as the design states it, 1 it does
// not (the line says what was seen instead), 2 the probe itself failed.
// Run it through run_facts.sh (root, a private mount namespace, a scratch
// directory it removes); never by hand on a shared mount.
//
// Mounts are made the way `snapfs run` makes them: open /dev/fuse, mount(2)
// with fd=N, then a libfuse 3.14 session on "/dev/fd/N". Every session gets
// a custom I/O layer (fuse_session_custom_io) that records the errno of
// device reads and, when asked, patches the INIT and OPEN replies for kernel
// passthrough (libfuse 3.14 knows nothing of FUSE protocol 7.40).
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <grp.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string g_dir;  // the scratch directory run_facts.sh made
std::string g_self;  // this binary

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "run_facts: probe error: %s: %s\n", what.c_str(), std::strerror(errno));
  std::fflush(stderr);
  std::_Exit(2);
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

long ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

std::string err_name(int e) {
  switch (e) {
    case 0: return "ok";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOTCONN: return "ENOTCONN";
    case ENODEV: return "ENODEV";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case ECONNABORTED: return "ECONNABORTED";
    default: return fmt("errno %d (%s)", e, std::strerror(e));
  }
}

// Facts are checked with `expect`: a failure is recorded, not fatal, so the
// line can still say everything that was seen.
struct Verdict {
  std::vector<std::string> seen;  // what was observed, in order
  bool holds = true;
  void note(const std::string& s) { seen.push_back(s); }
  void expect(bool cond, const std::string& s) {
    if (!cond) holds = false;
    seen.push_back(cond ? s : "UNEXPECTED: " + s);
  }
  int print(int n) const {
    std::string line = fmt("R%d: %s", n, holds ? "holds" : "DIFFERS");
    for (const auto& s : seen) line += "; " + s;
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    return holds ? 0 : 1;
  }
};

// ---------------------------------------------------------------- wire layouts
// The parts of include/uapi/linux/fuse.h (7.44) this probe reads or writes
// itself; Debian 12's <linux/fuse.h> stops at 7.38.
constexpr std::uint32_t kOpInit = 26, kOpOpen = 14;
constexpr std::size_t kInHeader = 40, kOutHeader = 16;
constexpr std::size_t kInitInFlags = 12, kInitInFlags2 = 16;
constexpr std::size_t kInitOutSize = 64, kInitOutFlags = 12, kInitOutFlags2 = 32,
                      kInitOutMaxStackDepth = 36;
constexpr std::uint32_t kInitExt = 1u << 30, kWritebackCache = 1u << 16;
constexpr std::uint32_t kPassthroughFlags2 = 1u << 5;  // FUSE_PASSTHROUGH (bit 37)
constexpr std::uint32_t kFopenPassthrough = 1u << 7;
constexpr std::int32_t kNotifyIncEpoch = 8;
struct BackingMap {
  std::int32_t fd;
  std::uint32_t flags;
  std::uint64_t padding;
};
constexpr unsigned long kIocBackingOpen = _IOW(229, 1, BackingMap);
constexpr unsigned long kIocBackingClose = _IOW(229, 2, std::uint32_t);

template <typename T>
T load(const void* p, std::size_t off) {
  T v;
  std::memcpy(&v, static_cast<const char*>(p) + off, sizeof v);
  return v;
}
template <typename T>
void store(void* p, std::size_t off, T v) {
  std::memcpy(static_cast<char*>(p) + off, &v, sizeof v);
}

// Registers the open file `fd` as a backing file on the connection `devfd`
// (FUSE_DEV_IOC_BACKING_OPEN): its id, or -1 with errno set.
int backing_open(int devfd, int fd) {
  BackingMap map{fd, 0, 0};
  return ::ioctl(devfd, kIocBackingOpen, &map);
}

// Unregisters the backing file `id` (FUSE_DEV_IOC_BACKING_CLOSE): the
// ioctl's result, or -1 without a call when `id` is not one (< 0).
int backing_close(int devfd, int id) {
  if (id < 0) return -1;
  std::uint32_t u32 = static_cast<std::uint32_t>(id);
  return ::ioctl(devfd, kIocBackingClose, &u32);
}

// A file opened and registered as a backing file on one connection.
struct Backing {
  int fd = -1;   // the file, open read-only
  int id = -1;   // its backing id, or -1
  int err = 0;   // errno of BACKING_OPEN when it failed
};

Backing register_backing(int devfd, const std::string& path) {
  Backing bk;
  bk.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  bk.id = backing_open(devfd, bk.fd);
  bk.err = errno;
  return bk;
}

// Unregisters it (if it was registered) and closes the file.
void unregister_backing(int devfd, const Backing& bk) {
  backing_close(devfd, bk.id);
  ::close(bk.fd);
}

// ---------------------------------------------------------------- the filesystem
struct Node {
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string content;  // a regular file's bytes, unless `backing` names a file
  std::string backing;
  timespec mtime{1000000, 0};
  std::vector<std::pair<std::string, fuse_ino_t>> kids;  // in listing order
};

struct Fs {
  std::string tag;
  std::mutex mu;
  std::map<fuse_ino_t, Node> nodes;
  double timeout = 1000;   // entry and attribute timeout
  bool cache_dir = false;  // OPENDIR replies cache_readdir + keep_cache
  bool passthrough = false;

  std::atomic<int> n_init{0}, n_lookup{0}, n_getattr{0}, n_open{0}, n_read{0}, n_opendir{0},
      n_readdir{0}, n_pt_opens{0};
  std::atomic<std::uint32_t> last_uid{0}, last_gid{0}, last_pid{0};
  std::atomic<int> last_read_errno{0};
  std::atomic<bool> pt_offered{false}, pt_active{false}, auto_inval_data{false};
  std::atomic<std::uint64_t> init_unique{0};
  std::atomic<int> backing_id{-1};
  std::mutex tids_mu;
  std::set<pid_t> tids;  // threads that answered requests

  // INIT waits while the gate is closed.
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool gate_open = true;
  std::atomic<bool> init_read{false};
  Clock::time_point init_replied_at;

  fuse_session* se = nullptr;
  int devfd = -1;
  std::thread loop;
  std::atomic<bool> loop_done{false};
  Clock::time_point loop_done_at;

  Fs(std::string t) : tag(std::move(t)) { nodes[1].mode = S_IFDIR | 0755; }
  fuse_ino_t add(fuse_ino_t parent, const std::string& name, fuse_ino_t ino, mode_t mode,
                 std::string content = {}, uid_t uid = 0, gid_t gid = 0) {
    Node n;
    n.mode = mode;
    n.uid = uid;
    n.gid = gid;
    n.content = std::move(content);
    nodes[ino] = n;
    nodes[parent].kids.emplace_back(name, ino);
    return ino;
  }
  void open_gate() {
    {
      std::lock_guard<std::mutex> l(gate_mu);
      gate_open = true;
    }
    gate_cv.notify_all();
  }
};

Fs* fs_of(fuse_req_t req) { return static_cast<Fs*>(fuse_req_userdata(req)); }

void note_caller(Fs* fs, fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  fs->last_uid = c->uid;
  fs->last_gid = c->gid;
  fs->last_pid = static_cast<std::uint32_t>(c->pid);
  std::lock_guard<std::mutex> l(fs->tids_mu);
  fs->tids.insert(static_cast<pid_t>(::syscall(SYS_gettid)));
}

struct stat attr_of(fuse_ino_t ino, const Node& n) {
  struct stat st{};
  st.st_ino = ino;
  st.st_mode = n.mode;
  st.st_nlink = S_ISDIR(n.mode) ? 2 : 1;
  st.st_uid = n.uid;
  st.st_gid = n.gid;
  if (!n.backing.empty()) {
    struct stat b{};
    if (::stat(n.backing.c_str(), &b) == 0) st.st_size = b.st_size;
  } else {
    st.st_size = static_cast<off_t>(n.content.size());
  }
  st.st_blocks = (st.st_size + 511) / 512;
  st.st_mtim = n.mtime;
  st.st_ctim = n.mtime;
  st.st_atim = n.mtime;
  return st;
}

// The passthrough patch: what this thread read last is what it answers now
// (libfuse 3.14 reads and dispatches a request in one thread, and the
// handlers below reply before they return).
thread_local std::uint64_t t_unique = 0;
thread_local std::uint64_t t_armed_unique = 0;
thread_local std::int32_t t_armed_id = -1;

ssize_t io_read(int fd, void* buf, size_t len, void* ud) {
  Fs* fs = static_cast<Fs*>(ud);
  const ssize_t n = ::read(fd, buf, len);
  if (n < 0) {
    const int e = errno;
    fs->last_read_errno = e;
    errno = e;
    return n;
  }
  if (n >= static_cast<ssize_t>(kInHeader)) {
    const auto op = load<std::uint32_t>(buf, 4);
    t_unique = load<std::uint64_t>(buf, 8);
    if (op == kOpInit && n >= static_cast<ssize_t>(kInHeader + 20)) {
      const char* in = static_cast<const char*>(buf) + kInHeader;
      const auto flags = load<std::uint32_t>(in, kInitInFlags);
      const auto flags2 = load<std::uint32_t>(in, kInitInFlags2);
      fs->pt_offered = (flags & kInitExt) && (flags2 & kPassthroughFlags2);
      fs->init_unique = t_unique;
      fs->init_read = true;
    }
  }
  return n;
}

ssize_t io_writev(int fd, struct iovec* iov, int count, void* ud) {
  Fs* fs = static_cast<Fs*>(ud);
  if (count == 2 && iov[0].iov_len == kOutHeader) {
    const auto err = load<std::int32_t>(iov[0].iov_base, 4);
    const auto unique = load<std::uint64_t>(iov[0].iov_base, 8);
    if (err == 0 && unique != 0 && unique == fs->init_unique.load()) {
      fs->init_unique = 0;
      if (fs->passthrough && fs->pt_offered && iov[1].iov_len == kInitOutSize) {
        auto flags = load<std::uint32_t>(iov[1].iov_base, kInitOutFlags);
        auto flags2 = load<std::uint32_t>(iov[1].iov_base, kInitOutFlags2);
        store(iov[1].iov_base, kInitOutFlags, (flags | kInitExt) & ~kWritebackCache);
        store(iov[1].iov_base, kInitOutFlags2, flags2 | kPassthroughFlags2);
        store<std::uint32_t>(iov[1].iov_base, kInitOutMaxStackDepth, 1);
        fs->pt_active = true;
      }
      fs->init_replied_at = Clock::now();
    } else if (err == 0 && unique != 0 && unique == t_armed_unique && iov[1].iov_len == 16) {
      // struct fuse_open_out {fh, open_flags, backing_id}
      auto flags = load<std::uint32_t>(iov[1].iov_base, 8);
      store(iov[1].iov_base, 8, flags | kFopenPassthrough);
      store(iov[1].iov_base, 12, t_armed_id);
      t_armed_unique = 0;
      fs->n_pt_opens++;
    }
  }
  return ::writev(fd, iov, count);
}

void op_init(void* ud, fuse_conn_info* conn) {
  Fs* fs = static_cast<Fs*>(ud);
  fs->n_init++;
  fs->auto_inval_data = (conn->want & FUSE_CAP_AUTO_INVAL_DATA) != 0;
  std::unique_lock<std::mutex> l(fs->gate_mu);
  fs->gate_cv.wait(l, [&] { return fs->gate_open; });
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Fs* fs = fs_of(req);
  fs->n_lookup++;
  note_caller(fs, req);
  std::lock_guard<std::mutex> l(fs->mu);
  for (const auto& [k, ino] : fs->nodes[parent].kids) {
    if (k != name) continue;
    fuse_entry_param e{};
    e.ino = ino;
    e.attr = attr_of(ino, fs->nodes[ino]);
    e.attr_timeout = fs->timeout;
    e.entry_timeout = fs->timeout;
    fuse_reply_entry(req, &e);
    return;
  }
  fuse_reply_err(req, ENOENT);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Fs* fs = fs_of(req);
  fs->n_getattr++;
  note_caller(fs, req);
  std::lock_guard<std::mutex> l(fs->mu);
  auto it = fs->nodes.find(ino);
  if (it == fs->nodes.end()) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st = attr_of(ino, it->second);
  fuse_reply_attr(req, &st, fs->timeout);
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Fs* fs = fs_of(req);
  fs->n_open++;
  note_caller(fs, req);
  fi->keep_cache = 0;
  fi->direct_io = 0;
  bool backing = false;
  {
    std::lock_guard<std::mutex> l(fs->mu);
    backing = !fs->nodes[ino].backing.empty();
  }
  if (fs->passthrough && backing && fs->backing_id >= 0) {
    t_armed_unique = t_unique;
    t_armed_id = fs->backing_id;
  }
  fuse_reply_open(req, fi);
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Fs* fs = fs_of(req);
  fs->n_read++;
  std::string data;
  {
    std::lock_guard<std::mutex> l(fs->mu);
    const Node& n = fs->nodes[ino];
    if (!n.backing.empty()) {
      std::vector<char> buf(size);
      const int fd = ::open(n.backing.c_str(), O_RDONLY | O_CLOEXEC);
      const ssize_t got = fd < 0 ? -1 : ::pread(fd, buf.data(), size, off);
      if (fd >= 0) ::close(fd);
      if (got < 0) {
        fuse_reply_err(req, EIO);
        return;
      }
      data.assign(buf.data(), static_cast<size_t>(got));
    } else if (static_cast<size_t>(off) < n.content.size()) {
      data = n.content.substr(static_cast<size_t>(off), size);
    }
  }
  fuse_reply_buf(req, data.data(), data.size());
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void op_opendir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Fs* fs = fs_of(req);
  fs->n_opendir++;
  fi->cache_readdir = fs->cache_dir ? 1 : 0;
  fi->keep_cache = fs->cache_dir ? 1 : 0;
  fuse_reply_open(req, fi);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Fs* fs = fs_of(req);
  fs->n_readdir++;
  std::vector<std::pair<std::string, struct stat>> all;
  {
    std::lock_guard<std::mutex> l(fs->mu);
    struct stat dot{};
    dot.st_ino = ino;
    dot.st_mode = S_IFDIR;
    all.emplace_back(".", dot);
    all.emplace_back("..", dot);
    for (const auto& [name, kid] : fs->nodes[ino].kids) {
      struct stat st{};
      st.st_ino = kid;
      st.st_mode = fs->nodes[kid].mode;
      all.emplace_back(name, st);
    }
  }
  std::vector<char> buf(size);
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < all.size(); ++i) {
    const size_t need = fuse_add_direntry(req, buf.data() + used, size - used,
                                          all[i].first.c_str(), &all[i].second,
                                          static_cast<off_t>(i + 1));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops o{};
  o.init = op_init;
  o.lookup = op_lookup;
  o.getattr = op_getattr;
  o.open = op_open;
  o.read = op_read;
  o.release = op_release;
  o.opendir = op_opendir;
  o.readdir = op_readdir;
  o.releasedir = op_release;
  return o;
}();

const fuse_custom_io kIo = {io_writev, io_read, nullptr, nullptr};

// A session on an already mounted /dev/fuse descriptor, looping in its own
// threads (fuse_session_loop_mt).
void serve(Fs& fs, int devfd) {
  const char* argv[] = {"run_facts", nullptr};
  fuse_args args = FUSE_ARGS_INIT(1, const_cast<char**>(argv));
  fs.se = fuse_session_new(&args, &kOps, sizeof kOps, &fs);
  if (!fs.se) die("fuse_session_new");
  const std::string dev = fmt("/dev/fd/%d", devfd);
  if (fuse_session_mount(fs.se, dev.c_str()) != 0) die("fuse_session_mount " + dev);
  if (fuse_session_fd(fs.se) != devfd) die("fuse_session_fd is not the descriptor passed");
  if (fuse_session_custom_io(fs.se, &kIo, devfd) != 0) die("fuse_session_custom_io");
  fs.devfd = devfd;
  fs.loop = std::thread([&fs] {
    fuse_loop_config* lc = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(lc, 0);
    fuse_session_loop_mt(fs.se, lc);
    fuse_loop_cfg_destroy(lc);
    fs.loop_done_at = Clock::now();
    fs.loop_done = true;
  });
}

// After the connection ended (the loop returned).
void finish(Fs& fs) {
  if (fs.loop.joinable()) fs.loop.join();
  if (fs.se) fuse_session_destroy(fs.se);
  fs.se = nullptr;
}

bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return cond();
}

// Ends a connection this process mounted on `m`: a lazy unmount, then its
// loop (waited for up to 5 s, then joined).
void unmount_and_finish(const std::string& m, Fs& fs) {
  ::umount2(m.c_str(), MNT_DETACH);
  wait_for([&] { return fs.loop_done.load(); }, 5000ms);
  finish(fs);
}

int open_fuse() {
  const int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) die("open /dev/fuse");
  return fd;
}

// mount(2) of a FUSE connection on `dir`, as `snapfs run` mounts one.
int mount_fuse(int devfd, const std::string& source, const std::string& dir, uid_t uid,
               gid_t gid, const std::string& extra, unsigned long flags = MS_NOSUID | MS_NODEV) {
  std::string opts = fmt("fd=%d,rootmode=40000,user_id=%u,group_id=%u", devfd, uid, gid);
  if (!extra.empty()) opts += "," + extra;
  return ::mount(source.c_str(), dir.c_str(), "fuse.probe", flags, opts.c_str());
}

std::string mkdir_in_scratch(const std::string& name, mode_t mode = 0755) {
  const std::string p = g_dir + "/" + name;
  if (::mkdir(p.c_str(), mode) != 0 && errno != EEXIST) die("mkdir " + p);
  ::chmod(p.c_str(), mode);
  return p;
}

// Mount points at `path` in this process's mount namespace: their fs types.
std::vector<std::string> mounts_at(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string id, parent, dev, root, mp;
    ls >> id >> parent >> dev >> root >> mp;
    if (mp != path) continue;
    const auto dash = line.find(" - ");
    std::istringstream rest(line.substr(dash + 3));
    std::string type, source;
    rest >> type >> source;
    out.push_back(type + ":" + source);
  }
  return out;
}

std::string join(const std::vector<std::string>& v, const char* sep = ",") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// ---------------------------------------------------------------- the agent
// A child (fork + exec of this binary, "agent") that makes the run's mount
// namespace the way `snapfs run`'s C does, mounts a FUSE connection there,
// sends the /dev/fuse descriptor back over SCM_RIGHTS and then runs the
// parent's commands from inside the namespace. It dies with its parent.
struct AgentCfg {
  std::string mount_on;       // mount a connection here ("" none)
  std::string chdir_first;    // chdir here before mounting
  std::string fusedev;        // bind this node over /dev/fuse first (as root)
  uid_t uid = 0;              // drop to this uid/gid, then a user namespace
  std::string map = "self";   // user namespace map: self (U U 1) or root (0 U 1);
                              // early: self, with /dev/fuse opened before unshare
  std::string extra = "";     // more mount options
};

struct Agent {
  pid_t pid = -1;
  int sock = -1;
  int devfd = -1;  // the descriptor it mounted, received
  std::string hello;
  std::string ask(const std::string& cmd) const {
    if (::send(sock, cmd.data(), cmd.size(), 0) < 0) die("send to agent");
    char buf[8192];
    const ssize_t n = ::recv(sock, buf, sizeof buf, 0);
    if (n <= 0) return "agent gone";
    return std::string(buf, static_cast<size_t>(n));
  }
  int wait_exit() {
    int st = 0;
    if (pid > 0) ::waitpid(pid, &st, 0);
    pid = -1;
    return st;
  }
  // Tells it to exit and waits for it: its namespace, and the connection
  // it mounted there, go with it.
  void stop() {
    ask("exit");
    wait_exit();
  }
};

void send_fd(int sock, const std::string& msg, int fd) {
  iovec iov{const_cast<char*>(msg.data()), msg.size()};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))]{};
  if (fd >= 0) {
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (::sendmsg(sock, &m, 0) < 0) die("sendmsg");
}

std::string recv_fd(int sock, int* fd) {
  char buf[4096];
  iovec iov{buf, sizeof buf};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))]{};
  m.msg_control = ctl;
  m.msg_controllen = sizeof ctl;
  const ssize_t n = ::recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
  if (n <= 0) return "agent gone";
  *fd = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
      std::memcpy(fd, CMSG_DATA(c), sizeof(int));
  return std::string(buf, static_cast<size_t>(n));
}

Agent spawn_agent(const AgentCfg& cfg) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair");
  const pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::dup2(sv[1], 3);  // dup2 clears CLOEXEC on 3
    std::vector<std::string> a = {g_self,          "agent",          g_dir,
                                  cfg.mount_on,    cfg.chdir_first,  cfg.fusedev,
                                  std::to_string(cfg.uid), cfg.map, cfg.extra};
    std::vector<char*> argv;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv(g_self.c_str(), argv.data());
    std::_Exit(127);
  }
  ::close(sv[1]);
  Agent ag;
  ag.pid = pid;
  ag.sock = sv[0];
  ag.hello = recv_fd(ag.sock, &ag.devfd);
  return ag;
}

// Whether the agent mounted its connection and sent the descriptor; if not,
// `v` records what it said instead.
bool agent_ready(const Agent& ag, Verdict& v) {
  if (ag.hello.rfind("ready", 0) == 0 && ag.devfd >= 0) return true;
  v.expect(false, "agent: " + ag.hello);
  return false;
}

// Ends an agent and the connection `fs` serves for it: the agent exits, then
// `fs`'s loop is waited for (up to 5 s) and finished if it ended.
void end_agent(Agent& ag, Fs& fs) {
  ag.stop();
  wait_for([&] { return fs.loop_done.load(); }, 5000ms);
  if (fs.loop_done) finish(fs);
}

std::string stat_text(const char* path) {
  struct stat st{};
  if (::stat(path, &st) != 0) return "err " + err_name(errno);
  return fmt("ok size=%lld ino=%llu uid=%u gid=%u mode=%o", static_cast<long long>(st.st_size),
             static_cast<unsigned long long>(st.st_ino), st.st_uid, st.st_gid, st.st_mode);
}

std::string ls_text(const char* path) {
  DIR* d = ::opendir(path);
  if (!d) return "err " + err_name(errno);
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  const int e = errno;
  ::closedir(d);
  if (e) return "err " + err_name(e);
  return "ok " + join(names);
}

// The first 256 bytes of a file: "ok <bytes>" or "err <errno>".
std::string cat_text(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "err " + err_name(errno);
  char b[256];
  const ssize_t got = ::read(fd, b, sizeof b);
  const std::string text = got < 0 ? "err " + err_name(errno) : "ok " + std::string(b, static_cast<size_t>(got));
  ::close(fd);
  return text;
}

// Runs `path ids` and returns its output (uid= euid=).
std::string exec_text(const char* path) {
  int p[2];
  if (::pipe(p) != 0) return "err pipe";
  const pid_t c = ::fork();
  if (c == 0) {
    ::dup2(p[1], 1);
    ::execl(path, path, "ids", static_cast<char*>(nullptr));
    std::printf("exec failed: %s\n", err_name(errno).c_str());
    std::fflush(stdout);
    std::_Exit(127);
  }
  ::close(p[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  ::waitpid(c, nullptr, 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool write_file(const std::string& path, const std::string& s) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
  ::close(fd);
  return ok;
}

int agent_main(char** argv) {
  const int sock = 3;
  AgentCfg cfg;
  g_dir = argv[2];
  cfg.mount_on = argv[3];
  cfg.chdir_first = argv[4];
  cfg.fusedev = argv[5];
  cfg.uid = static_cast<uid_t>(std::stoul(argv[6]));
  cfg.map = argv[7];
  cfg.extra = argv[8];
  auto fail = [&](const std::string& step) {
    send_fd(sock, "fail " + step + ": " + err_name(errno), -1);
    std::_Exit(1);
  };
  // The run's namespace, as root: a private mount namespace whose mounts
  // are slaves of the host's.
  if (::unshare(CLONE_NEWNS) != 0) fail("unshare(CLONE_NEWNS)");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) fail("MS_REC|MS_SLAVE");
  if (!cfg.fusedev.empty() &&
      ::mount(cfg.fusedev.c_str(), "/dev/fuse", nullptr, MS_BIND, nullptr) != 0)
    fail("bind " + cfg.fusedev + " over /dev/fuse");
  uid_t mount_uid = 0;
  int early_fd = -1;
  if (cfg.uid != 0) {
    const uid_t u = cfg.uid;
    if (::setgroups(0, nullptr) != 0) fail("setgroups");
    if (::setresgid(u, u, u) != 0) fail("setresgid");
    if (::setresuid(u, u, u) != 0) fail("setresuid");
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // cleared by the change of credentials
    // So is dumpable, which makes /proc/self/{setgroups,uid_map} root's; a
    // process started as this uid (`snapfs run` by a user) is dumpable.
    ::prctl(PR_SET_DUMPABLE, 1);
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) fail("unshare(CLONE_NEWUSER|CLONE_NEWNS)");
    if (cfg.map == "early") {  // /dev/fuse opened before the user namespace exists
      early_fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
      if (early_fd < 0) fail("open /dev/fuse before unshare");
    }
    const uid_t inner = cfg.map == "root" ? 0 : u;
    if (!write_file("/proc/self/setgroups", "deny")) fail("setgroups deny");
    if (!write_file("/proc/self/uid_map", fmt("%u %u 1", inner, u))) fail("uid_map");
    if (!write_file("/proc/self/gid_map", fmt("%u %u 1", inner, u))) fail("gid_map");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0)
      fail("MS_REC|MS_SLAVE in the user namespace");
    mount_uid = inner;
  }
  if (!cfg.chdir_first.empty() && ::chdir(cfg.chdir_first.c_str()) != 0) fail("chdir");
  int devfd = -1;
  if (!cfg.mount_on.empty()) {
    devfd = early_fd >= 0 ? early_fd : ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (devfd < 0) fail("open /dev/fuse");
    if (mount_fuse(devfd, "probe-run", cfg.mount_on, mount_uid, mount_uid, cfg.extra) != 0)
      fail("mount fuse on " + cfg.mount_on);
  }
  send_fd(sock, fmt("ready pid=%d uid=%u", ::getpid(), ::getuid()), devfd);
  if (devfd >= 0) ::close(devfd);
  for (;;) {
    char buf[4096];
    const ssize_t n = ::recv(sock, buf, sizeof buf - 1, 0);
    if (n <= 0) std::_Exit(0);
    buf[n] = 0;
    const std::string cmd(buf);
    const auto sp = cmd.find(' ');
    const std::string verb = cmd.substr(0, sp);
    const std::string arg = sp == std::string::npos ? "" : cmd.substr(sp + 1);
    std::string reply;
    if (verb == "stat") reply = stat_text(arg.c_str());
    else if (verb == "ls") reply = ls_text(arg.c_str());
    else if (verb == "chdir") reply = ::chdir(arg.c_str()) == 0 ? "ok" : "err " + err_name(errno);
    else if (verb == "open") {
      const int fd = ::open(arg.c_str(), O_RDONLY | O_CLOEXEC);
      reply = fd >= 0 ? "ok" : "err " + err_name(errno);
      if (fd >= 0) ::close(fd);
    } else if (verb == "cat") reply = cat_text(arg.c_str());
    else if (verb == "exec") reply = exec_text(arg.c_str());
    else if (verb == "mounts") reply = join(mounts_at(arg));
    else if (verb == "exit") std::_Exit(0);
    else reply = "err unknown command";
    ::send(sock, reply.data(), reply.size(), 0);
  }
}

int ids_main() {
  std::printf("uid=%u euid=%u\n", ::getuid(), ::geteuid());
  return 0;
}

// ---------------------------------------------------------------- two connections
// The main connection A on M in this (the host's) namespace, and a run's
// connection B mounted over M by an agent in its own namespace, both served
// by this process. Each serves its own tree; sizes tell them apart.
struct Pair {
  std::string m;
  Fs a{"A"}, b{"B"};
  Agent agent;
  int a_fd = -1;
};

void fill_tree(Fs& fs, const std::string& f_content, const std::string& only) {
  fs.add(1, "f", 2, S_IFREG | 0644, f_content);
  fs.add(1, only, 3, S_IFREG | 0644, "x");
  fs.add(1, "d", 4, S_IFDIR | 0755);
  fs.add(4, "a", 5, S_IFREG | 0644, "a");
}

// Sets up A (served) and starts the agent that mounts B; serves B on the
// descriptor the agent sends. Returns false with the reason recorded in `v`.
bool make_pair(Pair& p, const std::string& name, bool passthrough, bool chdir_first,
               Verdict& v) {
  p.m = mkdir_in_scratch(name);
  fill_tree(p.a, "A-file\n", "only_a");                // f: 7 bytes on A
  fill_tree(p.b, "B-file, the run's\n", "only_b");     // f: 18 bytes on B
  p.a.passthrough = p.b.passthrough = passthrough;
  p.a_fd = open_fuse();
  if (mount_fuse(p.a_fd, "probe-main", p.m, 0, 0, "allow_other,default_permissions") != 0)
    die("mount A on " + p.m);
  serve(p.a, p.a_fd);
  AgentCfg cfg;
  cfg.mount_on = p.m;
  if (chdir_first) cfg.chdir_first = p.m;
  cfg.extra = "allow_other,default_permissions";
  p.agent = spawn_agent(cfg);
  if (!agent_ready(p.agent, v)) return false;
  serve(p.b, p.agent.devfd);
  return true;
}

// Ends both connections: the agent exits (its namespace, and B, go with
// it), A is unmounted lazily if still mounted.
void end_pair(Pair& p) {
  if (p.agent.pid > 0) p.agent.stop();
  if (!mounts_at(p.m).empty()) ::umount2(p.m.c_str(), MNT_DETACH);
  wait_for([&] { return p.a.loop_done.load() && p.b.loop_done.load(); }, 5000ms);
  if (p.a.loop_done) finish(p.a);
  if (p.b.loop_done) finish(p.b);
}

std::string path_in(const Pair& p, const char* name) { return p.m + "/" + name; }

// Writes `content` to a new file `name` in the scratch directory, to serve
// as a backing file; its path.
std::string make_backing_file(const std::string& name, const std::string& content) {
  const std::string path = g_dir + "/" + name;
  std::ofstream o(path);
  o << content;
  return path;
}

// ---------------------------------------------------------------- R1
int fact1() {
  Verdict v;
  const std::string m = mkdir_in_scratch("r1");
  Fs a("A");
  fill_tree(a, "A-file\n", "only_a");
  a.gate_open = false;
  const int fd = open_fuse();
  const auto t0 = Clock::now();
  const int rc = mount_fuse(fd, "probe-r1", m, 0, 0, "allow_other");
  const long mount_ms = ms_since(t0);
  if (rc != 0) die("mount r1");
  v.expect(mount_ms < 1000, fmt("mount(2) with fd= returned in %ld ms while nothing read /dev/fuse", mount_ms));
  const std::string f = m + "/f";
  int p[2];
  if (::pipe(p) != 0) die("pipe");
  const pid_t c = ::fork();
  if (c == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct stat st{};
    const int r = ::stat(f.c_str(), &st);
    const long long sz = r == 0 ? st.st_size : -errno;
    if (::write(p[1], &sz, sizeof sz) < 0) std::_Exit(3);
    std::_Exit(0);
  }
  ::close(p[1]);
  std::this_thread::sleep_for(500ms);
  v.expect(::waitpid(c, nullptr, WNOHANG) == 0,
           "a stat(M/f) in another process was still blocked 500 ms later (no daemon)");
  serve(a, fd);
  const bool read_init = wait_for([&] { return a.init_read.load(); }, 2000ms);
  v.expect(read_init && a.n_init == 1, "the daemon's first read returned INIT");
  std::this_thread::sleep_for(300ms);
  v.expect(::waitpid(c, nullptr, WNOHANG) == 0 && a.n_lookup == 0,
           "still blocked 300 ms after INIT was read but not answered, no LOOKUP sent");
  a.open_gate();
  long long sz = -1;
  const bool got = ::read(p[0], &sz, sizeof sz) == static_cast<ssize_t>(sizeof sz);
  const long after = ms_since(a.init_replied_at);
  ::waitpid(c, nullptr, 0);
  v.expect(got && sz == 7 && a.n_lookup >= 1,
           fmt("it completed %ld ms after the INIT reply (size %lld, served by LOOKUP)", after, sz));
  unmount_and_finish(m, a);
  return v.print(1);
}

// ---------------------------------------------------------------- R2
int fact2() {
  Verdict v;
  Pair p;
  if (!make_pair(p, "r2", false, false, v)) return v.print(2);
  v.note("an agent unshare(CLONE_NEWNS)+MS_REC|MS_SLAVE, mounted fd= over M and sent the descriptor over SCM_RIGHTS");
  v.expect(true, "fuse_session_mount(se, \"/dev/fd/N\") took it (returned 0, session fd == N)");
  const std::string run_f = p.agent.ask("stat " + path_in(p, "f"));
  const std::string run_b = p.agent.ask("stat " + path_in(p, "only_b"));
  const std::string run_a = p.agent.ask("stat " + path_in(p, "only_a"));
  const std::string host_f = stat_text(path_in(p, "f").c_str());
  const std::string host_b = stat_text(path_in(p, "only_b").c_str());
  v.expect(run_f.find("size=18") != std::string::npos && run_b.rfind("ok", 0) == 0 &&
               run_a == "err ENOENT",
           "in the run's namespace M is B (f 18 bytes, only_b found, only_a ENOENT)");
  v.expect(host_f.find("size=7") != std::string::npos && host_b == "err ENOENT",
           "in the host's M is A (f 7 bytes, only_b ENOENT)");
  v.expect(p.a.n_init == 1 && p.b.n_init == 1, "each session got its own INIT");
  std::set<pid_t> both;
  for (pid_t t : p.a.tids) both.insert(t);
  bool disjoint = true;
  for (pid_t t : p.b.tids) disjoint &= both.insert(t).second;
  v.expect(disjoint && !p.a.tids.empty() && !p.b.tids.empty(),
           fmt("two fuse_session_loop_mt loops in one process, requests answered by disjoint threads (%zu for A, %zu for B)",
               p.a.tids.size(), p.b.tids.size()));
  v.expect(p.b.auto_inval_data, "libfuse 3.14 wants FUSE_CAP_AUTO_INVAL_DATA by default");
  end_pair(p);
  v.expect(p.a.loop_done && p.b.loop_done, "both loops ended when their mounts went");
  return v.print(2);
}

// ---------------------------------------------------------------- R3
int fact3() {
  Verdict v;
  Pair p;
  if (!make_pair(p, "r3", true, false, v)) return v.print(3);
  const std::string bpath = make_backing_file("backing", "bytes read through kernel passthrough\n");
  for (Fs* fs : {&p.a, &p.b}) {
    std::lock_guard<std::mutex> l(fs->mu);
    fs->add(1, "pt", 6, S_IFREG | 0644);
    fs->nodes[6].backing = bpath;
  }
  // INIT happens at the first request; make one on each.
  stat_text(path_in(p, "f").c_str());
  p.agent.ask("stat " + path_in(p, "f"));
  v.expect(p.a.pt_offered && p.b.pt_offered, "the kernel offered FUSE_PASSTHROUGH in both INITs");
  v.expect(p.a.pt_active && p.b.pt_active,
           "INIT replies patched through fuse_session_custom_io on both (flags2 FUSE_PASSTHROUGH, max_stack_depth 1)");
  const int bfd = ::open(bpath.c_str(), O_RDONLY | O_CLOEXEC);
  const int id_b = backing_open(p.b.devfd, bfd);
  const int e_b = errno;
  const int id_a = backing_open(p.a.devfd, bfd);
  const int e_a = errno;
  v.expect(id_b >= 0, fmt("BACKING_OPEN on the run's (second) connection: id %d%s", id_b,
                          id_b < 0 ? (" " + err_name(e_b)).c_str() : ""));
  v.expect(id_a >= 0, fmt("the same open file registered on the main connection at the same time: id %d%s",
                          id_a, id_a < 0 ? (" " + err_name(e_a)).c_str() : ""));
  p.a.backing_id = id_a;
  p.b.backing_id = id_b;
  const std::string want = "ok bytes read through kernel passthrough\n";
  const std::string run_cat = p.agent.ask("cat " + path_in(p, "pt"));
  const std::string host_cat = cat_text(path_in(p, "pt").c_str());
  v.expect(run_cat == want && host_cat == want && p.a.n_pt_opens == 1 && p.b.n_pt_opens == 1 &&
               p.a.n_read == 0 && p.b.n_read == 0,
           fmt("opens through both connections were passthrough and read the file with no READ reaching either daemon (READs A %d B %d)",
               p.a.n_read.load(), p.b.n_read.load()));
  const int ca = backing_close(p.a.devfd, id_a);
  const int cb = backing_close(p.b.devfd, id_b);
  v.expect(ca == 0 && cb == 0, "BACKING_CLOSE on each returned 0");
  ::close(bfd);
  end_pair(p);
  return v.print(3);
}

// ---------------------------------------------------------------- R4
int serve_main(char** argv) {
  // A daemon process for fact 4: serves the descriptor it inherited.
  Fs b("B");
  fill_tree(b, "B-file, the run's\n", "only_b");
  serve(b, std::atoi(argv[2]));
  b.loop.join();
  return 0;
}

int fact4() {
  Verdict v;
  // (a) The namespace's last process exits.
  {
    const std::string m = mkdir_in_scratch("r4a");
    Fs b("B");
    fill_tree(b, "B-file, the run's\n", "only_b");
    AgentCfg cfg;
    cfg.mount_on = m;
    Agent ag = spawn_agent(cfg);
    if (!agent_ready(ag, v)) return v.print(4);
    serve(b, ag.devfd);
    const std::string st = ag.ask("stat " + m + "/f");
    v.expect(st.find("size=18") != std::string::npos, "the run's connection served its namespace");
    ag.stop();
    const auto t = Clock::now();
    const bool ended = wait_for([&] { return b.loop_done.load(); }, 5000ms);
    v.expect(ended && b.last_read_errno == ENODEV,
             fmt("when the last process of the namespace exited, the daemon's read of /dev/fuse gave %s within %ld ms and the loop ended",
                 err_name(b.last_read_errno).c_str(), ms_since(t)));
    if (ended) finish(b);
  }
  // (b) The daemon's descriptor is closed (daemon killed).
  {
    const std::string m = mkdir_in_scratch("r4b");
    AgentCfg cfg;
    cfg.mount_on = m;
    Agent ag = spawn_agent(cfg);
    if (!agent_ready(ag, v)) return v.print(4);
    const pid_t d = ::fork();
    if (d == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int fd = ::dup(ag.devfd);  // without CLOEXEC
      const std::string n = std::to_string(fd);
      ::execl(g_self.c_str(), g_self.c_str(), "serve", n.c_str(), static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    ::close(ag.devfd);
    const std::string before = ag.ask("stat " + m + "/f");
    ::kill(d, SIGKILL);
    ::waitpid(d, nullptr, 0);
    const std::string after = ag.ask("stat " + m + "/f");
    const std::string after_open = ag.ask("open " + m + "/f");
    const std::string after_new = ag.ask("stat " + m + "/only_b");
    const std::string after_root = ag.ask("stat " + m);
    const std::string after_ls = ag.ask("ls " + m);
    v.expect(before.find("size=18") != std::string::npos && after_open == "err ENOTCONN" &&
                 after_new == "err ENOTCONN" && after_root == "err ENOTCONN" &&
                 after_ls == "err ENOTCONN",
             fmt("after the daemon (sole holder of the descriptor) was killed, every request gives ENOTCONN: open M/f %s, stat of a name not yet looked up %s, stat M %s, opendir M %s",
                 after_open.c_str(), after_new.c_str(), after_root.c_str(), after_ls.c_str()));
    v.note("but a stat answered from the kernel's caches (dentry and attributes still valid, 1000 s) still succeeds: stat M/f " +
           after.substr(0, after.find(' ', 3)));
    ag.stop();
  }
  return v.print(4);
}

// ---------------------------------------------------------------- R5
// A 0666 node of /dev/fuse's device (10:229) for an ordinary uid to open
// where /dev/fuse is 0600; the agent binds it over /dev/fuse.
std::string fuse_node_0666() {
  const std::string node = g_dir + "/fuse-0666";
  if (::access(node.c_str(), F_OK) != 0) {
    if (::mknod(node.c_str(), S_IFCHR | 0666, makedev(10, 229)) != 0) die("mknod");
    ::chmod(node.c_str(), 0666);
  }
  return node;
}

// The agent of an ordinary user's run: uid `user` in a user namespace with
// the given map, /dev/fuse through `node`, mounting on `m` with
// default_permissions.
AgentCfg user_run_cfg(const std::string& m, const std::string& node, uid_t user,
                      const std::string& map = "self") {
  AgentCfg cfg;
  cfg.mount_on = m;
  cfg.fusedev = node;
  cfg.uid = user;
  cfg.map = map;
  cfg.extra = "default_permissions";
  return cfg;
}

int fact5(uid_t user, const std::string& map) {
  Verdict v;
  const uid_t inner = map == "root" ? 0 : user;
  v.note(fmt("uid %u, unshare(CLONE_NEWUSER|CLONE_NEWNS), uid_map and gid_map '%u %u 1', setgroups deny; /dev/fuse 0600 so a 0666 node of 10:229 was bind-mounted over it first (as root, in a private mount namespace)",
             user, inner, user));
  // The pieces: a 0666 /dev/fuse node, a mount point, a setuid-root copy of
  // this binary on the host filesystem.
  const std::string node = fuse_node_0666();
  const std::string suid = g_dir + "/suid-ids";
  if (::access(suid.c_str(), F_OK) != 0) {
    std::ifstream in(g_self, std::ios::binary);
    std::ofstream out(suid, std::ios::binary);
    out << in.rdbuf();
    out.close();
    if (::chown(suid.c_str(), 0, 0) != 0 || ::chmod(suid.c_str(), 04755) != 0) die("setuid copy");
  }
  const std::string m = mkdir_in_scratch("r5-" + map);
  Fs b("B");
  b.add(1, "f", 2, S_IFREG | 0644, "hello\n", inner, inner);
  b.add(1, "rootfile", 3, S_IFREG | 0600, "secret\n", 0, 0);
  b.add(1, "userfile", 4, S_IFREG | 0600, "mine\n", user, user);
  b.add(1, "suid", 5, S_IFREG | 04755, {}, 0, 0);
  b.nodes[5].backing = g_self;
  // Control: the setuid copy works for this uid outside a user namespace.
  std::string control;
  {
    int pp[2];
    if (::pipe(pp) != 0) die("pipe");
    const pid_t c = ::fork();
    if (c == 0) {
      ::dup2(pp[1], 1);
      if (::setgroups(0, nullptr) != 0 || ::setresgid(user, user, user) != 0 ||
          ::setresuid(user, user, user) != 0)
        std::_Exit(3);
      ::execl(suid.c_str(), suid.c_str(), "ids", static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    ::close(pp[1]);
    char buf[256];
    const ssize_t n = ::read(pp[0], buf, sizeof buf);
    control = n > 0 ? std::string(buf, static_cast<size_t>(n) - 1) : "nothing";
    ::close(pp[0]);
    ::waitpid(c, nullptr, 0);
  }
  Agent ag = spawn_agent(user_run_cfg(m, node, user, map));
  if (!agent_ready(ag, v)) return v.print(5);
  v.expect(true, "mount(2) of fuse in the user namespace succeeded; the root daemon outside served it");
  serve(b, ag.devfd);
  const pid_t agent_pid = ag.pid;
  const std::string st_f = ag.ask("stat " + m + "/f");
  const uid_t ru = b.last_uid, rg = b.last_gid;
  const pid_t rp = static_cast<pid_t>(b.last_pid.load());
  v.expect(st_f.rfind("ok", 0) == 0 && ru == inner && rg == inner && rp == agent_pid,
           fmt("requests carried uid %u gid %u (ids as seen in the connection's user namespace) and pid %d (agent pid %d: no pid namespace)",
               ru, rg, rp, agent_pid));
  const std::string st_root = ag.ask("stat " + m + "/rootfile");
  const std::string st_user = ag.ask("stat " + m + "/userfile");
  const std::string want_root = map == "root" ? "uid=0 gid=0" : "uid=65534 gid=65534";
  const std::string want_user = map == "root" ? "uid=65534 gid=65534" : fmt("uid=%u gid=%u", user, user);
  v.expect(st_root.find(want_root) != std::string::npos,
           "a reply with owner 0 reads as " + st_root.substr(st_root.find("uid=")));
  v.expect(st_user.find(want_user) != std::string::npos,
           fmt("a reply with owner %u reads as ", user) + st_user.substr(st_user.find("uid=")));
  const int opens0 = b.n_open;
  const std::string o_root = ag.ask("open " + m + "/rootfile");
  const int opens1 = b.n_open;
  const std::string o_user = ag.ask("open " + m + "/userfile");
  const int opens2 = b.n_open;
  if (map == "self")
    v.expect(o_root == "err EACCES" && opens1 == opens0 && o_user == "ok" && opens2 == opens1 + 1,
             "default_permissions: open of a 0600 file of owner 0 failed EACCES in the kernel (no OPEN reached the daemon); its own 0600 file opened");
  else
    v.note(fmt("default_permissions with the root map: open of the 0600 file of owner 0 (0 inside): %s, of the file of owner %u (65534 inside): %s",
               o_root.c_str(), user, o_user.c_str()));
  const std::string ex_host = ag.ask("exec " + suid);
  const std::string ex_fuse = ag.ask("exec " + m + "/suid");
  v.expect(control == fmt("uid=%u euid=0", user) &&
               ex_host == fmt("uid=%u euid=%u", inner, inner),
           fmt("setuid ignored: a setuid-root program on the host filesystem gives %s outside the user namespace, %s inside it",
               control.c_str(), ex_host.c_str()));
  v.expect(ex_fuse == fmt("uid=%u euid=%u", inner, inner),
           "a setuid-root file served on the run's connection (MS_NOSUID) runs as " + ex_fuse);
  // Root of the host, reaching the run's mount through /proc/<pid>/root.
  const std::string via_proc = fmt("/proc/%d/root%s/f", agent_pid, m.c_str());
  const std::string root_sees = stat_text(via_proc.c_str());
  v.note("root outside the user namespace, through /proc/<agent>/root: stat M/f " + root_sees +
         " (no allow_other: only the mounting uid may use the mount)");
  // Passthrough on a connection mounted in a user namespace.
  {
    const Backing bk = register_backing(b.devfd, g_self);
    v.note(fmt("BACKING_OPEN by the root daemon on this connection without passthrough in INIT: %s",
               bk.id >= 0 ? "accepted" : err_name(bk.err).c_str()));
    unregister_backing(b.devfd, bk);
  }
  end_agent(ag, b);
  return v.print(5);
}

// Passthrough on a connection mounted in a user namespace (R5's last part):
// needs INIT patched, so a separate connection.
int fact5_passthrough(uid_t user) {
  Verdict v;
  const std::string node = fuse_node_0666();
  const std::string m = mkdir_in_scratch("r5-pt");
  Fs b("B");
  b.passthrough = true;
  const std::string bpath = make_backing_file("backing5", "passthrough in a user namespace\n");
  b.add(1, "pt", 2, S_IFREG | 0644, {}, user, user);
  b.nodes[2].backing = bpath;
  Agent ag = spawn_agent(user_run_cfg(m, node, user));
  if (!agent_ready(ag, v)) return v.print(5);
  serve(b, ag.devfd);
  ag.ask("stat " + m + "/pt");
  const Backing bk = register_backing(b.devfd, bpath);
  b.backing_id = bk.id;
  const std::string cat = ag.ask("cat " + m + "/pt");
  v.note(fmt("passthrough on a connection mounted in a user namespace by uid %u, root daemon outside: INIT offered %s, patched %s, BACKING_OPEN %s, read through it: %s (READs to the daemon: %d)",
             user, b.pt_offered ? "yes" : "no", b.pt_active ? "yes" : "no",
             bk.id >= 0 ? "ok" : err_name(bk.err).c_str(),
             cat == "ok passthrough in a user namespace\n" ? "right bytes" : cat.c_str(),
             b.n_read.load()));
  unregister_backing(b.devfd, bk);
  end_agent(ag, b);
  return v.print(5);
}

// What refuses an ordinary user's run mount (R5): /dev/fuse 0600, and a
// /dev/fuse descriptor opened before the user namespace was made.
int fact5_refusals(uid_t user) {
  Verdict v;
  const std::string m = mkdir_in_scratch("r5-refused");
  AgentCfg cfg;
  cfg.mount_on = m;
  cfg.uid = user;
  Agent a1 = spawn_agent(cfg);  // the real /dev/fuse, 0600 here
  v.expect(a1.hello == "fail open /dev/fuse: EACCES",
           fmt("uid %u in its user namespace opening this machine's /dev/fuse (0600): %s", user, a1.hello.c_str()));
  a1.wait_exit();
  cfg.fusedev = fuse_node_0666();
  cfg.map = "early";
  Agent a2 = spawn_agent(cfg);
  if (a2.devfd < 0) {
    v.note("a /dev/fuse descriptor opened before unshare(CLONE_NEWUSER) (as uid " +
           std::to_string(user) + "): mount in the new namespace refused: " + a2.hello);
    a2.wait_exit();
    return v.print(5);
  }
  // It mounted: which namespace do its requests' ids belong to?
  Fs b("B");
  b.add(1, "f", 2, S_IFREG | 0644, "hello\n", user, user);
  b.add(1, "rootfile", 3, S_IFREG | 0600, "secret\n", 0, 0);
  serve(b, a2.devfd);
  const std::string st_f = a2.ask("stat " + m + "/f");
  const std::string st_root = a2.ask("stat " + m + "/rootfile");
  v.note(fmt("a /dev/fuse descriptor opened before unshare(CLONE_NEWUSER) (as uid %u, map '%u %u 1') mounts in the new namespace too; its requests carry uid %u, a reply with owner 0 reads as %s, owner %u as %s",
             user, user, user, b.last_uid.load(), st_root.substr(st_root.find("uid=")).c_str(), user,
             st_f.substr(st_f.find("uid=")).c_str()));
  end_agent(a2, b);
  return v.print(5);
}

// ---------------------------------------------------------------- R6
int fact6() {
  Verdict v;
  Pair p;
  if (!make_pair(p, "r6", false, false, v)) return v.print(6);
  const std::string f = path_in(p, "f");
  auto host = [&] { return stat_text(f.c_str()); };
  auto run = [&] { return p.agent.ask("stat " + f); };
  host();
  run();
  host();
  run();
  auto reqs = [](Fs& fs) { return fs.n_lookup + fs.n_getattr; };
  int a0 = reqs(p.a), b0 = reqs(p.b);
  host();
  run();
  v.expect(reqs(p.a) == a0 && reqs(p.b) == b0, "with entry and attribute timeouts of 1000 s, repeated stats of M/f reach neither daemon");
  // inval_inode of node 2 (f on both connections) on B only.
  const int rb = fuse_lowlevel_notify_inval_inode(p.b.se, 2, 0, 0);
  std::this_thread::sleep_for(50ms);
  a0 = reqs(p.a);
  b0 = reqs(p.b);
  host();
  run();
  const int da = reqs(p.a) - a0, db = reqs(p.b) - b0;
  v.expect(rb == 0 && db == 1 && da == 0,
           fmt("fuse_lowlevel_notify_inval_inode(B, node 2) -> %d: the run's next stat sent %d request(s) to B, the host's same node id on A sent %d",
               rb, db, da));
  const int ra = fuse_lowlevel_notify_inval_inode(p.a.se, 2, 0, 0);
  std::this_thread::sleep_for(50ms);
  a0 = reqs(p.a);
  b0 = reqs(p.b);
  host();
  run();
  v.expect(ra == 0 && reqs(p.a) - a0 == 1 && reqs(p.b) - b0 == 0,
           fmt("and the other way round (A: %d, B: %d)", reqs(p.a) - a0, reqs(p.b) - b0));
  // FUSE_NOTIFY_INC_EPOCH: libfuse 3.14 has no call for it; written raw.
  auto inc_epoch = [](int fd) {
    const std::uint32_t len = kOutHeader;
    char h[kOutHeader]{};
    store(h, 0, len);
    store(h, 4, kNotifyIncEpoch);
    return ::write(fd, h, sizeof h) == static_cast<ssize_t>(sizeof h) ? 0 : errno;
  };
  host();
  run();
  int la = p.a.n_lookup, lb = p.b.n_lookup;
  const int eb = inc_epoch(p.b.devfd);
  host();
  run();
  const int dla = p.a.n_lookup - la, dlb = p.b.n_lookup - lb;
  v.expect(eb == 0 && dlb == 1 && dla == 0,
           fmt("NOTIFY_INC_EPOCH (written raw: libfuse 3.14 has no call for it) on B -> %s: the run's next stat sent %d LOOKUP(s) to B, the host's %d to A",
               err_name(eb).c_str(), dlb, dla));
  la = p.a.n_lookup;
  lb = p.b.n_lookup;
  const int ea = inc_epoch(p.a.devfd);
  host();
  run();
  v.expect(ea == 0 && p.a.n_lookup - la == 1 && p.b.n_lookup - lb == 0,
           fmt("and on A: A %d LOOKUP(s), B %d", p.a.n_lookup - la, p.b.n_lookup - lb));
  end_pair(p);
  return v.print(6);
}

// ---------------------------------------------------------------- R7
// The daemon asks the kernel about its root node: 0 while the connection
// lives, an error once it ended.
bool conn_alive(Fs& fs) {
  return !fs.loop_done && fuse_lowlevel_notify_inval_inode(fs.se, 1, -1, 0) == 0;
}

int fact7() {
  Verdict v;
  v.note("the scratch directory is a shared mount here (as / is on a systemd host), the run's namespace made with MS_REC|MS_SLAVE");
  // (a) as `snapfs run` leaves it: the run's working directory moved onto
  // its own connection (chdir(M) again after the mount). (b) the run's
  // working directory left on its copy of the main mount.
  for (const bool cwd_on_copy : {false, true}) {
    Pair p;
    if (!make_pair(p, cwd_on_copy ? "r7b" : "r7a", false, true, v)) return v.print(7);
    if (!cwd_on_copy) p.agent.ask("chdir " + p.m);
    const std::string label = cwd_on_copy ? "(b) run's cwd on its copy of the main mount"
                                          : "(a) run's cwd on its own connection";
    const auto host_m = mounts_at(p.m);
    const std::string run_m = p.agent.ask("mounts " + p.m);
    v.expect(host_m.size() == 1 && host_m[0] == "fuse.probe:probe-main" &&
                 run_m == "fuse.probe:probe-main,fuse.probe:probe-run",
             label + ": the run's mount over M stays in its namespace (host: " + join(host_m) +
                 "; run: " + run_m + ")");
    const int rc = ::umount2(p.m.c_str(), 0);
    const int e = errno;
    const auto host_after = mounts_at(p.m);
    const std::string run_after = p.agent.ask("mounts " + p.m);
    const std::string run_f = p.agent.ask("stat " + path_in(p, "f"));
    std::this_thread::sleep_for(200ms);
    const bool a_alive = conn_alive(p.a);
    v.note(fmt("%s: umount M in the host (umount2, no flags) %s; host M %s; run's M %s; the run reads B: %s; the main connection %s",
               label.c_str(), rc == 0 ? "succeeded" : err_name(e).c_str(),
               host_after.empty() ? "unmounted" : join(host_after).c_str(), run_after.c_str(),
               run_f.rfind("ok", 0) == 0 ? "yes" : run_f.c_str(),
               a_alive ? "lives on (its daemon is not told)"
                       : ("ended at once (the daemon's read gave " + err_name(p.a.last_read_errno) +
                          ", its loop returned) while the run's connection, served by the same daemon, went on").c_str()));
    p.agent.stop();
    if (rc == 0 && a_alive) {
      const auto t = Clock::now();
      const bool a_ended = wait_for([&] { return p.a.loop_done.load(); }, 5000ms);
      v.note(a_ended ? fmt("%s: the main connection ended %ld ms after the run's last process exited",
                           label.c_str(), ms_since(t))
                     : label + ": the main connection did not end after the run's last process exited");
    } else if (rc != 0) {
      const int rc2 = ::umount2(p.m.c_str(), 0);
      v.note(label + ": after the run's last process exited the same umount " +
             (rc2 == 0 ? std::string("succeeded") : err_name(errno)));
    }
    end_pair(p);
  }
  return v.print(7);
}

// ---------------------------------------------------------------- R8
int fact8() {
  Verdict v;
  Pair p;
  if (!make_pair(p, "r8", false, true, v)) return v.print(8);
  v.note("the agent chdir(M) (the main connection), then mounted the run's connection over M");
  const std::string rel = p.agent.ask("stat f");
  const std::string rel_b = p.agent.ask("stat only_b");
  const std::string abs = p.agent.ask("stat " + path_in(p, "f"));
  v.expect(rel.find("size=7") != std::string::npos && rel_b == "err ENOENT",
           "relative paths from the old working directory still reach the main connection (f is A's, only_b ENOENT)");
  v.expect(abs.find("size=18") != std::string::npos, "absolute paths reach the run's connection");
  p.agent.ask("chdir " + p.m);
  const std::string rel2 = p.agent.ask("stat f");
  v.expect(rel2.find("size=18") != std::string::npos, "after chdir(M) again, relative paths reach the run's connection");
  end_pair(p);
  return v.print(8);
}

// ---------------------------------------------------------------- R9, R10
int fact9_10(int which) {
  Verdict v;
  const std::string m = mkdir_in_scratch(fmt("r%d", which));
  Fs a("A");
  fill_tree(a, "A-file\n", "only_a");
  a.add(4, "b", 10, S_IFREG | 0644, "b");
  a.add(4, "c", 11, S_IFREG | 0644, "c");
  a.cache_dir = true;
  a.timeout = which == 9 ? 1.0 : 1000;
  const int fd = open_fuse();
  if (mount_fuse(fd, "probe-r" + std::to_string(which), m, 0, 0, "allow_other") != 0) die("mount");
  serve(a, fd);
  const std::string d = m + "/d";
  auto ls = [&] { return ls_text(d.c_str()); };
  const std::string l1 = ls();
  const int r1 = a.n_readdir, o1 = a.n_opendir;
  const std::string l2 = ls();
  const int r2 = a.n_readdir, o2 = a.n_opendir;
  if (which == 9) {
    v.note("OPENDIR replies cache_readdir=1 keep_cache=1; libfuse 3.14 default FUSE_CAP_AUTO_INVAL_DATA " +
           std::string(a.auto_inval_data ? "on" : "off"));
    v.expect(l1 == "ok a,b,c" && l2 == l1 && r1 >= 1 && r2 == r1 && o2 == o1 + 1,
             fmt("a second opendir+readdir of an unchanged directory was served from the cache (OPENDIR %d->%d, READDIR %d->%d)",
                 o1, o2, r1, r2));
    const int g0 = a.n_getattr, lk0 = a.n_lookup;
    std::this_thread::sleep_for(1300ms);
    const std::string l3 = ls();
    v.expect(l3 == l1 && a.n_readdir == r2,
             fmt("after the 1 s entry and attribute timeouts ran out: %d LOOKUP, %d GETATTR, %d READDIR (attributes refreshed, same mtime: cache kept)",
                 a.n_lookup - lk0, a.n_getattr - g0, a.n_readdir - r2));
  } else {
    auto add = [&](const std::string& name, fuse_ino_t ino, bool new_mtime) {
      std::lock_guard<std::mutex> l(a.mu);
      a.nodes[ino].mode = S_IFREG | 0644;
      a.nodes[ino].content = "n";
      a.nodes[4].kids.emplace_back(name, ino);
      if (new_mtime) a.nodes[4].mtime.tv_sec += 10;
    };
    v.expect(r2 == r1, "the listing is cached (second listing: no READDIR)");
    // (i) nothing said to the kernel
    add("n1", 20, true);
    const std::string s1 = ls();
    v.expect(s1 == "ok a,b,c", "an entry added behind the kernel's back with a new mtime and nothing invalidated: not listed (" + s1 + ")");
    // (ii) attributes only (offset -1: no page cache drop), new mtime
    add("n2", 21, true);
    int rd = a.n_readdir;
    const int rc2 = fuse_lowlevel_notify_inval_inode(a.se, 4, -1, 0);
    const std::string s2 = ls();
    v.expect(rc2 == 0 && s2 == "ok a,b,c,n1,n2" && a.n_readdir > rd,
             "inval_inode(dir, -1, 0) (attributes only) with a new mtime: the cache was dropped, listing " + s2);
    // (iii) attributes and pages (offset 0), new mtime: the design's case
    add("n3", 22, true);
    rd = a.n_readdir;
    const int rc3 = fuse_lowlevel_notify_inval_inode(a.se, 4, 0, 0);
    const std::string s3 = ls();
    v.expect(rc3 == 0 && s3 == "ok a,b,c,n1,n2,n3" && a.n_readdir > rd,
             "inval_inode(dir, 0, 0) with a new mtime: dropped, listing " + s3);
    // (iv) attributes invalidated, same mtime
    add("n4", 23, false);
    rd = a.n_readdir;
    const int rc4 = fuse_lowlevel_notify_inval_inode(a.se, 4, -1, 0);
    const std::string s4 = ls();
    v.note("inval_inode(dir, -1, 0) with the mtime unchanged: " +
           std::string(s4 == "ok a,b,c,n1,n2,n3,n4" ? "dropped" : "kept") + " (" + s4 + ")" + (rc4 ? " rc!=0" : ""));
    // (v) attributes and pages, same mtime
    add("n5", 24, false);
    const int rc5 = fuse_lowlevel_notify_inval_inode(a.se, 4, 0, 0);
    const std::string s5 = ls();
    v.note("inval_inode(dir, 0, 0) with the mtime unchanged: " +
           std::string(s5.find("n5") != std::string::npos ? "dropped" : "kept") + " (" + s5 + ")" + (rc5 ? " rc!=0" : ""));
    (void)rd;
  }
  unmount_and_finish(m, a);
  return v.print(which);
}

// ---------------------------------------------------------------- R12
int fact12(const std::string& dir, const std::string& label) {
  Verdict v;
  const std::string f = dir + "/f", g = dir + "/g", h = dir + "/h";
  const int fd = ::open(f.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0 || ::write(fd, "x", 1) != 1) die("create " + f);
  ::close(fd);
  struct stat s0{}, s1{}, s2{};
  ::stat(f.c_str(), &s0);
  std::this_thread::sleep_for(30ms);
  const int r1 = ::link(f.c_str(), g.c_str());
  ::stat(f.c_str(), &s1);
  std::this_thread::sleep_for(30ms);
  // As the design links a file in: linkat of /proc/self/fd/N with
  // AT_SYMLINK_FOLLOW, N an O_PATH descriptor.
  const int pfd = ::open(f.c_str(), O_PATH | O_CLOEXEC);
  const std::string proc = fmt("/proc/self/fd/%d", pfd);
  const int r2 = ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, h.c_str(), AT_SYMLINK_FOLLOW);
  ::close(pfd);
  ::stat(f.c_str(), &s2);
  auto moved = [](const struct stat& a, const struct stat& b) {
    return a.st_ctim.tv_sec != b.st_ctim.tv_sec || a.st_ctim.tv_nsec != b.st_ctim.tv_nsec;
  };
  auto same_m = [](const struct stat& a, const struct stat& b) {
    return a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
  };
  v.expect(r1 == 0 && moved(s0, s1) && same_m(s0, s1),
           label + ": link(2) of a named file moved its ctime (mtime unchanged)");
  v.expect(r2 == 0 && moved(s1, s2) && same_m(s1, s2) && s2.st_nlink == 3,
           label + ": linkat(/proc/self/fd/N, AT_SYMLINK_FOLLOW) of an O_PATH descriptor moved it too");
  ::unlink(f.c_str());
  ::unlink(g.c_str());
  ::unlink(h.c_str());
  return v.print(12);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: run_facts rN SCRATCH | r12 DIR LABEL (see run_facts.sh)\n");
    return 2;
  }
  const std::string cmd = argv[1];
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) die("readlink /proc/self/exe");
  g_self.assign(self, static_cast<size_t>(n));
  ::signal(SIGPIPE, SIG_IGN);
  if (cmd == "ids") return ids_main();
  // Dies with run_facts.sh, and after 90 s whatever it waits for; the
  // agents and daemons it starts die with it (PR_SET_PDEATHSIG).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::alarm(90);
  if (cmd == "agent") return agent_main(argv);
  if (cmd == "serve") return serve_main(argv);
  if (argc < 3) return 2;
  g_dir = argv[2];
  if (cmd == "r1") return fact1();
  if (cmd == "r2") return fact2();
  if (cmd == "r3") return fact3();
  if (cmd == "r4") return fact4();
  if (cmd == "r5") {
    const uid_t u = argc > 3 ? static_cast<uid_t>(std::stoul(argv[3])) : 61001;
    const std::string map = argc > 4 ? argv[4] : "self";
    if (map == "refusals") return fact5_refusals(u);
    return map == "passthrough" ? fact5_passthrough(u) : fact5(u, map);
  }
  if (cmd == "r6") return fact6();
  if (cmd == "r7") return fact7();
  if (cmd == "r8") return fact8();
  if (cmd == "r9") return fact9_10(9);
  if (cmd == "r10") return fact9_10(10);
  if (cmd == "r12") return fact12(argv[2], argc > 3 ? argv[3] : "fs");
  std::fprintf(stderr, "run_facts: unknown fact %s\n", cmd.c_str());
  return 2;
}
