// OPEN, CREATE, FLUSH (the commit), RELEASE, FSYNC.
// Symlink-safe: OPEN re-opens the node's held O_PATH handle of a regular file
// through /proc/self/fd (handle.cpp); CREATE is openat(O_CREAT|O_EXCL|O_NOFOLLOW)
// of one component in the parent's held directory handle.
#include "identity.hpp"
#include "ops/common.hpp"
#include "ops/ops.hpp"
#include "reply.hpp"
#include "lingering.hpp"
#include "sys/sys.hpp"

#include <fcntl.h>

#include <new>
#include <shared_mutex>

namespace snapfs::fuse::ops {

namespace sys = core::sys;

using core::Error;
using core::Result;

namespace {

// Hands a description of the version to the kernel: fi->fh, the open
// flags, the statistics. `slot`: the description's place in its user's
// share (UserOpens). False (and nothing registered) if the node already has
// an open.
bool install(Conn& c, std::unique_ptr<Version> owned, UserSlot slot, fuse_file_info* fi,
             const Version* share_with = nullptr, bool force = false, const Pin& pin = {}) noexcept {
  Daemon& d = c.d;
  std::shared_ptr<Version> h;
  std::shared_ptr<Handle>* holder = nullptr;
  try {
    h = std::shared_ptr<Version>(std::move(owned));
    auto desc = std::make_shared<Handle>();
    desc->v = h;
    desc->writable = h->writable;
    desc->append = h->append;
    desc->who = h->who;
    desc->slot = std::move(slot);
    h->descs = 1;
    h->unclosed = 1;
    h->all_append = h->append;
    holder = new std::shared_ptr<Handle>(std::move(desc));
  } catch (const std::bad_alloc&) {
    return false;
  }
  if (!c.table.attach_open(*h->node, h, share_with, force, pin)) {
    delete holder;
    return false;
  }
  try {
    c.live_handles.add(holder);
  } catch (const std::bad_alloc&) {
    c.table.detach_open(*h->node, h.get());
    delete holder;
    return false;
  }
  fi->fh = reinterpret_cast<uintptr_t>(holder);
  // Kernel passthrough where possible (docs/design-passthrough.md): the
  // reply is patched by the custom I/O layer to hand the kernel this open's
  // snapshot as its backing file. The kernel allows one backing file per
  // FUSE inode: a reader sharing a node shares its backing file too, and
  // shared (glob) nodes, which many opens share, stay daemon-served.
  if (c.kpt.active() && h->kind != HandleKind::shared) {
    std::shared_ptr<BackingFile> b;
    if (h->warm) {
      // One registration per warm snapshot, shared by all its readers (also
      // those sharing a node: the kernel takes a second passthrough open of
      // an inode only with the backing file of the first).
      std::lock_guard lk(h->warm->backing_mu);
      if (!h->warm->backing) h->warm->backing = c.kpt.open_backing(h->warm->file.fd());
      b = h->warm->backing;
      // Until the kernel has taken the snapshot once, this open keeps a
      // descriptor of its own to fall back on if its reply is not patched
      // (reply_with_backing); once it has, every reply of this shape is.
      if (b && !h->warm->keeps_file && h->warm->file.valid()) {
        if (auto fd = sys::reopen(h->warm->file.fd(), O_RDONLY)) h->direct = std::move(*fd);
      }
    } else if (share_with) {
      std::shared_lock lk(share_with->mu);
      if (share_with->passthrough.load(std::memory_order_acquire)) b = share_with->backing;
    } else {
      b = c.kpt.open_backing(h->fd());
    }
    if (b) {
      std::unique_lock lk(h->mu);
      h->backing = std::move(b);
      if (h->kind == HandleKind::snapshot) {
        if (auto st = sys::fstat(h->snap.fd())) h->seen = SnapState::of(*st);
      }
    }
  }
  // Otherwise every open is direct_io, readers too, and never keep_cache:
  // the page cache is per inode, so cached reads would show another open's
  // snapshot (docs/design-fuse.md, "Kernel facts" 3). Shared (passthrough glob)
  // opens stay coherent with B. (The passthrough patch clears direct_io.)
  fi->direct_io = 1;
  fi->keep_cache = 0;
  // A read-only description never commits; without FLUSH its close() does
  // not wait for the daemon (docs/design-fuse.md, "Kernel facts" 1).
  fi->noflush = (!h->writable && !h->dirty) ? 1 : 0;
  if (h->kind == HandleKind::snapshot || h->kind == HandleKind::reader_share)
    d.stats.open_snapshots.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// Config::test_fault "open.unpatched".
bool unpatched_for_test(Conn& c, const Version& h) noexcept {
  Daemon& d = c.d;
  if (!d.cfg.test_fault) return false;
  try {
    return d.cfg.test_fault("open.unpatched", c.table.path_of(*h.node));
  } catch (...) {
    return false;
  }
}

// Sends the OPEN/CREATE reply through `send`, armed with the handle's
// backing file if it has one; records whether the kernel got passthrough.
template <typename Send>
bool reply_with_backing(Conn& c, Version& h, Send&& send) noexcept {
  Daemon& d = c.d;
  std::shared_ptr<BackingFile> b;
  {
    std::shared_lock lk(h.mu);
    b = h.backing;
  }
  if (!b) {
    d.stats.daemon_opens.fetch_add(1, std::memory_order_relaxed);
    return send();
  }
  // Set before the reply: once it is written, the opener may write and
  // close, and its FLUSH may reach another thread before this one runs
  // again. If the reply could not be patched, the open is daemon-served
  // (direct_io) and its WRITEs mark it dirty as usual.
  h.passthrough.store(true, std::memory_order_release);
  if (!unpatched_for_test(c, h)) c.kpt.arm(*b);
  const bool sent = send();
  const bool patched = c.kpt.disarm();
  core::UniqueFd spare;  // closed after the lock is released
  if (patched) {
    // The kernel holds the snapshot: the daemon's descriptors of a warm
    // one are not needed any more.
    if (h.warm) {
      h.warm->confirm();
      std::unique_lock lk(h.mu);
      spare = std::move(h.direct);
    }
    return sent;
  }
  h.passthrough.store(false, std::memory_order_release);
  d.stats.daemon_opens.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lk(h.mu);
  h.backing.reset();
  // Served by the daemon from now on: from its snapshot, or for a warm
  // reader from the descriptor install() kept. None means a warm snapshot
  // the kernel took before, in a reply of the same shape, so this cannot
  // happen; if it does, every READ of this open fails.
  if (h.fd() < 0) d.log->error("open of a warm snapshot not handed to the kernel: reads fail (EIO)");
  return sent;
}

// A writer's version is its process's (Owner): the process's closes
// commit it (commit()), and its other opens of the node join it. The
// caller is blocked in this request, so its number is not reused before
// the pidfd pins it.
void set_owner(fuse_req_t req, Version& h) noexcept {
  if (!h.writable || h.kind != HandleKind::snapshot) return;
  const pid_t tid = fuse_req_ctx(req)->pid;
  auto tgid = tid != 0 ? sys::tgid_of(tid) : Result<pid_t>(0);
  h.owner.tgid = tgid ? *tgid : tid;
  if (h.owner.tgid == 0) return;
  if (auto fd = sys::pidfd_open(h.owner.tgid)) h.owner.pidfd = std::move(*fd);
}

// Forgets fi->fh: the description goes; its version stays for the others.
std::shared_ptr<Version> drop_description(Conn& c, fuse_file_info* fi) noexcept {
  auto* holder = reinterpret_cast<std::shared_ptr<Handle>*>(static_cast<uintptr_t>(fi->fh));
  c.live_handles.remove(holder);
  std::shared_ptr<Version> v = (*holder)->v;
  delete holder;
  fi->fh = 0;
  return v;
}

// Forgets fi->fh and its version: the version's last description.
void uninstall(Conn& c, fuse_file_info* fi) noexcept {
  Daemon& d = c.d;
  const std::shared_ptr<Version> h = drop_description(c, fi);
  c.table.detach_open(*h->node, h.get());
  if (h->kind == HandleKind::snapshot || h->kind == HandleKind::reader_share)
    d.stats.open_snapshots.fetch_sub(1, std::memory_order_relaxed);
  // The snapshot (an unnamed O_TMPFILE) disappears with the last reference.
}

// A CREATE that fails after making the file in B takes it back, so that an
// O_EXCL lock file does not stay behind for an open that returned an error.
// Only if the name still holds the inode we made.
void undo_create(int dirfd, const char* name, int fd) noexcept {
  auto mine = sys::fstat(fd);
  auto now = sys::fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW);
  if (mine && now && mine->st_dev == now->st_dev && mine->st_ino == now->st_ino)
    (void)sys::unlinkat(dirfd, name, 0);
}

void release_description(Conn& c, fuse_ino_t ino, fuse_file_info* fi) noexcept;

// Whether the caller of `req` is the live owner of `v` (Owner::is): its
// other open of the node joins `v`. Asks the thread group only where `v`
// has an owner.
bool caller_owns(fuse_req_t req, const Version& v) noexcept {
  if (v.owner.tgid == 0) return false;
  const pid_t tid = fuse_req_ctx(req)->pid;
  if (tid == 0) return false;
  auto tgid = tid == v.owner.tgid ? Result<pid_t>(tid) : sys::tgid_of(tid);
  return tgid && v.owner.is(*tgid);
}

// An OPEN by `caller` of a node other than its process's own version of
// the same inode (a walk through a dentry the kernel cached before the
// version existed, a hard link's): ESTALE, so that the kernel walks again
// and the LOOKUP is routed to the version (route_for), unless this is
// already the kernel's retry (it retries once): then it is served as any
// other open, a snapshot of B/p, and counted.
bool toward_own_version(Conn& c, const Node& node, pid_t caller) noexcept {
  Daemon& d = c.d;
  if (caller == 0 || node.kind() != NodeKind::file || !c.table.any_owned()) return false;
  try {
    const auto [dev, ino] = c.table.key_of(node);
    bool held = false;
    const auto v = own_version(c, dev, ino, caller, nullptr, held);
    if (!v || v->node.get() == &node) return false;
    if (!c.table.contended_for(node, caller)) return true;
    d.stats.own_misses.fetch_add(1, std::memory_order_relaxed);
  } catch (const std::bad_alloc&) {
  }
  return false;
}

// A process's open of a node whose version is its own (docs/design-own-writes.md):
// a new description of that version, no snapshot made. It reads and writes
// what the process's other descriptions do; O_TRUNC truncates the version.
// Every close of a description of it may publish (noflush 0); the last one
// of the owner's does (CloseFacts::others_open). False: the version's last
// description went meanwhile (the caller walks again).
bool join(Conn& c, fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi,
          const std::shared_ptr<Version>& v, const Identity& who, UserSlot slot) noexcept {
  Daemon& d = c.d;
  const int flags = fi->flags;
  const bool writable = (flags & O_ACCMODE) != O_RDONLY;
  std::shared_ptr<Handle>* holder = nullptr;
  try {
    auto desc = std::make_shared<Handle>();
    desc->v = v;
    desc->writable = writable;
    desc->append = (flags & O_APPEND) != 0;
    desc->who = who;
    desc->slot = std::move(slot);
    holder = new std::shared_ptr<Handle>(std::move(desc));
  } catch (const std::bad_alloc&) {
    reply_errno(req, ENOMEM, "open", ino);
    return true;
  }
  {
    std::unique_lock lk(v->mu);
    if (v->descs == 0) {
      delete holder;
      return false;
    }
    if (flags & O_TRUNC) {
      // As a first open's O_TRUNC (open_handle): an empty version, published
      // by the last close; alone (nothing written after), it is a pending
      // truncation, which FLUSH does not publish.
      const bool was_clean = !v->dirty;
      Result<void> r = prepare_change(c, *v);
      if (r) r = sys::ftruncate(v->snap.fd(), 0);
      if (!r) {
        lk.unlock();
        delete holder;
        reply_error(req, r.error(), "open", ino);
        return true;
      }
      v->mark_dirty(0);
      v->append_only = false;
      if (was_clean) v->pending_truncate = true;
      if (v->kernel_writes()) {
        if (auto st = sys::fstat(v->snap.fd())) v->seen = SnapState::of(*st);
      }
    }
    ++v->descs;
    ++v->unclosed;
    if (writable) {
      v->all_append = v->all_append && (flags & O_APPEND);
      // SECURITY: the version's commit acts for the least privileged of its
      // writers (a process that dropped root between its opens): rebase and
      // overwrite only where that one may write, and setuid, setgid and
      // capabilities go as its own write(2) would drop them.
      if (v->who.privileged() && !who.privileged()) v->who = who;
    }
  }
  try {
    c.live_handles.add(holder);
  } catch (const std::bad_alloc&) {
    fi->fh = reinterpret_cast<uintptr_t>(holder);
    release_description(c, ino, fi);
    reply_errno(req, ENOMEM, "open", ino);
    return true;
  }
  fi->fh = reinterpret_cast<uintptr_t>(holder);
  fi->direct_io = 1;
  fi->keep_cache = 0;
  fi->noflush = 0;
  d.stats.own_joins.fetch_add(1, std::memory_order_relaxed);
  d.log->debug("open ino {} flags {:#o}: joins its process's version", ino, flags);
  // Served as the version is: the kernel's passthrough with its backing
  // file (one per inode, so the same one), or the daemon from its snapshot.
  std::shared_ptr<BackingFile> b;
  {
    std::shared_lock lk(v->mu);
    if (v->passthrough.load(std::memory_order_acquire)) b = v->backing;
  }
  bool sent;
  if (!b) {
    d.stats.daemon_opens.fetch_add(1, std::memory_order_relaxed);
    sent = reply_open(req, fi);
  } else {
    c.kpt.arm(*b);
    sent = reply_open(req, fi);
    if (!c.kpt.disarm()) d.stats.daemon_opens.fetch_add(1, std::memory_order_relaxed);
  }
  if (!sent) release_description(c, ino, fi);
  return true;
}

}  // namespace

void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  auto node = c.table.get(ino);
  if (node->kind() != NodeKind::file && node->kind() != NodeKind::shared_file)
    return reply_errno(req, node->is_dir() ? EISDIR : EINVAL, "open", ino);
  const pid_t caller = fuse_req_ctx(req)->pid;
  const bool read_only = (fi->flags & O_ACCMODE) == O_RDONLY && !(fi->flags & O_TRUNC);
  // Shared readers (docs/design-fuse.md): a read-only open that kernel
  // passthrough serves from the warm snapshot of B/p's version may take a
  // cached node, and share it with the other readers of that version. Not
  // for a caller the daemon cannot see (another pid namespace): its
  // re-walk after an ESTALE could not be told from other lookups.
  // Needs the kernel's epoch notification (after_commit).
  const bool shared_reader = read_only && node->kind() == NodeKind::file && caller != 0 &&
                             c.kpt.active() && d.warm.enabled() && !d.cfg.exclusive &&
                             c.notifier.epochs();
  // Before before_open(), which uses up the mark of a re-walk.
  if (toward_own_version(c, *node, caller)) {
    c.table.contend(*node, caller);
    return reply_errno(req, ESTALE, "open", ino);
  }
  // Cache coherence (cache.hpp): bind an idle node, take it out of the kernel's caches.
  const auto claim = before_open(c, node, shared_reader, caller);
  if (!claim) return reply_error(req, claim.error(), "open", ino);
  // SECURITY: the kernel checked the attributes it holds for this node,
  // which may be another inode's than the one the node is bound to now (a
  // name resolved again after a rename in B). The backing filesystem
  // decides for the caller, on the bound inode, whose content every branch
  // below serves (its own snapshot, a shared or warm one, or B/p itself).
  const Identity who = identity_of(req);
  // Fairness: one user's opens cannot take every descriptor (UserOpens).
  if (!d.user_opens.acquire(who.uid)) return reply_errno(req, EMFILE, "open", ino);
  UserSlot slot(d.user_opens, who.uid);
  if (FdRef bound = node->fd()) {
    if (auto ok = may_access(d, who, bound->get(), access_mask(fi->flags)); !ok)
      return reply_error(req, ok.error(), "open", ino);
  }
  // Every ESTALE below sends the caller to walk again, onto a fresh node.
  const auto estale = [&] {
    c.table.contend(*node, caller);
    reply_errno(req, ESTALE, "open", ino);
  };
  // One open per node, except for readers of one snapshot: the kernel re-walks
  // on ESTALE (LOOKUP_REVAL) and the lookup then makes a fresh node
  // (docs/design-passthrough.md, "Kernel facts" 2 and 3). Checked before the
  // snapshot is made, and again atomically in install(). Readers that land on a
  // node whose opens read one snapshot share it: shared readers if it still is
  // what B/p holds; others (two walks in the same jiffy share a dentry even
  // with entry_timeout 0) if it is a clean reader's.
  const auto cur = c.table.open_of(*node);
  if (cur && caller_owns(req, *cur)) {
    if (!join(c, req, ino, fi, cur, who, std::move(slot))) estale();
    return;
  }
  Result<std::unique_ptr<Version>> h = Error::of(ESTALE, "open");
  // Sharing an open's warm snapshot is a warm hit like one found in the
  // cache: which of the two an open takes depends only on whether the
  // previous reader's RELEASE (asynchronous) has arrived yet.
  const auto share = [&](bool view_of_writer) {
    auto r = share_reader(node, *cur, view_of_writer);
    if (r && (*r)->warm) d.warm.note_shared();
    return r;
  };
  bool force = false;
  if (shared_reader && cur) {
    const PinState p = c.table.pin_of(*node);
    auto now = name_stat(c, *node);
    if (p.exact && now && WarmSnapshots::same_version(*now, p.version)) {
      h = share(false);
    } else if (!p.pinned && !c.table.open_of(*node)) {
      // Its opens were released meanwhile (RELEASE is asynchronous).
      h = open_handle(c, node, fi->flags, false);
    }
  } else if (!cur) {
    h = open_handle(c, node, fi->flags, false);
  } else if (read_only) {
    h = share(false);
  }
  const bool cur_kernel = cur && cur->passthrough.load(std::memory_order_acquire);
  if (cur && !h && h.error().value() == ESTALE &&
      c.table.second_open_after_estale(*node, caller)) {
    // Not a path walk (that would have come back on a fresh node): e.g. a
    // re-open through /proc/PID/fd/N. Share the node rather than fail; its
    // fstat then shows the first open's snapshot (design doc). With kernel
    // passthrough the inode has one backing file, the first open's: a
    // reader then reads that, and a writer cannot be served (EBUSY).
    if (!cur_kernel) {
      h = open_handle(c, node, fi->flags, false);
    } else if (read_only) {
      h = share(true);
    } else {
      return reply_errno(req, EBUSY, "open", ino);
    }
    force = true;
  }
  if (!h) {
    if (h.error().value() == ESTALE) return estale();
    return reply_error(req, h.error(), "open", ino);
  }
  // A shared reader pins the node to its snapshot, which the kernel must
  // be able to read itself (its backing file registered); one it cannot
  // does not stay on a node others reach through a cached dentry.
  Pin pin;
  if (shared_reader) {
    const auto& w = (*h)->warm;
    if (w && w->backing && (*h)->kind == HandleKind::reader_share) {
      pin.id = w.get();
      pin.version = w->exact ? &w->version : nullptr;
    } else if (c.table.entry_cached(*node)) {
      return estale();
    }
  }
  set_owner(req, **h);
  (*h)->who = who;
  if (auto r = charge_to_writer(d, **h); !r) return reply_error(req, r.error(), "open", ino);
  const bool owned = (*h)->owner.tgid != 0;
  if (!install(c, std::move(*h), std::move(slot), fi, cur.get(), force, pin)) return estale();
  // A new private version: attributes the kernel holds for other nodes of
  // the inode (a hard link's name) are dropped, so that its owner's stat
  // through them asks GETATTR, which answers it its version.
  if (owned) {
    const auto [kdev, kino] = c.table.key_of(*node);
    after_inode_change(c, kdev, kino, node->id());
  }
  // Attributes the kernel may hold for the node from another version (a
  // change made directly in B within cache_timeout): dropped before the
  // reply, so this open's fstat shows its own version.
  if (pin.id && c.table.stale_cached_attrs(*node, pin.version)) c.notifier.inval_inode(node->id());
  d.log->debug("open ino {} flags {:#o}", ino, fi->flags);
  // handle_ref() hands the handle on (handoff.hpp) after everything above.
  const std::shared_ptr<Handle> hp = handle_ref(fi);
  if (!reply_with_backing(c, *hp->v, [&] { return reply_open(req, fi); })) uninstall(c, fi);
}

void create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
            fuse_file_info* fi) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  if (!valid_name(name)) return reply_errno(req, EINVAL, "create", parent);
  if (is_meta_name(parent, name)) return reply_errno(req, EPERM, "create", parent);
  const Identity who = identity_of(req);
  if (!d.user_opens.acquire(who.uid)) return reply_errno(req, EMFILE, "create", parent);
  UserSlot slot(d.user_opens, who.uid);
  auto pnode = c.table.get(parent);
  const FdRef pfd = pnode->fd();
  const bool glob = is_shared_path(c, *pnode, name);
  const int flags = fi->flags;
  // Test-only: the name may appear in B between the kernel's LOOKUP and here.
  if (d.cfg.test_pause) d.cfg.test_pause("create.begin", name);

  // The file appears in B now, empty, so that O_EXCL lock files work across
  // processes (docs/semantics.md#commit-at-close). ATOMICITY: O_CREAT|O_EXCL is
  // decided by B itself.
  // O_NOFOLLOW: a symlink planted at the name is never followed.
  const int cflags = glob ? (flags & (O_ACCMODE | O_APPEND | O_EXCL | O_TRUNC))
                          : (O_WRONLY | O_EXCL);
  auto fd = sys::openat(pfd->get(), name, cflags | O_CREAT | O_NOFOLLOW,
                              creation_mode(c, req, pfd->get(), mode) & 07777);
  bool created = true;
  if (!fd && fd.error().value() == EEXIST && !(flags & O_EXCL)) {
    // It appeared since the kernel's lookup: open the existing file.
    created = false;
    fd = sys::openat_beneath(pfd->get(), name, O_PATH | O_NOFOLLOW, 0);
    // SECURITY: the kernel took this open for a create and checked only
    // the parent directory. Opening an existing file needs what open(2)
    // would need of it: the backing filesystem decides, for the caller and
    // for the inode just opened (the one used below), never a name.
    if (fd) {
      if (auto ok = may_access(d, who, fd->get(), access_mask(flags)); !ok)
        return reply_error(req, ok.error(), "create", parent);
    }
  }
  if (!fd) return reply_error(req, fd.error(), "create", parent);
  // From here on, a failure removes what we created. The created inode is
  // kept open (`made`) for the identity check of undo_create().
  core::UniqueFd made;
  auto fail = [&](const core::Error& err, const char* op) {
    if (made) undo_create(pfd->get(), name, made.get());
    reply_error(req, err, op, parent);
  };
  if (created) {
    auto dup = sys::reopen(fd->get(), O_PATH);
    if (dup) made = std::move(*dup);
    if (auto r = chown_created(d, req, pfd->get(), fd->get()); !r)
      return fail(r.error(), "create(chown)");
  }
  auto pathfd = sys::reopen(fd->get(), O_PATH);
  if (!pathfd) return fail(pathfd.error(), "create");
  fuse_entry_param e{};
  auto node = intern_fd(c, pnode, name, std::move(*pathfd), e, Intent::open);  // see cache.hpp
  if (!node) return fail(node.error(), "create");

  if ((*node)->kind() != NodeKind::file && (*node)->kind() != NodeKind::shared_file) {
    // Not a regular file (a directory or symlink appeared at the name).
    c.table.forget((*node)->id(), 1);
    return reply_errno(req, EEXIST, "create", parent);
  }
  Result<std::unique_ptr<Version>> h = Error::of(EIO, "create");
  if (glob && created) {
    // Passthrough glob: the descriptor we created with is the open.
    try {
      auto sh = std::make_unique<Version>();
      sh->node = *node;
      sh->kind = HandleKind::shared;
      sh->writable = (flags & O_ACCMODE) != O_RDONLY;
      sh->append = (flags & O_APPEND) != 0;
      sh->direct = std::move(*fd);
      h = std::move(sh);
    } catch (const std::bad_alloc&) {
      h = Error::of(ENOMEM, "create");
    }
  } else {
    h = open_handle(c, *node, flags & ~(O_CREAT | O_EXCL), created);
  }
  if (h) {
    set_owner(req, **h);
    (*h)->who = who;
    if (auto r = charge_to_writer(d, **h); !r) h = std::move(r).error();
  }
  if (!h || !install(c, std::move(*h), std::move(slot), fi)) {
    c.table.forget((*node)->id(), 1);  // the kernel never hears of this lookup
    if (!h) return fail(h.error(), "create");
    return fail(Error::of(ESTALE, "create"), "create");
  }
  d.log->debug("create {} in ino {} -> ino {}", name, parent, e.ino);
  const std::shared_ptr<Handle> hp = handle_ref(fi);  // hands it on, as in open()
  Version& mine = *hp->v;
  // The new inode's attributes may be cached: else the kernel's
  // permission check at the end of this very open(2) (default_permissions,
  // may_open) asks GETATTR at once. Only this open reaches the node (entry
  // timeout 0: other walks look up again and get other nodes), what it
  // writes invalidates size and times in the kernel itself, and every
  // change through M invalidates every node of the inode (after_commit,
  // after_inode_change); a change made directly in B shows within
  // cache_timeout, as for any cached attributes. A glob node shares B/p
  // with processes outside M: never cached.
  if (mine.kind == HandleKind::snapshot && d.cfg.cache_timeout > 0) e.attr_timeout = d.cfg.cache_timeout;
  if (created) note_change(c, req, EventKind::create, *pnode, name);
  if (!reply_with_backing(c, mine, [&] { return reply_create(req, e, fi); })) {
    // Interrupted: the application's open failed, so the file goes too.
    uninstall(c, fi);
    c.table.forget((*node)->id(), 1);
    if (made) {
      undo_create(pfd->get(), name, made.get());
      note_change(c, req, EventKind::unlink, *pnode, name);
    }
  }
}

void flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Conn& c = conn_of(req);
  Daemon& d = c.d;
  // Owned for the whole handler: once the reply is sent the application
  // may close the file, and RELEASE (another thread) drops fi->fh's reference.
  const std::shared_ptr<Handle> dp = handle_ref(fi);
  Version& h = *dp->v;
  // Commit on close: FLUSH is synchronous with close() and its error is close()'s
  // error (docs/design-fuse.md, "Kernel facts" 1). dup/fork send one FLUSH per
  // close, so commit() publishes only a dirty snapshot and is idempotent.
  const fuse_ctx* ctx = fuse_req_ctx(req);
  CommitCaller caller;
  caller.owner = fi->lock_owner;
  caller.pid = ctx->pid;
  caller.uid = ctx->uid;
  caller.desc = dp.get();
  auto r = commit(c, h, caller);
  {
    // A truncation announced by an earlier FLUSH that has since been written
    // and published (or kept as a conflict) no longer holds back lookups.
    std::unique_lock lk(h.mu);
    if (!h.pending_truncate) settle_truncation(c, h);
  }
  if (!r) {
    d.log->error("commit of {} failed: {}", path_for_log(c, *h.node), r.error().message());
    // ESTALE from close() means "lost a conflict, content kept"
    // (docs/semantics.md#conflicts). A commit that failed otherwise with
    // ESTALE from B (a network file system's stale handle) kept nothing:
    // EIO, as for any other failure to publish.
    if (r.error().value() == ESTALE) return reply_errno(req, EIO, "flush", ino);
    return reply_error(req, r.error(), "flush", ino);
  }
  if (*r == CommitOutcome::conflict) {
    // docs/semantics.md#conflicts, --on-conflict=fail: close() fails with
    // "Stale file handle": the file changed since this description opened it;
    // its content is kept in B/.snapfs/conflicts (logged at info by commit()).
    return reply_errno(req, ESTALE, "flush", ino);
  }
  if (*r != CommitOutcome::nothing) d.log->debug("flush ino {}: committed", ino);
  reply_ok(req);
}

namespace {

// RELEASE of one description (release(), or a join whose reply failed).
void release_description(Conn& c, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  Daemon& d = c.d;
  // RELEASE is asynchronous and carries no caller: it frees. The one thing
  // it publishes is a truncation nobody wrote after (`: > log`), which FLUSH
  // leaves alone so that a shell's `cmd > f` never shows an empty f (see
  // Version::pending_truncate). Anything else dirty was published by FLUSH.
  {
    const std::shared_ptr<Handle> dp = handle_ref(fi);
    const std::shared_ptr<Version> hp = dp->v;
    bool last = false;
    {
      std::unique_lock lk(hp->mu);
      last = --hp->descs == 0;
      if (!dp->closed_by_owner) --hp->unclosed;
    }
    // Another description of the version is open: it goes on for that one
    // (its last RELEASE does what follows).
    if (!last) {
      drop_description(c, fi);
      return;
    }
    std::shared_ptr<BackingFile> backing;
    {
      // The kernel holds its own reference to the backing file now.
      std::unique_lock lk(hp->mu);
      backing = std::move(hp->backing);
    }
    backing.reset();
    // A passthrough writer's snapshot may still be mapped (MAP_SHARED
    // outlives close): then it is published when the last mapping goes.
    d.log->debug("release ino {}: kernel writes {}", ino, hp->kernel_writes());
    if (hp->kernel_writes() && c.lingering && c.lingering->park_if_mapped(hp)) {
      uninstall(c, fi);
      return;
    }
    CommitCaller caller;
    caller.release = true;
    // Where stores through a mapping leave no trace in the ctime (tmpfs, a
    // filesystem without reflinks, where a snapshot costs O(size) anyway),
    // a mapping that went away just before this RELEASE is found by
    // comparing contents.
    if (hp->kernel_writes() && !d.reflink) {
      try {
        caller.mapped_stores = mapped_stores_unseen(c, *hp);
      } catch (const std::bad_alloc&) {
        // Stores through a mapping that went away may stay unpublished.
        d.log->error("release of ino {}: no memory to compare it for stores through a mapping",
                     ino);
      }
    }
    auto r = commit(c, *hp, caller);
    if (!r)
      d.log->error("commit of a truncation of {} failed: {}", path_for_log(c, *hp->node),
                   r.error().message());
    std::unique_lock lk(hp->mu);
    settle_truncation(c, *hp);
  }
  uninstall(c, fi);
}

}  // namespace

void release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  release_description(conn_of(req), ino, fi);
  reply_ok(req);
}

void fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) noexcept {
  // Owned for the whole handler: once the reply is sent the application
  // may close the file, and RELEASE (another thread) drops fi->fh's reference.
  const std::shared_ptr<Handle> dp = handle_ref(fi);
  Version& h = *dp->v;
  // Syncs the snapshot's data; it does not publish (the commit at close
  // does, with the durability the mount asked for).
  std::shared_lock lk(h.mu);
  if (h.fd() < 0) return reply_ok(req);  // a warm snapshot the kernel holds: nothing to sync
  auto r = datasync ? sys::fdatasync(h.fd()) : sys::fsync(h.fd());
  if (!r) return reply_error(req, r.error(), "fsync", ino);
  reply_ok(req);
}

}  // namespace snapfs::fuse::ops
