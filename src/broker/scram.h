// SCRAM (RFC 5802, RFC 7677) server side, sans-I/O: messages in, messages out. Used by the
// broker for MQTT 5 enhanced authentication (spec 4.12, methods "SCRAM-SHA-512" and
// "SCRAM-SHA-256"), where the messages travel as the Authentication Data of CONNECT, AUTH
// and CONNACK.
//
//   client-first   gs2-header client-first-bare        "n,,n=<user>,r=<client nonce>"
//   server-first   "r=<client nonce><server nonce>,s=<salt base64>,i=<iterations>"
//   client-final   "c=<gs2-header base64>,r=<nonce>,p=<ClientProof base64>"
//   server-final   "v=<ServerSignature base64>"
//
//   SaltedPassword = Hi(password, salt, i)       (PBKDF2-HMAC-H, output length of H)
//   ClientKey = HMAC(SaltedPassword, "Client Key"); StoredKey = H(ClientKey)
//   ServerKey = HMAC(SaltedPassword, "Server Key")
//   AuthMessage = client-first-bare "," server-first "," client-final-without-proof
//   ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)
//   ServerSignature = HMAC(ServerKey, AuthMessage)
//
// Not supported, and refused: channel binding ("p=" GS2 flag; "y" is accepted, the server
// does not advertise a -PLUS method), an authorisation identity other than the user, and
// mandatory extensions ("m="). Usernames are compared as bytes after RFC 5802 "=2C"/"=3D"
// unescaping; SASLprep is not applied (passwords are hashed as the bytes given), so a
// non-ASCII password must be sent in the same normalisation it was set with.
//
// Errors (Status): kInvalidArgument for a malformed or unsupported message (the message says
// which attribute), kPermissionDenied for a wrong proof or an unknown user (the two are not
// told apart). A ScramServer is single-use and not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace ganglion::broker {

enum class ScramHash : std::uint8_t { kSha256, kSha512 };

// "SCRAM-SHA-256" / "SCRAM-SHA-512"; parse_scram_method() is its inverse (nullopt otherwise).
std::string_view scram_method_name(ScramHash hash);
std::optional<ScramHash> parse_scram_method(std::string_view method);
// Output size of the hash in bytes (32 or 64).
std::size_t scram_hash_size(ScramHash hash);

// Messages longer than this are refused before parsing.
inline constexpr std::size_t kMaxScramMessageBytes = 4096;

// What the server keeps for a user. Salt and keys are raw bytes.
struct ScramCredentials {
  std::string salt;
  std::uint32_t iterations = 0;
  std::string stored_key;  // H(ClientKey)
  std::string server_key;  // HMAC(SaltedPassword, "Server Key")
};

// Derives StoredKey and ServerKey from SaltedPassword = Hi(password, salt, iterations).
// Errors: kInvalidArgument when the salted password is not the hash's size; kInternal when
// OpenSSL fails.
Result<ScramCredentials> scram_credentials_from_salted(ScramHash hash, std::string salt,
                                                       std::uint32_t iterations,
                                                       std::string_view salted_password);
// Computes Hi(password, salt, iterations) first (tests and tools; the broker reads the salted
// password from its password file).
Result<ScramCredentials> scram_credentials_from_password(ScramHash hash, std::string_view password,
                                                         std::string salt,
                                                         std::uint32_t iterations);

// client-first-message, parsed.
struct ScramClientFirst {
  std::string gs2_header;  // "n,," or "y,," (with "a=<user>" when the client named it)
  std::string username;    // unescaped
  std::string nonce;       // printable ASCII without ','
  std::string bare;        // client-first-message-bare, as received
};
Result<ScramClientFirst> parse_scram_client_first(std::string_view message);

// client-final-message, parsed (not yet checked against the exchange).
struct ScramClientFinal {
  std::string channel_binding;  // the decoded "c=" value
  std::string nonce;
  std::string proof;          // decoded ClientProof
  std::string without_proof;  // client-final-message-without-proof, as received
};
Result<ScramClientFinal> parse_scram_client_final(std::string_view message);

class ScramServer {
 public:
  explicit ScramServer(ScramHash hash) : hash_(hash) {}

  // Step 1. Parses the client-first-message; returns the username to look up.
  Result<std::string> receive_client_first(std::string_view message);

  // Step 2. `credentials` of the user; for an unknown user pass made-up ones (same salt
  // length, plausible iterations, random keys) so that the exchange looks the same and fails
  // at step 3. `server_nonce` is fresh randomness in printable ASCII without ','.
  // REQUIRES: receive_client_first() succeeded. Returns the server-first-message.
  std::string server_first(const ScramCredentials& credentials, std::string_view server_nonce);

  // Step 3. Checks the client-final-message (channel binding echo, nonce, proof); returns the
  // server-final-message ("v=...") on success. REQUIRES: server_first() was called.
  Result<std::string> receive_client_final(std::string_view message);

  ScramHash hash() const { return hash_; }
  // The username of the client-first-message (unescaped).
  const std::string& username() const { return first_.username; }

 private:
  enum class Step : std::uint8_t { kFirst, kFinal, kDone };

  ScramHash hash_;
  Step step_ = Step::kFirst;
  ScramClientFirst first_;
  ScramCredentials credentials_;
  std::string server_first_;
  std::string nonce_;  // client nonce + server nonce
};

// The client side, for tests and tools: one exchange, "n,," (no channel binding).
class ScramClient {
 public:
  // `nonce`: fresh randomness in printable ASCII without ','.
  ScramClient(ScramHash hash, std::string username, std::string password, std::string nonce);

  // "n,,n=<user escaped>,r=<nonce>".
  std::string client_first() const;
  // Checks the server-first-message (our nonce as prefix, salt, 1..max_iterations) and
  // returns the client-final-message. Errors: kInvalidArgument.
  Result<std::string> receive_server_first(std::string_view message,
                                           std::uint32_t max_iterations = 10'000'000);
  // Checks the server's signature. Errors: kInvalidArgument (malformed), kPermissionDenied
  // (the server does not know the password).
  Status receive_server_final(std::string_view message) const;

 private:
  ScramHash hash_;
  std::string username_;
  std::string password_;
  std::string nonce_;
  std::string auth_message_;
  std::string server_key_;
};

}  // namespace ganglion::broker
