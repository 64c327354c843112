// soak_worker: writers, readers and checkers for scripts/soak/run.sh.
// Built by run.sh with g++ -O2 -std=c++20 into build/soak/. See
// docs/reliability.md. Files are DIR/fNNN holding soak_format.hpp versions.
//
//   soak_worker init DIR NFILES
//   soak_worker writer M NFILES WID NWRITERS VBASE ACKLOG STOPFILE SEED shared|own
//   soak_worker reader M NFILES STOPFILE EVIDENCE SEED
//   soak_worker verify DIR NFILES EVIDENCE [--ack LOG]... [--conflicts DIR]
//   soak_worker failcheck M NFILES XFSMNT
//
// writer: rewrites files through M; after close() returns 0 it appends
// "F V\n" to ACKLOG (write(2), O_APPEND: on the root fs, outside the XFS
// image). A failed write is logged as "fail F V errno". Exits when M is gone
// (ENOENT/ENOTCONN/ECONNABORTED), after 20 consecutive errors, or when
// STOPFILE exists. Prints one "STAT ..." line on stdout.
#include "soak_format.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

std::string fname(const std::string& dir, unsigned f) {
  char b[16];
  std::snprintf(b, sizeof b, "/f%03u", f);
  return dir + b;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

bool gone(int e) { return e == ENOENT || e == ENOTCONN || e == ECONNABORTED || e == ENODEV; }

// The failed operations of a writer or reader, for its STAT line and for
// when it stops.
struct Failures {
  long errors = 0;
  long consecutive = 0;
  int last_errno = 0;
  // Counts a failure with errno `e`; true when the worker must stop (M is gone).
  bool count(int e) {
    last_errno = e;
    ++errors;
    ++consecutive;
    return gone(e);
  }
};

// open(2) through M, again after ESTALE (the daemon's answer to an OPEN of a
// node the kernel may hold a cached name for, so that it looks the path up
// again), five tries at the most. -1 and errno as open(2).
int open_m(const std::string& p, int flags) {
  int fd = -1;
  for (int t = 0; t < 5; ++t) {
    fd = ::open(p.c_str(), flags | O_CLOEXEC);
    if (fd >= 0 || errno != ESTALE) break;
  }
  return fd;
}

// Reads the whole file: 0 and `out`, or -errno.
int read_all(int fd, std::string& out) {
  out.clear();
  char buf[65536];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) return 0;
    out.append(buf, static_cast<std::size_t>(r));
  }
}

int read_path(const std::string& p, std::string& out) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  const int r = read_all(fd, out);
  ::close(fd);
  return r;
}

void save_evidence(const std::string& dir, const std::string& tag, const std::string& data) {
  if (dir.empty()) return;
  const std::string p = dir + "/" + tag;
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w <= 0) break;
    off += static_cast<std::size_t>(w);
  }
  ::close(fd);
}

bool write_all(int fd, const std::string& data, std::mt19937_64& rng) {
  std::size_t off = 0;
  while (off < data.size()) {
    const std::size_t chunk = std::min<std::size_t>(data.size() - off, 1 + rng() % 32768);
    const ssize_t w = ::write(fd, data.data() + off, chunk);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;
      return false;
    }
    off += static_cast<std::size_t>(w);
  }
  return true;
}

void logline(int fd, const std::string& s) {
  if (fd >= 0) (void)!::write(fd, s.data(), s.size());
}

int cmd_init(const std::string& dir, unsigned n) {
  for (unsigned f = 0; f < n; ++f) {
    const std::string v = soak::make_version(f, 0, 99, 100 + f * 37);
    const int fd = ::open(fname(dir, f).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ::write(fd, v.data(), v.size()) != static_cast<ssize_t>(v.size()) ||
        ::fsync(fd) != 0) {
      std::perror("init");
      return 1;
    }
    ::close(fd);
  }
  return 0;
}

int cmd_writer(const std::string& m, unsigned n, unsigned wid, unsigned nw, unsigned long long vbase,
               const std::string& acklog, const std::string& stop, unsigned long long seed,
               bool shared) {
  std::mt19937_64 rng(seed);
  const int ack = ::open(acklog.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  std::vector<unsigned> mine;
  for (unsigned f = 0; f < n; ++f)
    if (shared || f % nw == wid) mine.push_back(f);
  long commits = 0, conflicts = 0;
  Failures failed;
  for (unsigned long long i = 1; !mine.empty(); ++i) {
    if ((i & 7) == 0 && exists(stop)) break;
    if (failed.consecutive >= 20) break;
    const unsigned f = mine[rng() % mine.size()];
    const unsigned long long v = vbase + i;
    const unsigned r = static_cast<unsigned>(rng() % 10);
    const std::size_t len = r < 2 ? rng() % 200 : r < 7 ? rng() % 8192 : rng() % 131072;
    const std::string data = soak::make_version(f, v, wid, len);
    const unsigned method = static_cast<unsigned>(rng() % 3);
    const int flags = method == 1 ? (O_WRONLY | O_TRUNC) : O_RDWR;
    const int fd = open_m(fname(m, f), flags);
    if (fd < 0) {
      if (failed.count(errno)) break;
      continue;
    }
    bool ok = true;
    if (method == 2 && ::ftruncate(fd, 0) != 0) ok = false;
    if (ok && !write_all(fd, data, rng)) ok = false;
    if (ok && method == 0 && ::ftruncate(fd, static_cast<off_t>(data.size())) != 0) ok = false;
    if (!ok) {
      const int e = errno;
      logline(ack, "fail " + std::to_string(f) + " " + std::to_string(v) + " " +
                       std::to_string(e) + "\n");
      ::close(fd);
      if (failed.count(e)) break;
      continue;
    }
    if (::close(fd) == 0) {
      logline(ack, std::to_string(f) + " " + std::to_string(v) + "\n");
      ++commits;
      failed.consecutive = 0;
    } else if (errno == ESTALE) {
      ++conflicts;
      failed.consecutive = 0;
    } else if (failed.count(errno)) {
      break;
    }
  }
  std::printf("STAT role=writer id=%u commits=%ld conflicts=%ld errors=%ld last_errno=%d\n", wid,
              commits, conflicts, failed.errors, failed.last_errno);
  return 0;
}

int cmd_reader(const std::string& m, unsigned n, const std::string& stop, const std::string& ev,
               unsigned long long seed) {
  std::mt19937_64 rng(seed);
  long reads = 0, torn = 0;
  Failures failed;
  for (unsigned long long i = 1;; ++i) {
    if ((i & 7) == 0 && exists(stop)) break;
    if (failed.consecutive >= 20) break;
    const unsigned f = static_cast<unsigned>(rng() % n);
    const int fd = open_m(fname(m, f), O_RDONLY);
    if (fd < 0) {
      if (failed.count(errno)) break;
      continue;
    }
    std::string data;
    const int r = read_all(fd, data);
    ::close(fd);
    if (r < 0) {
      if (failed.count(-r)) break;
      continue;
    }
    failed.consecutive = 0;
    ++reads;
    const soak::Parsed p = soak::parse(data);
    if (!p.whole || p.f != f) {
      ++torn;
      std::fprintf(stderr, "TORN-READ f%03u: %s\n", f, p.whole ? "wrong file" : p.why.c_str());
      save_evidence(ev, "torn-read-" + std::to_string(::getpid()) + "-" + std::to_string(torn) +
                            "-f" + std::to_string(f), data);
    }
  }
  std::printf("STAT role=reader reads=%ld torn=%ld errors=%ld last_errno=%d\n", reads, torn,
              failed.errors, failed.last_errno);
  return 0;
}

int cmd_verify(const std::string& dir, unsigned n, const std::string& ev,
               const std::vector<std::string>& acks, const std::string& conflicts) {
  std::map<unsigned, unsigned long long> want;
  for (const auto& a : acks) {
    FILE* fp = std::fopen(a.c_str(), "r");
    if (!fp) continue;
    char line[256];
    while (std::fgets(line, sizeof line, fp)) {
      unsigned f = 0;
      unsigned long long v = 0;
      if (std::sscanf(line, "%u %llu", &f, &v) == 2 && v > want[f]) want[f] = v;
    }
    std::fclose(fp);
  }
  long whole = 0, torn = 0, lost = 0, missing = 0, cwhole = 0, ctorn = 0;
  for (unsigned f = 0; f < n; ++f) {
    std::string data;
    const int r = read_path(fname(dir, f), data);
    if (r < 0) {
      ++missing;
      std::printf("MISSING f%03u: %s\n", f, std::strerror(-r));
      continue;
    }
    const soak::Parsed p = soak::parse(data);
    if (!p.whole || p.f != f) {
      ++torn;
      std::printf("TORN f%03u: %s\n", f, p.whole ? "holds another file's version" : p.why.c_str());
      save_evidence(ev, "torn-f" + std::to_string(f), data);
      continue;
    }
    ++whole;
    const auto it = want.find(f);
    if (it != want.end() && p.v < it->second) {
      ++lost;
      std::printf("LOST f%03u: holds v=%llu but v=%llu was acknowledged (close()==0)\n", f, p.v,
                  it->second);
      save_evidence(ev, "lost-f" + std::to_string(f), data);
    }
  }
  if (!conflicts.empty()) {
    if (DIR* d = ::opendir(conflicts.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name == "." || name == ".." || name.ends_with(".json")) continue;
        std::string data;
        if (read_path(conflicts + "/" + name, data) < 0) continue;
        if (soak::parse(data).whole) {
          ++cwhole;
        } else {
          ++ctorn;
          std::printf("TORN-CONFLICT %s: %s\n", name.c_str(), soak::parse(data).why.c_str());
          save_evidence(ev, "torn-conflict-" + name, data);
        }
      }
      ::closedir(d);
    }
  }
  std::printf("VERIFY whole=%ld torn=%ld lost=%ld missing=%ld acked_files=%zu conflict_whole=%ld "
              "conflict_torn=%ld\n",
              whole, torn, lost, missing, want.size(), cwhole, ctorn);
  return (torn || lost || missing || ctorn) ? 1 : 0;
}

// XFS_IOC_GOINGDOWN with XFS_FSOP_GOING_FLAGS_NOLOGFLUSH, as xfs_io's
// `shutdown` (without -f) issues it.
int shutdown_xfs(const std::string& mnt) {
  const int fd = ::open(mnt.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  std::uint32_t flags = 2;  // XFS_FSOP_GOING_FLAGS_NOLOGFLUSH
  const int r = ::ioctl(fd, _IOR('X', 125, std::uint32_t), &flags);  // XFS_IOC_GOINGDOWN
  const int e = errno;
  ::close(fd);
  errno = e;
  return r;
}

// (f): descriptors open through M, then the backing XFS is shut down.
int cmd_failcheck(const std::string& m, unsigned n, const std::string& xfs) {
  struct Ro {
    int fd;
    unsigned f;
    std::string data;
  };
  struct Rw {
    int fd;
    unsigned f;
  };
  std::vector<Ro> ro;
  std::vector<Rw> rw;
  long setup_fail = 0;
  for (unsigned f = 0; f < n; ++f) {
    if (f % 2 == 0) {
      const int fd = ::open(fname(m, f).c_str(), O_RDONLY | O_CLOEXEC);
      std::string d;
      if (fd < 0 || read_all(fd, d) < 0) {
        ++setup_fail;
        continue;
      }
      ro.push_back({fd, f, d});
    } else {
      const int fd = ::open(fname(m, f).c_str(), O_RDWR | O_CLOEXEC);
      const std::string v = soak::make_version(f, 999999, 77, 5000);
      if (fd < 0 || ::pwrite(fd, v.data(), v.size(), 0) != static_cast<ssize_t>(v.size()) ||
          ::ftruncate(fd, static_cast<off_t>(v.size())) != 0) {
        ++setup_fail;
        continue;
      }
      rw.push_back({fd, f});
    }
  }
  // What `xfs_io -x -c shutdown X` does (no -f: no log flush), as an ioctl:
  // running xfs_io through system() would fork, and the child's exec closes
  // its inherited copies of our descriptors, whose FLUSH commits every
  // snapshot that ftruncate marked "dirty for anyone" (design-fuse.md) —
  // before the shutdown, which is not what this check is about.
  if (shutdown_xfs(xfs) != 0) {
    std::printf("FAILCHECK error: XFS_IOC_GOINGDOWN on %s: %s\n", xfs.c_str(), std::strerror(errno));
    return 2;
  }
  long errs = 0, ok_ops = 0, wrong = 0, acked = 0;
  auto note = [&](const char* op, unsigned f, long r) {
    if (r < 0) {
      ++errs;
      std::printf("op %-6s f%03u -> %s\n", op, f, std::strerror(errno));
    } else {
      ++ok_ops;
      std::printf("op %-6s f%03u -> OK (%ld)\n", op, f, r);
    }
  };
  for (auto& r : ro) {
    char buf[65536];
    const ssize_t got = ::pread(r.fd, buf, sizeof buf, 0);
    note("pread", r.f, got);
    if (got > 0 && r.data.compare(0, static_cast<std::size_t>(got), buf,
                                  static_cast<std::size_t>(got)) != 0) {
      ++wrong;
      std::printf("WRONG-DATA f%03u\n", r.f);
    }
    struct stat st {};
    note("fstat", r.f, ::fstat(r.fd, &st));
  }
  for (auto& w : rw) {
    note("pwrite", w.f, ::pwrite(w.fd, "x", 1, 0));
    struct stat st {};
    note("fstat", w.f, ::fstat(w.fd, &st));
    const int c = ::close(w.fd);
    note("close", w.f, c);
    if (c == 0) {
      ++acked;
      std::printf("ACKED-ON-DEAD-FS f%03u\n", w.f);
    }
  }
  for (auto& r : ro) ::close(r.fd);  // read-only: nothing to commit, result irrelevant
  for (unsigned f = 0; f < n; f += 3) {
    struct stat st {};
    note("stat", f, ::stat(fname(m, f).c_str(), &st));
    const int fd = ::open(fname(m, f).c_str(), O_RDONLY | O_CLOEXEC);
    note("open", f, fd);
    if (fd >= 0) {
      std::string d;
      const int rr = read_all(fd, d);
      errno = -rr;
      note("read", f, rr < 0 ? -1 : static_cast<long>(d.size()));
      if (rr == 0 && !(soak::parse(d).whole && soak::parse(d).f == f)) {
        ++wrong;
        std::printf("WRONG-DATA (reopen) f%03u\n", f);
      }
      ::close(fd);
    }
  }
  std::printf("FAILCHECK setup_fail=%ld errors=%ld ok_ops=%ld wrong_data=%ld acked_on_dead_fs=%ld\n",
              setup_fail, errs, ok_ops, wrong, acked);
  return (wrong || acked || setup_fail) ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  auto u = [&](std::size_t i) { return std::stoull(a.at(i)); };
  try {
    if (a.size() == 3 && a[0] == "init") return cmd_init(a[1], static_cast<unsigned>(u(2)));
    if (a.size() == 10 && a[0] == "writer")
      return cmd_writer(a[1], static_cast<unsigned>(u(2)), static_cast<unsigned>(u(3)),
                        static_cast<unsigned>(u(4)), u(5), a[6], a[7], u(8), a[9] == "shared");
    if (a.size() == 6 && a[0] == "reader")
      return cmd_reader(a[1], static_cast<unsigned>(u(2)), a[3], a[4], u(5));
    if (a.size() >= 4 && a[0] == "verify") {
      std::vector<std::string> acks;
      std::string conflicts;
      for (std::size_t i = 4; i + 1 < a.size(); i += 2) {
        if (a[i] == "--ack") acks.push_back(a[i + 1]);
        if (a[i] == "--conflicts") conflicts = a[i + 1];
      }
      return cmd_verify(a[1], static_cast<unsigned>(u(2)), a[3], acks, conflicts);
    }
    if (a.size() == 4 && a[0] == "failcheck")
      return cmd_failcheck(a[1], static_cast<unsigned>(u(2)), a[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "soak_worker: %s\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "usage: see the comment at the top of scripts/soak/soak_worker.cpp\n");
  return 2;
}
