// What a process's own version costs (docs/design-own-writes.md, "Costs"):
// run by scripts/bench/own_writes.sh against a snapfs view M that holds two
// unchanged files, f and g. Prints microseconds per operation:
//   stat_idle        stat of g, an idle name the kernel caches
//   stat_own         stat of f by the process that has it open for writing
//                    (its names are not cached while it does)
//   stat_other       stat of g meanwhile (no other name is affected)
//   open_join        open(f, O_RDONLY)+close by that process: joins its version
//   open_reader      open(g, O_RDONLY)+close, nobody writing
//   open_writer      open(g, O_RDWR)+close: a new version each time
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

template <typename F>
void report(const char* name, int n, F&& op) {
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) op();
  const auto t1 = Clock::now();
  std::printf("%s %.2f\n", name, std::chrono::duration<double, std::micro>(t1 - t0).count() / n);
}

void must(bool ok, const char* what) {
  if (!ok) {
    std::perror(what);
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: own_writes M (with files f and g)\n");
    return 2;
  }
  const std::string f = std::string(argv[1]) + "/f", g = std::string(argv[1]) + "/g";
  constexpr int kStats = 20000, kOpens = 2000;
  struct stat st {};
  for (int i = 0; i < 100; ++i) must(::stat(g.c_str(), &st) == 0, "stat");
  report("stat_idle", kStats, [&] { must(::stat(g.c_str(), &st) == 0, "stat"); });
  const int w = ::open(f.c_str(), O_RDWR);
  must(w >= 0 && ::pwrite(w, "x", 1, 0) == 1, "open f");
  report("stat_own", kStats, [&] { must(::stat(f.c_str(), &st) == 0, "stat"); });
  report("stat_other", kStats, [&] { must(::stat(g.c_str(), &st) == 0, "stat"); });
  report("open_join", kOpens, [&] {
    const int r = ::open(f.c_str(), O_RDONLY);
    must(r >= 0 && ::close(r) == 0, "open f");
  });
  must(::close(w) == 0, "close f");
  report("open_reader", kOpens, [&] {
    const int r = ::open(g.c_str(), O_RDONLY);
    must(r >= 0 && ::close(r) == 0, "open g");
  });
  report("open_writer", kOpens / 4, [&] {
    const int r = ::open(g.c_str(), O_RDWR);
    must(r >= 0 && ::close(r) == 0, "open g");
  });
  return 0;
}
