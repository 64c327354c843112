// A directory tree as the program tests compare it: for every path below the
// root, its type, mode, owner, link count, size and a hash of its content (or
// a symlink's target). Times and inode numbers are left out on purpose: two
// runs of the same script never produce the same ones.
#pragma once

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>

namespace snapfs::test {

struct TreeOptions {
  // Replaced by "<DIR>" in file content and symlink targets before hashing,
  // so that a file that records where it was made (git's `clone` config and
  // reflog, for instance) compares equal between the two runs.
  std::string dir_text;
  // The sets below hold fnmatch(3) patterns of relative paths ('*' also
  // matches '/'); a directory's pattern covers everything below it.
  //
  // Content not compared (the size still is): files that record inode
  // numbers or times (git's index).
  std::set<std::string> ignore_content;
  // Neither size nor content compared (type, mode, owner and link count
  // still are): files that hold the run's path in a layout that depends on
  // its length (gcc's dependency files wrap lines at a fixed width).
  std::set<std::string> ignore_data;
  // Left out altogether: output that is not deterministic even between two
  // runs in plain directories.
  std::set<std::string> ignore;
  // Also record the mtime of everything but directories (for comparing M with B
  // at one moment: docs/semantics.md#writers, stat through M equals stat of B/p).
  // Directories are left out: their attributes may be cached for 1 s.
  bool mtimes = false;
};

// Relative path -> "f 0644 0:0 n=1 size=12 h=0123456789abcdef" (regular
// file; the size is that of the content after the <DIR> replacement), "d 0755 0:0", "l -> target", "p 0644 0:0" (fifo), ... An entry that
// could not be read records the error ("error: open: ENOTCONN ..."), so a
// tree read through a mount whose daemon died still compares (unequal).
using Tree = std::map<std::string, std::string>;

Tree read_tree(const std::filesystem::path& root, const TreeOptions& opts);

// Human-readable differences ("only in <a_name>: x", "x: <a> | <b>"), one per
// line; empty if the trees are equal. At most `limit` lines.
std::string diff_trees(const Tree& a, std::string_view a_name, const Tree& b,
                       std::string_view b_name, std::size_t limit = 40);

// A line diff of two texts ("-" only in `a`, "+" only in `b`, two lines of
// context around each change); empty if they are equal.
std::string diff_lines(std::string_view a, std::string_view b, std::size_t context = 2);

// `text` with every occurrence of `from` replaced by `to`.
std::string replace_all(std::string text, std::string_view from, std::string_view to);

}  // namespace snapfs::test
