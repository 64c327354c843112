// MmapMut against a reference model (docs/code-style.md §6, after llfio's
// mapped_file_handle test): one PRNG stream of operations drives both a
// std::string and an MmapMut on a plain temporary directory (whatever
// filesystem /tmp is); after every step the mapping must equal the model, and
// after every commit the file must equal it too, byte for byte and in length.
//
// Set SNAPFS_MODEL_SEED to replay a failure; the seed is printed on failure.
#include "support/files.hpp"
#include "support/result_check.hpp"
#include "support/tempdir.hpp"

#include <snapfs/core/snapshot.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>

namespace snapfs::test {
namespace {

using core::Mmap;
using core::MmapMut;

constexpr int kSteps = 1500;
constexpr std::size_t kMaxLen = 96 * 1024;

class Model {
public:
  explicit Model(std::uint64_t seed) : rng_(seed) {}

  std::size_t below(std::size_t n) {  // uniform in [0, n)
    return n == 0 ? 0 : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }
  // A length with the interesting cases over-represented: zero, page
  // multiples and their neighbours, one byte either side of the current size.
  std::size_t length(std::size_t current) {
    switch (below(6)) {
      case 0: return 0;
      case 1: return 4096 * (1 + below(kMaxLen / 4096 - 1));
      case 2: {
        const std::size_t page = 4096 * (1 + below(8));
        return below(2) ? page + 1 : page - 1;
      }
      case 3: return current + 1;
      case 4: return current > 0 ? current - 1 : 1;
      default: return below(kMaxLen);
    }
  }
  std::string bytes(std::size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(below(256));
    return s;
  }

private:
  std::mt19937_64 rng_;
};

std::uint64_t seed_from_env() {
  if (const char* s = std::getenv("SNAPFS_MODEL_SEED")) return std::strtoull(s, nullptr, 0);
  return 20261126;
}

void run_model(std::uint64_t seed, bool start_with_create) {
  TempDir dir("snapfs-unit-");
  const auto p = dir / "f";
  Model rng(seed);
  std::string model;      // what the mapping must show
  std::string published;  // what the file must hold
  std::optional<MmapMut> m;

  if (start_with_create) {
    auto c = MmapMut::create(p);
    ASSERT_TRUE(ok(c));
    m.emplace(std::move(*c));
  } else {
    published = rng.bytes(rng.below(3 * 4096));
    write_file(p, published);
    auto o = MmapMut::open(p);
    ASSERT_TRUE(ok(o));
    m.emplace(std::move(*o));
    model = published;
  }
  const auto reopen = [&] {
    auto o = MmapMut::open(p);
    ASSERT_TRUE(ok(o));
    m.emplace(std::move(*o));
    model = published;
  };

  bool exists = !start_with_create;
  for (int step = 0; step < kSteps; ++step) {
    const std::size_t op = rng.below(100);
    std::string what;
    if (op < 35) {  // store through the mapping
      if (model.empty()) continue;
      const std::size_t off = rng.below(model.size());
      const std::string data = rng.bytes(1 + rng.below(std::min<std::size_t>(model.size() - off, 9000)));
      std::memcpy(m->data() + off, data.data(), data.size());
      model.replace(off, data.size(), data);
      what = "store " + std::to_string(off) + "+" + std::to_string(data.size());
    } else if (op < 50) {  // write_at, possibly past the end (zero-filled gap)
      const std::size_t off = rng.below(std::min(model.size() + 8192, kMaxLen));
      // Never empty here: EmptyWriteAtPastTheEndChangesNothing covers that,
      // and the stream should get past it to everything else.
      const std::string data = rng.bytes(1 + rng.below(6000));
      ASSERT_TRUE(ok(m->write_at(off, as_bytes(data)))) << "step " << step;
      // Like pwrite(2): writing nothing changes nothing, even past the end.
      if (!data.empty()) {
        if (off + data.size() > model.size()) model.resize(off + data.size(), '\0');
        model.replace(off, data.size(), data);
      }
      what = "write_at " + std::to_string(off) + "+" + std::to_string(data.size());
    } else if (op < 70) {
      const std::size_t len = rng.length(model.size());
      ASSERT_TRUE(ok(m->resize(len))) << "step " << step;
      model.resize(len, '\0');
      what = "resize " + std::to_string(len);
    } else if (op < 85) {
      ASSERT_TRUE(ok(m->commit())) << "step " << step;
      published = model;
      exists = true;
      what = "commit";
    } else if (op < 90) {
      ASSERT_TRUE(ok(m->commit_and_close())) << "step " << step;
      published = model;
      exists = true;
      EXPECT_EQ(m->size(), 0u);
      reopen();
      if (::testing::Test::HasFatalFailure()) return;
      what = "commit_and_close + open";
    } else if (op < 93) {
      if (!exists) continue;
      reopen();  // drop without commit: the writes are gone
      if (::testing::Test::HasFatalFailure()) return;
      what = "drop + open";
    } else if (exists) {
      auto r = Mmap::open(p);
      ASSERT_TRUE(ok(r));
      ASSERT_TRUE(r->chars() == published) << "step " << step << ": Mmap::open is not the last commit";
      what = "Mmap::open";
    }
    SCOPED_TRACE("step " + std::to_string(step) + ": " + what);
    ASSERT_EQ(m->size(), model.size());
    ASSERT_TRUE(m->chars() == model) << "the mapping differs from the model";
    if (exists) {
      const std::string file = read_file(p);
      ASSERT_EQ(file.size(), published.size());
      ASSERT_TRUE(file == published) << "the file differs from the last commit";
    }
  }
  ASSERT_TRUE(ok(m->commit()));
  EXPECT_TRUE(read_file(p) == model);
  m.reset();
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"f"}) << "litter";
}

// Found by the model: write_at() of zero bytes past the end grew the
// mapping but not the file, so reading the new tail raised SIGBUS.
TEST(Model, EmptyWriteAtPastTheEndChangesNothing) {
  TempDir dir("snapfs-unit-");
  const auto p = dir / "f";
  write_file(p, "abc");
  auto m = MmapMut::open(p);
  ASSERT_TRUE(ok(m));
  ASSERT_TRUE(ok(m->write_at(5 * 4096 + 1, {})));
  ASSERT_EQ(m->size(), 3u) << "an empty write_at past the end resized the snapshot";
  EXPECT_EQ(m->chars(), "abc");
  ASSERT_TRUE(ok(m->commit()));
  EXPECT_EQ(read_file(p), "abc");
}

TEST(Model, OpenedFileFollowsTheModel) {
  const auto seed = seed_from_env();
  SCOPED_TRACE("SNAPFS_MODEL_SEED=" + std::to_string(seed));
  run_model(seed, false);
}

TEST(Model, CreatedFileFollowsTheModel) {
  const auto seed = seed_from_env() + 1;
  SCOPED_TRACE("SNAPFS_MODEL_SEED=" + std::to_string(seed - 1));
  run_model(seed, true);
}

}  // namespace
}  // namespace snapfs::test
