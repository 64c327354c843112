// Objects handed to the kernel as fi->fh and brought back by later requests.
//
// OPEN, CREATE and OPENDIR make an object and give its address to the
// kernel in their reply; every later request about that open (READ, FLUSH,
// RELEASE...) carries it back, on whichever worker thread reads it. The
// kernel orders these: no request carries a handle before the reply that
// made it, and RELEASE comes only after every other request on the open
// was answered. That order runs through /dev/fuse, which ThreadSanitizer
// cannot see, so the tsan preset would report every such handoff as a
// race. These two calls tell it about the order; elsewhere they compile
// to nothing.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define SNAPFS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SNAPFS_TSAN 1
#endif
#endif

#ifdef SNAPFS_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace snapfs::fuse {

// Before a reply after which the kernel may bring `fh` back on another
// thread: everything this thread did to the object so far comes first.
inline void handoff_give(const void* fh) noexcept;
// When a request brings `fh` back: after everything given with it.
inline void handoff_take(const void* fh) noexcept;

#ifdef SNAPFS_TSAN
inline void handoff_give(const void* fh) noexcept { __tsan_release(const_cast<void*>(fh)); }
inline void handoff_take(const void* fh) noexcept { __tsan_acquire(const_cast<void*>(fh)); }
#else
inline void handoff_give(const void* /*fh*/) noexcept {}
inline void handoff_take(const void* /*fh*/) noexcept {}
#endif

}  // namespace snapfs::fuse
