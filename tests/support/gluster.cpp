// GlusterVolume (gluster.hpp).
#include "support/gluster.hpp"

#include "support/files.hpp"
#include "support/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>

namespace snapfs::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// glusterd's port: the brick and the clients fetch their volfiles here
// whatever glusterd.vol says (with another listen-port, `volume start`
// fails: the brick cannot get its volfile).
constexpr int kGlusterdPort = 24007;

// Measured on a 2-core VM: glusterd answers its first command ~1.8 s after
// it starts, a volume is created and started in ~0.7 s, a client mounts in
// ~0.1 s. The deadlines leave a wide margin for a loaded CI machine.
constexpr auto kGlusterdDeadline = 30s;
constexpr auto kCliTimeout = 60s;
constexpr auto kBrickDeadline = 30s;
constexpr auto kExitDeadline = 10s;
constexpr auto kUnmountDeadline = 10s;

// What snapfs needs of the volume (docs/design-shared-storage.md), each
// measured with two clients, one renaming new versions over a file while
// the other opens and reads it:
// * stat-prefetch and md-cache-timeout: the client's metadata cache would
//   show the other client's rename about 1 s late.
// * open-behind: the client answers open() before the brick has opened
//   the file; when the other client has replaced it meanwhile, the first
//   read fails with ESTALE or ENOENT (direct access, without snapfs: 79
//   failed reads in ~950 opens; none with it off). Through a view, such an
//   open fails, since the daemon copies the file at open.
constexpr std::pair<const char*, const char*> kVolumeOptions[] = {
    {"performance.stat-prefetch", "off"},
    {"performance.md-cache-timeout", "0"},
    {"performance.open-behind", "off"},
};
// And of each client mount: the kernel's caches of the glusterfs FUSE
// client (entries and attributes, 1 s each by default) off, as NFS needs
// lookupcache=none. With them, a daemon over the second client compares
// a commit against the name's old inode and version, still cached: the
// commit lock then protects nothing (a lost update was stopped only by
// the commit's later listxattr of the old inode failing with ESTALE), and
// a new open reads the version before the other client's publish.
constexpr const char* kClientOptions = "entry-timeout=0,attribute-timeout=0";

// Where GlusterFS writes whatever glusterd.vol and the command lines say:
// glusterd's cmd_history.log and geo-replication directories, the brick's
// log (bricks/<brick>.log), the brick's socket, the geo-replication
// template. Each gets a scratch directory bind-mounted over it.
struct FixedPath {
  const char* path;
  const char* scratch;  // below dir()
};
constexpr FixedPath kFixedPaths[] = {
    {"/var/log/glusterfs", "var-log-glusterfs"},
    {"/var/run/gluster", "var-run-gluster"},
    {"/var/lib/glusterd", "var-lib-glusterd"},
};

// What enter_private_mount_namespace() did.
struct NsState {
  std::string failure;       // why it failed; empty if it was not called or worked
  std::string entered_from;  // the namespace before unshare, once it worked
};
NsState& ns_state() {
  static NsState s;
  return s;
}

std::string sys_error(const std::string& op, int err) { return op + ": " + errno_name(err); }

std::string read_link(const char* path, std::string& why) {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink(path, buf, sizeof buf);
  if (n < 0) {
    why = sys_error(std::string("readlink(") + path + ")", errno);
    return {};
  }
  return std::string(buf, static_cast<std::size_t>(n));
}

// The arguments of a process (its /proc/<pid>/cmdline split at NULs);
// empty if it is gone. Plain read(2): the process may exit while we read.
std::vector<std::string> cmdline_of(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/cmdline";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd == -1) return {};
  std::string raw;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) raw.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  std::vector<std::string> args;
  std::size_t at = 0;
  while (at < raw.size()) {
    const std::size_t end = std::min(raw.find('\0', at), raw.size());
    args.push_back(raw.substr(at, end - at));
    at = end + 1;
  }
  return args;
}

std::vector<pid_t> all_pids() {
  std::vector<pid_t> pids;
  for (const auto& e :
       fs::directory_iterator("/proc", fs::directory_options::skip_permission_denied)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pids.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return pids;
}

// Reaps our child `pid` within the deadline, else SIGKILLs and reaps it.
// Returns its status text ("exit 0", "signal SIGTERM") and whether it went
// in time.
bool reap(pid_t pid, std::chrono::milliseconds timeout, std::string& status) {
  const bool in_time = wait_exited(pid, timeout);
  if (!in_time) ::kill(pid, SIGKILL);
  int ws = 0;
  while (::waitpid(pid, &ws, 0) == -1 && errno == EINTR) {
  }
  if (WIFEXITED(ws)) status = "exit " + std::to_string(WEXITSTATUS(ws));
  else if (WIFSIGNALED(ws)) {
    const char* name = ::sigabbrev_np(WTERMSIG(ws));
    status = name != nullptr ? std::string("signal SIG") + name
                             : "signal " + std::to_string(WTERMSIG(ws));
  }
  return in_time;
}

// The mounts below `dir` in /proc/self/mountinfo, in mount order.
std::vector<std::string> mounts_below(const fs::path& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::vector<std::string> found;
  const std::string prefix = dir.string() + "/";
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, point;
    ls >> id >> parent >> devno >> root >> point;
    if (point.rfind(prefix, 0) == 0) found.push_back(point);
  }
  return found;
}

// The fstype of the topmost mount at `mnt`, or empty.
std::string fstype_at(const fs::path& mnt) {
  std::ifstream in("/proc/self/mountinfo");
  std::string found;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, point;
    ls >> id >> parent >> devno >> root >> point;
    if (point != mnt.string()) continue;
    const auto sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream rest(line.substr(sep + 3));
    rest >> found;
  }
  return found;
}

// umount2, retrying EBUSY until the deadline, then lazily. False (and
// why) if it had to detach lazily or failed.
bool unmount(const fs::path& mnt, std::string& why) {
  const auto deadline = Clock::now() + kUnmountDeadline;
  for (;;) {
    if (::umount2(mnt.c_str(), UMOUNT_NOFOLLOW) == 0) return true;
    const int e = errno;
    if (e == EINVAL || e == ENOENT) return true;  // not mounted (any more)
    if (e != EBUSY || Clock::now() >= deadline) {
      why += (why.empty() ? "" : "; ") + sys_error("umount2(" + mnt.string() + ")", e) +
             "; detached lazily";
      ::umount2(mnt.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
      return false;
    }
    std::this_thread::sleep_for(10ms);
  }
}

std::string tail_of(const fs::path& file, std::size_t lines) {
  std::ifstream in(file);
  std::vector<std::string> last;
  for (std::string line; std::getline(in, line);) {
    last.push_back(line);
    if (last.size() > lines) last.erase(last.begin());
  }
  std::string out;
  for (const auto& l : last) out += l + "\n";
  return out;
}

// The crash helper: a detached shell (double-forked, its own session, so
// that ctest's kill of the test's process tree does not reach it; forked
// after main() entered the private mount namespace, so it is in it) that
// waits for EOF on a socket only this process holds. "done" first: it
// exits. Otherwise this process died without tearing down (or teardown
// failed): it SIGKILLs every process with an argument below the directory
// (glusterd, the brick, the clients, snapfs views mounted there), detaches
// every mount below it, and removes the directory. Not the fixed paths
// covered: by then the next test may have covered them again (a lazy
// unmount would take its bind away, and its glusterd would write to the
// host's), and ours vanish with the namespace once its last process exits.
// The directory comes in the environment, never interpolated into the
// script, and so that the helper's own command line does not name it
// (teardown kills what names it).
constexpr const char* kCrashScript = R"sh(
PATH=/usr/sbin:/usr/bin:/sbin:/bin
IFS= read -r word
[ "$word" = done ] && exit 0
dir=$SNAPFS_GLUSTER_DIR
[ -n "$dir" ] || exit 0
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [ "$pid" = "$$" ] && continue
  if tr '\0' '\n' < "$p/cmdline" 2>/dev/null | grep -qF -- "$dir/"; then
    kill -9 "$pid" 2>/dev/null
  fi
done
awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
  while IFS= read -r m; do umount -l -- "$m" 2>/dev/null; done
rm -rf --one-file-system -- "$dir" 2>/dev/null
exit 0
)sh";

}  // namespace

std::vector<pid_t> processes_naming(const fs::path& path) {
  const std::string p = path.string();
  std::vector<pid_t> found;
  for (pid_t pid : all_pids()) {
    if (pid == ::getpid()) continue;
    for (const auto& arg : cmdline_of(pid)) {
      bool names = false;
      // `path` itself or below it, also inside an argument ("--volfile=PATH/...").
      for (auto at = arg.find(p); at != std::string::npos && !names; at = arg.find(p, at + 1)) {
        const auto end = at + p.size();
        names = end == arg.size() || arg[end] == '/';
      }
      if (names) {
        found.push_back(pid);
        break;
      }
    }
  }
  return found;
}

bool wait_exited(pid_t pid, std::chrono::milliseconds timeout) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd == -1) return errno == ESRCH;
  const auto deadline = Clock::now() + timeout;
  bool gone = false;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{pidfd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0)));
    if (n == -1 && errno == EINTR) continue;
    gone = n == 1;
    break;
  }
  ::close(pidfd);
  return gone;
}

std::string enter_private_mount_namespace() {
  std::string why;
  const std::string before = read_link("/proc/self/ns/mnt", why);
  if (before.empty()) {
    // why says it
  } else if (::unshare(CLONE_NEWNS) == -1) {
    why = sys_error("unshare(CLONE_NEWNS)", errno) + " (needs root: CAP_SYS_ADMIN)";
  } else if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == -1) {
    // A new namespace whose mounts still propagate to the host's is worse
    // than none: in_private_mount_namespace() refuses it.
    why = sys_error("mount(/, MS_REC|MS_PRIVATE)", errno);
  }
  ns_state().entered_from = why.empty() ? before : std::string();
  ns_state().failure =
      why.empty() ? std::string() : "main() could not enter a private mount namespace: " + why;
  return why;
}

bool in_private_mount_namespace(std::string& why) {
  if (!ns_state().failure.empty()) {
    why = ns_state().failure;
    return false;
  }
  const std::string self = read_link("/proc/self/ns/mnt", why);
  if (self.empty()) return false;
  // init's namespace, where we may read it (reading another process's
  // namespace needs ptrace access: a VM's init may deny it even to root);
  // else the one this process started in.
  std::string init_why;
  std::string init = read_link("/proc/1/ns/mnt", init_why);
  if (init.empty()) init = ns_state().entered_from;
  if (init.empty()) {
    why = "cannot tell whether this is a private mount namespace (" + init_why +
          ") and main() did not call enter_private_mount_namespace()";
    return false;
  }
  if (self == init) {
    why = "not in a private mount namespace (/proc/self/ns/mnt is " + init +
          ", the host's); the test's main() must call enter_private_mount_namespace()";
    return false;
  }
  // Private, not just new: a shared mount would carry our mounts back.
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::vector<std::string> f{std::istream_iterator<std::string>(ls), {}};
    for (std::size_t i = 6; i < f.size() && f[i] != "-"; ++i) {
      if (f[i].rfind("shared:", 0) == 0) {
        why = "the mount at " + f[4] + " is shared (" + f[i] +
              "): mounts made here would propagate";
        return false;
      }
    }
  }
  return true;
}

GlusterVolume::GlusterVolume(TempDir dir)
    : dir_(std::move(dir)),
      log_(dir_ / "log"),
      run_(dir_ / "run"),
      sock_(run_ / "glusterd.socket") {}

std::unique_ptr<GlusterVolume> GlusterVolume::make(std::string& why, bool& skipped) {
  skipped = false;
  if (!in_private_mount_namespace(why)) {
    skipped = true;
    return nullptr;
  }
  for (const char* prog : {"glusterd", "gluster", "mount.glusterfs"}) {
    if (find_program(prog).empty()) {
      skipped = true;
      why = std::string(prog) + " not found (install glusterfs-server and glusterfs-client: " +
            "scripts/setup.sh)";
      return nullptr;
    }
  }
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    skipped = true;
    why = "no /dev/fuse: " + errno_name(errno);
    return nullptr;
  }
  std::unique_ptr<GlusterVolume> v;
  try {
    v.reset(new GlusterVolume(TempDir("snapfs-gluster-")));
    if (v->start(why, skipped)) return v;
    if (!skipped) why += "\n" + v->log_tails();
  } catch (const std::exception& e) {
    why = std::string("GlusterVolume setup: ") + e.what();
  }
  return nullptr;  // the destructor takes down what was started
}

bool GlusterVolume::start(std::string& why, bool& skipped) {
  // mkdtemp made it 0700; the views' daemons and dropped uids look below.
  if (::chmod(dir_.path().c_str(), 0755) == -1) {
    why = sys_error("chmod(" + dir_.path().string() + ")", errno);
    return false;
  }
  for (const fs::path& d : {log_, run_, dir_ / "lib"}) fs::create_directory(d);
  // One glusterd per machine can have the port: say so rather than
  // letting glusterd fail with a line in its log.
  {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(kGlusterdPort);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int r = ::bind(s, reinterpret_cast<const sockaddr*>(&a), sizeof a);
    const int e = errno;
    ::close(s);
    if (r == -1) {
      // The machine's own glusterd: not ours to stop.
      skipped = true;
      why = "127.0.0.1:" + std::to_string(kGlusterdPort) + " is taken (" + errno_name(e) +
            "): another glusterd runs (the host's, or one a test left); only one can";
      return false;
    }
  }
  {
    // GlusterFS names a brick by this machine's host name (the CLI refuses
    // a loopback address), which must therefore resolve.
    char host[HOST_NAME_MAX + 1] = {};
    addrinfo* ai = nullptr;
    if (::gethostname(host, sizeof host) == -1 ||
        ::getaddrinfo(host, nullptr, nullptr, &ai) != 0) {
      skipped = true;
      why = std::string("this machine's host name '") + host +
            "' does not resolve (GlusterFS names a brick by it: add it to /etc/hosts)";
      return false;
    }
    ::freeaddrinfo(ai);
  }
  crash_ = CrashCleanup(kCrashScript, "snapfs-gluster-crash-cleanup", {},
                        {"SNAPFS_GLUSTER_DIR=" + dir_.path().string()});
  if (!bind_fixed_paths(why, skipped)) return false;

  LoopFs::Outcome outcome{};
  brick_fs_ = LoopFs::make(FsKind::xfs, {}, outcome, why);
  if (!brick_fs_) {
    skipped = outcome == LoopFs::Outcome::skipped;
    why = "the brick's XFS: " + why;
    return false;
  }
  brick_ = brick_fs_->root() / "brick";
  fs::create_directory(brick_);

  return start_glusterd(why) && create_volume(why);
}

bool GlusterVolume::bind_fixed_paths(std::string& why, bool& skipped) {
  for (const auto& f : kFixedPaths) {
    struct stat st {};
    if (::stat(f.path, &st) == -1 || !S_ISDIR(st.st_mode)) {
      // Making it would write to the host's file system (a mount namespace
      // shares the files): the package or the boot makes these.
      skipped = true;
      why = std::string(f.path) + " is not a directory (" + errno_name(errno) +
            "); glusterfs-server's package and tmpfiles.d make it";
      return false;
    }
    const fs::path scratch = dir_ / f.scratch;
    fs::create_directory(scratch);
    if (::mount(scratch.c_str(), f.path, nullptr, MS_BIND, nullptr) == -1) {
      why = sys_error("mount(MS_BIND, " + scratch.string() + ", " + f.path + ")", errno);
      return false;
    }
    binds_.emplace_back(f.path);
  }
  return true;
}

bool GlusterVolume::start_glusterd(std::string& why) {
  // Nothing may reach the host's fixed paths: each must be our scratch
  // directory now (the same inode).
  for (const auto& f : kFixedPaths) {
    struct stat there {};
    struct stat ours {};
    const fs::path scratch = dir_ / f.scratch;
    if (::stat(f.path, &there) == -1 || ::stat(scratch.c_str(), &ours) == -1 ||
        there.st_dev != ours.st_dev || there.st_ino != ours.st_ino) {
      why = std::string(f.path) + " is not " + scratch.string() + " (the bind mount is gone)";
      return false;
    }
  }
  const fs::path vol = dir_ / "glusterd.vol";
  {
    std::ofstream o(vol);
    // run-directory takes glusterd's pid files and the volumes' run state
    // out of /var/run/gluster; the brick's socket stays there (covered).
    // No hooks: working-directory is empty, so /var/lib/glusterd/hooks
    // (Samba, CTDB, Ganesha scripts) never run.
    o << "volume management\n"
      << "    type mgmt/glusterd\n"
      << "    option working-directory " << (dir_ / "lib").string() << "\n"
      << "    option run-directory " << run_.string() << "\n"
      << "    option transport-type socket\n"
      << "    option transport.socket.bind-address 127.0.0.1\n"
      << "    option transport.socket.listen-port " << kGlusterdPort << "\n"
      << "    option ping-timeout 0\n"
      << "    option event-threads 1\n"
      << "    option glusterd-sockfile " << sock_.string() << "\n"
      << "end-volume\n";
    if (!o.flush()) {
      why = "cannot write " + vol.string();
      return false;
    }
  }
  if (sock_.string().size() >= sizeof(sockaddr_un{}.sun_path)) {
    why = "the socket path " + sock_.string() + " is too long for a unix socket";
    return false;
  }
  const std::string glusterd = find_program("glusterd");
  std::vector<std::string> args = {glusterd,
                                   "-N",  // foreground: our child, reaped by us
                                   "--volfile=" + vol.string(),
                                   "--pid-file=" + (run_ / "glusterd.pid").string(),
                                   "--log-file=" + (log_ / "glusterd.log").string()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int out =
      ::open((log_ / "glusterd.out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out == -1) {
    why = sys_error("open(glusterd.out)", errno);
    return false;
  }
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int nul = ::open("/dev/null", O_RDONLY);
    if (nul == -1 || ::dup2(nul, 0) == -1 || ::dup2(out, 1) == -1 || ::dup2(out, 2) == -1)
      ::_exit(127);
    // Nothing of the test's: not a file it holds open on a mount.
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  const int e = errno;
  ::close(out);
  if (pid == -1) {
    why = sys_error("fork", e);
    return false;
  }
  glusterd_ = pid;

  // Ready when it answers a command; its socket appears well before that
  // (while it still initialises), and the first command waits for it.
  const auto deadline = Clock::now() + kGlusterdDeadline;
  for (;;) {
    if (wait_exited(glusterd_, 0ms)) {
      std::string status;
      reap(glusterd_, 0ms, status);
      glusterd_ = -1;
      why = "glusterd exited at start (" + status + ")";
      return false;
    }
    struct stat st {};
    if (::stat(sock_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      std::string listing, cli_why;
      if (cli({"volume", "list"}, listing, cli_why)) return true;
      if (Clock::now() >= deadline) {
        why = "glusterd does not answer: " + cli_why;
        return false;
      }
    } else if (Clock::now() >= deadline) {
      why = "glusterd's socket " + sock_.string() + " did not appear within " +
            std::to_string(kGlusterdDeadline.count()) + " s";
      return false;
    }
    std::this_thread::sleep_for(20ms);
  }
}

bool GlusterVolume::cli(const std::vector<std::string>& args, std::string& out, std::string& why) {
  std::vector<std::string> argv = {"gluster", "--glusterd-sock=" + sock_.string(), "--mode=script",
                                   "--log-file=" + (log_ / "cli.log").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  const CommandResult r = run_command(argv, kCliTimeout);
  out = r.output;
  if (r.status.ok()) return true;
  std::string cmd;
  for (const auto& a : args) cmd += (cmd.empty() ? "" : " ") + a;
  why = "gluster " + cmd + ": " + r.status.describe() + ": " + r.output;
  return false;
}

bool GlusterVolume::create_volume(std::string& why) {
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof host) == -1) {
    why = sys_error("gethostname", errno);
    return false;
  }
  // The host name, not 127.0.0.1: the CLI refuses a loopback address for a
  // brick. glusterd checks that the name is this machine.
  const std::string vol = kVolume;
  std::string out;
  if (!cli({"volume", "create", vol, std::string(host) + ":" + brick_.string(), "force"}, out, why))
    return false;
  for (const auto& [key, value] : kVolumeOptions)
    if (!cli({"volume", "set", vol, key, value}, out, why)) return false;
  if (!cli({"volume", "start", vol}, out, why)) return false;

  // The brick process: its pid file, then glusterd's word that it is online.
  const fs::path pids = run_ / "vols" / vol;
  const auto deadline = Clock::now() + kBrickDeadline;
  while (brick_pid_ <= 0) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(pids, ec)) {
      if (e.path().extension() != ".pid") continue;
      std::ifstream in(e.path());
      long pid = 0;
      if (in >> pid && pid > 0 && ::kill(static_cast<pid_t>(pid), 0) == 0)
        brick_pid_ = static_cast<pid_t>(pid);
    }
    if (brick_pid_ > 0) break;
    if (Clock::now() >= deadline) {
      why = "no live brick process in " + pids.string() + " after `volume start`";
      return false;
    }
    std::this_thread::sleep_for(20ms);
  }
  for (;;) {
    std::string status, status_why;
    if (cli({"volume", "status", vol}, status, status_why)) {
      // "Brick host:/path   <port>   0   Y   <pid>"
      std::istringstream lines(status);
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind("Brick ", 0) != 0) continue;
        std::istringstream ls(line);
        std::vector<std::string> f{std::istream_iterator<std::string>(ls), {}};
        if (f.size() >= 2 && f[f.size() - 2] == "Y") return true;
      }
    }
    if (Clock::now() >= deadline) {
      why = "the brick is not online: " + status + status_why;
      return false;
    }
    std::this_thread::sleep_for(50ms);
  }
}

fs::path GlusterVolume::mount_client(std::string& why) {
  if (glusterd_ <= 0 || brick_pid_ <= 0) {
    why = "the volume is not running";
    return {};
  }
  const std::string n = std::to_string(clients_.size() + 1);
  Client c;
  c.mnt = dir_ / ("client" + n);
  std::error_code ec;
  fs::create_directory(c.mnt, ec);
  if (ec) {
    why = "mkdir " + c.mnt.string() + ": " + ec.message();
    return {};
  }
  clients_.push_back(c);  // taken down at teardown, also after a failed mount
  Client& me = clients_.back();
  const fs::path log = log_ / ("client" + n + ".log");
  const CommandResult r = run_command(
      {"mount", "-t", "glusterfs", "-o", "log-file=" + log.string() + "," + kClientOptions,
       std::string("127.0.0.1:/") + kVolume, me.mnt.string()},
      kCliTimeout);
  me.mounted = fstype_at(me.mnt) == "fuse.glusterfs";
  // Its glusterfs process names the mount point as its last argument
  // (mount.glusterfs gives no pid file).
  for (pid_t pid : processes_naming(dir_.path())) {
    const auto args = cmdline_of(pid);
    if (!args.empty() && args.back() == me.mnt.string() &&
        fs::path(args.front()).filename() == "glusterfs")
      me.pid = pid;
  }
  if (!r.status.ok() || !me.mounted || me.pid <= 0) {
    why = "mount -t glusterfs at " + me.mnt.string() + ": " + r.status.describe() + ": " +
          r.output + (me.mounted ? "" : " (not in mountinfo)") +
          (me.pid > 0 ? "" : " (no glusterfs process)") + "\n" + tail_of(log, 20);
    return {};
  }
  return me.mnt;
}

std::string GlusterVolume::log_tails(std::size_t lines) const {
  std::string out;
  for (const fs::path& d : {log_, dir_ / kFixedPaths[0].scratch}) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(d, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec) || it->file_size(ec) == 0) continue;
      out += "--- " + it->path().string() + " (end) ---\n" + tail_of(it->path(), lines);
    }
  }
  return out;
}

bool GlusterVolume::teardown(std::string& why) noexcept {
  if (torn_down_) return true;
  bool ok = true;
  const auto note = [&](const std::string& what) {
    why += (why.empty() ? "" : "; ") + what;
    ok = false;
  };
  try {
    // Clients first: each glusterfs process exits once its mount is gone.
    for (auto it = clients_.rbegin(); it != clients_.rend(); ++it) {
      std::string uwhy;
      if (it->mounted && !unmount(it->mnt, uwhy)) note(uwhy);
      it->mounted = false;
      if (it->pid > 0 && !wait_exited(it->pid, kExitDeadline)) {
        note("the client of " + it->mnt.string() + " did not exit after its unmount; killed");
        ::kill(it->pid, SIGKILL);
        wait_exited(it->pid, kExitDeadline);
      }
      it->pid = -1;
    }
    // The brick: SIGKILL, not SIGTERM (which takes ~1.5 s to shut down in
    // order) or `volume stop` (~1.1 s): the volume is thrown away, and the
    // brick's XFS is unmounted only once the process is gone.
    if (brick_pid_ > 0) {
      ::kill(brick_pid_, SIGKILL);
      if (!wait_exited(brick_pid_, kExitDeadline)) note("the brick process did not die");
      brick_pid_ = -1;
    }
    if (glusterd_ > 0) {
      ::kill(glusterd_, SIGTERM);
      std::string status;
      if (!reap(glusterd_, kExitDeadline, status)) note("glusterd ignored SIGTERM; killed");
      glusterd_ = -1;
    }
    // Anything else started for this volume (a brick whose pid file we
    // never read because the start failed, a view the test did not stop).
    for (pid_t pid : processes_naming(dir_.path())) {
      const auto args = cmdline_of(pid);
      note("killed a leftover process " + std::to_string(pid) + " (" +
           (args.empty() ? std::string("?") : args.front()) + ")");
      ::kill(pid, SIGKILL);
      wait_exited(pid, kExitDeadline);
    }
    const auto left = mounts_below(dir_.path());
    for (auto it = left.rbegin(); it != left.rend(); ++it) {
      note("a mount was left at " + *it);
      std::string uwhy;
      unmount(*it, uwhy);
    }
    for (auto it = binds_.rbegin(); it != binds_.rend(); ++it) {
      std::string uwhy;
      if (!unmount(*it, uwhy)) note(uwhy);
    }
    binds_.clear();
    if (brick_fs_) {
      std::string bwhy;
      if (!brick_fs_->teardown(bwhy)) note("the brick's XFS: " + bwhy);
      brick_fs_.reset();
    }
    std::string rm_why;
    if (!dir_.remove(rm_why)) note(rm_why);
  } catch (const std::exception& e) {
    note(e.what());
  }
  // Only a complete cleanup sends "done"; otherwise the helper tries again
  // (lazily) right now.
  if (ok) crash_.disarm();
  crash_ = CrashCleanup();  // not ok: the helper cleans up what is left
  torn_down_ = true;
  return ok;
}

GlusterVolume::~GlusterVolume() {
  std::string why;
  if (!teardown(why)) std::fprintf(stderr, "GlusterVolume: teardown: %s\n", why.c_str());
}

}  // namespace snapfs::test
