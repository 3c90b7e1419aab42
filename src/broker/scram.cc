#include "broker/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <charconv>
#include <vector>

#include "base/base64.h"

namespace ganglion::broker {
namespace {

const EVP_MD* md_of(ScramHash hash) {
  return hash == ScramHash::kSha256 ? EVP_sha256() : EVP_sha512();
}

bool hmac(ScramHash hash, std::string_view key, std::string_view data, std::string& out) {
  out.assign(scram_hash_size(hash), '\0');
  unsigned int len = 0;
  const unsigned char* r = HMAC(md_of(hash), key.data(), static_cast<int>(key.size()),
                                reinterpret_cast<const unsigned char*>(data.data()), data.size(),
                                reinterpret_cast<unsigned char*>(out.data()), &len);
  return r != nullptr && len == out.size();
}

bool digest(ScramHash hash, std::string_view data, std::string& out) {
  out.assign(scram_hash_size(hash), '\0');
  unsigned int len = 0;
  return EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len,
                    md_of(hash), nullptr) == 1 &&
         len == out.size();
}

// value-char (RFC 5802 section 7): any byte but NUL and ','. UTF-8 well-formedness is not
// checked here: the MQTT codec has no say over binary Authentication Data, and a username
// that is not valid UTF-8 simply is not in the password file.
bool valid_value(std::string_view v) {
  if (v.empty()) return false;
  for (const char c : v) {
    if (c == '\0' || c == ',') return false;
  }
  return true;
}

// printable = %x21-2B / %x2D-7E
bool valid_nonce(std::string_view v) {
  if (v.empty()) return false;
  for (const char c : v) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

// saslname: "=2C" is ',' and "=3D" is '='; any other '=' is an error.
std::optional<std::string> unescape_saslname(std::string_view v) {
  if (!valid_value(v)) return std::nullopt;
  std::string out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '=') {
      out += v[i];
      continue;
    }
    const std::string_view esc = v.substr(i + 1, 2);
    if (esc == "2C") {
      out += ',';
    } else if (esc == "3D") {
      out += '=';
    } else {
      return std::nullopt;
    }
    i += 2;
  }
  return out;
}

// Splits on ','; empty fields are kept (and refused by the callers).
std::vector<std::string_view> split_attributes(std::string_view text) {
  std::vector<std::string_view> out;
  for (;;) {
    const auto comma = text.find(',');
    out.push_back(text.substr(0, comma));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

// attr-val = ALPHA "=" value; returns the value if `field` is attribute `name`.
std::optional<std::string_view> attribute(std::string_view field, char name) {
  if (field.size() < 2 || field[0] != name || field[1] != '=') return std::nullopt;
  return field.substr(2);
}

bool valid_extension(std::string_view field) {
  if (field.size() < 3 || field[1] != '=') return false;
  const char a = field[0];
  if (!((a >= 'A' && a <= 'Z') || (a >= 'a' && a <= 'z'))) return false;
  return valid_value(field.substr(2));
}

Status malformed(std::string_view what) { return InvalidArgument("SCRAM: " + std::string(what)); }

}  // namespace

std::string_view scram_method_name(ScramHash hash) {
  return hash == ScramHash::kSha256 ? "SCRAM-SHA-256" : "SCRAM-SHA-512";
}

std::optional<ScramHash> parse_scram_method(std::string_view method) {
  if (method == "SCRAM-SHA-256") return ScramHash::kSha256;
  if (method == "SCRAM-SHA-512") return ScramHash::kSha512;
  return std::nullopt;
}

std::size_t scram_hash_size(ScramHash hash) { return hash == ScramHash::kSha256 ? 32 : 64; }

Result<ScramCredentials> scram_credentials_from_salted(ScramHash hash, std::string salt,
                                                       std::uint32_t iterations,
                                                       std::string_view salted_password) {
  if (salted_password.size() != scram_hash_size(hash)) {
    return InvalidArgument("SCRAM: salted password has the wrong size for " +
                           std::string(scram_method_name(hash)));
  }
  ScramCredentials c;
  c.salt = std::move(salt);
  c.iterations = iterations;
  std::string client_key;
  if (!hmac(hash, salted_password, "Client Key", client_key) ||
      !digest(hash, client_key, c.stored_key) ||
      !hmac(hash, salted_password, "Server Key", c.server_key)) {
    OPENSSL_cleanse(client_key.data(), client_key.size());
    return Internal("SCRAM: HMAC failed");
  }
  OPENSSL_cleanse(client_key.data(), client_key.size());
  return c;
}

Result<ScramCredentials> scram_credentials_from_password(ScramHash hash, std::string_view password,
                                                         std::string salt,
                                                         std::uint32_t iterations) {
  if (iterations == 0) return InvalidArgument("SCRAM: iterations must be positive");
  std::string salted(scram_hash_size(hash), '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), static_cast<int>(iterations), md_of(hash),
                        static_cast<int>(salted.size()),
                        reinterpret_cast<unsigned char*>(salted.data())) != 1) {
    return Internal("SCRAM: PBKDF2 failed");
  }
  auto c = scram_credentials_from_salted(hash, std::move(salt), iterations, salted);
  OPENSSL_cleanse(salted.data(), salted.size());
  return c;
}

Result<ScramClientFirst> parse_scram_client_first(std::string_view message) {
  if (message.size() > kMaxScramMessageBytes) return malformed("client-first-message too long");
  const auto fields = split_attributes(message);
  // gs2-header: cbind flag, optional authzid, then the bare message.
  if (fields.size() < 4) return malformed("client-first-message needs gs2 header, n= and r=");
  const std::string_view flag = fields[0];
  if (flag.starts_with("p=")) return malformed("channel binding is not supported");
  if (flag != "n" && flag != "y") return malformed("bad gs2 channel binding flag");
  std::optional<std::string> authzid;
  if (!fields[1].empty()) {
    const auto a = attribute(fields[1], 'a');
    if (!a) return malformed("bad gs2 authzid");
    authzid = unescape_saslname(*a);
    if (!authzid) return malformed("bad authzid");
  }
  ScramClientFirst out;
  out.gs2_header = message.substr(0, fields[0].size() + fields[1].size() + 2);
  out.bare = message.substr(out.gs2_header.size());
  std::size_t i = 2;
  if (fields[i].starts_with("m=")) return malformed("mandatory extensions are not supported");
  const auto n = attribute(fields[i], 'n');
  if (!n) return malformed("client-first-message has no n= username");
  auto user = unescape_saslname(*n);
  if (!user) return malformed("bad username");
  out.username = std::move(*user);
  ++i;
  if (i >= fields.size()) return malformed("client-first-message has no r= nonce");
  const auto r = attribute(fields[i], 'r');
  if (!r) return malformed("client-first-message has no r= nonce");
  if (!valid_nonce(*r)) return malformed("bad client nonce");
  out.nonce = std::string(*r);
  for (++i; i < fields.size(); ++i) {
    if (!valid_extension(fields[i])) return malformed("bad extension in client-first-message");
  }
  if (authzid && *authzid != out.username) {
    return malformed("an authorisation identity other than the user is not supported");
  }
  return out;
}

Result<ScramClientFinal> parse_scram_client_final(std::string_view message) {
  if (message.size() > kMaxScramMessageBytes) return malformed("client-final-message too long");
  const auto fields = split_attributes(message);
  if (fields.size() < 3) return malformed("client-final-message needs c=, r= and p=");
  ScramClientFinal out;
  const auto c = attribute(fields[0], 'c');
  if (!c) return malformed("client-final-message has no c= channel binding");
  auto cb = base64_decode_canonical(*c);
  if (!cb || cb->empty()) return malformed("c= is not base64");
  out.channel_binding = std::move(*cb);
  const auto r = attribute(fields[1], 'r');
  if (!r || !valid_nonce(*r)) return malformed("client-final-message has no valid r= nonce");
  out.nonce = std::string(*r);
  for (std::size_t i = 2; i + 1 < fields.size(); ++i) {
    if (!valid_extension(fields[i])) return malformed("bad extension in client-final-message");
  }
  const auto p = attribute(fields.back(), 'p');
  if (!p) return malformed("client-final-message does not end with p= proof");
  auto proof = base64_decode_canonical(*p);
  if (!proof || proof->empty()) return malformed("p= is not base64");
  out.proof = std::move(*proof);
  out.without_proof = message.substr(0, message.size() - fields.back().size() - 1);
  return out;
}

Result<std::string> ScramServer::receive_client_first(std::string_view message) {
  if (step_ != Step::kFirst) return malformed("client-first-message out of order");
  auto first = parse_scram_client_first(message);
  if (!first.ok()) {
    step_ = Step::kDone;
    return first.status();
  }
  first_ = std::move(*first);
  step_ = Step::kFinal;
  return first_.username;
}

std::string ScramServer::server_first(const ScramCredentials& credentials,
                                      std::string_view server_nonce) {
  credentials_ = credentials;
  nonce_ = first_.nonce;
  nonce_ += server_nonce;
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(credentials_.salt) +
                  ",i=" + std::to_string(credentials_.iterations);
  return server_first_;
}

Result<std::string> ScramServer::receive_client_final(std::string_view message) {
  if (step_ != Step::kFinal || server_first_.empty()) {
    return malformed("client-final-message out of order");
  }
  step_ = Step::kDone;
  GANGLION_ASSIGN_OR_RETURN(ScramClientFinal final, parse_scram_client_final(message));
  if (final.channel_binding != first_.gs2_header) {
    return malformed("c= does not match the gs2 header of the client-first-message");
  }
  if (final.nonce != nonce_) return malformed("r= is not the nonce of this exchange");
  const std::size_t size = scram_hash_size(hash_);
  if (final.proof.size() != size) return PermissionDenied("SCRAM: invalid proof");

  std::string auth_message = first_.bare;
  auth_message += ',';
  auth_message += server_first_;
  auth_message += ',';
  auth_message += final.without_proof;

  std::string client_signature;
  std::string stored_key;
  std::string server_signature;
  if (!hmac(hash_, credentials_.stored_key, auth_message, client_signature)) {
    return Internal("SCRAM: HMAC failed");
  }
  // ClientKey = ClientProof XOR ClientSignature; the proof holds when H(ClientKey) is the
  // StoredKey. Compared in constant time.
  std::string client_key(size, '\0');
  for (std::size_t i = 0; i < size; ++i) client_key[i] = final.proof[i] ^ client_signature[i];
  const bool digested = digest(hash_, client_key, stored_key);
  OPENSSL_cleanse(client_key.data(), client_key.size());
  if (!digested) return Internal("SCRAM: hash failed");
  if (credentials_.stored_key.size() != size ||
      CRYPTO_memcmp(stored_key.data(), credentials_.stored_key.data(), size) != 0) {
    return PermissionDenied("SCRAM: invalid proof");
  }
  if (!hmac(hash_, credentials_.server_key, auth_message, server_signature)) {
    return Internal("SCRAM: HMAC failed");
  }
  return "v=" + base64_encode(server_signature);
}

ScramClient::ScramClient(ScramHash hash, std::string username, std::string password,
                         std::string nonce)
    : hash_(hash),
      username_(std::move(username)),
      password_(std::move(password)),
      nonce_(std::move(nonce)) {}

std::string ScramClient::client_first() const {
  std::string out = "n,,n=";
  for (const char c : username_) {
    if (c == ',') {
      out += "=2C";
    } else if (c == '=') {
      out += "=3D";
    } else {
      out += c;
    }
  }
  out += ",r=" + nonce_;
  return out;
}

Result<std::string> ScramClient::receive_server_first(std::string_view message,
                                                      std::uint32_t max_iterations) {
  const auto fields = split_attributes(message);
  if (fields.size() < 3) return malformed("server-first-message needs r=, s= and i=");
  const auto r = attribute(fields[0], 'r');
  const auto s = attribute(fields[1], 's');
  const auto i = attribute(fields[2], 'i');
  if (!r || !valid_nonce(*r) || !r->starts_with(nonce_) || r->size() == nonce_.size()) {
    return malformed("server-first-message has a bad r= nonce");
  }
  auto decoded_salt = s ? base64_decode_canonical(*s) : std::nullopt;
  if (!decoded_salt || decoded_salt->empty()) {
    return malformed("server-first-message has a bad s= salt");
  }
  const std::string salt = std::move(*decoded_salt);
  std::uint32_t iterations = 0;
  if (!i) return malformed("server-first-message has no i=");
  auto [ptr, ec] = std::from_chars(i->data(), i->data() + i->size(), iterations);
  if (ec != std::errc() || ptr != i->data() + i->size() || iterations == 0 ||
      iterations > max_iterations) {
    return malformed("server-first-message has a bad i= iteration count");
  }
  const std::size_t size = scram_hash_size(hash_);
  std::string salted(size, '\0');
  if (PKCS5_PBKDF2_HMAC(password_.data(), static_cast<int>(password_.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), static_cast<int>(iterations), md_of(hash_),
                        static_cast<int>(size),
                        reinterpret_cast<unsigned char*>(salted.data())) != 1) {
    return Internal("SCRAM: PBKDF2 failed");
  }
  std::string client_key;
  std::string stored_key;
  std::string signature;
  const std::string without_proof = "c=biws,r=" + std::string(*r);
  const std::string first = client_first();
  auth_message_ = first.substr(3) + "," + std::string(message) + "," + without_proof;
  if (!hmac(hash_, salted, "Client Key", client_key) || !digest(hash_, client_key, stored_key) ||
      !hmac(hash_, stored_key, auth_message_, signature) ||
      !hmac(hash_, salted, "Server Key", server_key_)) {
    return Internal("SCRAM: HMAC failed");
  }
  OPENSSL_cleanse(salted.data(), salted.size());
  std::string proof(size, '\0');
  for (std::size_t k = 0; k < size; ++k) proof[k] = client_key[k] ^ signature[k];
  OPENSSL_cleanse(client_key.data(), client_key.size());
  return without_proof + ",p=" + base64_encode(proof);
}

Status ScramClient::receive_server_final(std::string_view message) const {
  if (server_key_.empty()) return malformed("server-final-message out of order");
  if (message.starts_with("e="))
    return PermissionDenied("SCRAM: server error " + std::string(message.substr(2)));
  const auto v = attribute(message.substr(0, message.find(',')), 'v');
  auto signature = v ? base64_decode_canonical(*v) : std::nullopt;
  if (!signature) return malformed("server-final-message has no v= signature");
  std::string expected;
  if (!hmac(hash_, server_key_, auth_message_, expected)) return Internal("SCRAM: HMAC failed");
  if (signature->size() != expected.size() ||
      CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0) {
    return PermissionDenied("SCRAM: the server signature does not match");
  }
  return Status::Ok();
}

}  // namespace ganglion::broker
