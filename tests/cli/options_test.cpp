// In-process tests of the command's pure parts: -o parsing, mount(8) helper
// arguments, Config defaults by caller, mountinfo parsing, path overlap, the
// JSON reader and the human rendering. Label `unit`: no root, no mounts.
#include "checks.hpp"
#include "exit_codes.hpp"
#include "options.hpp"
#include "report.hpp"

#include <gtest/gtest.h>

namespace snapfs::cli {
namespace {

int usage_code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Failure& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.code();
  }
  return exit_code::ok;
}

TEST(UnitOptions, Defaults) {
  MountOptions o;
  apply_option_list("", o);
  EXPECT_TRUE(o.shared.empty());
  EXPECT_FALSE(o.exclusive);
  EXPECT_EQ(o.durability, core::Durability::atomic);
  EXPECT_EQ(o.on_conflict, fuse::OnConflict::fail);
  EXPECT_TRUE(o.auto_unmount);
  EXPECT_FALSE(o.allow_other);
  EXPECT_EQ(o.cache_timeout, 1.0);
}

// cache_timeout: how long the kernel may cache names and attributes of idle files.
TEST(UnitOptions, CacheTimeout) {
  MountOptions o;
  apply_option_list("cache_timeout=0", o);
  EXPECT_EQ(o.cache_timeout, 0.0);
  apply_option_list("cache_timeout=2.5", o);
  EXPECT_EQ(o.cache_timeout, 2.5);
  apply_option_list("cache-timeout=10", o);
  EXPECT_EQ(o.cache_timeout, 10.0);
  EXPECT_EQ(make_config(o, "/b", "/m", true).cache_timeout, 10.0);
  for (const char* bad : {"cache_timeout=", "cache_timeout", "cache_timeout=-1",
                          "cache_timeout=1e3", "cache_timeout=.5", "cache_timeout=1.",
                          "cache_timeout=1.2.3", "cache_timeout=3601", "cache_timeout=x"}) {
    MountOptions b;
    EXPECT_EQ(usage_code_of([&] { apply_option_list(bad, b); }), exit_code::usage) << bad;
  }
}

TEST(UnitOptions, SnapfsOptions) {
  MountOptions o;
  apply_option_list("shared=*.db:/logs/*.log,exclusive,durability=full,on-conflict=overwrite",
                    o);
  // passthrough= is the older name of shared=: both add to one list.
  apply_option_list("passthrough=x,fsname=data,threads=4,log_level=debug,debug,noauto_unmount", o);
  EXPECT_EQ(o.shared, (std::vector<std::string>{"*.db", "logs/*.log", "x"}));
  EXPECT_TRUE(o.exclusive);
  EXPECT_EQ(o.durability, core::Durability::full);
  EXPECT_EQ(o.on_conflict, fuse::OnConflict::overwrite);
  EXPECT_EQ(o.fsname, "data");
  EXPECT_EQ(o.threads, 4u);
  EXPECT_EQ(o.log_level, "debug");
  EXPECT_TRUE(o.debug);
  EXPECT_FALSE(o.auto_unmount);
}

TEST(UnitOptions, LaterOptionsWin) {
  MountOptions o;
  apply_option_list("durability=fast,on_conflict=overwrite,noauto_unmount", o);
  apply_option_list("durability=atomic,on-conflict=fail,auto_unmount", o);
  EXPECT_EQ(o.durability, core::Durability::atomic);
  EXPECT_EQ(o.on_conflict, fuse::OnConflict::fail);
  EXPECT_TRUE(o.auto_unmount);
}

TEST(UnitOptions, QuotedValueKeepsCommas) {
  MountOptions o;
  apply_option_list(R"(shared="a,b:c",exclusive)", o);
  EXPECT_EQ(o.shared, (std::vector<std::string>{"a,b", "c"}));
  EXPECT_TRUE(o.exclusive);
}

TEST(UnitOptions, GenericMountOptionsAreAccepted) {
  // What mount(8), mount.fuse3 (dev,suid) and fstab lines pass.
  MountOptions o;
  apply_option_list(
      "rw,defaults,auto,noauto,nofail,user,users,nouser,_netdev,x-systemd.automount,"
      "x-systemd.device-timeout=10,comment=hi,dev,suid,nodev,nosuid,exec,async,atime,"
      "noatime,relatime,strictatime,nodiratime,lazytime,subtype=snapfs,,",
      o);
  EXPECT_EQ(o.ignored.size(), 25u);
  EXPECT_FALSE(o.allow_other);
}

TEST(UnitOptions, UnknownAndRefusedOptionsAreUsageErrors) {
  for (const char* bad : {"bogus", "rw,bogus", "ro", "noexec", "sync", "dirsync", "mand",
                          "durability=slow", "durability", "on-conflict=merge", "threads=-1",
                          "threads=x", "threads=100000", "passthrough=", "passthrough=a::b", "shared=", "shared=a::b",
                          "log_level=loud", "subtype=other", "fsname", "\"unbalanced"}) {
    MountOptions o;
    EXPECT_EQ(usage_code_of([&] { apply_option_list(bad, o); }), exit_code::usage) << bad;
  }
}

TEST(UnitOptions, SloppyIgnoresUnknownButNotBadValues) {
  MountOptions o;
  apply_option_list("bogus,exclusive", o, /*sloppy=*/true);
  EXPECT_TRUE(o.exclusive);
  EXPECT_EQ(usage_code_of([&] { apply_option_list("durability=slow", o, true); }),
            exit_code::usage);
}

TEST(UnitOptions, ConfigForRootAndUser) {
  MountOptions o;
  auto root = make_config(o, "/b", "/m", /*as_root=*/true);
  EXPECT_TRUE(root.allow_other);
  EXPECT_TRUE(root.default_permissions);
  EXPECT_EQ(root.fsname, "/b");
  EXPECT_TRUE(root.auto_unmount);
  auto user = make_config(o, "/b", "/m", false);
  EXPECT_FALSE(user.allow_other);
  EXPECT_FALSE(user.default_permissions);
  o.allow_other = true;  // always brings default_permissions
  auto other = make_config(o, "/b", "/m", false);
  EXPECT_TRUE(other.allow_other);
  EXPECT_TRUE(other.default_permissions);
  MountOptions d;
  d.default_permissions = true;
  d.fsname = "name";
  auto dp = make_config(d, "/b", "/m", false);
  EXPECT_FALSE(dp.allow_other);
  EXPECT_TRUE(dp.default_permissions);
  EXPECT_EQ(dp.fsname, "name");
}

TEST(UnitOptions, HelperArgsAsMountPassesThem) {
  // Captured from util-linux 2.38 mount(8) and mount.fuse3 3.14 on Debian 12.
  auto h = parse_helper_args({"/b", "/m", "-o", "rw,durability=full,nofail"});
  EXPECT_EQ(h.backing, "/b");
  EXPECT_EQ(h.mountpoint, "/m");
  EXPECT_EQ(h.option_lists, (std::vector<std::string>{"rw,durability=full,nofail"}));
  EXPECT_FALSE(h.fake);
  h = parse_helper_args({"/b", "/m", "-v", "-f", "-o", "rw", "-n", "-s", "-t", "fuse.snapfs"});
  EXPECT_TRUE(h.fake);
  EXPECT_TRUE(h.sloppy);
  EXPECT_TRUE(h.verbose);
  h = parse_helper_args({"snapfs#/b", "/m", "-orw,exclusive", "-sfv"});
  EXPECT_EQ(h.backing, "/b");
  EXPECT_EQ(h.option_lists, (std::vector<std::string>{"rw,exclusive"}));
  EXPECT_TRUE(h.fake && h.sloppy && h.verbose);
}

TEST(UnitOptions, FuseProgramArgs) {
  // mount.fuse3's `snapfs B M -o opts`, and by hand `snapfs B M -f`: as for
  // any libfuse program, -f is foreground there, not mount(8)'s fake mode.
  auto h = parse_helper_args({"/b", "/m", "-o", "rw,dev,suid"}, Convention::fuse_program);
  EXPECT_EQ(h.option_lists, (std::vector<std::string>{"rw,dev,suid"}));
  EXPECT_FALSE(h.foreground || h.fake || h.debug);
  h = parse_helper_args({"/b", "/m", "-f"}, Convention::fuse_program);
  EXPECT_TRUE(h.foreground);
  EXPECT_FALSE(h.fake);
  h = parse_helper_args({"-d", "/b", "/m"}, Convention::fuse_program);
  EXPECT_TRUE(h.debug && h.foreground);
  EXPECT_TRUE(parse_helper_args({"--help"}, Convention::fuse_program).help);
  EXPECT_TRUE(parse_helper_args({"-h"}).help);
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"/b", "/m", "-s"}, {"/b", "/m", "-n"}, {"/b", "/m", "-t", "fuse.snapfs"}}) {
    EXPECT_EQ(usage_code_of([&] { parse_helper_args(bad, Convention::fuse_program); }),
              exit_code::usage);
  }
}

TEST(UnitOptions, HelperArgsErrors) {
  for (const std::vector<std::string>& bad :
       std::vector<std::vector<std::string>>{{},
                                             {"/b"},
                                             {"/b", "/m", "/x"},
                                             {"/b", "/m", "-o"},
                                             {"/b", "/m", "-t", "ext4"},
                                             {"/b", "/m", "-N", "1"},
                                             {"/b", "/m", "-x"},
                                             {"/b", "/m", "--bogus"}}) {
    EXPECT_EQ(usage_code_of([&] { parse_helper_args(bad); }), exit_code::usage) << bad.size();
  }
}

TEST(UnitChecks, PathWithinComparesComponents) {
  EXPECT_TRUE(path_within("/a/b", "/a/b"));
  EXPECT_TRUE(path_within("/a/b/c", "/a/b"));
  EXPECT_FALSE(path_within("/a/bc", "/a/b"));
  EXPECT_FALSE(path_within("/a", "/a/b"));
  EXPECT_TRUE(path_within("/anything", "/"));
  EXPECT_TRUE(path_within("/", "/"));
}

TEST(UnitChecks, MountinfoParsing) {
  const char* text =
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      "40 22 0:35 / /tmp/with\\040space rw shared:2 master:3 - tmpfs tmpfs rw\n"
      "41 22 0:36 / /mnt/m rw,nosuid,nodev - fuse.snapfs /srv/data rw,user_id=0\n"
      "42 41 0:37 / /mnt/m rw - tmpfs over rw\n"
      "garbage line\n";
  const auto ms = parse_mountinfo(text);
  ASSERT_EQ(ms.size(), 4u);
  EXPECT_EQ(ms[1].mountpoint, "/tmp/with space");
  EXPECT_EQ(ms[1].fstype, "tmpfs");
  EXPECT_EQ(ms[2].fstype, "fuse.snapfs");
  EXPECT_EQ(ms[2].source, "/srv/data");
  const auto top = mount_at(ms, "/mnt/m");
  ASSERT_TRUE(top);
  EXPECT_EQ(top->fstype, "tmpfs");  // mounted over the snapfs mount
  EXPECT_FALSE(mount_at(ms, "/mnt"));
}

TEST(UnitReport, ParsesJson) {
  const Json j =
      parse_json(R"( {"a": 1, "b": [true, false, null], "c": {"d": "x\"\u00e9\ud83d\ude00"},
                               "e": -1.5e3, "f": []} )");
  ASSERT_EQ(j.type, Json::Type::object);
  EXPECT_EQ(j.find("a")->text, "1");
  EXPECT_EQ(j.find("b")->items.size(), 3u);
  EXPECT_EQ(j.find("c")->find("d")->text, "x\"\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(j.find("e")->text, "-1.5e3");
  EXPECT_EQ(j.find("zzz"), nullptr);
  for (const char* bad :
       {"", "{", "{\"a\" 1}", "[1,]", "{\"a\":1} x", "\"\\q\"", "tru", "[\"\\u12\"]"}) {
    EXPECT_EQ(usage_code_of([&] { parse_json(bad); }), exit_code::failure) << bad;
  }
  EXPECT_EQ(usage_code_of([&] { parse_json(std::string(200, '[')); }), exit_code::failure);
}

TEST(UnitReport, RendersStatus) {
  const Json j = parse_json(R"({"open_snapshots": 2, "commits": 7, "reflink": true,
                                "data_path": "clone", "conflicts": 0, "by_fs": {"xfs": "yes"},
                                "globs": ["*.db", "x\ny"]})");
  EXPECT_EQ(render_status(j),
            "open_snapshots: 2\ncommits: 7\nreflink: yes\ndata_path: clone\nconflicts: 0\n"
            "by_fs.xfs: yes\nglobs: *.db, x\\x0ay\n");
}

TEST(UnitReport, RendersConflicts) {
  EXPECT_EQ(render_conflicts(parse_json("[]")), "no conflicts\n");
  const std::string t = render_conflicts(parse_json(
      R"([{"path": "a/b.txt", "time": 0, "pid": 42, "size": 5, "kept_at": ".snapfs-conflicts/1"},
          {"path": "c", "time": "2026-01-01T00:00:00Z", "pid": 7, "size": 123456}])"));
  EXPECT_NE(t.find("PATH"), std::string::npos) << t;
  EXPECT_NE(t.find("a/b.txt  1970-01-01 00:00:00Z"), std::string::npos) << t;
  EXPECT_NE(t.find(".snapfs-conflicts/1"), std::string::npos) << t;
  EXPECT_NE(t.find("2026-01-01T00:00:00Z"), std::string::npos) << t;
  EXPECT_NE(t.find("2 conflicts"), std::string::npos) << t;
  EXPECT_EQ(usage_code_of([] { render_conflicts(parse_json("{}")); }), exit_code::failure);
}

TEST(UnitReport, RendersEvents) {
  const Json commit = parse_json(
      R"({"seq":3,"time":1796675576.042238,"event":"commit","path":"a b/\u001b[31mx","size":6,)"
      R"("pid":42,"uid":0,"command":"cc1"})");
  EXPECT_EQ(render_event(commit, "/m", false),
            "2026-12-07T20:32:56.042238Z commit /m/a b/\\x1b[31mx size=6 pid=42 uid=0 "
            "command=cc1\n");
  const Json moved = parse_json(
      R"({"seq":4,"time":0.5,"event":"rename","path":"a","to":"d/\udcffb"})");
  EXPECT_EQ(render_event(moved, "/m", false),
            "1970-01-01T00:00:00.5Z rename /m/a -> /m/d/\\xffb\n");
  // JSON: the event as sent, its paths absolute, bytes kept as the daemon
  // escapes them.
  EXPECT_EQ(render_event(moved, "/m", true),
            "{\"seq\":4,\"time\":0.5,\"event\":\"rename\",\"path\":\"/m/a\","
            "\"to\":\"/m/d/\\udcffb\"}\n");
  EXPECT_EQ(render_dropped(17, true), "{\"event\":\"dropped\",\"count\":17}\n");
  EXPECT_NE(render_dropped(17, false).find("dropped 17 events"), std::string::npos);
}

}  // namespace
}  // namespace snapfs::cli
