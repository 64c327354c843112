// Small timing helper for scripts/bench/compare.sh: the per-call
// metrics that dd and git cannot give. Plain POSIX calls, no snapfs code, so
// it times exactly what a program would see through each mount.
//
//   compare_ops randread FILE COUNT        4 KiB preads at COUNT fixed pseudo-random
//                                          offsets, once untimed (warm-up), once timed -> IOPS
//   compare_ops orc DIR NFILES COUNT       open+read(4 KiB)+close of DIR/f%05d cycling -> µs/op
//   compare_ops publish DIR COUNT          create+write(4 KiB)+close of COUNT new files -> files/s
//   compare_ops stat DIR NFILES PASSES     stat of DIR/f%05d: one untimed pass, PASSES timed -> stats/s
//   compare_ops commit FILE COUNT          open(O_RDWR)+pwrite(1 byte)+close, COUNT times -> median ms
//   compare_ops hold DIR NFILES            open DIR/f%05d, NFILES at once, read 1 byte of each,
//                                          close all -> "OPENED SECONDS"; exit 3 if an open,
//                                          read or close failed
//   compare_ops cycles FILE COUNT STEP PID open+close of FILE COUNT times; VmRSS of PID before,
//                                          every STEP cycles and at the end -> CSV lines
//                                          "cycles,rss_kib,seconds"
//   compare_ops mkfiles DIR NFILES [SIZE]  setup: NFILES files of SIZE bytes, default 4096 (DIR/f%05d)
//   compare_ops mktree DIR NFILES          setup: a source-like tree, 100 files per directory
//
// Prints one number on stdout (hold and cycles: see above); any failing call
// is fatal (exit 1, message on stderr), except an open in hold, which is the
// measured outcome.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "compare_ops: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string numbered(const std::string& dir, long i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "/f%05ld", i);
  return dir + buf;
}

void write_file(const std::string& path, const char* data, size_t n) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die("open " + path);
  if (::write(fd, data, n) != static_cast<ssize_t>(n)) die("write " + path);
  if (::close(fd) != 0) die("close " + path);
}

int randread(const char* file, long count) {
  int fd = ::open(file, O_RDONLY);
  if (fd < 0) die(std::string("open ") + file);
  struct stat st {};
  if (::fstat(fd, &st) != 0) die("fstat");
  const uint64_t blocks = static_cast<uint64_t>(st.st_size) / 4096;
  if (blocks == 0) { errno = EINVAL; die("file smaller than 4 KiB"); }
  std::vector<off_t> offs(static_cast<size_t>(count));
  uint64_t x = 0x9E3779B97F4A7C15ULL;  // fixed seed: the same offsets on every target
  for (auto& o : offs) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    o = static_cast<off_t>((x % blocks) * 4096);
  }
  alignas(4096) static char buf[4096];
  for (auto o : offs)
    if (::pread(fd, buf, 4096, o) != 4096) die("pread (warm-up)");
  auto t0 = Clock::now();
  for (auto o : offs)
    if (::pread(fd, buf, 4096, o) != 4096) die("pread");
  double s = seconds_since(t0);
  ::close(fd);
  std::printf("%.1f\n", count / s);
  return 0;
}

int orc(const std::string& dir, long nfiles, long count) {
  static char buf[4096];
  auto t0 = Clock::now();
  for (long i = 0; i < count; ++i) {
    std::string p = numbered(dir, i % nfiles);
    int fd = ::open(p.c_str(), O_RDONLY);
    if (fd < 0) die("open " + p);
    if (::read(fd, buf, sizeof buf) != static_cast<ssize_t>(sizeof buf)) die("read " + p);
    if (::close(fd) != 0) die("close " + p);
  }
  std::printf("%.2f\n", seconds_since(t0) * 1e6 / count);
  return 0;
}

int publish(const std::string& dir, long count) {
  static char buf[4096];
  std::memset(buf, 'p', sizeof buf);
  auto t0 = Clock::now();
  for (long i = 0; i < count; ++i) {
    std::string p = numbered(dir, i);
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) die("open " + p);
    if (::write(fd, buf, sizeof buf) != static_cast<ssize_t>(sizeof buf)) die("write " + p);
    if (::close(fd) != 0) die("close " + p);
  }
  std::printf("%.1f\n", count / seconds_since(t0));
  return 0;
}

int stat_rate(const std::string& dir, long nfiles, long passes) {
  std::vector<std::string> paths;
  for (long i = 0; i < nfiles; ++i) paths.push_back(numbered(dir, i));
  struct stat st {};
  for (auto& p : paths)
    if (::stat(p.c_str(), &st) != 0) die("stat " + p);
  auto t0 = Clock::now();
  for (long k = 0; k < passes; ++k)
    for (auto& p : paths)
      if (::stat(p.c_str(), &st) != 0) die("stat " + p);
  std::printf("%.1f\n", static_cast<double>(nfiles * passes) / seconds_since(t0));
  return 0;
}

int commit(const char* file, long count) {
  std::vector<double> ms;
  for (long i = 0; i < count; ++i) {
    auto t0 = Clock::now();
    int fd = ::open(file, O_RDWR);
    if (fd < 0) die(std::string("open ") + file);
    char c = 0;
    if (::pread(fd, &c, 1, 0) != 1) die("pread");
    c = static_cast<char>(c + 1);  // always a change, so every close publishes
    if (::pwrite(fd, &c, 1, 0) != 1) die("pwrite");
    if (::close(fd) != 0) die(std::string("close ") + file);
    ms.push_back(seconds_since(t0) * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%.3f\n", ms[ms.size() / 2]);
  return 0;
}

int hold(const std::string& dir, long nfiles) {
  // Our own limit must not be what fails: take the hard one (the daemon's is its own).
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < static_cast<rlim_t>(nfiles) + 16) {
    errno = EMFILE;
    die("this process's own RLIMIT_NOFILE (" + std::to_string(rl.rlim_cur) + ") is below " +
        std::to_string(nfiles) + " + 16");
  }
  std::vector<int> fds;
  fds.reserve(static_cast<size_t>(nfiles));
  bool ok = true;
  auto t0 = Clock::now();
  for (long i = 0; i < nfiles; ++i) {
    std::string p = numbered(dir, i);
    int fd = ::open(p.c_str(), O_RDONLY);
    if (fd < 0) {
      std::fprintf(stderr, "compare_ops hold: open %s (with %zu files held): %s\n", p.c_str(),
                   fds.size(), std::strerror(errno));
      ok = false;
      break;
    }
    fds.push_back(fd);
  }
  char c;
  for (size_t i = 0; ok && i < fds.size(); ++i) {
    if (::read(fds[i], &c, 1) != 1) {
      std::fprintf(stderr, "compare_ops hold: read of file %zu while all are open: %s\n", i,
                   std::strerror(errno));
      ok = false;
    }
  }
  for (int fd : fds)
    if (::close(fd) != 0) {
      std::fprintf(stderr, "compare_ops hold: close: %s\n", std::strerror(errno));
      ok = false;
    }
  std::printf("%zu %.4f\n", fds.size(), seconds_since(t0));
  return ok ? 0 : 3;
}

long vm_rss_kib(long pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/status";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) die("open " + path);
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmRSS:", 6) == 0) kib = std::strtol(line + 6, nullptr, 10);
  std::fclose(f);
  if (kib < 0) { errno = ENOENT; die("no VmRSS in " + path); }
  return kib;
}

int cycles(const char* file, long count, long step, long pid) {
  if (step <= 0) step = count;
  auto t0 = Clock::now();
  std::printf("0,%ld,0\n", vm_rss_kib(pid));
  std::fflush(stdout);
  for (long i = 1; i <= count; ++i) {
    int fd = ::open(file, O_RDONLY);
    if (fd < 0) die("open " + std::string(file) + " at cycle " + std::to_string(i));
    if (::close(fd) != 0) die("close " + std::string(file) + " at cycle " + std::to_string(i));
    if (i % step == 0 || i == count) {
      std::printf("%ld,%ld,%.3f\n", i, vm_rss_kib(pid), seconds_since(t0));
      std::fflush(stdout);
    }
  }
  return 0;
}

int mkfiles(const std::string& dir, long nfiles, size_t size) {
  std::vector<char> buf(size);
  for (long i = 0; i < nfiles; ++i) {
    std::memset(buf.data(), 'a' + static_cast<int>(i % 26), size);
    write_file(numbered(dir, i), buf.data(), size);
  }
  std::printf("%ld\n", nfiles);
  return 0;
}

int mktree(const std::string& dir, long nfiles) {
  // 100 files per directory, directories two levels deep (d00/d00/...), sizes
  // 200 B .. 8 KiB like source files.
  std::string content;
  for (long i = 0; i < nfiles; ++i) {
    long d = i / 100;
    char sub[64];
    std::snprintf(sub, sizeof sub, "/d%02ld/d%02ld", d / 20, d % 20);
    std::string sd = dir + sub;
    if (i % 100 == 0) {
      std::string top = dir + sub;
      top.resize(dir.size() + 4);
      ::mkdir(top.c_str(), 0755);
      if (::mkdir(sd.c_str(), 0755) != 0 && errno != EEXIST) die("mkdir " + sd);
    }
    size_t n = 200 + static_cast<size_t>((i * 2654435761UL) % 8000);
    content.assign(n, 'x');
    std::snprintf(content.data(), n, "// file %ld\nint f%ld() { return %ld; }\n", i, i, i);
    char name[32];
    std::snprintf(name, sizeof name, "/src%05ld.cpp", i);
    write_file(sd + name, content.data(), n);
  }
  std::printf("%ld\n", nfiles);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  auto num = [&](int i) { return std::strtol(argv[i], nullptr, 10); };
  if (cmd == "randread" && argc == 4) return randread(argv[2], num(3));
  if (cmd == "orc" && argc == 5) return orc(argv[2], num(3), num(4));
  if (cmd == "publish" && argc == 4) return publish(argv[2], num(3));
  if (cmd == "stat" && argc == 5) return stat_rate(argv[2], num(3), num(4));
  if (cmd == "commit" && argc == 4) return commit(argv[2], num(3));
  if (cmd == "hold" && argc == 4) return hold(argv[2], num(3));
  if (cmd == "cycles" && argc == 6) return cycles(argv[2], num(3), num(4), num(5));
  if (cmd == "mkfiles" && (argc == 4 || argc == 5))
    return mkfiles(argv[2], num(3), argc == 5 ? static_cast<size_t>(num(4)) : 4096);
  if (cmd == "mktree" && argc == 4) return mktree(argv[2], num(3));
  std::fprintf(stderr, "usage: see the header of scripts/bench/compare_ops.cpp\n");
  return 2;
}
