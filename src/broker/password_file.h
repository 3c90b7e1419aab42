// Password file: usernames with salted, slow (PBKDF2-HMAC-SHA512) password hashes.
//
// File format, one user per line; blank lines and lines starting with '#' are ignored:
//
//   <username>:$pbkdf2-sha512$<iterations>$<salt base64>$<hash base64>
//
//   username    non-empty, no ':' and no control characters, not starting with '#'
//   iterations  decimal, 1..kMaxPbkdf2Iterations
//   salt        16 random bytes (RAND_bytes) when written here; any non-empty length is read
//   hash        64 bytes: PBKDF2-HMAC-SHA512(password, salt, iterations)
//   base64      standard alphabet with '=' padding (RFC 4648 section 4)
//
// Mosquitto's `mosquitto_passwd` PBKDF2 lines ("<user>:$7$<iterations>$<salt>$<hash>", the same
// algorithm) are read too and written back unchanged; new hashes are written in the format
// above. Mosquitto's older "$6$" (one round of SHA-512) is rejected as too weak.
//
// Thread safety: const methods may run concurrently; mutation needs external synchronisation.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/env.h"
#include "base/status.h"
#include "broker/scram.h"

namespace ganglion::broker {

// OWASP (2023) guidance for PBKDF2-HMAC-SHA512.
inline constexpr std::uint32_t kDefaultPbkdf2Iterations = 210'000;
// Bounds the work a hostile or corrupt file can make one login cost.
inline constexpr std::uint32_t kMaxPbkdf2Iterations = 10'000'000;
inline constexpr std::size_t kPasswordSaltBytes = 16;
inline constexpr std::size_t kPasswordHashBytes = 64;

// Hashes `password` with a fresh random salt; returns the "$pbkdf2-sha512$..." string.
// Errors: kInvalidArgument for iterations outside 1..kMaxPbkdf2Iterations; kInternal when
// OpenSSL fails (no entropy).
Result<std::string> hash_password(std::string_view password,
                                  std::uint32_t iterations = kDefaultPbkdf2Iterations);

// True when `password` matches `encoded` (either accepted format). The final comparison is
// constant-time. A malformed `encoded` never matches.
bool verify_password(std::string_view encoded, std::string_view password);

class PasswordFile {
 public:
  PasswordFile() = default;

  // Errors: kInvalidArgument naming the line ("password file line 4: ...") for a malformed
  // line, a bad hash, or a duplicate user.
  static Result<PasswordFile> parse(std::string_view text);
  // Reads and parses `path` through `env`; errors are prefixed with the path.
  static Result<PasswordFile> load(Env& env, const std::string& path);

  // The file content: one line per user, sorted by username.
  std::string serialize() const;
  // Writes serialize() with Env::write_file_atomic (old or new content survives a crash).
  Status save(Env& env, const std::string& path) const;

  // True when `user` exists and `password` is theirs. For an unknown user the same amount of
  // hashing is done, so timing does not reveal which usernames exist.
  bool verify(std::string_view user, std::string_view password) const;

  // Errors: kInvalidArgument (bad username or iterations), kAlreadyExists.
  Status add_user(std::string_view user, std::string_view password,
                  std::uint32_t iterations = kDefaultPbkdf2Iterations);
  // Errors: kNotFound, kInvalidArgument (iterations).
  Status update_password(std::string_view user, std::string_view password,
                         std::uint32_t iterations = kDefaultPbkdf2Iterations);
  // Errors: kNotFound.
  Status remove_user(std::string_view user);

  // SCRAM-SHA-512 (MQTT 5 enhanced authentication): the stored hash is SCRAM's
  // SaltedPassword = Hi(password, salt, iterations) with HMAC-SHA-512, so the StoredKey and
  // ServerKey derive from it without the password. nullopt for an unknown user. (SCRAM-SHA-256
  // would need Hi with HMAC-SHA-256, which cannot be derived from these hashes.)
  std::optional<ScramCredentials> scram_sha512_credentials(std::string_view user) const;
  // Made-up SCRAM-SHA-512 credentials for a user that is not in the file, so that the
  // server-first-message does not reveal it: the salt is derived from `user` and `secret` (the
  // same on every attempt), the iterations are those of an existing entry (or the default),
  // and the keys match no password.
  ScramCredentials scram_decoy_credentials(std::string_view user, std::string_view secret) const;

  bool contains(std::string_view user) const { return users_.find(user) != users_.end(); }
  std::size_t size() const { return users_.size(); }
  std::vector<std::string> usernames() const;

 private:
  std::map<std::string, std::string, std::less<>> users_;  // username -> encoded hash
};

}  // namespace ganglion::broker
