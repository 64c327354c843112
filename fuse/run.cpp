// The control socket and the runs' connections (run.hpp).
#include "run.hpp"

#include "daemon_state.hpp"
#include "handle.hpp"
#include "session.hpp"
#include "sys/sys.hpp"

#include <snapfs/fuse/control.hpp>
#include <snapfs/fuse/printable.hpp>

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace snapfs::fuse {

namespace sys = core::sys;

namespace {

// Wakes a session's loop thread out of its wait (below). Nothing else in
// the daemon uses SIGUSR2.
constexpr int kWake = SIGUSR2;
void on_wake(int) {}

std::string error_reply(int err, const std::string& message) {
  return control::join({"error", std::to_string(err), message});
}

// Whether `fd` is a descriptor of /dev/fuse (character device 10:229).
bool is_fuse_device(int fd) noexcept {
  auto st = sys::fstat(fd);
  return st && S_ISCHR(st->st_mode) && major(st->st_rdev) == 10 && minor(st->st_rdev) == 229;
}

std::string printable_argv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    out += printable(a);
  }
  return out;
}

}  // namespace

Runs::~Runs() { stop(); }

bool Runs::start() {
  if (!d_.daemons_dir.valid() || d_.id.empty()) {
    d_.log->info("snapfs: no control socket (B/{} is not available): snapfs run is not served",
                 kMetaDir);
    return false;
  }
  const std::string name = d_.id + ".control";
  // SECURITY: 0600 in B/.snapfs (0700): only the daemon's owner and root
  // reach it, and every peer is checked again by SO_PEERCRED (serve_client).
  auto fd = sys::seqpacket_listen(d_.daemons_dir.get(), name.c_str(), 0600, 16);
  if (!fd) {
    d_.log->info("snapfs: no control socket in B/{}/daemons ({}): snapfs run is not served",
                 kMetaDir, fd.error().message());
    return false;
  }
  struct sigaction sa {};
  sa.sa_handler = on_wake;
  // No SA_RESTART: the futex wait under sem_wait(3) would be restarted
  // and the loop never see the signal. Only loop threads get it, and
  // end_session() stops sending once the loop has returned.
  sigemptyset(&sa.sa_mask);
  ::sigaction(kWake, &sa, nullptr);
  listen_fd_ = fd->release();
  path_ = d_.cfg.backing + "/" + kMetaDir + "/daemons/" + name;
  acceptor_ = std::thread([this] { accept_loop(); });
  return true;
}

void Runs::stop() noexcept {
  if (stopping_.exchange(true)) return;
  if (listen_fd_ == -1) return;
  // shutdown(2) makes a listening socket's accept(2) return EINVAL.
  ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  listen_fd_ = -1;
  (void)sys::unlinkat(d_.daemons_dir.get(), (d_.id + ".control").c_str(), 0);
  // Every `snapfs run` still talking to us: its recv(2) sees the end, and
  // it ends its run's connection (serve_client).
  std::list<std::unique_ptr<Client>> clients;
  std::list<std::unique_ptr<Session>> sessions;
  {
    std::lock_guard lk(mu_);
    for (auto& c : clients_)
      if (c->fd != -1) ::shutdown(c->fd, SHUT_RDWR);
    clients.swap(clients_);
  }
  for (auto& c : clients) c->thread.join();
  {
    std::lock_guard lk(mu_);
    sessions.swap(sessions_);
  }
  // Connections of runs that ended while a process they started still
  // used M.
  for (auto& s : sessions) end_session(*s);
}

std::size_t Runs::live() const {
  std::lock_guard lk(mu_);
  return runs_.size();
}

std::size_t Runs::connections() const {
  std::lock_guard lk(mu_);
  std::size_t n = 0;
  for (const auto& s : sessions_) if (!s->done.load(std::memory_order_acquire)) ++n;
  return n;
}

std::string Runs::run_json(const Conn& c) {
  return c.run_id == 0 ? std::string("null") : "{\"id\":" + std::to_string(c.run_id) + "}";
}

std::string Runs::list_json(uid_t viewer) const {
  // One reply is at most control::kMessageMax bytes: each run's command
  // and directory are cut to their first KiB (a "..." argument says so),
  // and runs that would not fit are left out (the newest).
  constexpr std::size_t kField = 1024, kRoom = control::kMessageMax - 2 * kField - 256;
  auto cut = [](const std::string& s) {
    return s.size() <= kField ? json_string(s) : json_string(s.substr(0, kField) + "...");
  };
  std::string j = "[";
  std::lock_guard lk(mu_);
  for (const Run& r : runs_) {
    // SECURITY: a user sees their own runs' command lines only.
    if (viewer != 0 && viewer != r.uid) continue;
    std::string e = "{\"id\":" + std::to_string(r.id) + ",\"uid\":" + std::to_string(r.uid) +
                    ",\"pid\":" + std::to_string(r.pid) + ",\"command\":[";
    std::size_t used = 0, i = 0;
    for (; i < r.argv.size() && used + r.argv[i].size() <= kField; ++i) {
      e += (i ? "," : "") + json_string(r.argv[i]);
      used += r.argv[i].size();
    }
    if (i == 0 && !r.argv.empty()) e += cut(r.argv[0]), ++i;
    if (i < r.argv.size()) e += ",\"...\"";
    const auto since = std::chrono::duration<double>(r.start.time_since_epoch()).count();
    e += "],\"cwd\":" + cut(r.cwd) + ",\"start\":" + fmt::format("{:.3f}", since) +
         ",\"state\":\"live\"}";
    if (j.size() + e.size() > kRoom) break;
    if (j.size() > 1) j += ',';
    j += e;
  }
  return j + "]";
}

void Runs::reap_locked(std::list<std::unique_ptr<Session>>& dead_sessions,
                       std::list<std::unique_ptr<Client>>& dead_clients) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    auto next = std::next(it);
    if ((*it)->done.load(std::memory_order_acquire))
      dead_sessions.splice(dead_sessions.end(), sessions_, it);
    it = next;
  }
  for (auto it = clients_.begin(); it != clients_.end();) {
    auto next = std::next(it);
    if ((*it)->done.load(std::memory_order_acquire))
      dead_clients.splice(dead_clients.end(), clients_, it);
    it = next;
  }
}

void Runs::accept_loop() noexcept {
  while (!stopping_.load()) {
    auto fd = sys::accept(listen_fd_);
    if (!fd) {
      if (stopping_.load() || fd.error().value() == EINVAL) break;
      d_.log->debug("snapfs: control socket: {}", fd.error().message());
      if (fd.error().value() == EMFILE || fd.error().value() == ENFILE)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    std::list<std::unique_ptr<Session>> dead_sessions;
    std::list<std::unique_ptr<Client>> dead_clients;
    try {
      auto cl = std::make_unique<Client>();
      Client& ref = *cl;
      std::lock_guard lk(mu_);
      reap_locked(dead_sessions, dead_clients);
      ref.fd = fd->get();
      clients_.push_back(std::move(cl));
      try {
        ref.thread = std::thread([this, &ref] { serve_client(ref); });
      } catch (...) {
        clients_.pop_back();
        throw;
      }
      (void)fd->release();  // the thread closes it at its end
    } catch (const std::exception& e) {
      // `fd` still holds the descriptor: closed, the peer sees the end.
      d_.log->warn("snapfs: control socket: {}", e.what());
    }
    for (auto& s : dead_sessions) s->loop.join();
    for (auto& c : dead_clients) c->thread.join();
  }
}

void Runs::serve_client(Client& cl) noexcept {
  std::uint64_t run_id = 0;
  bool attached = false, ended = false;
  try {
    auto cred = sys::peer_credentials(cl.fd);
    // SECURITY: a run is a connection of this daemon, served with its
    // rights: only root and the user the daemon runs as may ask for one.
    const bool permitted = cred && (cred->uid == 0 || cred->uid == d_.own_uid);
    for (;;) {
      auto msg = sys::recv_message(cl.fd, control::kMessageMax);
      if (!msg || msg->eof) break;
      const auto f = control::split(msg->data);
      const std::string verb = f.empty() ? std::string() : f[0];
      std::string reply;
      if (!permitted) {
        reply = error_reply(EACCES, "not permitted: runs are for root and the user who mounted M");
      } else if (verb == "begin" && run_id == 0 && f.size() >= 3) {
        Run r;
        r.id = next_id_.fetch_add(1);
        r.uid = cred->uid;
        r.pid = cred->pid;
        r.cwd = f[1];
        r.argv.assign(f.begin() + 2, f.end());
        r.start = std::chrono::system_clock::now();
        run_id = r.id;
        d_.log->info("snapfs: run {} begun by pid {} (uid {}): {}", r.id, r.pid, r.uid,
                     printable_argv(r.argv));
        {
          std::lock_guard lk(mu_);
          runs_.push_back(std::move(r));
        }
        reply = control::join({"ok", std::to_string(run_id)});
      } else if (verb == "attach" && run_id != 0 && !attached && msg->fd.valid()) {
        std::string why;
        if (!is_fuse_device(msg->fd.get())) {
          reply = error_reply(EINVAL, "attach: the descriptor is not /dev/fuse");
        } else if (attach(run_id, msg->fd.release(), why)) {
          attached = true;
          reply = "ok";
        } else {
          reply = error_reply(EIO, "attach: " + why);
        }
      } else if (verb == "end" && run_id != 0 && !ended) {
        ended = true;
        d_.log->info("snapfs: run {} ended (status {})", run_id, f.size() > 1 ? f[1] : "?");
        std::lock_guard lk(mu_);
        runs_.remove_if([&](const Run& r) { return r.id == run_id; });
        reply = "ok";
      } else if (verb == "list") {
        reply = control::join({"ok", list_json(cred->uid)});
      } else {
        reply = error_reply(EINVAL, "unexpected request '" + printable(verb) + "'");
      }
      if (!sys::send_message(cl.fd, reply)) break;
    }
  } catch (const std::exception& e) {
    d_.log->warn("snapfs: control socket: {}", e.what());
  }
  if (run_id != 0 && !ended) {
    // Its `snapfs run` is gone (killed, or the daemon is stopping): the
    // run's processes lose M (ENOTCONN), so nothing they still do lands.
    d_.log->warn("snapfs: run {} interrupted: its snapfs run went away", run_id);
    // A session is ended, joined and freed by whoever takes it out of
    // sessions_ (here, reap_locked() or stop()).
    std::list<std::unique_ptr<Session>> mine;
    {
      std::lock_guard lk(mu_);
      runs_.remove_if([&](const Run& r) { return r.id == run_id; });
      for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
        if ((*it)->run_id == run_id) {
          mine.splice(mine.end(), sessions_, it);
          break;
        }
      }
    }
    for (auto& s : mine) end_session(*s);
  }
  {
    // Under mu_: stop() shuts down only descriptors still open.
    std::lock_guard lk(mu_);
    ::close(std::exchange(cl.fd, -1));
  }
  cl.done.store(true, std::memory_order_release);
}

bool Runs::attach(std::uint64_t run_id, int devfd, std::string& why) {
  core::UniqueFd dev(devfd);
  auto conn = make_conn(d_);
  if (!conn) {
    why = "no descriptor of B's root";
    return false;
  }
  conn->run_id = run_id;
  std::string arg0 = "snapfs", arg1 = "-d";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  fuse_args args = FUSE_ARGS_INIT(d_.cfg.debug ? 2 : 1, argv);
  const fuse_lowlevel_ops& ops = lowlevel_ops();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, conn.get());
  fuse_opt_free_args(&args);
  if (!se) {
    why = "fuse_session_new failed";
    return false;
  }
  // The descriptor is already mounted at M (in the run's namespace):
  // libfuse takes "/dev/fd/N" as that descriptor, and owns it from here.
  const std::string dev_path = "/dev/fd/" + std::to_string(dev.get());
  if (fuse_session_mount(se, dev_path.c_str()) != 0) {
    fuse_session_destroy(se);
    why = "fuse_session_mount failed";
    return false;
  }
  (void)dev.release();
  conn->notifier.attach(se);
  // Not served after all: nothing of it stays (the descriptor closes with
  // the session; the run's mount then answers ENOTCONN).
  auto abandon = [&](std::string reason) {
    end_serving(*conn);
    conn->notifier.attach(nullptr);
    fuse_session_destroy(se);
    why = std::move(reason);
    return false;
  };
  try {
    start_serving(*conn, se);
    auto s = std::make_unique<Session>();
    s->run_id = run_id;
    s->se = se;
    Session& ref = *s;
    std::lock_guard lk(mu_);
    // stop() has taken the list already: this one would never be ended.
    if (stopping_.load()) return abandon("the daemon is stopping");
    sessions_.push_back(std::move(s));
    try {
      ref.conn = std::move(conn);
      ref.loop = std::thread([this, &ref] { serve_session(ref); });
    } catch (...) {
      conn = std::move(ref.conn);
      sessions_.pop_back();
      throw;
    }
    return true;
  } catch (const std::exception& e) {
    return abandon(e.what());
  }
}

void Runs::serve_session(Session& s) noexcept {
  const int ret = loop(*s.conn, s.se);
  s.loop_returned.store(true, std::memory_order_release);  // end_session stops waking it
  d_.log->info("snapfs: the connection of run {} ended ({})", s.run_id, ret);
  end_serving(*s.conn);
  s.conn->notifier.attach(nullptr);  // before the session goes (notifier.hpp)
  fuse_session* se = nullptr;
  {
    std::lock_guard lk(mu_);
    se = std::exchange(s.se, nullptr);
  }
  // Closes the descriptor: a process of the run still using M gets
  // ENOTCONN from now on.
  fuse_session_destroy(se);
  s.conn.reset();
  s.done.store(true, std::memory_order_release);
}

void Runs::end_session(Session& s) noexcept {
  // fuse_session_loop_mt() waits in sem_wait(3) until a worker ends or a
  // signal interrupts it, then checks fuse_session_exited() and cancels its
  // workers (at their read of /dev/fuse: a request being handled is never
  // cancelled). A signal sent just before the wait is lost, so it is sent
  // again until the loop has returned.
  for (;;) {
    {
      std::lock_guard lk(mu_);
      if (!s.se || s.loop_returned.load(std::memory_order_acquire)) break;
      fuse_session_exit(s.se);
      pthread_kill(s.loop.native_handle(), kWake);
    }
    if (s.done.load(std::memory_order_acquire)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (s.loop.joinable()) s.loop.join();
}

}  // namespace snapfs::fuse
