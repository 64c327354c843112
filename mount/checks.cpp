// Path checks for the snapfs command (see checks.hpp).
//
// Everything here only reads: a failed check leaves no trace
// (docs/semantics.md#bad-input). Paths are compared after realpath(3),
// component-wise, and "already a mount point" is decided by
// /proc/self/mountinfo, which also sees bind mounts of a directory of the same
// file system (an st_dev comparison with the parent does not), with the st_dev
// comparison kept as a second opinion.
#include "checks.hpp"

#include "exit_codes.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace snapfs::cli {
namespace {

std::string quoted(const std::string& path) {
  return "'" + path + "'";
}

// realpath(3) with the errno kept for the caller's message.
std::optional<std::string> real_path(const std::string& path, int& err) {
  std::unique_ptr<char, decltype(&std::free)> r(::realpath(path.c_str(), nullptr), &std::free);
  if (!r) {
    err = errno;
    return std::nullopt;
  }
  return std::string(r.get());
}

std::string why(int err) {
  switch (err) {
    case ENOENT: return "does not exist";
    case ENOTDIR: return "is not a directory";
    case EACCES: return "cannot be reached (permission denied)";
    case ENOTCONN:
    case ECONNABORTED:
      return "is a dead FUSE mount (" + std::string(std::strerror(err)) + "; unmount it first)";
    default: return std::string("cannot be resolved: ") + std::strerror(err);
  }
}

// `path` resolved (realpath(3)) and checked to be a directory, with its stat
// in `st`. `what` names it in the messages; `code`: the exit code of a failure.
std::string real_dir(const std::string& path, const char* what, int code, struct stat& st) {
  const std::string shown = std::string(what) + " " + quoted(path);
  int err = 0;
  const auto r = real_path(path, err);
  if (!r) throw Failure(code, shown + " " + why(err));
  if (::stat(r->c_str(), &st) != 0) throw Failure(code, shown + " " + why(errno));
  if (!S_ISDIR(st.st_mode)) throw Failure(code, shown + " is not a directory");
  return *r;
}

// Octal escapes of mountinfo fields (space, tab, newline, backslash).
std::string unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

}  // namespace

std::vector<MountEntry> parse_mountinfo(std::string_view text) {
  // "36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw": the
  // optional fields end at "-", then fstype and source.
  std::vector<MountEntry> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const auto f = fields(text.substr(pos, nl - pos));
    pos = nl + 1;
    std::size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 5 || dash + 1 >= f.size()) continue;
    MountEntry e;
    e.mountpoint = unescape(f[4]);
    e.fstype = unescape(f[dash + 1]);
    if (dash + 2 < f.size()) e.source = unescape(f[dash + 2]);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<MountEntry> read_mountinfo() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) throw Failure(exit_code::failure, "cannot read /proc/self/mountinfo");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_mountinfo(text.str());
}

std::optional<MountEntry> mount_at(const std::vector<MountEntry>& mounts, std::string_view path) {
  std::optional<MountEntry> top;
  for (const auto& m : mounts) {
    if (m.mountpoint == path) top = m;  // later lines are mounted on top
  }
  return top;
}

bool path_within(std::string_view inner, std::string_view outer) {
  if (outer == "/") return !inner.empty() && inner.front() == '/';
  if (inner.substr(0, outer.size()) != outer) return false;
  return inner.size() == outer.size() || inner[outer.size()] == '/';
}

bool fuse_conf_allows_other(const std::string& fuse_conf) {
  std::ifstream in(fuse_conf);
  std::string line;
  while (std::getline(in, line)) {
    // fusermount3 wants the word alone on its line (fuse.conf comments say so),
    // but tolerates surrounding blanks.
    const auto b = line.find_first_not_of(" \t");
    const auto e = line.find_last_not_of(" \t\r");
    if (b != std::string::npos && line.substr(b, e - b + 1) == "user_allow_other") return true;
  }
  return false;
}

std::string check_cache_dir(const std::string& dir, const std::string& backing,
                            const std::string& mountpoint) {
  struct stat st {};
  const std::string c = real_dir(dir, "cache directory", exit_code::usage, st);
  if (::faccessat(AT_FDCWD, c.c_str(), W_OK | X_OK, AT_EACCESS) != 0)
    throw Failure(exit_code::usage, "cache directory " + quoted(dir) + " is not writable by you (" +
                                        std::strerror(errno) + ")");
  for (const std::string* p : {&backing, &mountpoint}) {
    if (path_within(c, *p))
      throw Failure(exit_code::usage, "cache directory " + quoted(dir) + " is inside " +
                                          quoted(*p) + ": it must be outside B and M");
  }
  return c;
}

MountPaths check_mount_paths(const std::string& backing, const std::string& mountpoint,
                             bool as_root, bool allow_other, const std::string& fuse_conf) {
  using namespace exit_code;
  if (backing.empty()) throw Failure(bad_backing, "the backing directory is an empty string");
  if (mountpoint.empty()) throw Failure(bad_mountpoint, "the mount point is an empty string");

  struct stat bst {};
  const std::string b = real_dir(backing, "backing directory", bad_backing, bst);
  if (::faccessat(AT_FDCWD, b.c_str(), R_OK | X_OK, AT_EACCESS) != 0) {
    throw Failure(bad_backing, "backing directory " + quoted(backing) + " is not readable (" +
                                   std::strerror(errno) + ")");
  }

  struct stat mst {};
  const std::string m = real_dir(mountpoint, "mount point", bad_mountpoint, mst);
  if (!as_root) {
    // fusermount3 refuses these; its own message would go to /dev/null in a
    // daemonized child, so say it here.
    if (::faccessat(AT_FDCWD, m.c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
      throw Failure(bad_mountpoint, "mount point " + quoted(mountpoint) +
                                        " is not writable by you (fusermount3 requires that)");
    }
    if ((mst.st_mode & S_ISVTX) != 0 && mst.st_uid != ::geteuid()) {
      throw Failure(bad_mountpoint, "mount point " + quoted(mountpoint) +
                                        " is sticky and not yours (fusermount3 refuses it)");
    }
  }

  if (b == m) {
    throw Failure(overlap, "backing directory " + quoted(backing) + " and mount point " +
                               quoted(mountpoint) + " are the same directory");
  }
  if (path_within(b, m)) {
    throw Failure(overlap, "backing directory " + quoted(backing) + " is inside mount point " +
                               quoted(mountpoint));
  }
  if (path_within(m, b)) {
    throw Failure(overlap, "mount point " + quoted(mountpoint) + " is inside backing directory " +
                               quoted(backing) + " (the daemon would serve its own mount)");
  }

  if (const auto top = mount_at(read_mountinfo(), m)) {
    throw Failure(bad_mountpoint, "mount point " + quoted(mountpoint) +
                                      " is already a mount point (" + top->fstype + " from " +
                                      top->source + ")");
  }
  struct stat parent {};
  if (m != "/" && ::stat((m + "/..").c_str(), &parent) == 0 && parent.st_dev != mst.st_dev) {
    throw Failure(bad_mountpoint,
                  "mount point " + quoted(mountpoint) + " is already a mount point");
  }

  if (!as_root && allow_other && !fuse_conf_allows_other(fuse_conf)) {
    throw Failure(not_permitted, "allow_other needs a 'user_allow_other' line in " + fuse_conf +
                                     " when mounting as an ordinary user (ask your administrator)");
  }
  return MountPaths{b, m};
}

std::string locate_snapfs_mount(const std::string& m) {
  if (m.empty()) throw Failure(exit_code::usage, "the mount point is an empty string");
  int err = 0;
  auto path = real_path(m, err);
  if (!path) {
    // A dead daemon makes stat(M) fail with ENOTCONN; resolve the parent
    // instead and append the last component.
    std::string p = m;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    const auto slash = p.rfind('/');
    const std::string dir =
        slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
    const std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
    const auto d = (base == "." || base == "..") ? std::nullopt : real_path(dir, err);
    if (!d) throw Failure(exit_code::not_snapfs, quoted(m) + " " + why(err));
    path = (*d == "/" ? "" : *d) + "/" + base;
  }
  const auto top = mount_at(read_mountinfo(), *path);
  if (!top)
    throw Failure(exit_code::not_snapfs,
                  quoted(m) + " is not a snapfs mount (nothing is mounted there)");
  if (top->fstype != kSnapfsFsType) {
    throw Failure(exit_code::not_snapfs,
                  quoted(m) + " is not a snapfs mount (it is " + top->fstype + ")");
  }
  return *path;
}

}  // namespace snapfs::cli
