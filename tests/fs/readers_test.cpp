// docs/core.md: commits are atomic. Readers running while a writer commits many
// versions only ever see whole versions, never a mix, a partial or an empty
// file, and never an older version after a newer one.
//
// Each version carries its own header (magic, number, length, checksum) and a
// payload that is a function of its number, so a reader can tell a whole
// version from anything else without knowing what the writer is doing.
// The run is bounded by the number of commits, not by time.
#include "fs_test.hpp"

#include <atomic>
#include <cstdint>
#include <thread>

namespace snapfs::test {
namespace {

constexpr char kMagic[8] = {'S', 'N', 'A', 'P', 'V', 'E', 'R', '1'};
constexpr std::size_t kHeader = 32;  // magic, number, payload length, checksum
constexpr std::uint64_t kVersions = 120;

// Lengths that grow and shrink, cross page boundaries, and hit unaligned ends.
std::size_t payload_len(std::uint64_t v) {
  return static_cast<std::size_t>((v * 7919u) % 40000u + (v % 3 == 0 ? 0u : 1u));
}

std::string version(std::uint64_t v) {
  const std::string payload = pattern(payload_len(v), static_cast<std::uint32_t>(v));
  std::string out(kHeader, '\0');
  const std::uint64_t fields[3] = {v, payload.size(), fnv1a(payload)};
  std::memcpy(out.data(), kMagic, 8);
  std::memcpy(out.data() + 8, fields, sizeof fields);
  return out + payload;
}

// The version number of `s` if it is a whole version, else an explanation.
bool parse(std::string_view s, std::uint64_t& v, std::string& why) {
  if (s.size() < kHeader) {
    why = "only " + std::to_string(s.size()) + " bytes";
    return false;
  }
  if (std::memcmp(s.data(), kMagic, 8) != 0) {
    why = "bad magic";
    return false;
  }
  std::uint64_t fields[3];
  std::memcpy(fields, s.data() + 8, sizeof fields);
  v = fields[0];
  const std::string_view payload = s.substr(kHeader);
  if (payload.size() != fields[1] || fnv1a(payload) != fields[2] || s != version(v)) {
    why = "version " + std::to_string(v) + " is torn: " + std::to_string(payload.size()) +
          " payload bytes, header says " + std::to_string(fields[1]);
    return false;
  }
  return true;
}

class Readers : public LoopFsTest {};

TEST_P(Readers, SeeOnlyWholeVersionsDuringManyCommits) {
  const auto p = path("versions");
  write_file(p, version(0));
  auto w = MmapMut::open(p);
  ASSERT_TRUE(ok(w));

  // Two readers, one through snapshots and one through plain read(2), so
  // that both ways of looking are checked and the window of any non-atomic
  // step is hit more often.
  struct Reader {
    bool use_mmap;
    std::uint64_t reads = 0, distinct = 0;
    std::string error;
    std::atomic<bool> started{false};
  };
  Reader readers[2];
  readers[0].use_mmap = true;
  readers[1].use_mmap = false;
  std::atomic<bool> writer_done{false};

  auto read_loop = [&](Reader& r) {
    std::uint64_t last = 0;
    for (bool final_pass = false;;) {
      const bool done = writer_done.load();
      std::string why;
      std::uint64_t v = 0;
      if (r.use_mmap) {
        auto m = Mmap::open(p);
        if (!m) {
          r.error = "Mmap::open: " + describe(m);
          return;
        }
        if (!parse(m->chars(), v, why)) r.error = "Mmap::open saw " + why;
      } else if (!parse(read_file(p), v, why)) {
        r.error = "read(2) saw " + why;
      }
      if (!r.error.empty()) return;
      if (v < last) {
        r.error = "version " + std::to_string(v) + " after " + std::to_string(last);
        return;
      }
      r.distinct += v != last ? 1 : 0;
      last = v;
      ++r.reads;
      r.started.store(true);
      if (final_pass) return;
      if (done) final_pass = true;  // one more read after the last commit
    }
  };
  std::vector<std::thread> threads;
  for (Reader& r : readers) {
    threads.emplace_back([&read_loop, &r] {
      try {
        read_loop(r);
      } catch (const std::exception& e) {  // read_file throws on an I/O error
        r.error = e.what();
      }
      r.started.store(true);  // also when it stopped on an error
    });
  }
  // Start committing only once every reader has read once (no sleeps).
  for (Reader& r : readers)
    while (!r.started.load()) std::this_thread::yield();

  std::string writer_error;
  for (std::uint64_t v = 1; v <= kVersions && writer_error.empty(); ++v) {
    const std::string next = version(v);
    if (auto r = w->resize(next.size()); !r) {
      writer_error = "resize: " + describe(r);
      break;
    }
    store(*w, 0, next);
    if (auto r = w->commit(); !r) writer_error = "commit " + std::to_string(v) + ": " + describe(r);
  }
  writer_done.store(true);
  for (auto& t : threads) t.join();

  EXPECT_EQ(writer_error, "");
  for (const Reader& r : readers) {
    SCOPED_TRACE(r.use_mmap ? "Mmap::open reader" : "read(2) reader");
    EXPECT_EQ(r.error, "");
    EXPECT_GE(r.reads, 2u);
    RecordProperty(r.use_mmap ? "mmap_reads" : "read_reads", static_cast<int>(r.reads));
    RecordProperty(r.use_mmap ? "mmap_versions_seen" : "read_versions_seen",
                   static_cast<int>(r.distinct));
  }
  EXPECT_TRUE(read_file(p) == version(kVersions));
  EXPECT_EQ(list_dir(work()), std::vector<std::string>{"versions"});
}

TEST_P(Readers, EarlierSnapshotsKeepTheirVersionAcrossCommits) {
  const auto p = path("versions");
  write_file(p, version(0));
  auto w = MmapMut::open(p);
  ASSERT_TRUE(ok(w));
  std::vector<Mmap> snaps;
  for (std::uint64_t v = 1; v <= 20; ++v) {
    const std::string next = version(v);
    ASSERT_TRUE(ok(w->resize(next.size())));
    store(*w, 0, next);
    ASSERT_TRUE(ok(w->commit()));
    auto s = Mmap::open(p);
    ASSERT_TRUE(ok(s));
    snaps.push_back(std::move(*s));
  }
  for (std::size_t i = 0; i < snaps.size(); ++i) {
    std::uint64_t v = 0;
    std::string why;
    EXPECT_TRUE(parse(snaps[i].chars(), v, why)) << "snapshot " << i << ": " << why;
    EXPECT_EQ(v, i + 1);
  }
}

SNAPFS_INSTANTIATE_ALL_FS(Readers);

}  // namespace
}  // namespace snapfs::test
