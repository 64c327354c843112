// Result<T>: the value of a fallible core call, or the Error that stopped it.
//
// Shaped like std::expected (which GCC 12 ships only in C++23 mode) so that it
// can be swapped in later: explicit operator bool, operator*, operator->,
// value(), error(). No core function throws or aborts on an I/O error; they all
// return one of these.
#pragma once

#include <cerrno>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace snapfs::core {

// Why a call failed: the exact errno (in std::system_category, never squeezed
// into a few codes), the syscall that returned it and the path it acted on.
class Error {
public:
  Error() noexcept = default;
  Error(std::error_code code, const char* op, std::string_view path = {}) noexcept
      : code_(code), op_(op) {
    // A path is context for humans; losing it to bad_alloc is better than
    // throwing from an error path.
    try {
      path_.assign(path);
    } catch (const std::bad_alloc&) {
      path_.clear();
    }
  }

  // Builds an Error from errno as the failing syscall left it.
  static Error from_errno(const char* op, std::string_view path = {}) noexcept {
    const int e = errno;
    return Error(std::error_code(e, std::system_category()), op, path);
  }
  static Error of(int err, const char* op, std::string_view path = {}) noexcept {
    return Error(std::error_code(err, std::system_category()), op, path);
  }

  // Names the path this error concerns, if the failing call did not (fstat,
  // ioctl and friends only know a descriptor). Public entry points use it so
  // that every error they return says which file it is about.
  Error&& with_path(std::string_view path) && noexcept {
    if (path_.empty()) {
      try {
        path_.assign(path);
      } catch (const std::bad_alloc&) {
      }
    }
    return std::move(*this);
  }

  const std::error_code& code() const noexcept { return code_; }
  int value() const noexcept { return code_.value(); }
  const char* op() const noexcept { return op_; }
  const std::string& path() const noexcept { return path_; }

  // "linkat(/x/.snapfs-tmp-...): No space left on device"
  std::string message() const {
    std::string m = op_;
    if (!path_.empty()) m += "(" + path_ + ")";
    m += ": " + code_.message();
    return m;
  }

  operator std::error_code() const noexcept { return code_; }  // NOLINT: by design
  friend bool operator==(const Error& e, std::errc c) noexcept { return e.code_ == c; }
  friend bool operator==(const Error& e, const std::error_code& c) noexcept { return e.code_ == c; }

private:
  std::error_code code_;
  const char* op_ = "";
  std::string path_;
};

template <typename T>
class [[nodiscard]] Result {
public:
  using value_type = T;

  Result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit by design
      : v_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) noexcept : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  explicit operator bool() const noexcept { return v_.index() == 0; }
  bool has_value() const noexcept { return v_.index() == 0; }

  T& operator*() & noexcept { return std::get<0>(v_); }
  const T& operator*() const& noexcept { return std::get<0>(v_); }
  T&& operator*() && noexcept { return std::get<0>(std::move(v_)); }
  T* operator->() noexcept { return &std::get<0>(v_); }
  const T* operator->() const noexcept { return &std::get<0>(v_); }
  T& value() & noexcept { return **this; }
  T&& value() && noexcept { return std::move(**this); }

  const Error& error() const& noexcept { return std::get<1>(v_); }
  Error&& error() && noexcept { return std::get<1>(std::move(v_)); }

private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
  using value_type = void;
  Result() noexcept = default;
  Result(Error error) noexcept : err_(std::move(error)), ok_(false) {}  // NOLINT

  explicit operator bool() const noexcept { return ok_; }
  bool has_value() const noexcept { return ok_; }
  void operator*() const noexcept {}
  const Error& error() const& noexcept { return err_; }
  Error&& error() && noexcept { return std::move(err_); }

private:
  Error err_;
  bool ok_ = true;
};

// Propagates the error of a Result-returning expression, like Rust's `?`.
#define SNAPFS_TRY(expr)                                  \
  do {                                                    \
    if (auto snapfs_try_r_ = (expr); !snapfs_try_r_)      \
      return std::move(snapfs_try_r_).error();            \
  } while (0)

}  // namespace snapfs::core
