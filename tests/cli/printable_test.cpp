// The one escaper for names (fuse/include/snapfs/fuse/printable.hpp), what
// the daemon's JSON carries (fuse/include/snapfs/fuse/printable.hpp json_string) and what the
// command prints from it (mount/report.cpp). Label unit: no root, no mounts.
#include "report.hpp"

#include <snapfs/fuse/printable.hpp>

#include <gtest/gtest.h>

#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <memory>
#include <sstream>
#include <string>

namespace snapfs::clitest {
namespace {

using fuse::printable;
using namespace std::string_literals;

TEST(UnitPrintable, PlainTextAndValidMultibyteStayAsTheyAre) {
  EXPECT_EQ(printable("dir/file name.txt"), "dir/file name.txt");
  // 2, 3 and 4 bytes: é, €, 日本, 😀; U+00A0 is the first code point after C1.
  const std::string s = "\xc3\xa9 \xe2\x82\xac \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xc2\xa0";
  EXPECT_EQ(printable(s), s);
  EXPECT_EQ(printable(""), "");
}

TEST(UnitPrintable, C0ControlsAndDelAreEscaped) {
  EXPECT_EQ(printable("a\x1b[31mred"), "a\\x1b[31mred");
  EXPECT_EQ(printable("line\nforged: error"), "line\\x0aforged: error");
  EXPECT_EQ(printable("\t\r\x07"), "\\x09\\x0d\\x07");
  EXPECT_EQ(printable("nul\0x"s), "nul\\x00x");
  EXPECT_EQ(printable("\x7f"), "\\x7f");
  EXPECT_EQ(printable("\x1f"), "\\x1f");
  EXPECT_EQ(printable(" "), " ");
}

TEST(UnitPrintable, BackslashIsEscapedSoEscapesAreUnambiguous) {
  EXPECT_EQ(printable("a\\x1b"), "a\\\\x1b");
}

TEST(UnitPrintable, C1ControlsAreEscapedEncodedOrRaw) {
  // U+009B (CSI) and U+0085 (NEL) as UTF-8, and the first and last of C1.
  EXPECT_EQ(printable("\xc2\x9b" "2J"), "\\u009b2J");
  EXPECT_EQ(printable("\xc2\x85"), "\\u0085");
  EXPECT_EQ(printable("\xc2\x80\xc2\x9f"), "\\u0080\\u009f");
  // The raw bytes, which 8-bit terminals take as C1: not UTF-8 on their own.
  EXPECT_EQ(printable("\x9b" "2J"), "\\x9b2J");
  EXPECT_EQ(printable("\x80\x9f"), "\\x80\\x9f");
}

TEST(UnitPrintable, InvalidUtf8IsEscapedBytewise) {
  EXPECT_EQ(printable("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(printable("a\xc3"), "a\\xc3");              // truncated at the end
  EXPECT_EQ(printable("\xe2\x82x"), "\\xe2\\x82x");     // truncated before ASCII
  EXPECT_EQ(printable("\xf5\x80\x80\x80"), "\\xf5\\x80\\x80\\x80");  // > U+10FFFF lead
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // U+110000
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate, U+D800
  // Resynchronises: the valid character after a bad byte is kept.
  EXPECT_EQ(printable("\xff\xc3\xa9"), "\\xff\xc3\xa9");
}

TEST(UnitPrintable, OverlongEncodingsAreInvalid) {
  // "/" as 2, 3 and 4 bytes; NUL as 2 bytes (Java's modified UTF-8); an
  // overlong ESC, which must not get through as a control either.
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");
  EXPECT_EQ(printable("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");
  EXPECT_EQ(printable("\xf0\x80\x80\xaf"), "\\xf0\\x80\\x80\\xaf");
  EXPECT_EQ(printable("\xc0\x80"), "\\xc0\\x80");
  EXPECT_EQ(printable("\xc0\x9b"), "\\xc0\\x9b");
  EXPECT_EQ(printable("\xc1\xbf"), "\\xc1\\xbf");
  // The shortest forms right at each boundary are valid.
  EXPECT_EQ(printable("\xe0\xa0\x80"), "\xe0\xa0\x80");          // U+0800
  EXPECT_EQ(printable("\xf0\x90\x80\x80"), "\xf0\x90\x80\x80");  // U+10000
}

TEST(UnitPrintable, BidiControlsAndLineSeparatorsAreEscaped) {
  EXPECT_EQ(printable("a\xe2\x80\xaetxt.exe"), "a\\u202etxt.exe");  // RLO
  EXPECT_EQ(printable("\xe2\x81\xa6"), "\\u2066");
  EXPECT_EQ(printable("\xe2\x80\xa8"), "\\u2028");
}

TEST(UnitPrintable, JsonStringIsPrintableAndLossless) {
  EXPECT_EQ(fuse::json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(fuse::json_string("\x1b\n\x7f"), "\"\\u001b\\u000a\\u007f\"");
  EXPECT_EQ(fuse::json_string("\xc2\x9b\xff"), "\"\\u009b\\udcff\"");
  EXPECT_EQ(fuse::json_string("\xc3\xa9"), "\"\xc3\xa9\"");
  // What the command makes of it: the original bytes, shown escaped.
  const std::string name = "d/\x1b[2J\xc2\x9b\xff\xc3\xa9\\";
  const auto j = cli::parse_json(fuse::json_string(name));
  EXPECT_EQ(j.text, name);
  EXPECT_EQ(printable(j.text), "d/\\x1b[2J\\u009b\\xff\xc3\xa9\\\\");
}

TEST(UnitPrintable, JsonPrintableEscapesRawBytesOfAnOldRecord) {
  EXPECT_EQ(fuse::json_printable("{\"path\":\"a\x9b\x1b\xc2\x85\"}\n"),
            "{\"path\":\"a\\udc9b\\u001b\\u0085\"}\n");
}

TEST(UnitPrintable, ConflictsTableShowsNamesEscaped) {
  const auto doc = cli::parse_json(
      "[{\"path\":" + fuse::json_string("x\x1b]0;owned\x07\xc2\x9b\xfe") +
      ",\"time\":1,\"pid\":2,\"size\":3,\"kept_at\":\"/b/.snapfs/conflicts/i\"}]");
  const std::string out = cli::render_conflicts(doc);
  EXPECT_NE(out.find("x\\x1b]0;owned\\x07\\u009b\\xfe"), std::string::npos) << out;
  for (const char c : out) {
    const auto u = static_cast<unsigned char>(c);
    EXPECT_TRUE(c == '\n' || (u >= 0x20 && u < 0x7f)) << static_cast<int>(u) << " in " << out;
  }
}

TEST(UnitPrintable, LogFormatterEscapesEveryMessage) {
  std::ostringstream os;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(os);
  sink->set_formatter(std::make_unique<fuse::EscapingFormatter>("%l: %v"));
  spdlog::logger log("t", sink);
  log.info("removed {}", "a\nerror: forged\x1b[0m\xc2\x9b\xff");
  EXPECT_EQ(os.str(), "info: removed a\\x0aerror: forged\\x1b[0m\\u009b\\xff\n");
}

}  // namespace
}  // namespace snapfs::clitest
