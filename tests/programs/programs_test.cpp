// Unmodified programs through the view (docs/programs.md: every unmodified
// program should work through M, docs/semantics.md), each compared with the
// same run in a plain directory (docs/code-style.md §6, differential tests).
//
// Every test runs one script of scripts/ twice with /bin/sh: first in a plain
// directory beside B on the same backing filesystem (which also proves the
// script itself is right), then in M. The directory is the script's first
// argument, never part of a command line the test builds. Then it compares:
//   - the exit status and the transcript (each step's output and exit code,
//     with the directory's path replaced by "<DIR>"),
//   - the two trees (names, types, modes, owners, link counts, sizes, content
//     hashes; not times or inode numbers), and
//   - the tree in B with the tree M shows (nothing left unpublished; here
//     with the mtimes of files and symlinks too).
// The results, and each deliberate difference, are in docs/programs.md.
#include "mount/fuse_mount.hpp"
#include "tree.hpp"

#include "support/process.hpp"

#include <sys/stat.h>

#include <chrono>
#include <string>
#include <vector>

namespace snapfs::test {
namespace {

using namespace std::chrono_literals;

const fs::path kScripts = SNAPFS_PROGRAM_SCRIPTS;

class Programs : public FuseMount {
protected:
  void SetUp() override {
    FuseMount::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // The plain directory: a sibling of B on the same filesystem.
    plain_ = backing().parent_path() / "plain";
    fs::create_directory(plain_);
    ::chmod(plain_.c_str(), 0755);
  }

  // GTEST_SKIP()s the test (loudly) when a program it needs is missing.
  bool need(std::initializer_list<const char*> programs) {
    for (const char* p : programs) {
      if (find_program(p).empty()) {
        missing_ = std::string(p) + " is not installed (scripts/setup.sh installs it)";
        return false;
      }
    }
    return true;
  }
  const std::string& missing() const { return missing_; }

  struct Run {
    ExitStatus status;
    std::string transcript;
  };

  // The script run through M only.
  Run run_in_m(const std::string& script, std::chrono::milliseconds timeout = 60s) {
    return run_script(script, mnt(), {}, timeout);
  }

  Run run_script(const std::string& script, const fs::path& dir,
                 const std::vector<std::string>& extra, std::chrono::milliseconds timeout) {
    // timeout(1) kills the script's whole process group (a git or make
    // child left behind would keep M busy at unmount) and exits 124; the
    // process runner's own deadline is the backstop.
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
    std::vector<std::string> argv{"timeout", "-k", "5", std::to_string(secs), "/bin/sh",
                                  (kScripts / script).string(), dir.string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = run_command(argv, timeout + 15s);
    return {r.status, replace_all(std::move(r.output), dir.string(), "<DIR>")};
  }

  // Runs `script` in the plain directory, then in M, and compares.
  void compare_runs(const std::string& script, TreeOptions opts = {},
                    const std::vector<std::string>& extra = {},
                    std::chrono::milliseconds timeout = 60s) {
    const Run plain = run_script(script, plain_, extra, timeout);
    ASSERT_TRUE(plain.status.ok()) << script << " fails in a plain directory ("
                                   << plain.status.describe() << "): the script or the "
                                   << "program is broken, not snapfs.\n"
                                   << plain.transcript;
    const Run through_m = run_script(script, mnt(), extra, timeout);
    const std::string log_hint = "\n--- daemon log ---\n" + daemon_log();

    EXPECT_EQ(through_m.status.describe(), plain.status.describe())
        << script << " through M (the status is the number of failed steps; 124: timed out)";
    const std::string transcript_diff = diff_lines(plain.transcript, through_m.transcript);
    EXPECT_TRUE(transcript_diff.empty())
        << script << ": the transcripts differ (- plain, + M):\n" << transcript_diff << log_hint;

    opts.dir_text = plain_.string();
    const Tree plain_tree = read_tree(plain_, opts);
    opts.dir_text = mnt().string();
    const Tree m_tree = read_tree(mnt(), opts);
    opts.mtimes = true;
    const Tree m_tree_times = read_tree(mnt(), opts);
    // B/.snapfs is the daemon's own (staging and conflicts, hidden from M).
    TreeOptions b_opts = opts;
    b_opts.ignore.insert(".snapfs");
    b_opts.ignore.insert(".snapfs/*");
    const Tree b_tree = read_tree(backing(), b_opts);
    const std::string plain_vs_m = diff_trees(plain_tree, "plain", m_tree, "M");
    EXPECT_TRUE(plain_vs_m.empty())
        << script << ": the tree made through M differs from the plain one:\n" << plain_vs_m;
    const std::string m_vs_b = diff_trees(m_tree_times, "M", b_tree, "B");
    EXPECT_TRUE(m_vs_b.empty()) << script << ": B does not hold what M shows after the run:\n"
                                << m_vs_b;
    EXPECT_GT(m_tree.size(), 0u);
  }

private:
  fs::path plain_;
  std::string missing_;
};

#define NEED(...)                                                             \
  do {                                                                        \
    if (!need({__VA_ARGS__})) GTEST_SKIP() << missing();                      \
  } while (0)

// cp (-p, -a, -r, --reflink, --sparse), mv, dd (notrunc, append, seek,
// fsync), truncate, tee (-a), the shell's `>`, `>>` and `<>`, ln, sort -o,
// install, rm.
TEST_P(Programs, Coreutils) { compare_runs("coreutils.sh"); }

// sed -i: temporary file in the same directory, renamed over the original.
TEST_P(Programs, SedInPlace) {
  NEED("sed");
  compare_runs("sed.sh");
}

// tar: create (plain and through gzip) and extract (fresh and over
// existing files; times, modes and a hard link restored). tar -S is in
// SparseFilesKeepHoles.
TEST_P(Programs, Tar) {
  NEED("tar", "gzip");
  compare_runs("tar.sh");
}

// rsync: whole-file and delta transfers (temporary file + rename), --inplace,
// --delete, --backup, checksums.
TEST_P(Programs, Rsync) {
  NEED("rsync");
  compare_runs("rsync.sh");
}

// git: init, add, commit, branch, checkout, merge, stash, status, gc, fsck,
// and a local clone (hard links into the objects directory).
TreeOptions git_tree_options() {
  TreeOptions opts;
  // The index records each file's ctime, mtime and inode number: it differs
  // between any two runs, also between two plain directories.
  opts.ignore_content = {"repo/.git/index", "clone/.git/index"};
  return opts;
}

TEST_P(Programs, Git) {
  NEED("git");
  compare_runs("git.sh", git_tree_options());
}

// python3: text/binary/append writes, os.replace, mkstemp, shutil, 'x' mode;
// importing a package (writes __pycache__), the cache used by the next
// import, compileall, py_compile, zipimport.
TEST_P(Programs, Python) {
  NEED("python3");
  compare_runs("python.sh");
}

// sqlite3 in rollback-journal mode: transactions, a rollback, the journal
// created and deleted beside the database, VACUUM, .backup.
TEST_P(Programs, SqliteRollbackJournal) {
  NEED("sqlite3");
  compare_runs("sqlite.sh");
}

// A real build: CMake configures and builds this project's core library
// (copied from the source tree) and a program linked against it, runs it,
// and rebuilds after an edit and after a touch (make's mtime comparisons).
TEST_P(Programs, CMakeBuild) {
  NEED("cmake", "make", "c++", "ar");
  TreeOptions opts;
  // try_compile's scratch project names (cmTC_<random>) end up in these logs.
  opts.ignore = {"build/CMakeFiles/CMakeOutput.log", "build/CMakeFiles/CMakeConfigureLog.yaml",
                 "build/CMakeFiles/CMakeError.log"};
  // Dependency lists hold the run's path, wrapped at a fixed width.
  opts.ignore_data = {"build/CMakeFiles/*.o.d", "build/CMakeFiles/*/compiler_depend.make"};
  compare_runs("build.sh", opts, {PROJECT_SOURCE_DIR}, 100s);
}

// Writing a file through one of its hard links. docs/semantics.md#hard-links:
// on XFS and btrfs hard links keep sharing content after a commit, so the run
// must equal the plain one. Elsewhere a commit publishes a new inode under the
// name written (rename, the atomic step of docs/semantics.md#commit-at-close)
// and the other names keep the old inode: the documented difference
// (docs/programs.md, "Hard links").
TEST_P(Programs, HardLinkWrite) {
  if (kind() == FsKind::xfs) {
    compare_runs("hardlink.sh");
    return;
  }
  const Run r = run_in_m("hardlink.sh");
  // Exactly one step fails: "a and b are the same inode".
  EXPECT_EQ(r.status.describe(), "exit 1") << r.transcript;
  EXPECT_EQ(read_file(b("a")), "Xne\n") << r.transcript;
  EXPECT_EQ(read_file(b("b")), "one\ntwo\n") << r.transcript;
  EXPECT_EQ(lstat_of(b("a")).st_nlink, 1u);
  EXPECT_EQ(lstat_of(b("b")).st_nlink, 1u);
  EXPECT_EQ(read_file(m("a")), "Xne\n");
  EXPECT_EQ(read_file(m("b")), "one\ntwo\n");
}

// Sparse files written through M keep their holes (tar -S, cp
// --sparse=auto, du see what they see in a plain directory).
TEST_P(Programs, SparseFilesKeepHoles) {
  NEED("tar");
  compare_runs("sparse.sh");
}

// docs/semantics.md#conflicts, concurrent appenders never lose lines: a script's
// long-lived `exec 3>>log` and a builtin's `>> log`; a group's `>> log` inherited
// by a child that opens the log too; two background loops appending at once.
TEST_P(Programs, ShellAppendersShareALog) { compare_runs("appenders.sh"); }

// Two live sqlite3 sessions on one database without an escape hatch: each
// connection works on its own snapshot (docs/semantics.md#readers, #writers), so
// the second session does not see the first one's committed but unpublished row,
// and the first one's next write is refused with SQLITE_READONLY once the second
// one's commit has replaced the file (SQLite's "database moved" check). Which
// rows survive is the conflict policy's business (docs/semantics.md#conflicts);
// that the database stays whole is not. The documented difference
// (docs/programs.md): live databases need -o passthrough (below).
TEST_P(Programs, SqliteSessionsEachSeeTheirSnapshot) {
  NEED("sqlite3");
  const Run r = run_in_m("sqlite_sessions.sh");
  // Output of the second session, then of the first (each a group_concat).
  EXPECT_NE(r.transcript.find("\n1,3\n1,2\n"), std::string::npos) << r.transcript;
  EXPECT_NE(r.transcript.find("attempt to write a readonly database"), std::string::npos)
      << r.transcript;
  EXPECT_NE(r.transcript.find("\nok\n== exit 0: sqlite3 shared.db 'SELECT"), std::string::npos)
      << "the database is not whole afterwards:\n" << r.transcript;
}

SNAPFS_INSTANTIATE_MOUNT(Programs);

// The escape hatch for live databases (docs/semantics.md#shared-paths):
// with the database and its journal passed through, two sessions behave exactly
// as in a plain directory.
class ProgramsPassthrough : public Programs {
protected:
  std::string mount_options() const override { return "passthrough=*.db:*.db-journal"; }
};

TEST_P(ProgramsPassthrough, SqliteSessionsShareADatabase) {
  NEED("sqlite3");
  compare_runs("sqlite_sessions.sh");
}

SNAPFS_INSTANTIATE_MOUNT(ProgramsPassthrough);

// -o exclusive (docs/semantics.md#exclusive-mode): readers share the published file
// instead of a snapshot. The programs that read most of what they write, once more.
class ProgramsExclusive : public Programs {
protected:
  std::string mount_options() const override { return "exclusive"; }
};

TEST_P(ProgramsExclusive, Coreutils) { compare_runs("coreutils.sh"); }

TEST_P(ProgramsExclusive, Git) {
  NEED("git");
  compare_runs("git.sh", git_tree_options());
}

TEST_P(ProgramsExclusive, SqliteRollbackJournal) {
  NEED("sqlite3");
  compare_runs("sqlite.sh");
}

SNAPFS_INSTANTIATE_MOUNT(ProgramsExclusive);

}  // namespace
}  // namespace snapfs::test
