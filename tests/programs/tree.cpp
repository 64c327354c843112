#include "tree.hpp"

#include "support/files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace snapfs::test {
namespace {

std::string hex(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string mode_text(const struct stat& st) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04o %u:%u", st.st_mode & 07777U, st.st_uid, st.st_gid);
  return buf;
}

std::string error_text(const char* what) { return std::string("error: ") + what + ": " + errno_name(errno); }

// The whole content of `path` with read(2), or an error text in `err`.
bool slurp(const std::string& path, std::string& out, std::string& err) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd == -1) {
    err = error_text("open");
    return false;
  }
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == -1 && errno == EINTR) continue;
    if (n == -1) {
      err = error_text("read");
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  if (::close(fd) == -1) {
    err = error_text("close");
    return false;
  }
  return true;
}

bool matches(const std::set<std::string>& patterns, const std::string& rel) {
  for (const auto& p : patterns)
    if (::fnmatch(p.c_str(), rel.c_str(), 0) == 0 ||
        ::fnmatch((p + "/*").c_str(), rel.c_str(), 0) == 0)
      return true;
  return false;
}

void walk(const std::string& abs, const std::string& rel, const TreeOptions& opts, Tree& out) {
  DIR* d = ::opendir(abs.c_str());
  if (d == nullptr) {
    out[rel.empty() ? "." : rel + "/"] = error_text("opendir");
    return;
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
    errno = 0;
  }
  if (errno != 0) out[rel.empty() ? "." : rel + "/"] = error_text("readdir");
  ::closedir(d);
  for (const auto& n : names) {
    const std::string a = abs + "/" + n;
    const std::string r = rel.empty() ? n : rel + "/" + n;
    if (matches(opts.ignore, r)) continue;
    struct stat st {};
    if (::lstat(a.c_str(), &st) == -1) {
      out[r] = error_text("lstat");
      continue;
    }
    std::string desc;
    if (S_ISREG(st.st_mode)) {
      desc = "f " + mode_text(st) + " n=" + std::to_string(st.st_nlink);
      std::string content, err;
      if (matches(opts.ignore_data, r)) {
        desc += " (size and content not compared)";
      } else if (matches(opts.ignore_content, r)) {
        desc += " size=" + std::to_string(st.st_size);
      } else if (slurp(a, content, err)) {
        if (!opts.dir_text.empty()) content = replace_all(std::move(content), opts.dir_text, "<DIR>");
        desc += " size=" + std::to_string(content.size()) + " h=" + hex(fnv1a(content));
      } else {
        desc += " size=" + std::to_string(st.st_size) + " " + err;
      }
    } else if (S_ISDIR(st.st_mode)) {
      desc = "d " + mode_text(st);
    } else if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      const ssize_t len = ::readlink(a.c_str(), buf, sizeof buf);
      std::string target = len >= 0 ? std::string(buf, static_cast<std::size_t>(len)) : error_text("readlink");
      if (!opts.dir_text.empty()) target = replace_all(std::move(target), opts.dir_text, "<DIR>");
      desc = "l -> " + target;
    } else {
      desc = std::string(S_ISFIFO(st.st_mode) ? "p " : S_ISSOCK(st.st_mode) ? "s " : "other ") +
             mode_text(st);
    }
    if (opts.mtimes && !S_ISDIR(st.st_mode))
      desc += " mtime=" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
    out[r] = desc;
    if (S_ISDIR(st.st_mode)) walk(a, r, opts, out);
  }
}

std::vector<std::string_view> split_lines(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const auto nl = s.find('\n');
    if (nl == std::string_view::npos) {
      out.push_back(s);
      break;
    }
    out.push_back(s.substr(0, nl));
    s.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace

std::string diff_lines(std::string_view a, std::string_view b, std::size_t context) {
  if (a == b) return {};
  const auto x = split_lines(a);
  const auto y = split_lines(b);
  const std::size_t n = x.size();
  const std::size_t m = y.size();
  // Longest common subsequence, table of suffix lengths (transcripts are a
  // few hundred lines).
  std::vector<std::vector<std::uint32_t>> lcs(n + 1, std::vector<std::uint32_t>(m + 1, 0));
  for (std::size_t i = n; i-- > 0;)
    for (std::size_t j = m; j-- > 0;)
      lcs[i][j] = x[i] == y[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
  // The edit script: ' ', '-' or '+' per line.
  std::vector<std::pair<char, std::string_view>> ops;
  std::size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] == y[j]) {
      ops.emplace_back(' ', x[i++]);
      ++j;
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      ops.emplace_back('-', x[i++]);
    } else {
      ops.emplace_back('+', y[j++]);
    }
  }
  std::string out;
  std::size_t last_printed = 0;
  bool any = false;
  for (std::size_t k = 0; k < ops.size(); ++k) {
    bool near = false;
    for (std::size_t d = (k >= context ? k - context : 0); d <= std::min(ops.size() - 1, k + context); ++d)
      near = near || ops[d].first != ' ';
    if (!near) continue;
    if (any && k > last_printed + 1) out += "...\n";
    out += ops[k].first;
    out += ' ';
    out += ops[k].second;
    out += '\n';
    last_printed = k;
    any = true;
  }
  return out;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  if (from.empty()) return text;
  std::size_t pos = 0;
  while ((pos = text.find(from, pos)) != std::string::npos) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
  return text;
}

Tree read_tree(const std::filesystem::path& root, const TreeOptions& opts) {
  Tree out;
  walk(root.string(), "", opts, out);
  return out;
}

std::string diff_trees(const Tree& a, std::string_view a_name, const Tree& b,
                       std::string_view b_name, std::size_t limit) {
  std::string out;
  std::size_t lines = 0;
  auto add = [&](const std::string& line) {
    if (lines++ < limit) out += line + "\n";
  };
  auto ia = a.begin();
  auto ib = b.begin();
  while (ia != a.end() || ib != b.end()) {
    if (ib == b.end() || (ia != a.end() && ia->first < ib->first)) {
      add("only in " + std::string(a_name) + ": " + ia->first + "  (" + ia->second + ")");
      ++ia;
    } else if (ia == a.end() || ib->first < ia->first) {
      add("only in " + std::string(b_name) + ": " + ib->first + "  (" + ib->second + ")");
      ++ib;
    } else {
      if (ia->second != ib->second)
        add(ia->first + ":  " + std::string(a_name) + " [" + ia->second + "]  " + std::string(b_name) +
            " [" + ib->second + "]");
      ++ia;
      ++ib;
    }
  }
  if (lines > limit) out += "... and " + std::to_string(lines - limit) + " more\n";
  return out;
}

}  // namespace snapfs::test
