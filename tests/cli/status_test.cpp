// `snapfs status`: what it tells an operator, in its three formats (text,
// json, prometheus). UnitStatus: the rendering in-process, the exposition
// checker itself, and the binary's usage errors (label unit). MountStatus:
// against the real daemon, as root (label mount). promtool's own check runs
// where promtool is installed (Debian package prometheus, or
// SNAPFS_PROMTOOL=path) and is skipped loudly otherwise.
#include "cli_support.hpp"
#include "exit_codes.hpp"
#include "exposition.hpp"
#include "report.hpp"

#include <snapfs/fuse/printable.hpp>

#include <fcntl.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

namespace snapfs::clitest {
namespace {

namespace ec = snapfs::cli::exit_code;
using cli::Json;

// A status as the daemon sends it, with a mount point that needs every
// escape of a label value and a byte a terminal must not see. Its label is
// what the text shows (printable.hpp: the newline as \x0a, the backslash
// doubled), then escaped as the format wants.
const std::string kMount = "/mnt/a \"b\"\\c\nd";
const std::string kMountLabel = "/mnt/a \"b\"\\\\c\\x0ad";
const std::string kStatus = R"({"backing":"/srv/data","mountpoint":"/mnt/a \"b\"\\c\u000ad",)"
                            R"("version":"1.2.3","pid":4242,"started":1796667808.677,)"
                            R"("uptime_seconds":75,"kernel":"6.18.0","fuse_protocol":"7.45",)"
                            R"("libfuse":"3.14.0","options":{"fsname":"/srv/data",)"
                            R"("shared":["db/*","logs/*"],"exclusive":false,"kernel_io":"auto",)"
                            R"("durability":"full","on_conflict":"fail","allow_other":true,)"
                            R"("default_permissions":true,"auto_unmount":true,)"
                            R"("cache_timeout":0.5,"max_user_opens":1250,"threads":0,)"
                            R"("debug":false},"open_snapshots":2,"commits":7,)"
                            R"("bytes_published":1048576,"conflicts":1,)"
                            R"("conflicts_since_start":3,"rebases":1,"reflink":true,)"
                            R"("data_path":"kernel passthrough","kernel_passthrough":"active",)"
                            R"("passthrough_opens":3,"daemon_opens":4,"own_joins":5,)"
                            R"("own_routes":6,"own_misses":0,"warm_snapshots":1,"warm_hits":9,)"
                            R"("lingering":0,"lookups":10,"getattrs":11,"readdirs":12,)"
                            R"("inval_inodes":13,"dentry_epochs":14,"descriptors":-1,)"
                            R"("descriptor_limit":20000,)"
                            R"("errors":{"ENOENT":5,"ESTALE":3,"other":1}})";

TEST(UnitStatus, TextIsKeyValueLinesWithTheStartAsADate) {
  const std::string t = cli::render_status(cli::parse_json(kStatus));
  for (const char* line :
       {"backing: /srv/data\n", "version: 1.2.3\n", "pid: 4242\n",
        "started: 2026-12-07 ", "uptime_seconds: 75\n", "kernel: 6.18.0\n",
        "options.durability: full\n", "options.shared: db/*, logs/*\n", "commits: 7\n",
        "conflicts_since_start: 3\n", "errors.ENOENT: 5\n", "errors.other: 1\n",
        "data_path: kernel passthrough\n"}) {
    EXPECT_NE(t.find(line), std::string::npos) << line << " missing in:\n" << t;
  }
  // The mount point's quote, backslash and newline are escaped, not raw.
  EXPECT_NE(t.find("mountpoint: /mnt/a \"b\"\\\\c\\x0ad\n"), std::string::npos) << t;
}

TEST(UnitStatus, PrometheusNamesEveryCounterAndGauge) {
  const std::string text = cli::render_prometheus(cli::parse_json(kStatus));
  Exposition e;
  ASSERT_TRUE(snapfs_exposition(text, kMountLabel, &e));
  EXPECT_EQ(kMountLabel, fuse::printable(kMount));
  const std::map<std::string, double> counters{
      {"snapfs_commits_total", 7},          {"snapfs_published_bytes_total", 1048576},
      {"snapfs_conflicts_total", 3},        {"snapfs_rebases_total", 1},
      {"snapfs_warm_hits_total", 9},        {"snapfs_own_joins_total", 5},
      {"snapfs_own_routes_total", 6},       {"snapfs_own_misses_total", 0},
      {"snapfs_lookups_total", 10},         {"snapfs_getattrs_total", 11},
      {"snapfs_readdirs_total", 12},        {"snapfs_inode_invalidations_total", 13},
      {"snapfs_dentry_epochs_total", 14}};
  for (const auto& [name, v] : counters) {
    EXPECT_EQ(e.types[name], "counter") << name;
    EXPECT_EQ(e.value(name), v) << name << "\n" << text;
  }
  EXPECT_EQ(e.value("snapfs_opens_total", {{"data_path", "kernel"}}), 3);
  EXPECT_EQ(e.value("snapfs_opens_total", {{"data_path", "daemon"}}), 4);
  EXPECT_EQ(e.value("snapfs_errors_total", {{"errno", "ENOENT"}}), 5);
  EXPECT_EQ(e.value("snapfs_errors_total", {{"errno", "ESTALE"}}), 3);
  EXPECT_EQ(e.value("snapfs_errors_total", {{"errno", "other"}}), 1);
  const std::map<std::string, double> gauges{
      {"snapfs_open_snapshots", 2},         {"snapfs_warm_snapshots", 1},
      {"snapfs_lingering_snapshots", 0},    {"snapfs_conflicts_kept", 1},
      {"snapfs_descriptors_limit", 20000},  {"snapfs_reflink", 1},
      {"snapfs_uptime_seconds", 75},        {"snapfs_start_time_seconds", 1796667808.677}};
  for (const auto& [name, v] : gauges) {
    EXPECT_EQ(e.types[name], "gauge") << name;
    EXPECT_EQ(e.value(name), v) << name << "\n" << text;
  }
  // "Could not tell" (-1) is no sample, and no family without samples.
  EXPECT_EQ(e.types.count("snapfs_descriptors_held"), 0u) << text;
  // Facts and options as info metrics.
  EXPECT_EQ(e.value("snapfs_info", {{"version", "1.2.3"},
                                    {"pid", "4242"},
                                    {"kernel", "6.18.0"},
                                    {"fuse_protocol", "7.45"},
                                    {"libfuse", "3.14.0"},
                                    {"data_path", "kernel"},
                                    {"backing", "/srv/data"}}),
            1);
  EXPECT_EQ(e.value("snapfs_options_info", {{"durability", "full"},
                                            {"shared", "db/*:logs/*"},
                                            {"cache_timeout", "0.5"},
                                            {"max_user_opens", "1250"},
                                            {"exclusive", "false"}}),
            1);
}

TEST(UnitStatus, PrometheusFromAnOlderDaemonHasWhatItSent) {
  // A daemon without the newer keys: their metrics are left out, the rest
  // stays valid.
  const std::string text = cli::render_prometheus(
      cli::parse_json(R"({"mountpoint":"/m","commits":2,"open_snapshots":0,"reflink":false})"));
  Exposition e;
  ASSERT_TRUE(snapfs_exposition(text, "/m", &e));
  EXPECT_EQ(e.value("snapfs_commits_total"), 2);
  EXPECT_EQ(e.value("snapfs_reflink"), 0);
  EXPECT_EQ(e.types.count("snapfs_errors_total"), 0u) << text;
  EXPECT_EQ(e.types.count("snapfs_options_info"), 0u) << text;
  EXPECT_THROW(cli::render_prometheus(cli::parse_json("[]")), cli::Failure);
}

TEST(UnitStatus, ExpositionCheckerRejectsWhatAScraperWould) {
  const std::string head = "# HELP snapfs_x_total x\n# TYPE snapfs_x_total counter\n";
  ASSERT_TRUE(snapfs_exposition(head + "snapfs_x_total{mountpoint=\"/m\"} 1\n", "/m"));
  for (const std::string& bad : std::vector<std::string>{
           head + "snapfs_x_total{mountpoint=\"/m\"} 1",                  // no final newline
           "snapfs_x_total{mountpoint=\"/m\"} 1\n",                      // no TYPE
           head + "snapfs_x_total{mountpoint=\"/m\"}\n",                 // no value
           head + "snapfs_x_total{mountpoint=\"/m\"} one\n",             // not a number
           head + "snapfs_x_total{mountpoint=\"/m\\x\"} 1\n",            // bad escape
           head + "snapfs_x_total{mountpoint=/m} 1\n",                   // unquoted
           head + "snapfs_x_total{mountpoint=\"/m\"} 1\nsnapfs_x_total{mountpoint=\"/m\"} 2\n",
           head + "snapfs_x_total{mountpoint=\"/m\"} 1\n\n",             // empty line
           head + "snapfs_x_total{mountpoint=\"/n\"} 1\n",               // other mount point
           head + "snapfs_x_total 1\n",                                  // no mountpoint
           "# HELP snapfs_x x\n# TYPE snapfs_x counter\nsnapfs_x{mountpoint=\"/m\"} 1\n",
           "# HELP snapfs_y_total y\n# TYPE snapfs_y_total gauge\n"
           "snapfs_y_total{mountpoint=\"/m\"} 1\n",
           "# TYPE snapfs_x_total counter\nsnapfs_x_total{mountpoint=\"/m\"} 1\n",  // no HELP
           "# HELP x_total x\n# TYPE x_total counter\nx_total{mountpoint=\"/m\"} 1\n",
           head + "snapfs_x_total{mountpoint=\"/m\",a=\"1\"} 1\n# HELP snapfs_z z\n"
                  "# TYPE snapfs_z gauge\nsnapfs_z{mountpoint=\"/m\"} 1\n"
                  "snapfs_x_total{mountpoint=\"/m\",a=\"2\"} 1\n",       // not together
       }) {
    EXPECT_FALSE(snapfs_exposition(bad, "/m")) << bad;
  }
}

TEST(UnitStatus, PromtoolAcceptsThePrometheusOutput) {
  const auto r = promtool_check(cli::render_prometheus(cli::parse_json(kStatus)));
  if (!r) GTEST_SKIP() << "SKIPPED LOUDLY: promtool not found (Debian package prometheus)";
  EXPECT_EQ(r->code, 0) << r->describe();
}

TEST(UnitStatus, BadFormatIsAUsageError) {
  Scratch s;
  const auto m = s.mkdir("m");
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"status", "--format=xml", m},
           {"status", "--format", "JSON", m},
           {"status", "--format", m},
           {"status", "--format="},
           {"status", "--json", "--format=prometheus", m},
           {"status", "--format=prometheus", m, "extra"}}) {
    std::vector<std::string> argv{snapfs_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    const Outcome r = run(argv);
    EXPECT_EQ(r.code, ec::usage) << r.describe();
    EXPECT_TRUE(one_line_error(r));
  }
  const Outcome xml = run({snapfs_bin(), "status", "--format=xml", m});
  EXPECT_NE(xml.err.find("xml"), std::string::npos) << xml.describe();
  // Good formats reach the mount check: not a snapfs mount.
  for (const char* f : {"--format=text", "--format=json", "--format=prometheus"}) {
    const Outcome r = run({snapfs_bin(), "status", f, m});
    EXPECT_EQ(r.code, ec::not_snapfs) << r.describe();
    EXPECT_TRUE(one_line_error(r));
  }
  const Outcome help = run({snapfs_bin(), "status", "--help"});
  for (const char* word : {"--format", "text", "json", "prometheus", "--json"}) {
    EXPECT_NE(help.out.find(word), std::string::npos) << word << "\n" << help.describe();
  }
}

// --- Against the daemon ---------------------------------------------------

struct Mounted {
  Scratch s;
  fs::path b, m;
  Mounted() : b(s.mkdir("b")), m(s.mkdir("m")) { write_file(b / "f", "published\n"); }
};

pid_t daemon_of(const Scratch& s) {
  for (pid_t p : processes_mentioning(s.path().string())) {
    std::error_code e;
    if (fs::read_symlink("/proc/" + std::to_string(p) + "/exe", e) == fs::path(snapfs_bin()))
      return p;
  }
  return -1;
}

// The daemon exits after its umount (at most 10 s).
bool daemon_exits(const Scratch& s) {
  return wait_until([&] { return processes_mentioning(s.path().string()).empty(); }, 10s);
}

std::string number_of(const Json& doc, const char* key) {
  const Json* v = doc.find(key);
  return v != nullptr && v->type == Json::Type::number ? v->text : std::string("(missing)");
}

TEST(MountStatus, TellsTheOperatorWhatServesTheMountAndWhatItDid) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  const auto before = std::chrono::system_clock::now();
  const Outcome mo = run({snapfs_bin(), "mount", "-o", "durability=full", "--shared", "db/*",
                          d.b, d.m});
  ASSERT_EQ(mo.code, 0) << mo.describe();
  const pid_t daemon = daemon_of(d.s);
  ASSERT_GT(daemon, 0);

  // Work to count: a read, a commit of 6 bytes, a failed lookup, and a
  // conflict (f changed in B while open for writing through M).
  EXPECT_EQ(read_file(d.m / "f"), "published\n");
  write_file(d.m / "g", "12345\n");
  EXPECT_NE(::access((d.m / "nope").c_str(), F_OK), 0);
  const int w = ::open((d.m / "f").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(w, 0);
  ASSERT_EQ(::write(w, "mine", 4), 4);
  write_file(d.b / "f", "changed directly in B\n");
  EXPECT_NE(::close(w), 0) << "the losing close() succeeded";

  const Outcome sj = run({snapfs_bin(), "status", "--json", d.m});
  ASSERT_EQ(sj.code, 0) << sj.describe();
  const Json doc = cli::parse_json(sj.out);
  ASSERT_EQ(doc.type, Json::Type::object) << sj.out;
  // Who serves the mount.
  EXPECT_EQ(number_of(doc, "pid"), std::to_string(daemon)) << sj.out;
  const Outcome version = run({snapfs_bin(), "--version"});
  ASSERT_NE(doc.find("version"), nullptr) << sj.out;
  EXPECT_EQ("snapfs " + doc.find("version")->text + "\n", version.out) << sj.out;
  struct utsname un {};
  ASSERT_EQ(::uname(&un), 0);
  ASSERT_NE(doc.find("kernel"), nullptr) << sj.out;
  EXPECT_EQ(doc.find("kernel")->text, un.release);
  ASSERT_NE(doc.find("libfuse"), nullptr) << sj.out;
  EXPECT_EQ(doc.find("libfuse")->text.rfind("3.", 0), 0u) << sj.out;
  ASSERT_NE(doc.find("fuse_protocol"), nullptr) << sj.out;
  EXPECT_EQ(doc.find("fuse_protocol")->text.rfind("7.", 0), 0u) << sj.out;
  const double started = std::stod(number_of(doc, "started"));
  const double t0 = std::chrono::duration<double>(before.time_since_epoch()).count();
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_GE(started, t0 - 1) << sj.out;
  EXPECT_LE(started, now + 1) << sj.out;
  EXPECT_LE(std::stod(number_of(doc, "uptime_seconds")), now - t0 + 1) << sj.out;
  ASSERT_NE(doc.find("data_path"), nullptr) << sj.out;
  const std::string path = doc.find("data_path")->text;
  EXPECT_TRUE(path == "kernel passthrough" || path == "daemon (direct_io)") << sj.out;
  // The options in force, defaults resolved.
  const Json* o = doc.find("options");
  ASSERT_TRUE(o != nullptr && o->type == Json::Type::object) << sj.out;
  EXPECT_EQ(o->find("durability")->text, "full") << sj.out;
  EXPECT_EQ(o->find("on_conflict")->text, "fail") << sj.out;
  ASSERT_EQ(o->find("shared")->items.size(), 1u) << sj.out;
  EXPECT_EQ(o->find("shared")->items[0].text, "db/*") << sj.out;
  EXPECT_EQ(o->find("fsname")->text, d.b.string()) << sj.out;
  EXPECT_TRUE(o->find("allow_other")->boolean) << sj.out;
  EXPECT_GT(std::stol(o->find("max_user_opens")->text), 0) << sj.out;
  // What it did.
  EXPECT_EQ(number_of(doc, "commits"), "1") << sj.out;
  EXPECT_EQ(number_of(doc, "bytes_published"), "6") << sj.out;
  EXPECT_EQ(number_of(doc, "conflicts"), "1") << sj.out;
  EXPECT_EQ(number_of(doc, "conflicts_since_start"), "1") << sj.out;
  EXPECT_EQ(std::stol(number_of(doc, "passthrough_opens")) +
                std::stol(number_of(doc, "daemon_opens")),
            3)
      << sj.out;
  const Json* errors = doc.find("errors");
  ASSERT_TRUE(errors != nullptr && errors->type == Json::Type::object) << sj.out;
  ASSERT_NE(errors->find("ENOENT"), nullptr) << sj.out;
  EXPECT_GE(std::stol(errors->find("ENOENT")->text), 1) << sj.out;
  ASSERT_NE(errors->find("ESTALE"), nullptr) << "the lost conflict's reply: " << sj.out;
  EXPECT_GT(std::stol(number_of(doc, "descriptors")), 2) << sj.out;
  EXPECT_GT(std::stol(number_of(doc, "descriptor_limit")),
            std::stol(number_of(doc, "descriptors")))
      << sj.out;
  for (const char* key : {"own_joins", "own_routes", "own_misses", "warm_hits",
                          "warm_snapshots", "open_snapshots", "rebases"}) {
    EXPECT_NE(number_of(doc, key), "(missing)") << key << " in " << sj.out;
  }

  // The counters stay one small document (readers read it with a 1 KiB
  // buffer); what describes the daemon is a second one, and neither can be
  // set.
  char buf[1024];
  const ssize_t counters = ::getxattr(d.m.c_str(), "user.snapfs.status", buf, sizeof buf);
  EXPECT_GT(counters, 0) << std::strerror(errno);
  EXPECT_LT(counters, 640) << "user.snapfs.status grew";
  EXPECT_GT(::getxattr(d.m.c_str(), "user.snapfs.daemon", nullptr, 0), 0) << std::strerror(errno);
  EXPECT_EQ(::setxattr(d.m.c_str(), "user.snapfs.daemon", "{}", 2, 0), -1);
  EXPECT_EQ(errno, EPERM);

  // --format=json is --json; the default is key: value lines.
  const Outcome fj = run({snapfs_bin(), "status", "--format=json", d.m});
  ASSERT_EQ(fj.code, 0) << fj.describe();
  EXPECT_EQ(cli::parse_json(fj.out).find("pid")->text, std::to_string(daemon));
  const Outcome text = run({snapfs_bin(), "status", d.m});
  const Outcome ftext = run({snapfs_bin(), "status", "--format", "text", d.m});
  for (const Outcome* t : {&text, &ftext}) {
    ASSERT_EQ(t->code, 0) << t->describe();
    for (const std::string& line : std::vector<std::string>{
             "pid: " + std::to_string(daemon) + "\n", "options.durability: full\n",
             "commits: 1\n", "conflicts_since_start: 1\n", std::string("kernel: ") + un.release}) {
      EXPECT_NE(t->out.find(line), std::string::npos) << line << " missing: " << t->describe();
    }
    EXPECT_NE(t->out.find("\nstarted: 20"), std::string::npos) << t->describe();
    EXPECT_EQ(t->out.find('{'), std::string::npos) << "JSON in the text: " << t->describe();
  }

  const Outcome prom = run({snapfs_bin(), "status", "--format=prometheus", d.m});
  ASSERT_EQ(prom.code, 0) << prom.describe();
  EXPECT_TRUE(prom.err.empty()) << prom.describe();
  Exposition e;
  ASSERT_TRUE(snapfs_exposition(prom.out, d.m.string(), &e));
  EXPECT_EQ(e.value("snapfs_commits_total"), 1);
  EXPECT_EQ(e.value("snapfs_published_bytes_total"), 6);
  EXPECT_EQ(e.value("snapfs_conflicts_total"), 1);
  EXPECT_EQ(e.value("snapfs_conflicts_kept"), 1);
  EXPECT_GE(e.value("snapfs_errors_total", {{"errno", "ENOENT"}}).value_or(0), 1);
  EXPECT_EQ(e.value("snapfs_info", {{"pid", std::to_string(daemon)}}), 1) << prom.out;
  EXPECT_EQ(e.value("snapfs_options_info", {{"durability", "full"}, {"shared", "db/*"}}), 1)
      << prom.out;
  for (const char* gauge : {"snapfs_open_snapshots", "snapfs_warm_snapshots",
                            "snapfs_descriptors_held", "snapfs_uptime_seconds"}) {
    EXPECT_EQ(e.types[gauge], "gauge") << gauge << "\n" << prom.out;
  }
  for (const char* counter : {"snapfs_opens_total", "snapfs_rebases_total",
                              "snapfs_warm_hits_total", "snapfs_own_joins_total"}) {
    EXPECT_EQ(e.types[counter], "counter") << counter << "\n" << prom.out;
  }
  EXPECT_EQ((e.value("snapfs_opens_total", {{"data_path", "kernel"}}).value_or(-1) +
             e.value("snapfs_opens_total", {{"data_path", "daemon"}}).value_or(-1)),
            3)
      << prom.out;

  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
  EXPECT_TRUE(daemon_exits(d.s));
}

TEST(MountStatus, PromtoolAcceptsTheDaemonsMetrics) {
  SNAPFS_REQUIRE_DAEMON();
  if (!promtool_check("# HELP snapfs_probe_total p\n# TYPE snapfs_probe_total counter\n"))
    GTEST_SKIP() << "SKIPPED LOUDLY: promtool not found (Debian package prometheus)";
  Mounted d;
  ASSERT_EQ(run({snapfs_bin(), "mount", d.b, d.m}).code, 0);
  EXPECT_EQ(read_file(d.m / "f"), "published\n");
  EXPECT_NE(::access((d.m / "nope").c_str(), F_OK), 0);
  const Outcome prom = run({snapfs_bin(), "status", "--format=prometheus", d.m});
  ASSERT_EQ(prom.code, 0) << prom.describe();
  const auto r = promtool_check(prom.out);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 0) << r->describe() << "\n" << prom.out;
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
  EXPECT_TRUE(daemon_exits(d.s));
}

}  // namespace
}  // namespace snapfs::clitest
