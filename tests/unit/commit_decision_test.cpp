// What a close of a snapshot must do (fuse/commit_decision.hpp): one row per
// rule of decide_close() (whether this close publishes) and decide_publish()
// (how, given what B/p holds under the commit stripe), run as commit() runs
// them. Each row also says which costly facts may be asked: they are asked
// only when a rule needs them (a /proc read, an O(size) compare, an access
// check), so a row fails if a rule asks too early or too late.
#include "commit_decision.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <optional>
#include <ostream>
#include <string>

namespace snapfs::fuse {
namespace {

// The costly facts, as bits: which a row's run asked.
enum Ask : unsigned { kNone = 0, kCloser = 1, kAppended = 2, kMayReplace = 4 };

const char* step_name(CommitStep s) {
  switch (s) {
    case CommitStep::nothing: return "nothing";
    case CommitStep::defer_truncation: return "defer_truncation";
    case CommitStep::publish: return "publish";
    case CommitStep::rebase: return "rebase";
    case CommitStep::overwrite: return "overwrite";
    case CommitStep::conflict: return "conflict";
  }
  return "?";
}

struct stat file_stat(ino_t ino, off_t size, time_t mtime, mode_t type = S_IFREG) {
  struct stat st {};
  st.st_dev = 7;
  st.st_ino = ino;
  st.st_mode = type | 0644;
  st.st_nlink = 1;
  st.st_size = size;
  st.st_mtim.tv_sec = mtime;
  return st;
}

// The version every row's snapshot started from.
Base base() {
  Base b;
  b.set(file_stat(100, 10, 5));
  return b;
}

// What B/p holds when the commit looks at it.
enum class Now {
  base,           // still the base
  base_ctime,     // the base, with a new ctime (chmod, xattr): not a change
  replaced,       // another inode (a commit through M, a rename in B)
  grown_in_place, // the base's inode, written in place directly in B
  touched,        // the base's inode, new mtime (nanoseconds only)
  gone,           // no such name
  directory,      // a directory now
};

std::optional<struct stat> bp(Now n) {
  switch (n) {
    case Now::base: return file_stat(100, 10, 5);
    case Now::base_ctime: {
      auto st = file_stat(100, 10, 5);
      st.st_ctim.tv_sec = 99;
      return st;
    }
    case Now::replaced: return file_stat(101, 10, 5);
    case Now::grown_in_place: return file_stat(100, 20, 5);
    case Now::touched: {
      auto st = file_stat(100, 10, 5);
      st.st_mtim.tv_nsec = 1;
      return st;
    }
    case Now::gone: return std::nullopt;
    case Now::directory: return file_stat(101, 4096, 5, S_IFDIR);
  }
  return std::nullopt;
}

// A dirty description by default: a writer's FLUSH of something it wrote
// (not only appends), B/p unchanged.
struct Row {
  const char* name;
  CloseFacts close{.dirty = true, .append_only = false};
  bool closer_wrote = true;
  Now now = Now::base;
  bool unlinked = false;  // under the locks
  bool only_appended = false;
  bool may_replace = true;
  OnConflict policy = OnConflict::fail;
  CommitStep want = CommitStep::publish;
  unsigned asks = kCloser;  // the costly facts this close may ask, exactly
};

std::ostream& operator<<(std::ostream& os, const Row& r) { return os << r.name; }

// As commit() does: decide_close, and if it publishes, decide_publish with
// what B/p holds.
CommitStep run(const Row& r, unsigned& asked) {
  asked = kNone;
  const CommitStep step = decide_close(r.close, [&] {
    asked |= kCloser;
    return r.closer_wrote;
  });
  if (step != CommitStep::publish) return step;
  PublishFacts f;
  f.unlinked = r.unlinked;
  f.base = base();
  if (!r.unlinked) f.current = bp(r.now);
  f.kernel_writes = r.close.kernel_writes;
  f.append_only = r.close.append_only;
  f.on_conflict = r.policy;
  return decide_publish(
      f,
      [&] {
        asked |= kAppended;
        return r.only_appended;
      },
      [&] {
        asked |= kMayReplace;
        return r.may_replace;
      });
}

const Row kRows[] = {
    // decide_close: whether this close publishes.
    {.name = "CleanClosePublishesNothing",
     .close = {.dirty = false},
     .want = CommitStep::nothing,
     .asks = kNone},
    {.name = "WritersFlushPublishes"},
    {.name = "CloseByAProcessThatNeverWrotePublishesNothing",
     .closer_wrote = false,
     .want = CommitStep::nothing},
    {.name = "OwnerlessChangeIsPublishedByAnyClose",  // ftruncate, fallocate
     .close = {.dirty = true, .append_only = false, .dirtied_by_anyone = true},
     .closer_wrote = false,
     .asks = kNone},
    {.name = "AppendOnlyDescriptionCommitsWhoeverCloses",
     .close = {.dirty = true, .append_only = true},
     .closer_wrote = false,
     .asks = kNone},
    {.name = "PassthroughAppendsWithoutOAppendAreNotKnownAsSuch",
     .close = {.dirty = true, .kernel_writes = true, .append_only = true},
     .closer_wrote = false,
     .want = CommitStep::nothing},
    {.name = "PassthroughOAppendCommitsWhoeverCloses",
     .close = {.dirty = true, .kernel_writes = true, .append_only = true, .append = true},
     .closer_wrote = false,
     .asks = kNone},
    {.name = "OTruncWithNothingWrittenIsDeferredToRelease",
     .close = {.dirty = true, .pending_truncate = true, .append_only = false,
               .dirtied_by_anyone = true},
     .want = CommitStep::defer_truncation,
     .asks = kNone},
    {.name = "OTruncWithNothingWrittenIsPublishedAtRelease",
     .close = {.dirty = true, .release = true, .pending_truncate = true,
               .append_only = false, .dirtied_by_anyone = true},
     .asks = kNone},
    {.name = "ReleasePublishesNothingElse",  // its FLUSH decided (and reported)
     .close = {.dirty = true, .release = true, .append_only = false},
     .want = CommitStep::nothing,
     .asks = kNone},
    {.name = "ReleasePublishesAPassthroughChangeMadeAfterEveryClose",
     .close = {.dirty = true, .late = true, .kernel_writes = true, .release = true,
               .append_only = false},
     .closer_wrote = false,
     .asks = kNone},
    // A process's several descriptions of one version (Version::unclosed).
    {.name = "OwnersCloseWhileItsOtherDescriptionIsOpenPublishesNothing",
     .close = {.dirty = true, .append_only = false, .others_open = true},
     .want = CommitStep::nothing,
     .asks = kNone},
    {.name = "OwnersLastCloseOfItsDescriptionsPublishes",
     .close = {.dirty = true, .append_only = false, .others_open = false}},
    {.name = "AppendOnlyVersionCommitsAtEveryCloseThoughOthersAreOpen",
     .close = {.dirty = true, .append_only = true, .others_open = true},
     .asks = kNone},
    {.name = "OTruncWhileOthersAreOpenIsNotYetAnnounced",
     .close = {.dirty = true, .pending_truncate = true, .append_only = false,
               .dirtied_by_anyone = true, .others_open = true},
     .want = CommitStep::nothing,
     .asks = kNone},
    {.name = "LastReleasePublishesAPendingTruncationThoughMarksSayOpen",
     .close = {.dirty = true, .release = true, .pending_truncate = true,
               .append_only = false, .dirtied_by_anyone = true, .others_open = true},
     .asks = kNone},
    // decide_publish: how, given B/p under the commit stripe.
    {.name = "UnlinkedNodeCommitsNothing", .unlinked = true, .want = CommitStep::nothing},
    {.name = "MetadataChangeOfTheBaseIsNoConflict", .now = Now::base_ctime},
    {.name = "ReplacedBaseIsAConflictUnderFail",
     .now = Now::replaced,
     .want = CommitStep::conflict},
    {.name = "BaseChangedInPlaceIsAConflict",
     .now = Now::grown_in_place,
     .want = CommitStep::conflict},
    {.name = "BaseTouchedIsAConflict", .now = Now::touched, .want = CommitStep::conflict},
    {.name = "AppendOnlyDescriptionRebases",
     .close = {.dirty = true, .append_only = true},
     .now = Now::replaced,
     .want = CommitStep::rebase,
     .asks = kNone},
    {.name = "PassthroughWriterThatOnlyAppendedRebases",
     .close = {.dirty = true, .kernel_writes = true, .append_only = true, .append = true},
     .now = Now::replaced,
     .only_appended = true,
     .want = CommitStep::rebase,
     .asks = kAppended},
    {.name = "PassthroughWriterThatRewroteIsAConflict",
     .close = {.dirty = true, .kernel_writes = true, .append_only = true, .append = true},
     .now = Now::replaced,
     .only_appended = false,
     .want = CommitStep::conflict,
     .asks = kAppended},
    {.name = "NoRebaseOntoAGoneName",
     .close = {.dirty = true, .append_only = true},
     .now = Now::gone,
     .want = CommitStep::conflict,
     .asks = kNone},
    {.name = "NoRebaseOntoADirectory",
     .close = {.dirty = true, .append_only = true},
     .now = Now::directory,
     .want = CommitStep::conflict,
     .asks = kNone},
    {.name = "OverwritePolicyOverwrites",
     .now = Now::replaced,
     .policy = OnConflict::overwrite,
     .want = CommitStep::overwrite,
     .asks = kCloser | kMayReplace},
    {.name = "OverwritePolicyRecreatesAGoneName",
     .now = Now::gone,
     .policy = OnConflict::overwrite,
     .want = CommitStep::overwrite,
     .asks = kCloser | kMayReplace},
    {.name = "OverwriteOfAFileTheOpenerMayNotWriteIsAConflict",
     .now = Now::replaced,
     .may_replace = false,
     .policy = OnConflict::overwrite,
     .want = CommitStep::conflict,
     .asks = kCloser | kMayReplace},
    {.name = "AppendOnlyRebasesEvenUnderOverwrite",
     .close = {.dirty = true, .append_only = true},
     .now = Now::replaced,
     .policy = OnConflict::overwrite,
     .want = CommitStep::rebase,
     .asks = kNone},
};

class CommitDecision : public testing::TestWithParam<Row> {};

TEST_P(CommitDecision, Rule) {
  const Row& r = GetParam();
  unsigned asked = kNone;
  const CommitStep got = run(r, asked);
  EXPECT_EQ(step_name(got), std::string(step_name(r.want)));
  EXPECT_EQ(asked, r.asks) << "costly facts asked (1 closer_wrote, 2 only_appended, 4 may_replace)";
}

INSTANTIATE_TEST_SUITE_P(Rules, CommitDecision, testing::ValuesIn(kRows),
                         [](const testing::TestParamInfo<Row>& i) {
                           return std::string(i.param.name);
                         });

// The base is compared on identity and version, never on ctime.
TEST(CommitDecisionBase, SameComparesDevInoSizeAndMtime) {
  const Base b = base();
  EXPECT_TRUE(b.same(*bp(Now::base)));
  EXPECT_TRUE(b.same(*bp(Now::base_ctime)));
  EXPECT_FALSE(b.same(*bp(Now::replaced)));
  EXPECT_FALSE(b.same(*bp(Now::grown_in_place)));
  EXPECT_FALSE(b.same(*bp(Now::touched)));
  auto other_dev = *bp(Now::base);
  other_dev.st_dev = 8;
  EXPECT_FALSE(b.same(other_dev));
}

}  // namespace
}  // namespace snapfs::fuse
