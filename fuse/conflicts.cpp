// B/.snapfs: creation and recovery at mount, keeping and listing conflicts.
// Symlink-safe: the directories are made with mkdirat and opened with
// O_PATH|O_DIRECTORY|O_NOFOLLOW beneath B (a symlink planted at .snapfs is
// refused, never followed), then checked through that handle: a directory
// owned by the daemon's effective uid with mode 0700, or the mount is refused
// (a user who can write B's root could otherwise pre-create .snapfs, read
// every kept conflict and plant records). Everything inside is *at() on those
// handles; entries are opened only after an lstat-like check and with
// O_NOFOLLOW|O_NONBLOCK|O_NOCTTY, and read only if fstat says regular file.
#include "conflicts.hpp"
#include "peers.hpp"

#include "sys/sys.hpp"

#include <snapfs/core/publish.hpp>

#include <snapfs/fuse/meta_dir.hpp>
#include <snapfs/fuse/printable.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <string_view>
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
namespace sys = core::sys;

namespace {

constexpr const char* kStaging = "staging";
constexpr const char* kDaemons = "daemons";
constexpr const char* kConflicts = "conflicts";
constexpr std::uint64_t kMaxRecord = 64 * 1024;  // ours are ~300 bytes
constexpr std::size_t kMaxValue = 65536;         // XATTR_SIZE_MAX

const char* kind_of(mode_t m) {
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISREG(m)) return "a regular file";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  return "not a directory";
}

std::string octal(mode_t m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

// What is wrong with the directory behind `fd` (an O_PATH handle opened with
// O_NOFOLLOW|O_DIRECTORY, so it is a directory and not a symlink), shown as
// `shown`; empty if it is ours: owned by the daemon's effective uid and mode
// exactly 0700. Anything else could be someone else's: a user who made it
// could read the conflicts kept in it (other users' file contents) or plant
// entries for the daemon to act on.
std::string ownership_problem(const struct stat& st, const std::string& shown) {
  const uid_t me = sys::geteuid();
  if (st.st_uid != me) {
    return shown + " is owned by uid " + std::to_string(st.st_uid) +
           ", not by the daemon's user (uid " + std::to_string(me) + "); remove it or chown it to uid " +
           std::to_string(me);
  }
  if ((st.st_mode & 07777) != 0700) {
    return shown + " has mode " + octal(st.st_mode) +
           ", not 0700 (no access for group or others); remove it or chmod it to 0700";
  }
  return {};
}

// The outcome of make_dir(): the handle, or why not. `refuse` says the
// directory exists but is not ours (the mount must not go on); otherwise B
// would not let us make it (read-only B) and the daemon runs without it.
struct MetaDir {
  core::UniqueFd fd;
  std::string problem;  // empty: fd is valid
  bool refuse = false;
};

// mkdirat 0700 (an existing name is fine), then a handle that is sure to be
// that directory and not a symlink someone planted, checked to be ours.
// With `create` false it only looks: an absent directory gives neither a
// handle nor a problem.
MetaDir make_dir(int parent, const char* name, const std::string& shown, bool create) noexcept {
  MetaDir out;
  try {
    bool created = false;
    if (!create) {
      auto st = sys::fstatat(parent, name, AT_SYMLINK_NOFOLLOW);
      if (!st && st.error().value() == ENOENT) return out;
    } else if (auto r = sys::mkdirat(parent, name, 0700); r) {
      created = true;
    } else if (r.error().value() != EEXIST) {
      out.problem = "cannot make " + shown + ": " + r.error().message();
      return out;
    }
    // O_NOFOLLOW|O_DIRECTORY: a symlink or any non-directory at `name` is
    // refused here (ELOOP or ENOTDIR), never followed; RESOLVE_BENEATH keeps
    // the walk inside `parent`. O_PATH needs no permission on the directory
    // itself, so a foreign 0700 one is still seen and described.
    auto fd = sys::openat_beneath(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
    if (!fd) {
      out.refuse = true;
      const int e = fd.error().value();
      auto lst = sys::fstatat(parent, name, AT_SYMLINK_NOFOLLOW);  // only to describe it
      if ((e == ELOOP || e == ENOTDIR) && lst && !S_ISDIR(lst->st_mode)) {
        out.problem = shown + " is " + kind_of(lst->st_mode) +
                      ", not a directory; remove it (snapfs keeps its staging and conflicts there)";
      } else {
        out.problem = "cannot open " + shown + ": " + fd.error().message();
      }
      return out;
    }
    auto st = sys::fstat(fd->get());
    if (!st) {
      out.refuse = true;
      out.problem = "cannot stat " + shown + ": " + st.error().message();
      return out;
    }
    if (created && st->st_uid == sys::geteuid() && (st->st_mode & 07777) != 0700) {
      // Ours, just made, but the umask (or a setgid B) changed the mode
      // mkdirat asked for: set it. fchmod refuses O_PATH handles, so through
      // a real descriptor of the same inode ("." of the handle, no name
      // lookup that could be swapped).
      auto rd = sys::openat(fd->get(), ".", O_RDONLY | O_DIRECTORY);
      auto ch = rd ? sys::fchmod(rd->get(), 0700) : Result<void>(std::move(rd).error());
      if (ch) st = sys::fstat(fd->get());
    }
    if (!st) {
      out.refuse = true;
      out.problem = "cannot stat " + shown + ": " + st.error().message();
      return out;
    }
    out.problem = ownership_problem(*st, shown);
    if (!out.problem.empty()) {
      out.refuse = true;
      return out;
    }
    out.fd = std::move(*fd);
  } catch (const std::bad_alloc&) {
    out.refuse = true;
    out.problem = "out of memory";
  }
  return out;
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

// `name` in `dir` is a regular file, seen without following a symlink. The
// directories are ours (0700, checked at mount), so only the daemon's user
// or root could have put anything else there; still, recovery removes only
// what it can tell is a leftover of ours.
bool is_regular(int dir, const char* name) noexcept {
  auto st = sys::fstatat(dir, name, AT_SYMLINK_NOFOLLOW);
  return st && S_ISREG(st->st_mode);
}

std::string read_record(int dir, const char* name);  // below

// The "daemon" of one of our records (peers.hpp), or "": written last, by
// keep_conflict() alone, as 16 hex digits.
std::string record_daemon(const std::string& rec) {
  static constexpr std::string_view kKey = ",\"daemon\":\"";
  const auto at = rec.find(kKey);
  if (at == std::string::npos || rec.size() < at + kKey.size() + 16) return {};
  return rec.substr(at + kKey.size(), 16);
}

void recover(Daemon& d, int daemons_dir) {
  if (auto names = list(d.staging_dir.get())) {
    for (const auto& n : *names) {
      // Publish only ever links regular files here (core/src/publish.cpp).
      if (!is_regular(d.staging_dir.get(), n.c_str())) {
        d.log->info("snapfs: left {}/.snapfs/staging/{} alone: not a regular file", d.cfg.backing,
                    n);
        continue;
      }
      // Another daemon over B that still lives is committing it now
      // (peers.hpp): its name starts with that daemon's id.
      if (const auto owner = owner_of(n); !owner.empty() && daemon_alive(daemons_dir, owner))
        continue;
      // A commit that died between linkat and renameat: the target still
      // holds the old complete version; this name is the unpublished new one.
      // unlinkat removes the name itself, never what a symlink points at.
      if (auto r = sys::unlinkat(d.staging_dir.get(), n.c_str(), 0))
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
      if (!is_regular(d.conflicts_dir.get(), n.c_str())) continue;  // not a record of ours
      // The record is written before the content: a record alone is a
      // conflict whose close() never returned (the daemon died), unless
      // the daemon that wrote it lives and is linking the content now.
      if (const std::string owner = record_daemon(read_record(d.conflicts_dir.get(), n.c_str()));
          !owner.empty() && daemon_alive(daemons_dir, owner))
        continue;
      if (sys::unlinkat(d.conflicts_dir.get(), n.c_str(), 0))
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
  SNAPFS_TRY(sys::random_bytes(rnd));
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

namespace {

// What is wrong with the existing parts of B/.snapfs, looking only (nothing
// is made or changed); empty if every part that exists is ours. May throw
// bad_alloc.
std::string check_at(int rootfd, const std::string& shown) {
  MetaDir meta = make_dir(rootfd, kMetaDir, shown, false);
  if (!meta.problem.empty() || !meta.fd) return meta.problem;
  for (const char* sub : {kStaging, kConflicts, kDaemons}) {
    MetaDir m = make_dir(meta.fd.get(), sub, shown + "/" + sub, false);
    if (!m.problem.empty()) return m.problem;
  }
  return {};
}

}  // namespace

bool prepare_meta_dir(Daemon& d, int rootfd) noexcept {
  try {
    const std::string shown = d.cfg.backing + "/" + kMetaDir;
    // 1. Look at everything that is already there before making anything:
    // a refused mount leaves B exactly as it found it.
    if (std::string problem = check_at(rootfd, shown); !problem.empty()) {
      // One line, the reason and the fix: `snapfs mount` shows the last
      // error line to the user (mount/mount_cmd.cpp).
      d.log->error("snapfs: {}", problem);
      return false;
    }
    // 2. Make what is missing. Each part is checked again through the handle
    // that is kept (something may have changed since step 1).
    MetaDir meta = make_dir(rootfd, kMetaDir, shown, true);
    MetaDir staging, conflicts, daemons;
    const MetaDir* bad = &meta;
    if (meta.problem.empty()) {
      staging = make_dir(meta.fd.get(), kStaging, shown + "/" + kStaging, true);
      if (staging.problem.empty())
        conflicts = make_dir(meta.fd.get(), kConflicts, shown + "/" + kConflicts, true);
      if (staging.problem.empty() && conflicts.problem.empty())
        daemons = make_dir(meta.fd.get(), kDaemons, shown + "/" + kDaemons, true);
      bad = !staging.problem.empty()     ? &staging
            : !conflicts.problem.empty() ? &conflicts
            : !daemons.problem.empty()   ? &daemons
                                         : nullptr;
    }
    if (bad == nullptr) {
      // Registered before recovery looks at anything: a daemon mounting
      // after this point sees this one alive (peers.hpp).
      if (auto r = register_daemon(d, meta.fd.get(), daemons.fd.get());
          !r && r.error().value() == EROFS) {
        // Nothing can commit to a read-only B: no registration and no
        // commit lock are needed (lock_name() lets commits through, which
        // then fail with EROFS as they would anyway).
        d.log->info("snapfs: {} is read-only: not registered among the daemons over it",
                    d.cfg.backing);
      } else if (!r) {
        const int e = r.error().value();
        // Commits stay exclusive among daemons only through byte-range
        // locks in B (peers.hpp): a B that grants none is refused.
        if (e == ENOLCK || e == EOPNOTSUPP || e == EINVAL || e == ENOSYS)
          d.log->error("snapfs: {} grants no byte-range locks ({}), which keep commits through "
                       "several mounts of it from overwriting each other",
                       d.cfg.backing, r.error().message());
        else
          d.log->error("snapfs: cannot register in {}/{}: {}", shown, kDaemons,
                       r.error().message());
        return false;
      }
      d.staging_dir = std::move(staging.fd);
      d.conflicts_dir = std::move(conflicts.fd);
      recover(d, daemons.fd.get());
      forget_dead_daemons(d, daemons.fd.get());
      return true;
    }
    if (bad->refuse) {
      d.log->error("snapfs: {}", bad->problem);
      return false;
    }
    d.log->warn("snapfs: {}: commits use temporary names beside their files and conflicts "
                "cannot be kept",
                bad->problem);
    return true;
  } catch (const std::bad_alloc&) {
    d.log->error("snapfs: out of memory while recovering {}/{}", d.cfg.backing, kMetaDir);
    return false;
  }
}

std::string check_meta_dir(const std::string& backing) noexcept {
  try {
    auto root = sys::openat(AT_FDCWD, backing.c_str(), O_PATH | O_DIRECTORY);
    if (!root) return {};  // serve() reports an unusable B itself
    return check_at(root->get(), backing + "/" + kMetaDir);
  } catch (const std::bad_alloc&) {
    return {};
  }
}

Result<std::string> keep_conflict(Daemon& d, core::TmpFile& snap, const ConflictWho& who) noexcept {
  d.stats.conflicts.fetch_add(1, std::memory_order_relaxed);  // kept or not, it lost
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
    auto st = sys::fstat(snap.fd());
    if (!st) return std::move(st).error();
    const std::string kept_at = d.cfg.backing + "/" + kMetaDir + "/" + kConflicts + "/" + *id;

    char frac[16];
    std::snprintf(frac, sizeof frac, ".%03ld", now.tv_nsec / 1000000);
    std::string rec = "{\"id\":" + json_string(*id) + ",\"path\":" + json_string(who.path) +
                      ",\"time\":" + std::to_string(now.tv_sec) + frac +
                      ",\"pid\":" + std::to_string(who.pid) + ",\"uid\":" +
                      std::to_string(who.uid) + ",\"size\":" + std::to_string(st->st_size) +
                      ",\"kept_at\":" + json_string(kept_at) +
                      (d.id.empty() ? std::string() : ",\"daemon\":\"" + d.id + "\"") + "}\n";

    // 1. The record, complete before it has a name (no_replace publish of a
    // private file): nobody ever reads half a record.
    auto rf = new_private_file(d, dir);
    if (!rf) return std::move(rf).error();
    SNAPFS_TRY(sys::pwrite_all(
        rf->fd(), std::span<const std::byte>(reinterpret_cast<const std::byte*>(rec.data()), rec.size()),
        0));
    const std::string rec_name = *id + ".json";
    SNAPFS_TRY(core::publish(*rf, dir, rec_name.c_str(), keep_options(d)));

    // 2. The content. ATOMICITY: linked under its final name in one step
    // (no_replace), so it is there whole or not at all; O(1). A snapshot on
    // another filesystem than B's root (a mount below B) is copied first.
    auto linked = core::publish(snap, dir, id->c_str(), keep_options(d));
    if (!linked && linked.error().value() == EXDEV) {
      auto copy = new_private_file(d, dir);
      if (copy) {
        auto m = core::clone_contents(copy->fd(), snap.fd());
        linked = m ? core::publish(*copy, dir, id->c_str(), keep_options(d))
                   : Result<void>(std::move(m).error());
      } else {
        linked = std::move(copy).error();
      }
    }
    if (!linked) {
      (void)sys::unlinkat(dir, rec_name.c_str(), 0);
      return std::move(linked).error();
    }
    return kept_at;
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "keep conflict", who.path);
  }
}

namespace {

// The "uid" of one of our records, or -1. The records are written by
// keep_conflict() alone, with every string through json_string(), where a
// quote is always escaped: `,"uid":` with a bare quote can only be the key
// itself, never text inside a path.
long long record_uid(const std::string& rec) {
  static constexpr std::string_view kKey = ",\"uid\":";
  const auto at = rec.find(kKey);
  if (at == std::string::npos) return -1;
  const char* first = rec.data() + at + kKey.size();
  const char* last = rec.data() + rec.size();
  long long uid = -1;
  const auto [p, ec] = std::from_chars(first, last, uid);
  if (ec != std::errc() || p == last || (*p != ',' && *p != '}')) return -1;
  return uid;
}

// One record, or "" if `name` is not a record of ours. May throw bad_alloc.
std::string read_record(int dir, const char* name) {
  // Looked at before it is opened: only a regular file is opened at all, so
  // a FIFO, a device or a socket named x.json is never opened (a device's
  // open can have effects of its own). A symlink is not followed.
  auto pre = sys::fstatat(dir, name, AT_SYMLINK_NOFOLLOW);
  if (!pre || !S_ISREG(pre->st_mode) || static_cast<std::uint64_t>(pre->st_size) > kMaxRecord)
    return {};
  // The name may be swapped between that look and this open:
  // O_NOFOLLOW refuses a symlink now there (ELOOP), O_NONBLOCK makes an open
  // of a FIFO return at once instead of waiting for a writer, O_NOCTTY keeps
  // a terminal from becoming ours; and the fstat below must find the very
  // file that was looked at. O_CLOEXEC comes with sys::openat.
  auto fd = sys::openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (!fd) return {};
  auto st = sys::fstat(fd->get());
  if (!st || !S_ISREG(st->st_mode) || st->st_dev != pre->st_dev || st->st_ino != pre->st_ino)
    return {};
  std::string rec;
  std::array<std::byte, 4096> buf{};
  std::uint64_t off = 0;
  while (off < kMaxRecord) {  // capped even if it grew since the fstat
    auto r = sys::pread(fd->get(), buf, off);
    if (!r || *r == 0) break;
    rec.append(reinterpret_cast<const char*>(buf.data()), *r);
    off += *r;
  }
  while (!rec.empty() && (rec.back() == '\n' || rec.back() == ' ')) rec.pop_back();
  if (rec.empty() || rec.front() != '{' || rec.back() != '}') return {};  // not ours
  // A record kept by a daemon before json_string escaped C1 and non-UTF-8
  // bytes: escaped now, so the array never carries a raw one.
  return json_printable(rec);
}

// The records `viewer` may see, oldest first. May throw bad_alloc.
std::vector<std::string> visible_records(const Daemon& d, uid_t viewer) {
  std::vector<std::string> recs;
  if (!d.conflicts_dir) return recs;
  auto names = list(d.conflicts_dir.get());
  if (!names) return recs;
  std::sort(names->begin(), names->end());  // ids start with the UTC time
  for (const auto& n : *names) {
    if (!ends_with(n, ".json")) continue;
    std::string rec = read_record(d.conflicts_dir.get(), n.c_str());
    if (rec.empty()) continue;
    // A record without a readable uid is shown to root only.
    if (viewer != 0 && record_uid(rec) != static_cast<long long>(viewer)) continue;
    recs.push_back(std::move(rec));
  }
  return recs;
}

}  // namespace

std::string conflicts_json(const Daemon& d, uid_t viewer) {
  const std::vector<std::string> recs = visible_records(d, viewer);
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

std::size_t conflict_count(const Daemon& d, uid_t viewer) noexcept {
  try {
    return visible_records(d, viewer).size();
  } catch (const std::bad_alloc&) {
    return 0;
  }
}

std::string conflicts_json(const Daemon& d) { return conflicts_json(d, 0); }

std::size_t conflict_count(const Daemon& d) noexcept { return conflict_count(d, 0); }

}  // namespace snapfs::fuse
