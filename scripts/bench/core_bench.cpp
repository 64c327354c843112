// snapfs_bench_core: Mmap::open, MmapMut::open, commit() and commit_and_close()
// against file size, next to a plain open()+close() of the same file in the
// same run, on every filesystem named on the command line.
//
//   snapfs_bench_core [--benchmark_* flags] --fs=NAME=DIR [--fs=NAME=DIR ...]
//       [--require-reflink=NAME,...]   exit 2 unless these report reflink
//       [--sizes=4K,64K,1M,16M,256M,1G]
//       [--split-reps=N --split-out=FILE --split-sizes=4K,1G]
//                                      cost split of one Mmap::open
//       [--scatter-commits=N]          commits that each dirty another page
//   SNAPFS_BENCH_FS="xfs=/mnt/x btrfs=/mnt/b" may replace the --fs flags.
//
// Every benchmark reports manual time, and only the call it is named after is
// timed. Its setup is not: dirtying one byte before each commit (so that every
// commit publishes a real change), opening a fresh snapshot before each
// commit_and_close. "open" benchmarks time open plus drop, as "plain" times
// open() plus close(); the two halves are the open_us and drop_us counters
// (means). Besides Google Benchmark's mean time per iteration, each benchmark
// reports p50_us, its median single operation, which the table uses.
// scripts/bench/core.sh runs this and turns its JSON into the table of
// docs/performance.md.
#include "bench_support.hpp"

#include <snapfs/core/snapshot.hpp>

#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace snapfs::bench {
namespace {

DataFiles g_files;

bool check_method(benchmark::State& state, const Target& t, core::CloneMethod m) {
  if (m == t.method) return true;
  state.SkipWithError(("clone method changed to " + std::string(core::to_string(m))).c_str());
  return false;
}

void set_avg(benchmark::State& state, const char* name, double total_seconds) {
  state.counters[name] = benchmark::Counter(total_seconds * 1e6, benchmark::Counter::kAvgIterations);
}

// Hands each iteration's time to Google Benchmark, which reports their mean,
// and keeps them to report their median as the p50_us counter: on a shared
// 2-core machine a few preempted iterations move the mean, not the median.
class IterationTimes {
public:
  explicit IterationTimes(benchmark::State& state) : state_(state) {}
  void add(double secs) {
    state_.SetIterationTime(secs);
    us_.push_back(secs * 1e6);
  }
  void finish() {
    if (!us_.empty()) state_.counters["p50_us"] = median(us_);
  }

private:
  benchmark::State& state_;
  std::vector<double> us_;
};

// ---- the benchmarks -------------------------------------------------------

// The baseline: what opening the file costs without a snapshot.
void bm_plain(benchmark::State& state, const Target* t, std::size_t size) {
  const fs::path& path = g_files.get(*t, size);
  IterationTimes times(state);
  for (auto _ : state) {
    const auto t0 = Clock::now();
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
      state.SkipWithError(std::strerror(errno));
      break;
    }
    close(fd);
    times.add(seconds(t0, Clock::now()));
  }
  times.finish();
}

template <typename Snap>
void bm_open(benchmark::State& state, const Target* t, std::size_t size) {
  const fs::path& path = g_files.get(*t, size);
  double open_s = 0;
  double drop_s = 0;
  IterationTimes times(state);
  for (auto _ : state) {
    Clock::time_point t0;
    Clock::time_point t1;
    {
      t0 = Clock::now();
      auto m = Snap::open(path);
      t1 = Clock::now();
      if (!m) {
        state.SkipWithError(m.error().message().c_str());
        break;
      }
      if (!check_method(state, *t, m->clone_method())) break;
      benchmark::DoNotOptimize(m->data());
    }  // the drop: munmap (and, for MmapMut, close) frees the private inode
    const auto t2 = Clock::now();
    open_s += seconds(t0, t1);
    drop_s += seconds(t1, t2);
    times.add(seconds(t0, t2));
  }
  times.finish();
  set_avg(state, "open_us", open_s);
  set_avg(state, "drop_us", drop_s);
  // FICLONE's cost grows with this, not with the size in bytes.
  state.counters["extents"] = extent_count(path);
  state.SetLabel(core::to_string(t->method));
}

// commit() of one long-lived snapshot, one dirty byte per commit, always in
// the first page: with reflinks that page gets a new block at each commit and
// the rest stays shared, so the extent count stays constant (see
// bm_commit_scatter for the other case).
void bm_commit(benchmark::State& state, const Target* t, std::size_t size, core::Durability d) {
  const fs::path& path = g_files.get(*t, size);
  auto m = core::MmapMut::open(path, {.durability = d});
  if (!m) {
    state.SkipWithError(m.error().message().c_str());
    return;
  }
  IterationTimes times(state);
  for (auto _ : state) {
    m->data()[0] ^= std::byte{1};
    const auto t0 = Clock::now();
    auto r = m->commit();
    const auto t1 = Clock::now();
    if (!r) {
      state.SkipWithError(r.error().message().c_str());
      break;
    }
    if (!check_method(state, *t, m->clone_method())) break;
    times.add(seconds(t0, t1));
  }
  times.finish();
  state.counters["extents"] = extent_count(path);
  state.SetLabel(core::to_string(t->method));
}

void bm_commit_and_close(benchmark::State& state, const Target* t, std::size_t size,
                         core::Durability d) {
  const fs::path& path = g_files.get(*t, size);
  double setup_s = 0;
  IterationTimes times(state);
  for (auto _ : state) {
    const auto t0 = Clock::now();
    auto m = core::MmapMut::open(path, {.durability = d});
    if (!m) {
      state.SkipWithError(m.error().message().c_str());
      break;
    }
    if (!check_method(state, *t, m->clone_method())) break;
    m->data()[0] ^= std::byte{1};
    const auto t1 = Clock::now();
    auto r = m->commit_and_close();
    const auto t2 = Clock::now();
    if (!r) {
      state.SkipWithError(r.error().message().c_str());
      break;
    }
    setup_s += seconds(t0, t1);
    times.add(seconds(t1, t2));
  }
  times.finish();
  set_avg(state, "untimed_open_us", setup_s);
  state.counters["extents"] = extent_count(path);
  state.SetLabel(core::to_string(t->method));
}

// Fragmentation: every commit dirties a different page, so with reflinks the
// published file gains up to two extents per commit, and FICLONE walks them
// all. Reports the median commit time of the first and last tenth of the run.
void bm_commit_scatter(benchmark::State& state, const Target* t, std::size_t size) {
  // A fresh file: earlier benchmarks may have left it with a few extents.
  const fs::path& fresh = g_files.fresh(*t, size);
  const double before = extent_count(fresh);
  auto m = core::MmapMut::open(fresh, {.durability = core::Durability::fast});
  if (!m) {
    state.SkipWithError(m.error().message().c_str());
    return;
  }
  const std::size_t pages = size / kPage;
  std::vector<double> us;
  std::size_t i = 0;
  for (auto _ : state) {
    // A prime stride spreads the dirty pages over the whole file.
    const std::size_t page = (i++ * 7919) % pages;
    m->data()[page * kPage] ^= std::byte{1};
    const auto t0 = Clock::now();
    auto r = m->commit();
    const auto t1 = Clock::now();
    if (!r) {
      state.SkipWithError(r.error().message().c_str());
      break;
    }
    us.push_back(seconds(t0, t1) * 1e6);
    state.SetIterationTime(seconds(t0, t1));
  }
  const std::size_t tenth = std::max<std::size_t>(1, us.size() / 10);
  if (!us.empty()) {
    state.counters["first10pct_us"] =
        median(std::vector<double>(us.begin(), us.begin() + static_cast<std::ptrdiff_t>(tenth)));
    state.counters["last10pct_us"] =
        median(std::vector<double>(us.end() - static_cast<std::ptrdiff_t>(tenth), us.end()));
  }
  state.counters["extents_before"] = before;
  state.counters["extents"] = extent_count(fresh);
  state.SetLabel(core::to_string(t->method));
}

// ---- setup ----------------------------------------------------------------

// Finds the clone method of a filesystem, through all three entry points.
core::CloneMethod probe(const Target& t) {
  const fs::path path = t.dir / "probe";
  write_file(path, 64 * KiB);
  auto ro = core::Mmap::open(path);
  if (!ro) die(t.name + ": Mmap::open: " + ro.error().message());
  auto rw = core::MmapMut::open(path);
  if (!rw) die(t.name + ": MmapMut::open: " + rw.error().message());
  rw->data()[0] ^= std::byte{1};
  if (auto r = rw->commit(); !r) die(t.name + ": commit: " + r.error().message());
  const auto m = ro->clone_method();
  if (rw->clone_method() != m) die(t.name + ": open and commit use different clone methods");
  fs::remove(path);
  return m;
}

struct Options {
  std::vector<Target> targets;
  std::vector<std::string> require_reflink;
  std::vector<std::size_t> sizes{4 * KiB, 64 * KiB, MiB, 16 * MiB, 256 * MiB, GiB};
  int split_reps = 0;
  std::vector<std::size_t> split_sizes{4 * KiB};
  std::string split_out;
  int scatter_commits = 0;
};

void add_target(Options& o, const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    die("expected NAME=DIR, got " + spec);
  o.targets.push_back({spec.substr(0, eq), spec.substr(eq + 1)});
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> std::optional<std::string> {
      const std::string f = std::string(flag) + "=";
      if (a.rfind(f, 0) == 0) return a.substr(f.size());
      return std::nullopt;
    };
    if (auto v = value("--fs")) {
      add_target(o, *v);
    } else if (auto v2 = value("--require-reflink")) {
      o.require_reflink = split_list(*v2, ',');
    } else if (auto v3 = value("--sizes")) {
      o.sizes.clear();
      for (const auto& s : split_list(*v3, ',')) o.sizes.push_back(parse_size(s));
    } else if (auto v4 = value("--split-reps")) {
      o.split_reps = std::stoi(*v4);
    } else if (auto v5 = value("--split-sizes")) {
      o.split_sizes.clear();
      for (const auto& sz : split_list(*v5, ',')) o.split_sizes.push_back(parse_size(sz));
    } else if (auto v6 = value("--split-out")) {
      o.split_out = *v6;
    } else if (auto v7 = value("--scatter-commits")) {
      o.scatter_commits = std::stoi(*v7);
    } else {
      die("unknown argument: " + a);
    }
  }
  if (o.targets.empty()) {
    if (const char* env = std::getenv("SNAPFS_BENCH_FS"))
      for (const auto& spec : split_list(env, ' ')) add_target(o, spec);
  }
  if (o.targets.empty()) die("no filesystem given: --fs=NAME=DIR or SNAPFS_BENCH_FS");
  return o;
}

// Copy-based snapshots of big files take seconds each: run those a fixed,
// small number of times. Everything else runs for a minimum time. All report
// the median of several repetitions (the machine is shared and noisy).
// A commit with a sync waits for the disk, whose latency here is shared with
// everyone else on the machine: those run longer.
void configure(benchmark::internal::Benchmark* b, const Target& t, std::size_t size, bool syncs) {
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->ReportAggregatesOnly(true);
  if (t.method == core::CloneMethod::reflink || size <= MiB) {
    b->MinTime(syncs ? 0.1 : 0.05)->Repetitions(5);
  } else if (size <= 16 * MiB) {
    b->Iterations(4)->Repetitions(5);
  } else {
    b->Iterations(1)->Repetitions(3);
  }
}

int run(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  Options opts = parse(argc, argv);

  for (auto& t : opts.targets) {
    t.method = probe(t);
    const bool required = std::find(opts.require_reflink.begin(), opts.require_reflink.end(),
                                    t.name) != opts.require_reflink.end();
    std::fprintf(stderr, "snapfs_bench_core: %s (%s): clone_method() == %s\n", t.name.c_str(),
                 t.dir.c_str(), core::to_string(t.method));
    if (required && t.method != core::CloneMethod::reflink)
      die(t.name + " must clone with reflinks but the core reports " +
          core::to_string(t.method) + "; is it mkfs.xfs -m reflink=1 / btrfs?");
  }

  if (opts.split_reps > 0) {
    std::FILE* out = opts.split_out.empty() ? stdout : std::fopen(opts.split_out.c_str(), "w");
    if (out == nullptr) die("cannot write " + opts.split_out);
    std::fprintf(out, "fs,size,step,median_us\n");
    for (const std::size_t size : opts.split_sizes)
      for (const auto& t : opts.targets)
        // Copying a big file thousands of times says nothing new: the
        // benchmarks below already show that copies are O(n).
        if (t.method == core::CloneMethod::reflink || size <= MiB)
          split_costs(t, opts.split_reps, size, out);
    if (out != stdout) std::fclose(out);
  }

  for (const auto& t : opts.targets) {
    for (const std::size_t size : opts.sizes) {
      std::string suffix = size_label(size);
      suffix.insert(suffix.begin(), '/');  // not "/" + s: GCC 12 -Wrestrict false positive
      const Target* tp = &t;
      auto reg = [&](const std::string& op, auto fn) {
        const bool syncs = op == "commit" || op == "commit_and_close";
        configure(benchmark::RegisterBenchmark((t.name + "/" + op + suffix).c_str(), fn), t, size,
                  syncs);
      };
      reg("plain_open_close", [tp, size](benchmark::State& s) { bm_plain(s, tp, size); });
      reg("mmap_open", [tp, size](benchmark::State& s) { bm_open<core::Mmap>(s, tp, size); });
      reg("mmapmut_open",
          [tp, size](benchmark::State& s) { bm_open<core::MmapMut>(s, tp, size); });
      reg("commit", [tp, size](benchmark::State& s) {
        bm_commit(s, tp, size, core::Durability::atomic);
      });
      reg("commit_fast", [tp, size](benchmark::State& s) {
        bm_commit(s, tp, size, core::Durability::fast);
      });
      reg("commit_and_close", [tp, size](benchmark::State& s) {
        bm_commit_and_close(s, tp, size, core::Durability::atomic);
      });
      reg("commit_and_close_fast", [tp, size](benchmark::State& s) {
        bm_commit_and_close(s, tp, size, core::Durability::fast);
      });
    }
    if (opts.scatter_commits > 0 && t.method == core::CloneMethod::reflink) {
      const std::size_t size = opts.sizes.back();
      const Target* tp = &t;
      benchmark::RegisterBenchmark((t.name + "/commit_scatter/" + size_label(size)).c_str(),
                                   [tp, size](benchmark::State& s) {
                                     bm_commit_scatter(s, tp, size);
                                   })
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond)
          ->Iterations(opts.scatter_commits)
          ->Repetitions(1);
    }
  }

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_files.remove_all();
  return 0;
}

}  // namespace
}  // namespace snapfs::bench

int main(int argc, char** argv) { return snapfs::bench::run(argc, argv); }
