// docs/semantics.md#bad-input as root, where a missed check would really mount:
// every bad input gets one line on stderr, its exit code, and changes nothing
// (no mount appears, B and the rest of the scratch tree are unchanged, no
// daemon is left). Label `mount`.
#include "cli_support.hpp"

#include "exit_codes.hpp"

#include <sys/mount.h>
#include <unistd.h>

namespace snapfs::clitest {
namespace {

namespace ec = snapfs::cli::exit_code;
constexpr uid_t kNobody = 65534;

struct BadCase {
  const char* name;
  int code;
  // Prepares the scratch tree; returns the arguments after the binary.
  std::function<std::vector<std::string>(Scratch&)> setup;
  bool as_nobody = false;
};

// B = s/b with a file, M = s/m, both 0755; a few cases add more.
std::vector<std::string> mount_args(const fs::path& b, const fs::path& m,
                                    std::vector<std::string> extra = {}) {
  std::vector<std::string> a{"mount", b.string(), m.string()};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

const std::vector<BadCase>& cases() {
  static const std::vector<BadCase> all{
      {"BackingMissing", ec::bad_backing,
       [](Scratch& s) { return mount_args(s / "nope", s / "m"); }},
      {"BackingIsAFile", ec::bad_backing,
       [](Scratch& s) { return mount_args(s / "b" / "f", s / "m"); }},
      {"BackingUnreadable", ec::bad_backing,
       [](Scratch& s) {
         const auto b = s.mkdir("locked", 0700);  // root's, nobody can't read it
         const auto m = s.mkdir("um", 0755, kNobody, kNobody);
         return mount_args(b, m);
       },
       true},
      {"BackingIsDeadLink", ec::bad_backing,
       [](Scratch& s) {
         fs::create_symlink(s / "gone", s / "link");
         return mount_args(s / "link", s / "m");
       }},
      {"CacheDirMissing", ec::usage,
       [](Scratch& s) {
         return mount_args(s / "b", s / "m", {"-o", "cache_dir=" + (s / "nope").string()});
       }},
      {"CacheDirInsideB", ec::usage,
       [](Scratch& s) {
         return mount_args(s / "b", s / "m", {"-o", "cache_dir=" + (s / "b").string()});
       }},
      {"CacheDirIsAFile", ec::usage,
       [](Scratch& s) {
         return mount_args(s / "b", s / "m", {"-o", "cache_dir=" + (s / "b" / "f").string()});
       }},
      {"MountpointMissing", ec::bad_mountpoint,
       [](Scratch& s) { return mount_args(s / "b", s / "nope"); }},
      {"MountpointIsAFile", ec::bad_mountpoint,
       [](Scratch& s) { return mount_args(s / "b", s / "b" / "f"); }},
      {"MountpointIsAMount", ec::bad_mountpoint,
       [](Scratch& s) {
         const auto t = s.mkdir("t");
         if (::mount("snapfs-test", t.c_str(), "tmpfs", 0, "size=1m") != 0)
           throw std::runtime_error("tmpfs");
         return mount_args(s / "b", t);
       }},
      {"MountpointIsABindMountOfTheSameFs", ec::bad_mountpoint,
       [](Scratch& s) {
         // Same st_dev as its parent: only mountinfo tells.
         const auto src = s.mkdir("src");
         const auto t = s.mkdir("t");
         if (::mount(src.c_str(), t.c_str(), nullptr, MS_BIND, nullptr) != 0)
           throw std::runtime_error("bind");
         return mount_args(s / "b", t);
       }},
      {"MountpointIsAMountSpelledWithDot", ec::bad_mountpoint,
       [](Scratch& s) {
         const auto t = s.mkdir("t2");
         if (::mount("snapfs-test", t.c_str(), "tmpfs", 0, "size=1m") != 0)
           throw std::runtime_error("tmpfs");
         return mount_args(s / "b", s / "t2" / ".");  // spelled differently
       }},
      {"MountpointNotWritableByUser", ec::bad_mountpoint,
       [](Scratch& s) {
         const auto b = s.mkdir("ub", 0755, kNobody, kNobody);
         return mount_args(b, s / "m");  // root's 0755 directory
       },
       true},
      {"SameDirectory", ec::overlap, [](Scratch& s) { return mount_args(s / "b", s / "b"); }},
      {"SameDirectoryThroughSymlink", ec::overlap,
       [](Scratch& s) {
         fs::create_directory_symlink(s / "b", s / "alias");
         return mount_args(s / "alias", s / "b");
       }},
      {"SameDirectoryThroughDotDot", ec::overlap,
       [](Scratch& s) { return mount_args(s / "b", s / "m" / ".." / "b"); }},
      {"BackingInsideMountpoint", ec::overlap,
       [](Scratch& s) {
         const auto inner = s.mkdir("m/inner");
         return mount_args(inner, s / "m");
       }},
      {"MountpointInsideBacking", ec::overlap,
       [](Scratch& s) {
         const auto inner = s.mkdir("b/inner");
         return mount_args(s / "b", inner);
       }},
      {"MountpointInsideBackingThroughSymlink", ec::overlap,
       [](Scratch& s) {
         s.mkdir("b/deep/er");
         fs::create_directory_symlink(s / "b" / "deep", s / "m-link");
         return mount_args(s / "b", s / "m-link" / "er");
       }},
      {"UnknownOption", ec::usage,
       [](Scratch& s) {
         return mount_args(s / "b", s / "m", {"-o", "bogus"});
       }},
      {"UnknownFlag", ec::usage,
       [](Scratch& s) { return mount_args(s / "b", s / "m", {"--bogus"}); }},
      {"BadOptionValue", ec::usage,
       [](Scratch& s) {
         return mount_args(s / "b", s / "m", {"-o", "rw,durability=slow"});
       }},
      {"ReadOnlyRefused", ec::usage,
       [](Scratch& s) {
         return mount_args(s / "b", s / "m", {"-o", "ro"});
       }},
      // mount.snapfs exits with mount(8)'s codes: 1 invocation, 32 mount failure.
      {"HelperUnknownOption", 1,
       [](Scratch& s) {
         return std::vector<std::string>{"@helper", (s / "b").string(), (s / "m").string(), "-o",
                                         "rw,bogus"};
       }},
      {"HelperMountpointMissing", 32,
       [](Scratch& s) {
         return std::vector<std::string>{"@helper", (s / "b").string(), (s / "nope").string(), "-o",
                                         "rw"};
       }},
      {"AllowOtherWithoutUserAllowOther", ec::not_permitted,
       [](Scratch& s) {
         const auto b = s.mkdir("ub", 0755, kNobody, kNobody);
         const auto m = s.mkdir("um", 0755, kNobody, kNobody);
         return mount_args(b, m, {"-o", "allow_other"});
       },
       true},
  };
  return all;
}

class MountBadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(MountBadInput, OneLineErrorAndNoChange) {
  SNAPFS_REQUIRE_ROOT();
  const BadCase& c = GetParam();
  if (std::string(c.name) == "AllowOtherWithoutUserAllowOther" &&
      read_file("/etc/fuse.conf").find("\nuser_allow_other") != std::string::npos) {
    GTEST_SKIP() << "/etc/fuse.conf has user_allow_other";
  }
  Scratch s;
  s.mkdir("b");
  s.mkdir("m");
  write_file(s / "b" / "f", "published\n");
  std::vector<std::string> args = c.setup(s);
  if (args.front() == "@helper") {
    args.front() = mount_helper_bin();
  } else {
    args.insert(args.begin(), snapfs_bin());
  }
  const auto mounts_before = mounts_under(s.path()).size();
  const auto tree_before = tree_digest(s.path());
  RunOptions opts;
  if (c.as_nobody) {
    opts.uid = kNobody;
    opts.gid = kNobody;
    // The build tree may sit in a directory only root can search (a
    // checkout under a 0700 mktemp directory): then nobody cannot even
    // start the command, and there is nothing to check.
    const Outcome probe = run({args.front(), "--version"}, opts);
    if (probe.code == 126 || probe.code == 127)
      GTEST_SKIP() << args.front() << " cannot be run by uid " << kNobody
                   << " (a directory above it is not searchable by others)";
  }
  const Outcome r = run(args, opts);
  EXPECT_EQ(r.code, c.code) << r.describe();
  EXPECT_TRUE(one_line_error(r));
  EXPECT_EQ(mounts_under(s.path()).size(), mounts_before);
  EXPECT_EQ(tree_digest(s.path()), tree_before);
  EXPECT_TRUE(processes_mentioning(s.path().string()).empty());
}

INSTANTIATE_TEST_SUITE_P(Spec210, MountBadInput, ::testing::ValuesIn(cases()),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace snapfs::clitest
