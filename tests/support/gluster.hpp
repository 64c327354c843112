// GlusterVolume: a single-node GlusterFS volume on loopback for one test.
//
// glusterd (in the foreground, a child of the test), one brick on a fresh
// XFS image (LoopFs) and a distribute volume "snapfs-t" configured as
// snapfs needs it (metadata caching and open-behind off; see kVolumeOptions
// in the .cpp for what each prevents); clients are `mount -t glusterfs
// 127.0.0.1:/snapfs-t` with the kernel's entry and attribute caches off,
// each a separate client process, as two machines would have them.
//
// Nothing is written outside the test's directories: glusterd's state,
// pid files and sockets go to its own working and run directories, and
// the logs, sockets and state that glusterd, the brick and the CLI write
// to fixed places (/var/log/glusterfs, /var/run/gluster, /var/lib/glusterd)
// land in scratch directories bind-mounted over those paths. That is only
// safe in a mount namespace of the test process's own, which main() makes
// with enter_private_mount_namespace() before anything else; make() skips
// without it. glusterd and everything it starts inherit the namespace.
//
// Only one glusterd can listen on 127.0.0.1:24007 (the brick and clients
// fetch their volfiles there; another port makes `volume start` fail), so
// tests that use a GlusterVolume must not run concurrently (ctest
// RESOURCE_LOCK snapfs_gluster).
//
// Teardown unmounts the clients, kills the brick process and glusterd by
// the pids we know, waiting for each with a deadline, then removes the
// brick and the directory: also after a setup that failed halfway. A test
// process that dies first (a crash, ctest's TIMEOUT) leaves a helper that
// kills every process whose command line names the directory and unmounts
// what is mounted below it.
#pragma once

#include "support/crash_cleanup.hpp"
#include "support/loopfs.hpp"
#include "support/tempdir.hpp"

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace snapfs::test {

// For a test executable's main(), first thing (while it has one thread):
// unshare(CLONE_NEWNS), then makes every mount private, so that nothing
// mounted later is seen by, or propagated to, the host. Returns empty on
// success, else why not (not root, no CAP_SYS_ADMIN); the reason is kept
// for GlusterVolume::make()'s skip message.
std::string enter_private_mount_namespace();

// True if this process's mount namespace is not init's (/proc/self/ns/mnt
// against /proc/1/ns/mnt); false with the reason otherwise.
bool in_private_mount_namespace(std::string& why);

// Processes other than this one with an argument that names `path` or
// something below it (also inside an argument: "--volfile=PATH/x"): what
// a test started there (glusterd's volfile, the brick's pid file, a
// client's or a view's mount point, fusermount3's auto_unmount helper).
std::vector<pid_t> processes_naming(const std::filesystem::path& path);

// Waits until `pid` has exited, whoever its parent is (pidfd; a zombie
// counts as exited): true if it did before the deadline.
bool wait_exited(pid_t pid, std::chrono::milliseconds timeout);

class GlusterVolume {
public:
  static constexpr const char* kVolume = "snapfs-t";

  // Starts glusterd, makes the brick and the volume, starts it and waits
  // until the brick is online. Null with `why` on failure; `skipped` set
  // when the machine cannot run it (not in a private mount namespace,
  // glusterd, gluster or mount.glusterfs missing, no /dev/fuse, a fixed
  // path missing that would have to be made on the host).
  static std::unique_ptr<GlusterVolume> make(std::string& why, bool& skipped);

  GlusterVolume(const GlusterVolume&) = delete;
  GlusterVolume& operator=(const GlusterVolume&) = delete;
  // teardown(); problems are printed on stderr.
  ~GlusterVolume();

  // A new client mount of the volume (its own glusterfs process, with
  // entry-timeout=0,attribute-timeout=0) at dir()/clientN: its path, or
  // empty with `why`.
  std::filesystem::path mount_client(std::string& why);

  // Unmounts the clients, stops the brick and glusterd, removes the brick
  // and every directory. False with the reason when something had to be
  // forced or was left. Idempotent.
  bool teardown(std::string& why) noexcept;

  // The scratch directory (mode 0755): the test may make its own mount
  // points here, and the crash helper takes down whatever is mounted below.
  const std::filesystem::path& dir() const noexcept { return dir_.path(); }
  // The brick directory on the XFS image (the volume's content as stored).
  const std::filesystem::path& brick() const noexcept { return brick_; }
  // The last `lines` lines of every GlusterFS log of this volume, for the
  // message of a failed test.
  std::string log_tails(std::size_t lines = 20) const;

private:
  explicit GlusterVolume(TempDir dir);
  bool start(std::string& why, bool& skipped);
  bool bind_fixed_paths(std::string& why, bool& skipped);
  bool start_glusterd(std::string& why);
  bool create_volume(std::string& why);
  // `gluster --mode=script ...` against our glusterd; false with the output.
  bool cli(const std::vector<std::string>& args, std::string& out, std::string& why);

  struct Client {
    std::filesystem::path mnt;
    pid_t pid = -1;  // its glusterfs process
    bool mounted = false;
  };

  TempDir dir_;
  std::filesystem::path log_, run_, sock_;
  std::unique_ptr<LoopFs> brick_fs_;
  std::filesystem::path brick_;
  std::vector<std::filesystem::path> binds_;  // fixed paths covered, in mount order
  pid_t glusterd_ = -1;  // our child (glusterd -N)
  pid_t brick_pid_ = -1;
  std::vector<Client> clients_;
  bool torn_down_ = false;
  CrashCleanup crash_;  // the crash helper (see the .cpp)
};

}  // namespace snapfs::test
