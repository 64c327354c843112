// Several daemons over one B (docs/design-shared-storage.md): on one
// machine (two views, two containers) or on many (B on shared storage).
// What they share lives in B/.snapfs, and every rule between them is a
// byte-range lock on a file there, which the kernel (or the network file
// system's lock manager) drops when its holder dies:
//
//   B/.snapfs/commit.lock     one byte per hash of (directory inode, name),
//                             write-locked around a commit's check and publish
//   B/.snapfs/daemons/<id>    one per live daemon, write-locked for its life;
//                             its staging names start with "<id>-"
//
// The locks are open file description locks (F_OFD_SETLK): owned by one
// open of the file, not by the process, so two threads of one daemon
// exclude each other as two daemons do, and a lock dies with the last
// descriptor of its open (a crash releases everything at once).
#pragma once

#include <snapfs/core/result.hpp>
#include <snapfs/core/unique_fd.hpp>

#include <string>
#include <string_view>

namespace snapfs::fuse {

struct Daemon;

// Registers this daemon among those sharing B: a new random id, whose file
// in `daemons_dir` (an O_PATH directory, B/.snapfs/daemons) is write-locked
// before it gets its name, so that nobody ever sees it unlocked while the
// daemon lives. Sets d.id, d.alive and d.staging_prefix; also opens
// B/.snapfs/commit.lock (in `meta_dir`) into d.commit_lock.
core::Result<void> register_daemon(Daemon& d, int meta_dir, int daemons_dir) noexcept;

// Whether the daemon `id` (16 hex digits) still lives: its file in
// `daemons_dir` exists and somebody holds a lock on it. An error asking
// counts as alive (recovery then leaves its files alone).
bool daemon_alive(int daemons_dir, std::string_view id) noexcept;

// The id a staging name or conflict record belongs to: the 16 hex digits
// before the first '-' ("0123456789abcdef-...") or "" if it has none.
std::string_view owner_of(std::string_view name) noexcept;

// Removes the files of daemons that are gone (no lock held), and
// registrations that died before they got their name. Logged at info.
void forget_dead_daemons(Daemon& d, int daemons_dir) noexcept;

// At a clean exit, once nothing commits any more: the registration goes.
void unregister_daemon(Daemon& d) noexcept;

// The commit lock of the name `name` in the directory whose inode number is
// `dir_ino`: held while the returned descriptor lives. Blocks while another
// commit of a name with the same hash holds it, in this daemon or another.
// Keyed by the directory's inode, which every daemon (and every client of
// a network file system) sees alike, not by a path, which a daemon that
// has not looked the directory up since another renamed it still spells
// the old way. An invalid descriptor if B has no commit.lock (read-only B,
// where nothing commits anyway).
core::Result<core::UniqueFd> lock_name(const Daemon& d, ino_t dir_ino,
                                       std::string_view name) noexcept;

}  // namespace snapfs::fuse
