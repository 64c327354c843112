// Several processes, each in its own directory, creating, writing,
// copying between and reopening their files through M: no operation may
// fail. In particular open() never reports ESTALE, which the daemon answers
// to an OPEN of a cached node on purpose so that the kernel walks the path
// again (docs/design-fuse.md "Caching"); the kernel retries only once, so
// that retry must always land on a fresh node.
#include "fuse_mount.hpp"
#include "mount_util.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace snapfs::test {
namespace {

using Stress = FuseMount;

// One worker: `ops` random operations in `dir`. Returns 0, or 100 + errno
// of the first failure (ESTALE: 116).
int worker(const fs::path& dir, int ops, unsigned seed) {
  std::mt19937 gen(seed);
  auto rng = [&] { return static_cast<unsigned>(gen()); };
  if (::mkdir(dir.c_str(), 0755) != 0) return 100 + errno;
  std::vector<fs::path> files;
  const std::string block(4096, 'x');
  auto pick = [&] { return files[rng() % files.size()]; };
  for (int i = 0; i < ops; ++i) {
    const unsigned op = rng() % 100;
    if (op < 20 || files.empty()) {
      const fs::path p = dir / ("f" + std::to_string(i));
      const int fd = xopen(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) return 100 - fd;
      if (!write_str(fd, std::string_view(block).substr(0, rng() % block.size()))) return 100 + errno;
      if (const int rc = xclose(fd); rc != 0) return 100 - rc;
      files.push_back(p);
    } else if (op < 30) {
      const fs::path sub = dir / ("d" + std::to_string(i));
      if (::mkdir(sub.c_str(), 0755) != 0) return 100 + errno;
      const int fd = xopen(sub / "g", O_WRONLY | O_CREAT | O_EXCL, 0644);
      if (fd < 0) return 100 - fd;
      if (!write_str(fd, "g") || xclose(fd) != 0) return 100 + EIO;
      files.push_back(sub / "g");
    } else if (op < 60) {
      const int fd = xopen(pick(), O_WRONLY);
      if (fd < 0) return 100 - fd;
      if (!pwrite_str(fd, "zzzz", static_cast<off_t>(rng() % 3000))) return 100 + errno;
      if (const int rc = xclose(fd); rc != 0) return 100 - rc;
    } else if (op < 85) {
      // Two different files: a copy within one file over overlapping
      // ranges is EINVAL, through M (a process's opens of a file share its
      // version) as on any filesystem.
      const fs::path from = pick();
      fs::path to = pick();
      if (to == from) continue;
      const int in = xopen(from, O_RDONLY);
      if (in < 0) return 100 - in;
      const int out = xopen(to, O_WRONLY);
      if (out < 0) {
        ::close(in);
        return 100 - out;
      }
      loff_t off_in = 0, off_out = 0;
      const ssize_t n = ::copy_file_range(in, &off_in, out, &off_out, 4096, 0);
      const int err = n < 0 ? errno : 0;
      ::close(in);
      if (const int rc = xclose(out); rc != 0) return 100 - rc;
      if (err != 0) return 100 + err;
    } else {
      const int fd = xopen(pick(), O_RDONLY);
      if (fd < 0) return 100 - fd;
      (void)pread_all(fd);
      ::close(fd);
    }
  }
  return 0;
}

TEST_P(Stress, ProcessesInTheirOwnDirectoriesNeverSeeAnError) {
  constexpr int kProcs = 4;
  // tmpfs is fast: more operations there, where the race shows most.
  const int ops = kind() == FsKind::tmpfs ? 3000 : 600;
  // Forked one after the other from this thread (no fork while another
  // thread runs), then waited for.
  std::vector<std::unique_ptr<Child>> workers;
  for (int k = 0; k < kProcs; ++k) {
    workers.push_back(std::make_unique<Child>(
        [&, k] { return worker(m("w" + std::to_string(k)), ops, static_cast<unsigned>(k + 1)); }));
  }
  for (int k = 0; k < kProcs; ++k) {
    const ExitStatus st = workers[static_cast<std::size_t>(k)]->wait(120s);
    EXPECT_TRUE(st.ok()) << "worker " << k << ": " << st.describe()
                         << " (100 + errno; 116 is ESTALE)";
  }
}

SNAPFS_INSTANTIATE_MOUNT(Stress);

}  // namespace
}  // namespace snapfs::test
