#include "support/crash_cleanup.hpp"

#include "support/process.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

namespace snapfs::test {
namespace {

// $1 is the directory, the mounts follow. Positional arguments, never
// interpolated into the script, so no path can be misread as shell syntax.
constexpr const char* kScript = R"sh(
PATH=/usr/sbin:/usr/bin:/sbin:/bin
IFS= read -r word
[ "$word" = done ] && exit 0
dir=$1
shift
for m in "$@"; do umount -l -- "$m" 2>/dev/null; done
rm -rf --one-file-system -- "$dir" 2>/dev/null
exit 0
)sh";

}  // namespace

CrashCleanup::CrashCleanup(const std::vector<std::filesystem::path>& mounts,
                           const std::filesystem::path& dir)
    : CrashCleanup(kScript, "snapfs-crash-cleanup", [&] {
        std::vector<std::string> args{dir.string()};
        for (const auto& m : mounts) args.push_back(m.string());
        return args;
      }()) {}

CrashCleanup::CrashCleanup(const char* script, const char* name,
                           const std::vector<std::string>& args,
                           const std::vector<std::string>& env) {
  const std::string sh = find_program("sh");
  if (sh.empty()) throw std::system_error(ENOENT, std::system_category(), "sh");
  // Everything the helper needs is built before fork(): between fork and
  // exec only async-signal-safe calls are allowed.
  std::vector<std::string> argv_s = {"sh", "-c", script, name};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = env;
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  // A socket rather than a pipe: send(MSG_NOSIGNAL) to a helper that is
  // already gone is EPIPE, not a SIGPIPE that kills the test.
  int p[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == -1)
    throw std::system_error(errno, std::system_category(), "socketpair");
  const pid_t child = ::fork();
  if (child == -1) {
    const int e = errno;
    ::close(p[0]);
    ::close(p[1]);
    throw std::system_error(e, std::system_category(), "fork");
  }
  if (child == 0) {
    // The grandchild is reparented to init: ctest kills the test's process
    // tree on a timeout, and the helper must outlive exactly that.
    if (::fork() != 0) ::_exit(0);
    ::setsid();
    const int nul = ::open("/dev/null", O_RDWR);
    if (::dup2(p[0], 0) == -1 || nul == -1 || ::dup2(nul, 1) == -1 || ::dup2(nul, 2) == -1)
      ::_exit(127);
    // Hold nothing of the parent's: not the write end (EOF would never
    // come), not ctest's output pipe, not a file on the filesystem.
    ::close_range(3, ~0U, 0);
    if (::chdir("/") == -1) ::_exit(127);
    if (env_s.empty()) ::execv(sh.c_str(), argv.data());
    else ::execve(sh.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(p[0]);
  int status = 0;
  while (::waitpid(child, &status, 0) == -1 && errno == EINTR) {
  }
  fd_ = p[1];
}

CrashCleanup::CrashCleanup(CrashCleanup&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}

CrashCleanup& CrashCleanup::operator=(CrashCleanup&& o) noexcept {
  if (this != &o) {
    release(false);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

CrashCleanup::~CrashCleanup() { release(false); }

void CrashCleanup::disarm() noexcept { release(true); }

void CrashCleanup::release(bool done) noexcept {
  if (fd_ < 0) return;
  if (done) {
    static constexpr char kDone[] = "done\n";
    (void)::send(fd_, kDone, sizeof kDone - 1, MSG_NOSIGNAL);
  }
  ::close(fd_);
  fd_ = -1;
}

}  // namespace snapfs::test
