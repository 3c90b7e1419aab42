// Status and Result<T>: the error model of the data path (broker, stream, log, uplink).
//
// A Status is either ok or carries a code and a human-readable message. Result<T> holds
// either a value or a non-ok Status. Neither throws; untrusted input is reported, never
// asserted. Exceptions are kept to start-up and configuration.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ganglion {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller's input is malformed (bad packet, bad SQL, bad YAML)
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,
  kResourceExhausted,  // a bound was hit: quota, queue, connections
  kNoSpace,            // the disk is full
  kIoError,
  kCorruption,   // stored data failed a check (CRC, magic, length)
  kUnavailable,  // a peer or link is down; retrying may help
  kFailedPrecondition,
  kTimeout,
  kCancelled,
  kInternal,
};

std::string_view to_string(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "<code>: <message>", or "ok".
  std::string to_string() const;

  // Returns a copy with "context: " put in front of the message.
  Status with_context(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status PermissionDenied(std::string m) {
  return {StatusCode::kPermissionDenied, std::move(m)};
}
inline Status ResourceExhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status NoSpace(std::string m) { return {StatusCode::kNoSpace, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status Timeout(std::string m) { return {StatusCode::kTimeout, std::move(m)}; }
inline Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Result<T>: a value or a non-ok Status. Accessing the value of an error is a programming
// error (asserted in debug builds).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result built from an ok Status");
  }

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // The error; Status::Ok() when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  T value_or(T fallback) const { return ok() ? std::get<T>(v_) : std::move(fallback); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ganglion

// Returns early from the enclosing function when `expr` yields a non-ok Status.
#define GANGLION_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::ganglion::Status ganglion_status_ = (expr);        \
    if (!ganglion_status_.ok()) return ganglion_status_; \
  } while (0)

#define GANGLION_CONCAT_INNER(a, b) a##b
#define GANGLION_CONCAT(a, b) GANGLION_CONCAT_INNER(a, b)
// GANGLION_ASSIGN_OR_RETURN(auto x, expr): binds the value of a Result or returns its error.
#define GANGLION_ASSIGN_OR_RETURN(lhs, expr) \
  GANGLION_ASSIGN_OR_RETURN_IMPL(GANGLION_CONCAT(ganglion_result_, __LINE__), lhs, expr)
#define GANGLION_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()
