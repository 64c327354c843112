// CrashCleanup: mounts must not outlive a test process that dies.
//
// A test that crashes (SIGBUS is what these tests look for), aborts (a
// sanitizer with -fno-sanitize-recover), or is SIGKILLed by a ctest TIMEOUT
// never reaches TearDown, and would leave its mounts and loop devices
// behind. So a fixture arms a CrashCleanup before it mounts: a detached helper
// process (double-forked and in its own session, so that neither ctest's
// kill of the process tree nor a Ctrl-C reaches it) that waits for EOF on a
// socket only this process holds. If it reads "done" first, it exits doing
// nothing; otherwise this process is gone, and it unmounts the mounts lazily
// (umount -l, innermost first) and removes the directory with
// rm -rf --one-file-system. A loop device mounted with `-o loop` is
// autocleared once the lazily detached filesystem is released.
#pragma once

#include <filesystem>
#include <vector>

namespace snapfs::test {

class CrashCleanup {
public:
  CrashCleanup() noexcept = default;
  // Starts the helper for `mounts` (unmounted in the given order) and `dir`.
  // Throws std::system_error if it cannot.
  CrashCleanup(const std::vector<std::filesystem::path>& mounts, const std::filesystem::path& dir);
  // The same helper running a script of the caller's: `sh -c script name
  // args...`, with only `env` as its environment if `env` is not empty.
  // The script reads one line from its standard input first and exits if
  // it is "done" (disarm()); at EOF it cleans up.
  CrashCleanup(const char* script, const char* name, const std::vector<std::string>& args,
               const std::vector<std::string>& env = {});
  CrashCleanup(CrashCleanup&& o) noexcept;
  CrashCleanup& operator=(CrashCleanup&& o) noexcept;
  CrashCleanup(const CrashCleanup&) = delete;
  CrashCleanup& operator=(const CrashCleanup&) = delete;
  // Without disarm(), the helper cleans up now, as if this process had died.
  ~CrashCleanup();

  // Everything was cleaned up normally: the helper exits doing nothing.
  void disarm() noexcept;
  bool armed() const noexcept { return fd_ >= 0; }

private:
  void release(bool done) noexcept;
  int fd_ = -1;  // our end of the socket; O_CLOEXEC, so exec'ed children never hold it
};

}  // namespace snapfs::test
