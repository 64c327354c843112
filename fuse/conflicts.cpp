// B/.snapfs: creation and recovery at mount, keeping and listing conflicts.
// Symlink-safe: the directories are made with mkdirat and opened with
// O_PATH|O_DIRECTORY|O_NOFOLLOW beneath B (a symlink planted at .snapfs is
// refused, never followed); everything inside is *at() on those handles with
// names we made ourselves.
#include "conflicts.hpp"

#include "sys/sys.hpp"
#include "sys_extra.hpp"

#include <snapfs/core/publish.hpp>

#include <snapfs/fuse/printable.hpp>

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <new>
#include <string>
#include <vector>

namespace snapfs::fuse {

using core::Error;
using core::Result;
namespace csys = core::sys;

namespace {

constexpr const char* kStaging = "staging";
constexpr const char* kConflicts = "conflicts";
constexpr std::uint64_t kMaxRecord = 64 * 1024;  // ours are ~300 bytes
constexpr std::size_t kMaxValue = 65536;         // XATTR_SIZE_MAX

// mkdirat (an existing directory is fine), then a handle that is sure to be
// that directory and not a symlink someone planted.
Result<core::UniqueFd> make_dir(int parent, const char* name) noexcept {
  if (auto r = sys::mkdirat(parent, name, 0700); !r && r.error().value() != EEXIST)
    return std::move(r).error();
  return csys::openat_beneath(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
}

// The names in a directory (without "." and ".."). May throw bad_alloc.
Result<std::vector<std::string>> list(int dirfd) {
  auto s = sys::DirStream::open(dirfd);
  if (!s) return std::move(s).error();
  std::vector<std::string> names;
  for (;;) {
    auto e = s->next();
    if (!e) return std::move(e).error();
    if (!*e) break;
    const char* n = (*e)->d_name;
    if (std::strcmp(n, ".") == 0 || std::strcmp(n, "..") == 0) continue;
    names.emplace_back(n);
  }
  return names;
}

bool ends_with(const std::string& s, const char* suffix) {
  const std::size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

void recover(Daemon& d) {
  if (auto names = list(d.staging_dir.get())) {
    for (const auto& n : *names) {
      // A commit that died between linkat and renameat: the target still
      // holds the old complete version; this name is the unpublished new one.
      if (auto r = csys::unlinkat(d.staging_dir.get(), n.c_str(), 0))
        d.log->info("snapfs: removed an interrupted commit: {}", n);
      else
        d.log->info("snapfs: cannot remove the interrupted commit {}: {}", n,
                    r.error().message());
    }
  } else {
    d.log->info("snapfs: cannot list {}/.snapfs/staging: {}", d.cfg.backing,
                names.error().message());
  }
  if (auto names = list(d.conflicts_dir.get())) {
    for (const auto& n : *names) {
      if (!ends_with(n, ".json")) continue;
      const std::string content = n.substr(0, n.size() - 5);
      if (std::find(names->begin(), names->end(), content) != names->end()) continue;
      // The record is written before the content: a record alone is a
      // conflict whose close() never returned (the daemon died).
      if (csys::unlinkat(d.conflicts_dir.get(), n.c_str(), 0))
        d.log->info("snapfs: removed the record of an interrupted conflict: {}", n);
    }
  }
}

// "20261126T112233.123456789Z-<pid>-<8 hex>": sorts by time.
Result<std::string> new_id(const struct timespec& now) {
  std::tm tm{};
  char when[40];
  const std::time_t secs = now.tv_sec;
  if (!::gmtime_r(&secs, &tm) || std::strftime(when, sizeof when, "%Y%m%dT%H%M%S", &tm) == 0)
    return Error::of(EINVAL, "conflict id");
  std::array<std::byte, 4> rnd{};
  SNAPFS_TRY(csys::random_bytes(rnd));
  static constexpr char kHex[] = "0123456789abcdef";
  char tail[64];
  std::snprintf(tail, sizeof tail, ".%09ldZ-%d-", static_cast<long>(now.tv_nsec),
                static_cast<int>(sys::getpid()));
  std::string id = std::string(when) + tail;
  for (auto b : rnd) {
    id += kHex[static_cast<unsigned>(b) >> 4];
    id += kHex[static_cast<unsigned>(b) & 15];
  }
  return id;
}

core::PublishOptions keep_options(const Daemon& d) noexcept {
  core::PublishOptions o;
  o.durability = d.cfg.durability;
  o.no_replace = true;  // ids are unique; never replace anything
  o.create_mode = 0600;
  return o;
}

}  // namespace

void prepare_meta_dir(Daemon& d, int rootfd) noexcept {
  try {
    auto meta = make_dir(rootfd, kMetaDir);
    if (!meta) {
      d.log->warn("snapfs: cannot make {}/{} ({}): commits use temporary names beside their "
                  "files and conflicts cannot be kept",
                  d.cfg.backing, kMetaDir, meta.error().message());
      return;
    }
    auto staging = make_dir(meta->get(), kStaging);
    auto conflicts = make_dir(meta->get(), kConflicts);
    if (!staging || !conflicts) {
      d.log->warn("snapfs: cannot make {}/{}/{{staging,conflicts}}: {}", d.cfg.backing, kMetaDir,
                  (!staging ? staging.error() : conflicts.error()).message());
      return;
    }
    d.staging_dir = std::move(*staging);
    d.conflicts_dir = std::move(*conflicts);
    recover(d);
  } catch (const std::bad_alloc&) {
    d.log->error("snapfs: out of memory while recovering {}/{}", d.cfg.backing, kMetaDir);
  }
}

Result<std::string> keep_conflict(Daemon& d, core::TmpFile& snap, const ConflictWho& who) noexcept {
  if (!d.conflicts_dir) return Error::of(EROFS, "keep conflict", who.path);
  try {
    const int dir = d.conflicts_dir.get();
    const auto now_tp = std::chrono::system_clock::now().time_since_epoch();
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now_tp).count();
    struct timespec now {};
    now.tv_sec = static_cast<std::time_t>(ns / 1000000000);
    now.tv_nsec = static_cast<long>(ns % 1000000000);
    auto id = new_id(now);
    if (!id) return std::move(id).error();
    auto st = csys::fstat(snap.fd());
    if (!st) return std::move(st).error();
    const std::string kept_at = d.cfg.backing + "/" + kMetaDir + "/" + kConflicts + "/" + *id;

    char frac[16];
    std::snprintf(frac, sizeof frac, ".%03ld", now.tv_nsec / 1000000);
    std::string rec = "{\"id\":" + json_string(*id) + ",\"path\":" + json_string(who.path) +
                      ",\"time\":" + std::to_string(now.tv_sec) + frac +
                      ",\"pid\":" + std::to_string(who.pid) + ",\"uid\":" +
                      std::to_string(who.uid) + ",\"size\":" + std::to_string(st->st_size) +
                      ",\"kept_at\":" + json_string(kept_at) + "}\n";

    // 1. The record, complete before it has a name (no_replace publish of a
    // private file): nobody ever reads half a record.
    auto rf = core::TmpFile::create_in(dir);
    if (!rf) return std::move(rf).error();
    SNAPFS_TRY(csys::pwrite_all(
        rf->fd(), std::span<const std::byte>(reinterpret_cast<const std::byte*>(rec.data()), rec.size()),
        0));
    const std::string rec_name = *id + ".json";
    SNAPFS_TRY(core::publish(*rf, dir, rec_name.c_str(), keep_options(d)));

    // 2. The content. ATOMICITY: linked under its final name in one step
    // (no_replace), so it is there whole or not at all; O(1). A snapshot on
    // another filesystem than B's root (a mount below B) is copied first.
    auto linked = core::publish(snap, dir, id->c_str(), keep_options(d));
    if (!linked && linked.error().value() == EXDEV) {
      auto copy = core::TmpFile::create_in(dir);
      if (copy) {
        auto m = core::clone_contents(copy->fd(), snap.fd());
        linked = m ? core::publish(*copy, dir, id->c_str(), keep_options(d))
                   : Result<void>(std::move(m).error());
      } else {
        linked = std::move(copy).error();
      }
    }
    if (!linked) {
      (void)csys::unlinkat(dir, rec_name.c_str(), 0);
      return std::move(linked).error();
    }
    return kept_at;
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "keep conflict", who.path);
  }
}

std::string conflicts_json(const Daemon& d) {
  if (!d.conflicts_dir) return "[]";
  auto names = list(d.conflicts_dir.get());
  if (!names) return "[]";
  std::sort(names->begin(), names->end());  // ids start with the UTC time
  std::vector<std::string> recs;
  for (const auto& n : *names) {
    if (!ends_with(n, ".json")) continue;
    auto fd = csys::openat(d.conflicts_dir.get(), n.c_str(), O_RDONLY | O_NOFOLLOW);
    if (!fd) continue;
    std::string rec;
    std::array<std::byte, 4096> buf{};
    std::uint64_t off = 0;
    while (off < kMaxRecord) {
      auto r = csys::pread(fd->get(), buf, off);
      if (!r || *r == 0) break;
      rec.append(reinterpret_cast<const char*>(buf.data()), *r);
      off += *r;
    }
    while (!rec.empty() && (rec.back() == '\n' || rec.back() == ' ')) rec.pop_back();
    if (rec.empty() || rec.front() != '{' || rec.back() != '}') continue;  // not ours
    recs.push_back(std::move(rec));
  }
  // An xattr value is at most 64 KiB (XATTR_SIZE_MAX): the newest records
  // that fit. All of them stay in B/.snapfs/conflicts.
  std::size_t first = recs.size(), total = 2;
  while (first > 0 && total + recs[first - 1].size() + 1 <= kMaxValue) {
    total += recs[first - 1].size() + 1;
    --first;
  }
  std::string out = "[";
  for (std::size_t i = first; i < recs.size(); ++i) {
    if (i > first) out += ',';
    out += recs[i];
  }
  return out + "]";
}

std::size_t conflict_count(const Daemon& d) noexcept {
  if (!d.conflicts_dir) return 0;
  try {
    auto names = list(d.conflicts_dir.get());
    if (!names) return 0;
    return static_cast<std::size_t>(std::count_if(
        names->begin(), names->end(), [](const std::string& n) { return ends_with(n, ".json"); }));
  } catch (const std::bad_alloc&) {
    return 0;
  }
}

std::string json_string(const std::string& s) {
  std::string quoted;
  quoted.reserve(s.size() + 2);
  for (const char c : s) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  // Tab, newline and carriage return are escaped here (json_printable keeps
  // them raw, as whitespace between a document's tokens); every other
  // control, C1, bidi control and non-UTF-8 byte there.
  std::string out = "\"";
  for (const char c : json_printable(quoted)) {
    if (c == '\t')
      out += "\\u0009";
    else if (c == '\n')
      out += "\\u000a";
    else if (c == '\r')
      out += "\\u000d";
    else
      out += c;
  }
  out += '"';
  return out;
}

}  // namespace snapfs::fuse
