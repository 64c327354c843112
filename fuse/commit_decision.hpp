// What a close of a snapshot must do (docs/design-fuse.md "Commit",
// docs/design-conflicts.md): the rules of commit() (commit.cpp), as pure
// functions of facts the caller gathered. No syscall, no Daemon, no lock:
// tests/unit/commit_decision_test.cpp checks every rule.
//
// The decision has two halves because the facts of the second exist only
// under the path's commit stripe, after the data sync and the freeze of a
// passthrough snapshot: decide_close() (whether this close publishes) and
// decide_publish() (how, given what B/p holds now). Facts that cost a
// syscall or an O(size) compare are callables, asked only when a rule needs
// them and in the order the rules are written.
#pragma once

#include <snapfs/fuse/daemon.hpp>

#include <sys/stat.h>
#include <sys/types.h>

#include <concepts>
#include <ctime>
#include <optional>

namespace snapfs::fuse {

// The published file a snapshot was taken from (or last published by this
// description): its identity and version (docs/design-conflicts.md).
// Commits through M always publish a new inode; a change made in place
// directly in B changes size or mtime. ctime (chmod, chown, xattrs) is not
// compared: metadata changes are not conflicts.
struct Base {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  struct timespec mtime {};

  void set(const struct stat& st) noexcept {
    dev = st.st_dev;
    ino = st.st_ino;
    size = st.st_size;
    mtime = st.st_mtim;
  }
  bool same(const struct stat& st) const noexcept {
    return st.st_dev == dev && st.st_ino == ino && st.st_size == size &&
           st.st_mtim.tv_sec == mtime.tv_sec && st.st_mtim.tv_nsec == mtime.tv_nsec;
  }
};

enum class CommitStep {
  nothing,           // this close publishes nothing
  defer_truncation,  // only an O_TRUNC so far: announce it, RELEASE publishes it
  publish,           // decide_close: this close publishes (decide_publish says how);
                     // decide_publish: B/p is still the base, publish over it
  rebase,            // B/p changed, the description only appended: our tail onto B/p
  overwrite,         // B/p changed, --on-conflict=overwrite: publish anyway
  conflict,          // B/p changed, --on-conflict=fail: keep ours in conflicts/
};

// What a FLUSH or RELEASE knows about the handle (Version's fields, read
// under its mu) and about itself.
struct CloseFacts {
  bool dirty = false;              // Version::dirty (after marking `late` changes)
  bool late = false;               // a passthrough snapshot changed since the last
                                   // close that looked at it (or mapped stores)
  bool kernel_writes = false;      // Version::kernel_writes(): the daemon sees no write
  bool release = false;            // CommitCaller::release
  bool pending_truncate = false;   // Version::pending_truncate
  bool append_only = true;         // Version::append_only
  bool append = false;             // Version::all_append (O_APPEND)
  bool dirtied_by_anyone = false;  // Version::dirtied_by_anyone
  bool others_open = false;        // another description of the version is open and no
                                   // FLUSH by the owner reached it (Version::unclosed)
};

// `closer_wrote()`: whether the closer is one of Version::writers (for a
// passthrough writer it may read /proc); asked only when it decides.
template <std::invocable Ask>
CommitStep decide_close(const CloseFacts& f, Ask&& closer_wrote) noexcept {
  if (!f.dirty) return CommitStep::nothing;  // unmodified close publishes nothing
  // RELEASE publishes a pending truncation and nothing else: anything else
  // dirty had its FLUSH, and if that commit failed, close() reported it; a
  // later retry would publish after the application was told it failed.
  // The exception is a passthrough snapshot changed after every close that
  // could commit it: a forked child that wrote and exited after its parent
  // closed, or stores through a mapping that outlived close().
  if (f.release && !f.pending_truncate && !f.late) return CommitStep::nothing;
  // Appends known as such: the daemon saw every write, or O_APPEND on every
  // writable description.
  const bool appends = f.append_only && (!f.kernel_writes || f.append);
  // A process's other descriptions of its version still open: its last
  // close publishes (docs/semantics.md#a-process-sees-its-own-writes).
  if (f.others_open && !f.release && !appends) return CommitStep::nothing;
  if (f.pending_truncate && !f.release) return CommitStep::defer_truncation;  // see Version::pending_truncate
  if (!f.dirtied_by_anyone && !appends && !f.release) {
    // Who closes: the lock owner of the FLUSH, or for a passthrough writer
    // (whose writes the daemon never sees) the process, compared with the
    // one that opened. A child that inherited the descriptor does not
    // publish its parent's half-written file when it exits.
    // A close by a process that never wrote through it (design-fuse.md).
    if (!closer_wrote()) return CommitStep::nothing;
  }
  // An append-only description commits at every close, whoever closes: on
  // an ordinary filesystem its appends would already be visible to all, and
  // a shell's `{ ...; sh -c 'echo x >> log'; ...; } >> log` relies on the
  // group's lines reaching the log before the child's (the child's dup2
  // closes its inherited copy first). Rebasing makes this safe.
  return CommitStep::publish;
}

// What a commit knows under the path's commit stripe and the namespace lock.
struct PublishFacts {
  bool unlinked = false;  // the node has no name (unlinked or replaced through M)
  Base base;              // Version::base
  std::optional<struct stat> current;  // fstatat of B/p now; none: no such name
  bool kernel_writes = false;          // Version::kernel_writes()
  bool append_only = true;             // Version::append_only
  OnConflict on_conflict = OnConflict::fail;
};

// `only_appended()`: for a passthrough writer, whether its snapshot still
// starts with the base's bytes (O(base size)); `may_replace()`: whether the
// opener may write what is at B/p now (SECURITY: may_access). Each is asked
// only when B/p changed and the rule before it did not decide.
template <std::invocable OnlyAppended, std::invocable MayReplace>
CommitStep decide_publish(const PublishFacts& f, OnlyAppended&& only_appended,
                          MayReplace&& may_replace) noexcept {
  if (f.unlinked) return CommitStep::nothing;  // commits nothing
  const auto& cur = f.current;
  if (cur && f.base.same(*cur)) return CommitStep::publish;
  if (cur && S_ISREG(cur->st_mode) && (f.kernel_writes ? only_appended() : f.append_only))
    return CommitStep::rebase;
  if (f.on_conflict == OnConflict::overwrite && may_replace()) return CommitStep::overwrite;
  return CommitStep::conflict;
}

}  // namespace snapfs::fuse
