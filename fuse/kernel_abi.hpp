// fuse/kernel_abi: the FUSE wire layouts snapfs reads or writes itself, as
// the kernel defines them in include/uapi/linux/fuse.h (protocol 7.44).
// Debian 12's <linux/fuse.h> stops at 7.38, before passthrough (7.40) and
// FUSE_NOTIFY_INC_EPOCH (7.44), so the few structs and fields used are
// spelled out here, once, for fuse/kernel_io.cpp and fuse/passthrough.cpp.
#pragma once

#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>

namespace snapfs::fuse::abi {

// Opcodes (enum fuse_opcode) and notification codes (enum fuse_notify_code).
constexpr std::uint32_t kOpInit = 26;
constexpr std::uint32_t kOpOpen = 14;
constexpr std::uint32_t kOpCreate = 35;
constexpr std::int32_t kNotifyIncEpoch = 8;

// struct fuse_in_header
struct InHeader {
  std::uint32_t len;
  std::uint32_t opcode;
  std::uint64_t unique;
  std::uint64_t nodeid;
  std::uint32_t uid;
  std::uint32_t gid;
  std::uint32_t pid;
  std::uint16_t total_extlen;
  std::uint16_t padding;
};
static_assert(sizeof(InHeader) == 40);
constexpr std::size_t kInHeader = sizeof(InHeader);
constexpr std::size_t kInHdrOpcode = offsetof(InHeader, opcode);
constexpr std::size_t kInHdrUnique = offsetof(InHeader, unique);

// struct fuse_out_header
struct OutHeader {
  std::uint32_t len;
  std::int32_t error;    // a notification: its code
  std::uint64_t unique;  // 0: a notification
};
static_assert(sizeof(OutHeader) == 16);
constexpr std::size_t kOutHeader = sizeof(OutHeader);
constexpr std::size_t kOutHdrError = offsetof(OutHeader, error);
constexpr std::size_t kOutHdrUnique = offsetof(OutHeader, unique);

// struct fuse_init_in / fuse_init_out: the offsets of the fields used.
constexpr std::size_t kInitInFlags = 12, kInitInFlags2 = 16, kInitInMin = 20;
constexpr std::size_t kInitOutSize = 64;
constexpr std::size_t kInitOutFlags = 12, kInitOutFlags2 = 32, kInitOutMaxStackDepth = 36;
constexpr std::uint32_t kInitExt = 1u << 30;
constexpr std::uint32_t kWritebackCache = 1u << 16;
constexpr std::uint32_t kParallelDirops = 1u << 18;
constexpr std::uint32_t kPassthrough2 = 1u << 5;  // FUSE_PASSTHROUGH == 1ULL << 37

// struct fuse_open_out; CREATE sends struct fuse_entry_out (128 bytes) first.
struct OpenOut {
  std::uint64_t fh;
  std::uint32_t open_flags;
  std::int32_t backing_id;
};
static_assert(sizeof(OpenOut) == 16);
constexpr std::size_t kOpenOutSize = sizeof(OpenOut), kEntryOutSize = 128;
constexpr std::size_t kOpenOutFlags = offsetof(OpenOut, open_flags);
constexpr std::size_t kOpenOutBackingId = offsetof(OpenOut, backing_id);
constexpr std::uint32_t kFopenDirectIo = 1u << 0;
constexpr std::uint32_t kFopenNoflush = 1u << 5;
constexpr std::uint32_t kFopenParallelDirectWrites = 1u << 6;
constexpr std::uint32_t kFopenPassthrough = 1u << 7;

// struct fuse_backing_map and the /dev/fuse ioctls that take it.
struct BackingMap {
  std::int32_t fd;
  std::uint32_t flags;
  std::uint64_t padding;
};
static_assert(sizeof(BackingMap) == 16);
constexpr unsigned kDevIocMagic = 229;
constexpr unsigned long kDevIocBackingOpen = _IOW(kDevIocMagic, 1, BackingMap);
constexpr unsigned long kDevIocBackingClose = _IOW(kDevIocMagic, 2, std::uint32_t);

}  // namespace snapfs::fuse::abi
