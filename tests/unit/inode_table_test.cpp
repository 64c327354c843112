// InodeTable (fuse/inode_table.hpp) rules, one row each: which node a LOOKUP
// gets and what the reply may let the kernel cache (intern), contention after
// an ESTALE (contend), a commit's rebind, forget, the OPEN retire rule
// (begin_open/end_open) and the second OPEN after an ESTALE. The table makes
// no libfuse call and no I/O: nodes are made from hand-written stat structs
// and empty descriptors.
#include "inode_table.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <memory>
#include <ostream>
#include <string>
#include <utility>

namespace snapfs::fuse {
namespace {

constexpr dev_t kDev = 3;
constexpr pid_t kThread = 42;  // the thread whose OPEN got ESTALE
constexpr pid_t kOther = 43;

struct stat make_stat(ino_t ino, mode_t type = S_IFREG) {
  struct stat st {};
  st.st_dev = kDev;
  st.st_ino = ino;
  st.st_mode = type | (type == S_IFDIR ? 0755 : 0644);
  st.st_nlink = 1;
  return st;
}

FdRef some_fd() { return std::make_shared<const core::UniqueFd>(); }

// A table with the root (ino 1) and helpers for the requests.
struct Fx {
  InodeTable t;
  std::shared_ptr<Node> root;

  explicit Fx(double cache) {
    t.init_root(core::UniqueFd{}, make_stat(1, S_IFDIR), cache);
    root = t.get(FUSE_ROOT_ID);
  }
  // A LOOKUP (or with Intent::open, a CREATE) of `name` holding inode `ino`.
  std::shared_ptr<Node> lookup(const std::string& name, ino_t ino, Timeouts* to = nullptr,
                               pid_t caller = 0, std::uint64_t seen = InodeTable::kNoChanges,
                               Intent intent = Intent::lookup, mode_t type = S_IFREG) {
    Timeouts t0;
    auto n = t.intern(root, name, core::UniqueFd{}, make_stat(ino, type), false, intent,
                      to ? *to : t0, caller, seen);
    return n;
  }
  std::shared_ptr<Node> create(const std::string& name, ino_t ino, Timeouts* to = nullptr) {
    return lookup(name, ino, to, 0, InodeTable::kNoChanges, Intent::open);
  }
  bool bound(const Node& n) const { return n.fd() != nullptr; }
};

struct Rule {
  const char* name;
  double cache;  // Config::cache_timeout
  void (*run)(Fx&);
};

std::ostream& operator<<(std::ostream& os, const Rule& r) { return os << r.name; }

const Rule kRules[] = {
    // intern
    {"IdleNameReusesItsNodeAndIsCached", 1.0,
     [](Fx& f) {
       Timeouts t1, t2;
       auto a = f.lookup("f", 10, &t1);
       auto b = f.lookup("f", 10, &t2);
       EXPECT_EQ(a, b);
       EXPECT_EQ(t1.entry, 1.0);
       EXPECT_EQ(t1.attr, 0.0) << "a node new to the kernel, change count unknown";
       EXPECT_EQ(t2.entry, 1.0);
       EXPECT_EQ(t2.attr, 1.0);
       EXPECT_FALSE(f.bound(*a)) << "idle file nodes hold no descriptor";
       EXPECT_TRUE(f.t.entry_cached(*a));
     }},
    {"ColdLookupIsCacheableOnlyWithoutAChangeSinceItsStat", 1.0,
     [](Fx& f) {
       f.t.set_cold_cacheable(true);
       Timeouts t1, t2;
       f.lookup("f", 10, &t1, 0, f.t.changes());
       EXPECT_EQ(t1.attr, 1.0);
       const auto seen = f.t.changes();
       f.t.note_change();  // a commit through M between the stat and intern
       f.lookup("g", 11, &t2, 0, seen);
       EXPECT_EQ(t2.attr, 0.0);
     }},
    {"NoCacheMakesAFreshUncachedNodePerLookup", 0.0,
     [](Fx& f) {
       Timeouts t1, t2;
       auto a = f.lookup("f", 10, &t1);
       auto b = f.lookup("f", 10, &t2);
       EXPECT_NE(a, b);
       EXPECT_EQ(t2.entry, 0.0);
       EXPECT_EQ(t2.attr, 0.0);
       EXPECT_FALSE(f.t.entry_cached(*b));
     }},
    {"CreateMakesAFreshBoundUncachedNode", 1.0,
     [](Fx& f) {
       auto idle = f.lookup("f", 10);
       Timeouts t;
       auto c = f.create("f", 10, &t);
       EXPECT_NE(idle, c);
       EXPECT_TRUE(f.bound(*c));
       EXPECT_EQ(t.entry, 0.0);
       EXPECT_EQ(t.attr, 0.0);
       EXPECT_FALSE(f.t.entry_cached(*c));
     }},
    {"DirectoriesShareOneNodePerInode", 1.0,
     [](Fx& f) {
       Timeouts t;
       auto a = f.lookup("d", 20, nullptr, 0, InodeTable::kNoChanges, Intent::lookup, S_IFDIR);
       auto b = f.lookup("e", 20, &t, 0, InodeTable::kNoChanges, Intent::lookup, S_IFDIR);
       EXPECT_EQ(a, b);
       EXPECT_EQ(t.entry, 1.0);
       EXPECT_EQ(t.attr, 1.0);
     }},
    {"NodeWithAnOpenIsNeverHandedOut", 1.0,
     [](Fx& f) {
       auto c = f.create("f", 10);
       ASSERT_FALSE(f.t.begin_open(*c, some_fd()).retire);
       EXPECT_TRUE(f.t.busy(*c));
       EXPECT_NE(f.lookup("f", 10), c);
       f.t.end_open(*c);
       EXPECT_FALSE(f.t.busy(*c));
     }},
    // contend
    {"ContendedThreadGetsAFreshReservedNode", 1.0,
     [](Fx& f) {
       auto idle = f.lookup("f", 10);
       f.t.contend(*idle, kThread);
       Timeouts t;
       auto fresh = f.lookup("f", 10, &t, kThread);
       EXPECT_NE(fresh, idle);
       EXPECT_EQ(t.entry, 0.0);
       EXPECT_EQ(t.attr, 0.0);
       // Another thread is not affected, and is never handed the reserved node.
       Timeouts o;
       EXPECT_EQ(f.lookup("f", 10, &o, kOther), idle);
       EXPECT_EQ(o.entry, 1.0);
     }},
    {"ReservedNodeIsHandedToNoOtherLookup", 1.0,
     [](Fx& f) {
       auto idle = f.lookup("f", 10);
       f.t.contend(*idle, kThread);
       f.t.forget(idle->id(), 1);  // the kernel forgot the node before the re-walk
       auto reserved = f.lookup("f", 10, nullptr, kThread);
       EXPECT_NE(f.lookup("f", 10, nullptr, kOther), reserved);
       // Its OPEN takes it, and ends the reservation.
       ASSERT_FALSE(f.t.begin_open(*reserved, some_fd(), false, kThread).retire);
       f.t.end_open(*reserved);
     }},
    {"ContentionByAnUnknownThreadIsEveryones", 1.0,
     [](Fx& f) {
       auto idle = f.lookup("f", 10);
       f.t.contend(*idle, 0);
       EXPECT_NE(f.lookup("f", 10, nullptr, kOther), idle);
     }},
    {"ContentionSurvivesTheParentsNodeBeingRemade", 1.0,
     [](Fx& f) {
       // The re-walk (LOOKUP_REVAL) may find the directory's kernel inode
       // evicted: the directory comes back under a new node id, and the
       // name must still be contended (keyed by the directory's inode).
       auto d = f.lookup("d", 20, nullptr, 0, InodeTable::kNoChanges, Intent::lookup, S_IFDIR);
       Timeouts t;
       auto idle = f.t.intern(d, "f", core::UniqueFd{}, make_stat(10), false, Intent::lookup, t);
       f.t.contend(*idle, kThread);
       const auto old_id = d->id();
       f.t.forget(old_id, 1);
       auto d2 = f.lookup("d", 20, nullptr, 0, InodeTable::kNoChanges, Intent::lookup, S_IFDIR);
       ASSERT_NE(d2->id(), old_id);
       auto again = f.t.intern(d2, "f", core::UniqueFd{}, make_stat(10), false, Intent::lookup, t,
                               kThread);
       EXPECT_NE(again, idle);
       EXPECT_EQ(t.entry, 0.0);
     }},
    // rebind
    {"RebindMovesEveryNodeOfTheNameNotOtherLinks", 0.0,
     [](Fx& f) {
       auto a = f.create("f", 10);
       auto idle = f.lookup("f", 10);  // cache 0: another node of the same name
       auto link = f.lookup("g", 10);  // a hard link of the same inode
       const auto fd = some_fd();
       f.t.rebind(*a, fd, make_stat(11));
       EXPECT_EQ(a->fd(), fd);
       EXPECT_EQ(f.t.key_of(*a), std::make_pair(kDev, ino_t{11}));
       EXPECT_EQ(f.t.key_of(*idle), std::make_pair(kDev, ino_t{11}));
       EXPECT_FALSE(f.bound(*idle)) << "an idle node resolves its name";
       EXPECT_EQ(f.t.key_of(*link), std::make_pair(kDev, ino_t{10}));
       EXPECT_EQ(f.t.file_nodes_of(kDev, 11).size(), 2u);
       EXPECT_EQ(f.t.file_nodes_of(kDev, 10).size(), 1u);
       EXPECT_EQ(f.t.take_replaced(*a), std::make_pair(kDev, ino_t{10}));
       EXPECT_EQ(f.t.take_replaced(*a), std::make_pair(dev_t{0}, ino_t{0}));
     }},
    // forget
    {"ForgetRemovesANodeAtItsLastLookup", 1.0,
     [](Fx& f) {
       auto a = f.lookup("f", 10);
       f.lookup("f", 10);
       const auto id = a->id();
       const auto size = f.t.size();
       f.t.forget(id, 1);
       EXPECT_EQ(f.t.size(), size);
       EXPECT_TRUE(f.t.known_to_kernel(id));
       f.t.forget(id, 1);
       EXPECT_EQ(f.t.size(), size - 1);
       EXPECT_FALSE(f.t.known_to_kernel(id));
       EXPECT_TRUE(f.t.file_nodes_of(kDev, 10).empty());
       EXPECT_TRUE(f.t.file_nodes_named(FUSE_ROOT_ID, "f").empty());
       EXPECT_NE(f.lookup("f", 10)->id(), id);
     }},
    // begin_open / end_open
    {"OpenOfANodeWhoseDentryTheKernelCachesIsRetired", 1.0,
     [](Fx& f) {
       auto cached = f.lookup("f", 10);
       const OpenStart s = f.t.begin_open(*cached, some_fd(), false, kThread);
       EXPECT_TRUE(s.retire);
       EXPECT_FALSE(f.t.busy(*cached));
       EXPECT_FALSE(f.bound(*cached));
       // The retry's walk by that thread gets a fresh node, which it may open.
       auto fresh = f.lookup("f", 10, nullptr, kThread);
       EXPECT_NE(fresh, cached);
       EXPECT_FALSE(f.t.begin_open(*fresh, some_fd(), false, kThread).retire);
       f.t.end_open(*fresh);
     }},
    {"SharedReaderMayOpenACachedNode", 1.0,
     [](Fx& f) {
       auto cached = f.lookup("f", 10);
       const OpenStart s = f.t.begin_open(*cached, some_fd(), true, kThread);
       EXPECT_FALSE(s.retire);
       EXPECT_TRUE(s.was_idle);
       EXPECT_TRUE(f.bound(*cached));
       EXPECT_TRUE(f.t.busy(*cached));
       f.t.end_open(*cached);
       EXPECT_FALSE(f.bound(*cached)) << "idle again: the descriptor goes";
       EXPECT_FALSE(f.t.busy(*cached));
     }},
    {"OpenOfAnUncachedNodeIsTaken", 0.0,
     [](Fx& f) {
       auto n = f.lookup("f", 10);
       const OpenStart s = f.t.begin_open(*n, some_fd(), false, kThread);
       EXPECT_FALSE(s.retire);
       EXPECT_TRUE(s.was_idle);
       EXPECT_FALSE(s.attr_cached);
       EXPECT_TRUE(f.bound(*n));
       EXPECT_FALSE(f.t.begin_open(*n, some_fd(), false, kOther).was_idle)
           << "an OPEN in progress counts as open";
       f.t.end_open(*n);
       EXPECT_TRUE(f.bound(*n));
       f.t.end_open(*n);
       EXPECT_FALSE(f.bound(*n));
     }},
    {"FirstOpenDropsAttributesTheKernelMayCache", 1.0,
     [](Fx& f) {
       auto c = f.create("f", 10);  // dentry not cached
       EXPECT_EQ(f.t.attr_timeout(*c, make_stat(10)), 1.0);
       const OpenStart s = f.t.begin_open(*c, some_fd());
       EXPECT_FALSE(s.retire);
       EXPECT_TRUE(s.attr_cached);
       EXPECT_EQ(f.t.attr_timeout(*c, make_stat(10)), 0.0) << "nodes with an open: timeout 0";
       f.t.end_open(*c);
     }},
    // second_open_after_estale
    {"SecondOpenWithoutAWalkIsTakenOnce", 1.0,
     [](Fx& f) {
       auto n = f.lookup("f", 10);
       f.t.contend(*n, kThread);
       EXPECT_FALSE(f.t.second_open_after_estale(*n, kOther));
       EXPECT_TRUE(f.t.second_open_after_estale(*n, kThread));
       EXPECT_FALSE(f.t.second_open_after_estale(*n, kThread));
     }},
    {"SecondOpenAfterAWalkIsNot", 1.0,
     [](Fx& f) {
       auto n = f.lookup("f", 10);
       f.t.contend(*n, kThread);
       f.lookup("f", 10, nullptr, kThread);  // the re-walk looked the name up
       EXPECT_FALSE(f.t.second_open_after_estale(*n, kThread));
     }},
    {"AnyOpenOfANodeUnlinkedThroughMIsAReopen", 1.0,
     [](Fx& f) {
       auto n = f.lookup("f", 10);
       f.t.on_unlink(FUSE_ROOT_ID, "f");
       EXPECT_TRUE(f.t.second_open_after_estale(*n, kThread));
     }},
};

class InodeTableRules : public testing::TestWithParam<Rule> {};

TEST_P(InodeTableRules, Rule) {
  const Rule& r = GetParam();
  Fx f(r.cache);
  r.run(f);
}

INSTANTIATE_TEST_SUITE_P(Rules, InodeTableRules, testing::ValuesIn(kRules),
                         [](const testing::TestParamInfo<Rule>& i) {
                           return std::string(i.param.name);
                         });

}  // namespace
}  // namespace snapfs::fuse
