// The cost split of one Mmap::open: each syscall of its sequence, timed alone.
#include "bench_support.hpp"

#include <snapfs/core/snapshot.hpp>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace snapfs::bench {

// Times each syscall of the sequence Mmap::open makes (core/src/snapshot.cpp,
// clone.cpp, mapping.cpp) on a file of `size` bytes (4 KiB by default), plus
// the munmap that frees the snapshot, and writes "fs,size,step,median_us" lines.
void split_costs(const Target& t, int reps, std::size_t size, std::FILE* out) {
  const fs::path path = t.dir / ("split-" + size_label(size));
  write_file(path, size);
  const char* steps[] = {"openat(dir O_PATH)", "openat(file)",     "fstat(file)",
                         "openat(O_TMPFILE)",  "ioctl(FICLONE)",   "fstat(snapshot)",
                         "mmap",               "close(3 fds)",     "munmap(drop)",
                         "sum of steps",       "Mmap::open+drop",  "open+close"};
  constexpr std::size_t kSteps = sizeof steps / sizeof steps[0];
  std::vector<std::vector<double>> us(kSteps);
  const std::string dir = t.dir.string();
  const std::string name = path.filename().string();
  for (int r = 0; r < reps; ++r) {
    Clock::time_point tp[10];
    tp[0] = Clock::now();
    const int dfd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    tp[1] = Clock::now();
    const int fd = openat(dfd, name.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    tp[2] = Clock::now();
    struct stat st {};
    fstat(fd, &st);
    tp[3] = Clock::now();
    const int tmp = openat(dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    tp[4] = Clock::now();
    if (dfd == -1 || fd == -1 || tmp == -1) die("split: open: " + std::string(std::strerror(errno)));
    if (ioctl(tmp, FICLONE, fd) == -1) {
      if (errno != EOPNOTSUPP) die("split: FICLONE: " + std::string(std::strerror(errno)));
      loff_t in = 0;
      loff_t o = 0;
      while (o < static_cast<loff_t>(size)) {
        const ssize_t n = copy_file_range(fd, &in, tmp, &o, size, 0);
        if (n <= 0) die("split: copy_file_range");
      }
    }
    tp[5] = Clock::now();
    fstat(tmp, &st);
    tp[6] = Clock::now();
    void* p = mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_SHARED, tmp, 0);
    if (p == MAP_FAILED) die("split: mmap");
    tp[7] = Clock::now();
    close(tmp);
    close(fd);
    close(dfd);
    tp[8] = Clock::now();
    munmap(p, static_cast<std::size_t>(st.st_size));
    tp[9] = Clock::now();
    for (std::size_t s = 0; s < 9; ++s) us[s].push_back(seconds(tp[s], tp[s + 1]) * 1e6);
    us[9].push_back(seconds(tp[0], tp[9]) * 1e6);

    // The real thing and the baseline, interleaved with the above so that
    // all three see the same machine load.
    const auto a = Clock::now();
    {
      auto m = core::Mmap::open(path);
      if (!m) die("split: " + m.error().message());
    }
    const auto b = Clock::now();
    const int pfd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    close(pfd);
    const auto c = Clock::now();
    us[10].push_back(seconds(a, b) * 1e6);
    us[11].push_back(seconds(b, c) * 1e6);
  }
  for (std::size_t s = 0; s < kSteps; ++s) {
    auto& v = us[s];
    std::sort(v.begin(), v.end());
    std::fprintf(out, "%s,%s,%s,%.2f\n", t.name.c_str(), size_label(size).c_str(), steps[s],
                 v[v.size() / 2]);
  }
  fs::remove(path);
}

}  // namespace snapfs::bench
