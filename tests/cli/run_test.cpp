// `snapfs run`: a command and everything it starts see M through a FUSE
// connection of their own, served by M's daemon (docs/design-run.md), as
// root, against the real daemon. Label `mount`; every test tears down its
// mounts, runs and commands in Scratch.
#include "cli_support.hpp"

#include "exit_codes.hpp"
#include "report.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace snapfs::clitest {
namespace {

namespace ec = snapfs::cli::exit_code;

struct Mounted {
  Scratch s;
  fs::path b, m;
  Mounted() : b(s.mkdir("b")), m(s.mkdir("m")) {}
  bool mount() {
    const Outcome r = run({snapfs_bin(), "mount", b, m});
    EXPECT_EQ(r.code, 0) << r.describe();
    return r.code == 0;
  }
};

std::string field(const cli::Json& j, const char* key) {
  const cli::Json* v = j.find(key);
  return v == nullptr ? std::string("<none>") : v->text;
}

// The merged status and daemon JSON of M, as the caller sees it.
cli::Json status_of(const fs::path& m) {
  const Outcome r = run({snapfs_bin(), "status", "--json", m});
  EXPECT_EQ(r.code, 0) << r.describe();
  return cli::parse_json(r.out);
}

// The exit code of `pid` (-1: killed, or still running after 10 s).
int exit_code_of(pid_t pid) {
  const auto st = wait_exit(pid, 10s);
  return st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
}

std::size_t run_connections(const fs::path& m) {
  return std::stoul(field(status_of(m), "run_connections"));
}

TEST(MountRun, TheCommandSeesMThroughAConnectionOfItsOwn) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  ASSERT_TRUE(d.mount());
  write_file(d.m / "f", "published\n");
  // Inside: M at the same path is the run's mount, and serves M's tree.
  const Outcome mi = run({snapfs_bin(), "run", d.m, "--", "cat", "/proc/self/mountinfo"});
  ASSERT_EQ(mi.code, 0) << mi.describe();
  std::optional<MountLine> top;
  for (const MountLine& l : parse_mounts(mi.out))
    if (l.mountpoint == d.m.string()) top = l;
  ASSERT_TRUE(top) << mi.out;
  EXPECT_EQ(top->fstype, "fuse.snapfs");
  EXPECT_EQ(top->source.rfind("snapfs-run-", 0), 0u) << top->source;
  const Outcome cat = run({snapfs_bin(), "run", d.m, "--", "cat", (d.m / "f").string()});
  ASSERT_EQ(cat.code, 0) << cat.describe();
  EXPECT_EQ(cat.out, "published\n");
  // The daemon says which run a connection serves; reads there go through
  // the kernel as on M.
  const Outcome st =
      run({snapfs_bin(), "run", d.m, "--", snapfs_bin(), "status", "--json", d.m.string()});
  ASSERT_EQ(st.code, 0) << st.describe();
  const cli::Json inside = cli::parse_json(st.out);
  const cli::Json* r = inside.find("run");
  ASSERT_TRUE(r && r->type == cli::Json::Type::object) << st.out;
  EXPECT_NE(field(*r, "id"), "<none>");
  EXPECT_EQ(field(inside, "data_path"), field(status_of(d.m), "data_path")) << st.out;
  // Outside, nothing changed: M is B's mount, and no run is left.
  ASSERT_TRUE(mount_at(d.m));
  EXPECT_EQ(mount_at(d.m)->source, d.b.string());
  EXPECT_EQ(status_of(d.m).find("run")->type, cli::Json::Type::null);
  EXPECT_TRUE(wait_until([&] { return run_connections(d.m) == 0; }))
      << "the run's connection ends with its last process";
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

TEST(MountRun, ChangesThroughTheRunAreServedByMsDaemon) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  ASSERT_TRUE(d.mount());
  // Created, written and committed at close through the run's connection
  // (the run's own view comes in a later slice; today it is M's).
  const Outcome w = run({snapfs_bin(), "run", d.m, "--", "sh", "-c",
                         "echo one > " + (d.m / "out").string() + " && mkdir " +
                             (d.m / "dir").string() + " && cat " + (d.m / "out").string()});
  ASSERT_EQ(w.code, 0) << w.describe();
  EXPECT_EQ(w.out, "one\n");
  EXPECT_EQ(read_file(d.b / "out"), "one\n");
  EXPECT_TRUE(fs::is_directory(d.b / "dir"));
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

TEST(MountRun, ItsExitStatusIsTheCommands) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  ASSERT_TRUE(d.mount());
  EXPECT_EQ(run({snapfs_bin(), "run", d.m, "--", "sh", "-c", "exit 7"}).code, 7);
  EXPECT_EQ(run({snapfs_bin(), "run", d.m, "--", "sh", "-c", "kill -TERM $$"}).code,
            128 + SIGTERM);
  // Arguments after CMD are CMD's, options included.
  const Outcome e = run({snapfs_bin(), "run", d.m, "--", "echo", "-n", "--json", "x"});
  EXPECT_EQ(e.code, 0) << e.describe();
  EXPECT_EQ(e.out, "--json x");
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

TEST(MountRun, ACommandThatCannotBeRunIs127Or126WithOneLine) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  ASSERT_TRUE(d.mount());
  const Outcome missing = run({snapfs_bin(), "run", d.m, "--", "no-such-command-snapfs"});
  EXPECT_EQ(missing.code, 127) << missing.describe();
  EXPECT_TRUE(one_line_error(missing));
  write_file(d.s / "not-executable", "#!/bin/sh\n");
  const Outcome noexec = run({snapfs_bin(), "run", d.m, "--", (d.s / "not-executable").string()});
  EXPECT_EQ(noexec.code, 126) << noexec.describe();
  EXPECT_TRUE(one_line_error(noexec));
  EXPECT_TRUE(wait_until([&] { return run_connections(d.m) == 0; }));
  EXPECT_EQ(run({snapfs_bin(), "runs", "--json", d.m}).out, "[]\n");
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

TEST(MountRun, BadInputIsAOneLineError) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  const Outcome not_mounted = run({snapfs_bin(), "run", d.m, "--", "true"});
  EXPECT_EQ(not_mounted.code, ec::not_snapfs) << not_mounted.describe();
  EXPECT_TRUE(one_line_error(not_mounted));
  ASSERT_TRUE(d.mount());
  // Runs do not nest.
  const Outcome nested =
      run({snapfs_bin(), "run", d.m, "--", snapfs_bin(), "run", d.m.string(), "--", "true"});
  EXPECT_EQ(nested.code, ec::not_permitted) << nested.describe();
  EXPECT_NE(nested.err.find("runs do not nest"), std::string::npos) << nested.describe();
  // An ordinary user of a root mount may not start one (yet).
  RunOptions as_user;
  as_user.uid = 61001;
  as_user.gid = 61001;
  const Outcome user = run({snapfs_bin(), "run", d.m, "--", "true"}, as_user);
  EXPECT_EQ(user.code, ec::not_permitted) << user.describe();
  EXPECT_TRUE(one_line_error(user));
  EXPECT_EQ(run({snapfs_bin(), "runs", "--json", d.m}).out, "[]\n") << "nothing was begun";
  // The daemon refuses other users itself, not only the socket's mode: with
  // the socket opened up to everyone, uid 61001 is still answered EACCES.
  const fs::path control = field(status_of(d.m), "control");
  ASSERT_EQ(::chmod((d.b / ".snapfs").c_str(), 0755), 0);
  ASSERT_EQ(::chmod(control.parent_path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(control.c_str(), 0777), 0);
  const Outcome asked = run({snapfs_bin(), "runs", d.m}, as_user);
  EXPECT_EQ(asked.code, ec::not_permitted) << asked.describe();
  EXPECT_NE(asked.err.find("not permitted"), std::string::npos) << asked.describe();
  EXPECT_EQ(::chmod((d.b / ".snapfs").c_str(), 0700), 0);
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

// A run whose command waits for `go` (in the scratch directory, outside M)
// after creating `ready`.
struct Waiting {
  Mounted& d;
  fs::path ready, go, log;
  pid_t pid = -1;
  Waiting(Mounted& mounted, const std::string& after)
      : d(mounted), ready(d.s / "ready"), go(d.s / "go"), log(d.s / "run.log") {
    pid = spawn({snapfs_bin(), "run", d.m, "--", "sh", "-c",
                 "trap 'exit 42' TERM; touch " + ready.string() + "; while [ ! -e " +
                     go.string() + " ]; do sleep 0.02; done; " + after},
                log);
  }
};

TEST(MountRun, RunsListsALiveRunUntilItEnds) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  ASSERT_TRUE(d.mount());
  Waiting w(d, "exit 3");
  ASSERT_TRUE(wait_until([&] { return fs::exists(w.ready); })) << read_file(w.log);
  const Outcome list = run({snapfs_bin(), "runs", "--json", d.m});
  ASSERT_EQ(list.code, 0) << list.describe();
  const cli::Json runs = cli::parse_json(list.out);
  ASSERT_EQ(runs.items.size(), 1u) << list.out;
  EXPECT_EQ(field(runs.items[0], "pid"), std::to_string(w.pid));
  EXPECT_EQ(field(runs.items[0], "uid"), "0");
  ASSERT_NE(runs.items[0].find("command"), nullptr);
  EXPECT_EQ(runs.items[0].find("command")->items.at(0).text, "sh");
  const Outcome table = run({snapfs_bin(), "runs", d.m});
  EXPECT_NE(table.out.find("sh -c"), std::string::npos) << table.describe();
  EXPECT_EQ(std::stoul(field(status_of(d.m), "runs")), 1u);
  write_file(w.go, "");
  EXPECT_EQ(exit_code_of(w.pid), 3);
  EXPECT_EQ(run({snapfs_bin(), "runs", "--json", d.m}).out, "[]\n");
  EXPECT_TRUE(wait_until([&] { return run_connections(d.m) == 0; }));
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

TEST(MountRun, SignalsToSnapfsRunReachTheCommand) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  ASSERT_TRUE(d.mount());
  Waiting w(d, "exit 0");
  ASSERT_TRUE(wait_until([&] { return fs::exists(w.ready); })) << read_file(w.log);
  ASSERT_EQ(::kill(w.pid, SIGTERM), 0);
  EXPECT_EQ(exit_code_of(w.pid), 42) << read_file(w.log);
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

TEST(MountRun, WhenSnapfsRunIsKilledItsCommandLosesM) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  ASSERT_TRUE(d.mount());
  write_file(d.m / "f", "x");
  const fs::path out = d.s / "out", status = d.s / "status";
  Waiting w(d, "cat " + (d.m / "f").string() + " > " + out.string() + " 2>&1; echo $? > " +
                   status.string());
  ASSERT_TRUE(wait_until([&] { return fs::exists(w.ready); })) << read_file(w.log);
  ASSERT_EQ(::kill(w.pid, SIGKILL), 0);
  const auto killed = wait_exit(w.pid, 10s);
  ASSERT_TRUE(killed && WIFSIGNALED(*killed));
  EXPECT_TRUE(wait_until([&] { return run({snapfs_bin(), "runs", "--json", d.m}).out == "[]\n"; }))
      << "the run is over once its snapfs run is gone";
  // The command goes on (nobody killed it), but M is gone for it.
  write_file(w.go, "");
  ASSERT_TRUE(wait_until([&] { return read_file(status).ends_with("\n"); })) << read_file(out);
  EXPECT_EQ(read_file(status), "1\n") << read_file(out);
  EXPECT_NE(read_file(out).find("Transport endpoint is not connected"), std::string::npos)
      << read_file(out);
  EXPECT_TRUE(wait_until([&] { return run_connections(d.m) == 0; }));
  EXPECT_EQ(read_file(d.m / "f"), "x") << "M itself is unaffected";
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

TEST(MountRun, UnmountingMEndsItsRunsAndTheDaemonExits) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  ASSERT_TRUE(d.mount());
  const fs::path out = d.s / "out";
  Waiting w(d, "ls " + d.m.string() + " > " + out.string() + " 2>&1; exit 5");
  ASSERT_TRUE(wait_until([&] { return fs::exists(w.ready); })) << read_file(w.log);
  const Outcome u = run({snapfs_bin(), "umount", d.m});
  EXPECT_EQ(u.code, 0) << u.describe();
  EXPECT_EQ(u.err.find("has not exited"), std::string::npos) << u.describe();
  EXPECT_FALSE(is_snapfs_mount(d.m));
  write_file(w.go, "");
  EXPECT_EQ(exit_code_of(w.pid), 5) << read_file(w.log);
  EXPECT_NE(read_file(out).find("Transport endpoint is not connected"), std::string::npos)
      << read_file(out);
}

// Whoever may write B's top directory can put a socket of their own where
// the daemon's was: snapfs run talks only to the process that serves M.
TEST(MountRun, ASocketOfAnotherProcessAtTheControlPathIsRefused) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  ASSERT_TRUE(d.mount());
  const fs::path control = field(status_of(d.m), "control");
  ASSERT_TRUE(fs::exists(control)) << control;
  const fs::path aside = control.string() + ".aside";
  fs::rename(control, aside);
  const int fake = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  ASSERT_GE(fake, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  ASSERT_LT(control.string().size(), sizeof a.sun_path);
  std::memcpy(a.sun_path, control.c_str(), control.string().size() + 1);
  ASSERT_EQ(::bind(fake, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fake, 4), 0);
  RunOptions quick;
  quick.timeout = 10s;
  const Outcome r = run({snapfs_bin(), "run", d.m, "--", "true"}, quick);
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_TRUE(one_line_error(r));
  EXPECT_NE(r.err.find("is not the control socket"), std::string::npos) << r.describe();
  const Outcome list = run({snapfs_bin(), "runs", d.m}, quick);
  EXPECT_EQ(list.code, 1) << list.describe();
  ::close(fake);
  fs::remove(control);
  fs::rename(aside, control);
  EXPECT_EQ(run({snapfs_bin(), "run", d.m, "--", "true"}).code, 0);
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

// A run that ends with directories still open (its snapfs run killed)
// leaves nothing held in the daemon.
TEST(MountRun, AnInterruptedRunsOpenDirectoriesAreFreed) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  ASSERT_TRUE(d.mount());
  ASSERT_EQ(::mkdir((d.m / "sub").c_str(), 0755), 0);
  auto descriptors = [&] { return std::stoul(field(status_of(d.m), "descriptors")); };
  const auto before = descriptors();
  for (int i = 0; i < 5; ++i) {
    const Outcome r = run({snapfs_bin(), "run", d.m, "--", "sh", "-c",
                           "exec 3<" + (d.m / "sub").string() + "; kill -KILL $PPID; sleep 0.2"});
    EXPECT_EQ(r.signal, SIGKILL) << r.describe();
  }
  EXPECT_TRUE(wait_until([&] { return run_connections(d.m) == 0; }));
  EXPECT_TRUE(wait_until([&] { return descriptors() <= before; }))
      << "before " << before << ", now " << descriptors();
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

// However long the commands, `snapfs runs` gets one reply.
TEST(MountRun, RunsShowsLongCommandsCut) {
  SNAPFS_REQUIRE_DAEMON();
  Mounted d;
  ASSERT_TRUE(d.mount());
  const std::string big(40000, 'x');
  std::vector<pid_t> pids;
  for (int i = 0; i < 2; ++i)
    pids.push_back(spawn({snapfs_bin(), "run", d.m, "--", "sh", "-c",
                          "while [ ! -e " + (d.s / "go").string() + " ]; do sleep 0.02; done", big},
                         d.s / ("run" + std::to_string(i) + ".log")));
  ASSERT_TRUE(wait_until([&] {
    const Outcome l = run({snapfs_bin(), "runs", "--json", d.m});
    return l.code == 0 && cli::parse_json(l.out).items.size() == 2;
  })) << run({snapfs_bin(), "runs", "--json", d.m}).describe();
  const Outcome l = run({snapfs_bin(), "runs", "--json", d.m});
  const cli::Json runs = cli::parse_json(l.out);
  for (const auto& r : runs.items) {
    const auto& cmd = r.find("command")->items;
    ASSERT_FALSE(cmd.empty());
    EXPECT_EQ(cmd.front().text, "sh");
    EXPECT_EQ(cmd.back().text, "...") << "a command longer than a KiB is cut, and says so";
  }
  EXPECT_EQ(run({snapfs_bin(), "runs", d.m}).code, 0);
  write_file(d.s / "go", "");
  for (pid_t p : pids) EXPECT_EQ(exit_code_of(p), 0);
  EXPECT_EQ(run({snapfs_bin(), "umount", d.m}).code, 0);
}

}  // namespace
}  // namespace snapfs::clitest
