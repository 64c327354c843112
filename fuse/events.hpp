// The change feed: what was published, created, renamed and removed
// through M, in order, for `snapfs events` (docs/user-guide.md, "Watching a
// tree"). The kernel raises no inotify event for a FUSE file system's own
// changes, so programs that watch a tree ask the daemon instead.
//
// The daemon keeps the newest events in a bounded ring. Recording takes
// one short lock (a pointer pushed, the oldest dropped when full) and never
// waits for a reader; a reader copies pointers under the same lock and
// renders outside it. A reader that falls more than the ring behind finds
// a gap: how many events it missed is counted, never blocked on.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace snapfs::fuse {

enum class EventKind : std::uint8_t {
  create,    // a regular file (or a fifo, socket, device) made
  mkdir,
  symlink,
  link,      // `to`: the new name of the file at `path`
  commit,    // a version published at `path` (close, or a truncate by name)
  conflict,  // a commit that lost (docs/semantics.md#conflicts): nothing published
  rename,    // `path` is now `to`
  unlink,
  rmdir,
};

// "create", "mkdir", ... as the feed spells them.
const char* event_name(EventKind k) noexcept;

// A directory of B by identity: its inode number, and its birth time,
// since a file system gives a removed directory's number to the next
// inode it makes ({0, 0} where it keeps no birth time).
struct Dir {
  dev_t dev = 0;
  ino_t ino = 0;
  std::int64_t born_sec = 0;
  long born_nsec = 0;
  bool operator==(const Dir&) const = default;
};

struct Event {
  std::uint64_t seq = 0;  // 1, 2, ...: set by EventLog::record
  std::chrono::system_clock::time_point time;  // likewise
  EventKind kind = EventKind::commit;
  std::string path;        // relative to M
  std::string to;          // rename, link: the other path
  // The directories that held `path` and `to` when it was made: a reader
  // is shown the event only while those paths still lead to them.
  Dir dir, to_dir;
  std::int64_t size = -1;  // commit, conflict: bytes of the version; else -1
  pid_t pid = 0;           // the process that made it (thread group), 0 if unknown
  uid_t uid = 0;
  std::string command;     // its comm, "" if unknown
};

// The identity of a directory (dev, ino, and its birth time asked through
// `fd`, a handle of it; none if `fd` is -1).
Dir dir_of(dev_t dev, ino_t ino, int fd) noexcept;

// An event made by thread `tid` of a caller with `uid`: its pid is the
// thread group's and its command the group's comm (both left unknown if
// the thread is gone). A few small reads of /proc.
Event event_by(pid_t tid, uid_t uid) noexcept;

class EventLog {
public:
  explicit EventLog(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // Appends `e` with the next sequence number and the time now. Never
  // throws or blocks on a reader; an event that cannot be allocated is
  // counted as dropped for every reader (a gap), not silently lost.
  void record(Event&& e) noexcept;
  // An event that could not even be described (no memory): a hole in the
  // seqs, which readers count as dropped.
  void skip() noexcept;

  struct Slice {
    std::vector<std::shared_ptr<const Event>> events;  // seq > `after`, oldest first
    std::uint64_t last = 0;  // the newest seq handed out (0: none yet)
    bool complete = true;    // `events` holds every kept event after `after`
  };
  // The kept events with seq > `after`, at most `max` of them. The seqs
  // between that are missing were dropped (the ring moved past them). May
  // throw std::bad_alloc.
  Slice after(std::uint64_t after, std::size_t max) const;
  std::uint64_t last() const noexcept;

private:
  const std::size_t capacity_;
  mutable std::mutex mu_;
  // Oldest first; seqs increase, with a hole where an event could not be
  // allocated.
  std::deque<std::shared_ptr<const Event>> ring_;
  std::uint64_t last_ = 0;
};

// The feed's reply to a reader (user.snapfs.events.*, daemon.hpp): a JSON
// object {"pid","next","dropped","more","events":[...]} of at most `limit`
// bytes. `visible(path, dir)`: whether the reader may see an event naming
// `path` in directory `dir`; `show_who(e)`: whether it may see who made `e`
// (pid, uid, command). Events it may not see are passed over: "next"
// still moves past them. "dropped" counts the events after `after` it is
// not shown for another reason: the ring no longer keeps them, or one
// alone does not fit in `limit`. May throw std::bad_alloc.
std::string events_json(const EventLog::Slice& slice, std::uint64_t after, pid_t daemon_pid,
                        std::size_t limit,
                        const std::function<bool(const std::string&, const Dir&)>& visible,
                        const std::function<bool(const Event&)>& show_who);

}  // namespace snapfs::fuse
