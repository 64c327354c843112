// The change feed's ring and its answer to a reader (fuse/events.hpp): what
// is kept, what a reader is told it missed, how an answer is cut to the
// reader's buffer, and that events a reader may not see still move its
// cursor. No I/O.
#include "events.hpp"

#include <gtest/gtest.h>

#include <string>

namespace snapfs::fuse {
namespace {

Event made(EventKind kind, std::string path, uid_t uid = 0) {
  Event e;
  e.kind = kind;
  e.path = std::move(path);
  e.pid = 100;
  e.uid = uid;
  e.command = "cc1";
  return e;
}

const auto kAll = [](const std::string&, const Dir&) { return true; };
const auto kWho = [](const Event&) { return true; };

std::string answer(const EventLog& log, std::uint64_t after, std::size_t limit = 65536) {
  return events_json(log.after(after, 2048), after, 7, limit, kAll, kWho);
}

TEST(EventFeed, AnAnswerListsTheEventsAfterTheCursorAndWhereToGoOn) {
  EventLog log(8);
  log.record(made(EventKind::create, "a"));
  log.record(made(EventKind::commit, "a"));
  const std::string all = answer(log, 0);
  EXPECT_EQ(all.rfind("{\"pid\":7,\"next\":2,\"dropped\":0,\"more\":false,\"events\":[{\"seq\":1,", 0),
            0u)
      << all;
  EXPECT_NE(all.find("\"event\":\"commit\",\"path\":\"a\""), std::string::npos) << all;
  EXPECT_NE(all.find("\"pid\":100,\"uid\":0,\"command\":\"cc1\"}]}"), std::string::npos) << all;
  EXPECT_EQ(answer(log, 2), "{\"pid\":7,\"next\":2,\"dropped\":0,\"more\":false,\"events\":[]}");
}

TEST(EventFeed, ARingThatMovedOnIsAGapCountedOnce) {
  EventLog log(3);
  for (int i = 0; i < 5; ++i) log.record(made(EventKind::mkdir, "d" + std::to_string(i)));
  const std::string a = answer(log, 0);
  EXPECT_EQ(a.rfind("{\"pid\":7,\"next\":5,\"dropped\":2,\"more\":false,", 0), 0u) << a;
  EXPECT_EQ(a.find("\"d1\""), std::string::npos) << a;
  EXPECT_NE(a.find("\"d2\""), std::string::npos) << a;
  // From a cursor inside the kept ones: nothing missed.
  EXPECT_EQ(answer(log, 3).rfind("{\"pid\":7,\"next\":5,\"dropped\":0,", 0), 0u);
  // All of them gone since the cursor.
  for (int i = 0; i < 3; ++i) log.record(made(EventKind::rmdir, "x"));
  EXPECT_EQ(answer(log, 4).rfind("{\"pid\":7,\"next\":8,\"dropped\":1,", 0), 0u)
      << answer(log, 4);
}

TEST(EventFeed, AnEventThatCouldNotBeDescribedIsAGap) {
  EventLog log(8);
  log.record(made(EventKind::create, "a"));
  log.skip();
  log.record(made(EventKind::create, "c"));
  const std::string a = answer(log, 0);
  EXPECT_EQ(a.rfind("{\"pid\":7,\"next\":3,\"dropped\":1,", 0), 0u) << a;
}

TEST(EventFeed, AFullAnswerSaysThereIsMoreAndTheNextTakesItUp) {
  EventLog log(64);
  for (int i = 0; i < 20; ++i) log.record(made(EventKind::create, std::string(40, static_cast<char>('a' + i % 26))));
  const std::string first = answer(log, 0, 1024);
  EXPECT_LE(first.size(), 1024u);
  EXPECT_NE(first.find("\"more\":true"), std::string::npos) << first;
  const auto next_at = first.find("\"next\":") + 7;
  const std::uint64_t next = std::stoull(first.substr(next_at));
  EXPECT_GT(next, 0u);
  EXPECT_LT(next, 20u);
  const std::string second = answer(log, next, 65536);
  EXPECT_NE(second.find("\"seq\":" + std::to_string(next + 1) + ","), std::string::npos) << second;
  EXPECT_NE(second.find("\"more\":false"), std::string::npos) << second;
}

TEST(EventFeed, WhatAReaderMayNotSeeIsLeftOutButPassed) {
  EventLog log(8);
  log.record(made(EventKind::commit, "open/f", 1000));
  Event moved = made(EventKind::rename, "secret/g", 0);
  moved.to = "open/g";
  log.record(std::move(moved));
  log.record(made(EventKind::commit, "secret/h", 0));
  const auto listable = [](const std::string& p, const Dir&) { return p.rfind("secret/", 0) != 0; };
  const auto own = [](const Event& e) { return e.uid == 1000; };
  const std::string a = events_json(log.after(0, 2048), 0, 7, 65536, listable, own);
  // Both names of a rename must be visible; the cursor passes all three.
  EXPECT_EQ(a.rfind("{\"pid\":7,\"next\":3,\"dropped\":0,\"more\":false,\"events\":[{\"seq\":1,", 0),
            0u)
      << a;
  EXPECT_EQ(a.find("secret"), std::string::npos) << a;
  EXPECT_NE(a.find("\"uid\":1000"), std::string::npos) << a;
  const std::string others = events_json(log.after(0, 2048), 0, 7, 65536, listable,
                                         [](const Event&) { return false; });
  EXPECT_EQ(others.find("\"pid\":100"), std::string::npos) << "who made it: " << others;
  EXPECT_EQ(others.find("cc1"), std::string::npos) << others;
}

TEST(EventFeed, AnEventTooLargeForAnyAnswerIsCountedAndPassed) {
  EventLog log(8);
  log.record(made(EventKind::create, std::string(2000, '\x01')));  // escaped: 12 000 bytes
  log.record(made(EventKind::create, "b"));
  const std::string a = answer(log, 0, 4096);
  EXPECT_LE(a.size(), 4096u);
  EXPECT_EQ(a.rfind("{\"pid\":7,\"next\":2,\"dropped\":1,\"more\":false,\"events\":[{\"seq\":2,", 0),
            0u)
      << a.substr(0, 200);
}

TEST(EventFeed, ACursorFromAnotherDaemonStartsOverAtTheLast) {
  EventLog log(8);
  log.record(made(EventKind::create, "a"));
  EXPECT_EQ(answer(log, 99), "{\"pid\":7,\"next\":1,\"dropped\":0,\"more\":false,\"events\":[]}");
}

}  // namespace
}  // namespace snapfs::fuse
