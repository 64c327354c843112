// The request handlers, one file per family (docs/code-style.md §1). Each is
// noexcept and ends in exactly one reply.* call. session.cpp puts them into the
// fuse_lowlevel_ops table.
#pragma once

#include "fuse_api.hpp"

namespace snapfs::fuse {
struct Conn;
}  // namespace snapfs::fuse

namespace snapfs::fuse::ops {

// lookup.cpp
void lookup(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept;
void forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) noexcept;
void forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) noexcept;
void getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept;
// setattr.cpp
void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
             fuse_file_info* fi) noexcept;
// open_create.cpp
void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept;
void create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
            fuse_file_info* fi) noexcept;
void flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept;
void release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept;
void fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) noexcept;
// rw.cpp
void read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) noexcept;
void write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* bufv, off_t off,
               fuse_file_info* fi) noexcept;
void fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
               fuse_file_info* fi) noexcept;
void lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) noexcept;
void ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void* arg, fuse_file_info* fi,
           unsigned flags, const void* in_buf, size_t in_bufsz, size_t out_bufsz) noexcept;
// namespace.cpp
void mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) noexcept;
void mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) noexcept;
void symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) noexcept;
void link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) noexcept;
void unlink(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept;
void rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept;
void readlink(fuse_req_t req, fuse_ino_t ino) noexcept;
// rename.cpp
void rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
            const char* newname, unsigned int flags) noexcept;
// xattr.cpp
void setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) noexcept;
void getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) noexcept;
void listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) noexcept;
void removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) noexcept;
// dir.cpp
void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept;
void readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) noexcept;
void releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept;
// Frees the directory handles of `c` that no RELEASEDIR will come for (its
// connection ended), once no request of it runs any more.
void free_dir_handles(Conn& c) noexcept;
void fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) noexcept;
void statfs(fuse_req_t req, fuse_ino_t ino) noexcept;
void access(fuse_req_t req, fuse_ino_t ino, int mask) noexcept;

// lock.cpp
void getlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock) noexcept;
void setlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock,
           int sleep) noexcept;
void flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op) noexcept;

}  // namespace snapfs::fuse::ops
