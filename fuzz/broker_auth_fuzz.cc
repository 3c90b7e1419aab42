// libFuzzer target for the broker's ACL file and password file parsers (src/broker/acl.h,
// src/broker/password_file.h). Both files are written by operators and tools, and the
// username and client id substituted into ACL patterns come from CONNECT packets.
//
// Input: the first byte picks the parser (bit 0) and AclOptions::allow_unmatched (bit 1).
//  - ACL: the text up to the first "\n\n\n" is the file; the lines after it are, in turn, the
//    username ("-" for anonymous), the client id, and topics or filters to check. A "deny #"
//    pattern must deny everything whatever the substitution.
//  - Password file: parse; serialize() must parse again to the same users. The first line
//    is also tried as a new username (add_user() with one PBKDF2 round): whatever add_user()
//    accepts must survive serialize() and parse().
// Passwords are not verified: a line may ask for 10 million PBKDF2 rounds.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "broker/acl.h"
#include "broker/password_file.h"

namespace {

using namespace ganglion::broker;

[[noreturn]] void die(const char* what, std::string_view detail) {
  std::fprintf(stderr, "%s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }
  return out;
}

void fuzz_acl(std::string_view input, bool allow_unmatched) {
  const auto split = input.find("\n\n\n");
  const std::string_view file = input.substr(0, split);
  auto policy = AclPolicy::parse(file, AclOptions{allow_unmatched});
  if (!policy.ok()) {
    if (policy.status().message().rfind("acl line ", 0) != 0)
      die("ACL error does not name the line", policy.status().message());
    return;
  }
  if (split == std::string_view::npos) return;
  const auto rest = lines(input.substr(split + 3));
  ClientIdentity who;
  if (!rest.empty() && rest[0] != "-") who.username = std::string(rest[0]);
  if (rest.size() > 1) who.client_id = std::string(rest[1]);
  const auto acl = policy->compile(who);
  if (acl != policy->compile(who)) die("compile() is not cached", file);
  const bool deny_all =
      file.find("pattern deny #") != std::string_view::npos && policy->rule_count() > 0;
  for (std::size_t i = 2; i < rest.size() && i < 64; ++i) {
    const bool pub = acl->can_publish(rest[i]);
    const bool recv = acl->can_receive(rest[i]);
    (void)acl->can_subscribe(rest[i]);
    // '#' matches neither '$' topics nor (as a topic name) anything holding a wildcard.
    const bool plain = !rest[i].empty() && rest[i][0] != '$' &&
                       rest[i].find_first_of("+#") == std::string_view::npos;
    // A "pattern deny #" line (exactly, on a line of its own) denies every client every
    // plain topic.
    if (deny_all) {
      for (auto l : lines(file)) {
        while (!l.empty() && (l.back() == ' ' || l.back() == '\t' || l.back() == '\r'))
          l.remove_suffix(1);
        while (!l.empty() && (l.front() == ' ' || l.front() == '\t')) l.remove_prefix(1);
        if (l == "pattern deny #" && (pub || recv) && plain)
          die("'pattern deny #' allowed", rest[i]);
      }
    }
  }
}

void fuzz_password_file(std::string_view input) {
  auto file = PasswordFile::parse(input);
  if (!file.ok()) {
    if (file.status().message().rfind("password file line ", 0) != 0)
      die("password file error does not name the line", file.status().message());
  } else {
    const std::string text = file->serialize();
    auto again = PasswordFile::parse(text);
    if (!again.ok()) die("serialized password file does not parse", again.status().message());
    if (again->serialize() != text) die("password file round trip differs", text);
  }
  const std::string_view user = input.substr(0, input.find('\n'));
  PasswordFile fresh;
  if (fresh.add_user(user, "secret", 1).ok()) {
    auto again = PasswordFile::parse(fresh.serialize());
    if (!again.ok())
      die("a user add_user() accepted does not parse back", again.status().message());
    if (!again->contains(user)) die("a user add_user() accepted is lost on reload", user);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > 8192) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) {
    fuzz_password_file(input);
  } else {
    fuzz_acl(input, (data[0] & 2) != 0);
  }
  return 0;
}
