#include "events.hpp"

#include <snapfs/fuse/printable.hpp>
#include "sys/sys.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <new>

namespace snapfs::fuse {

const char* event_name(EventKind k) noexcept {
  switch (k) {
    case EventKind::create: return "create";
    case EventKind::mkdir: return "mkdir";
    case EventKind::symlink: return "symlink";
    case EventKind::link: return "link";
    case EventKind::commit: return "commit";
    case EventKind::conflict: return "conflict";
    case EventKind::rename: return "rename";
    case EventKind::unlink: return "unlink";
    case EventKind::rmdir: return "rmdir";
  }
  return "unknown";
}

Dir dir_of(dev_t dev, ino_t ino, int fd) noexcept {
  Dir d{dev, ino, 0, 0};
  if (fd < 0) return d;
  if (auto born = core::sys::birth_time(fd)) {
    d.born_sec = born->tv_sec;
    d.born_nsec = born->tv_nsec;
  }
  return d;
}

Event event_by(pid_t tid, uid_t uid) noexcept {
  Event e;
  e.uid = uid;
  if (tid <= 0) return e;
  auto tgid = core::sys::tgid_of(tid);
  if (!tgid) return e;
  e.pid = *tgid;
  if (auto c = core::sys::command_of(*tgid)) e.command = std::move(*c);
  return e;
}

void EventLog::record(Event&& e) noexcept {
  std::shared_ptr<Event> p;
  try {
    p = std::make_shared<Event>(std::move(e));
  } catch (const std::bad_alloc&) {
  }
  std::lock_guard lk(mu_);
  const std::uint64_t seq = ++last_;
  if (!p) return;  // a hole: readers count it as dropped
  // Under the lock, so that seqs and times rise together.
  p->seq = seq;
  p->time = std::chrono::system_clock::now();
  try {
    if (ring_.size() >= capacity_) ring_.pop_front();
    ring_.push_back(std::move(p));
  } catch (const std::bad_alloc&) {
  }
}

EventLog::Slice EventLog::after(std::uint64_t after, std::size_t max) const {
  Slice s;
  s.events.reserve(std::min<std::size_t>(max, 1024));
  std::lock_guard lk(mu_);
  s.last = last_;
  // Seqs rise along the ring: find the first one after `after`.
  auto it = std::partition_point(ring_.begin(), ring_.end(),
                                 [&](const auto& p) { return p->seq <= after; });
  for (; it != ring_.end() && s.events.size() < max; ++it) s.events.push_back(*it);
  s.complete = it == ring_.end();
  return s;
}

void EventLog::skip() noexcept {
  std::lock_guard lk(mu_);
  ++last_;
}

std::uint64_t EventLog::last() const noexcept {
  std::lock_guard lk(mu_);
  return last_;
}

namespace {

std::string event_json(const Event& e, bool who) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      e.time.time_since_epoch())
                      .count();
  std::string j = fmt::format("{{\"seq\":{},\"time\":{}.{:06},\"event\":\"{}\",\"path\":", e.seq,
                              us / 1000000, us % 1000000, event_name(e.kind));
  j += json_string(e.path);
  if (!e.to.empty()) j += ",\"to\":" + json_string(e.to);
  if (e.size >= 0) j += ",\"size\":" + std::to_string(e.size);
  if (who) {
    j += ",\"pid\":" + std::to_string(e.pid) + ",\"uid\":" + std::to_string(e.uid);
    j += ",\"command\":" + json_string(e.command);
  }
  return j + "}";
}

}  // namespace

std::string events_json(const EventLog::Slice& slice, std::uint64_t after, pid_t daemon_pid,
                        std::size_t limit,
                        const std::function<bool(const std::string&, const Dir&)>& visible,
                        const std::function<bool(const Event&)>& show_who) {
  // The envelope around the list, with room for the largest numbers.
  constexpr std::size_t kEnvelope = 128;
  std::string list;
  std::uint64_t prev = after;  // the last seq passed
  std::uint64_t dropped = 0;
  bool stopped = false;
  for (const auto& e : slice.events) {
    std::string one;
    if (visible(e->path, e->dir) && (e->to.empty() || visible(e->to, e->to_dir)))
      one = (list.empty() ? "" : ",") + event_json(*e, show_who(*e));
    if (!one.empty() && list.size() + one.size() + kEnvelope > limit) {
      if (!list.empty()) {
        stopped = true;  // the rest next time
        break;
      }
      // Too large for any answer alone (paths of 4 KiB whose bytes need
      // escaping): passed over and counted, or the reader would ask for it
      // forever.
      dropped += 1;
      one.clear();
    }
    dropped += e->seq - prev - 1;
    prev = e->seq;
    list += one;
  }
  if (!stopped && slice.complete) {
    // Seqs up to the last one that are not kept: the ring moved past them.
    // (A cursor beyond the last, from another daemon, starts over here.)
    if (slice.last > prev) dropped += slice.last - prev;
    prev = slice.last;
  }
  const bool more = prev < slice.last;
  return fmt::format("{{\"pid\":{},\"next\":{},\"dropped\":{},\"more\":{},\"events\":[{}]}}",
                     daemon_pid, prev, dropped, more ? "true" : "false", list);
}

}  // namespace snapfs::fuse
