#include "broker/password_file.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>

#include "base/base64.h"

namespace ganglion::broker {
namespace {

constexpr std::string_view kScheme = "pbkdf2-sha512";
constexpr std::string_view kMosquittoScheme = "7";

struct ParsedHash {
  std::uint32_t iterations = 0;
  std::string salt;
  std::string hash;
};

// A stored salt or hash: non-empty canonical base64.
bool decode_stored(std::string_view text, std::string& out) {
  auto bytes = base64_decode_canonical(text);
  if (text.empty() || !bytes) return false;
  out = std::move(*bytes);
  return true;
}

bool pbkdf2(std::string_view password, std::string_view salt, std::uint32_t iterations,
            std::string& out) {
  out.assign(kPasswordHashBytes, '\0');
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                           reinterpret_cast<const unsigned char*>(salt.data()),
                           static_cast<int>(salt.size()), static_cast<int>(iterations),
                           EVP_sha512(), static_cast<int>(out.size()),
                           reinterpret_cast<unsigned char*>(out.data())) == 1;
}

// Parses "$<scheme>$<iterations>$<salt>$<hash>"; the error says what is wrong.
Status parse_hash(std::string_view encoded, ParsedHash& out) {
  std::string_view parts[5];
  std::size_t n = 0;
  std::size_t start = 0;
  for (;;) {
    const auto dollar = encoded.find('$', start);
    if (n == 5) return InvalidArgument("too many '$' fields in hash");
    parts[n++] = encoded.substr(start, dollar == std::string_view::npos ? dollar : dollar - start);
    if (dollar == std::string_view::npos) break;
    start = dollar + 1;
  }
  const Status shape =
      InvalidArgument("hash must look like $pbkdf2-sha512$<iterations>$<salt>$<hash>");
  if (n < 2 || !parts[0].empty()) return shape;
  if (parts[1] != kScheme && parts[1] != kMosquittoScheme) {
    return InvalidArgument("unsupported hash scheme '" + std::string(parts[1]) + "'");
  }
  if (n != 5) return shape;
  const auto* first = parts[2].data();
  const auto* last = first + parts[2].size();
  auto [ptr, ec] = std::from_chars(first, last, out.iterations);
  if (ec != std::errc() || ptr != last || parts[2].empty() || out.iterations == 0 ||
      out.iterations > kMaxPbkdf2Iterations) {
    return InvalidArgument("iterations must be 1.." + std::to_string(kMaxPbkdf2Iterations));
  }
  if (!decode_stored(parts[3], out.salt) || out.salt.empty()) {
    return InvalidArgument("salt is not valid base64");
  }
  if (!decode_stored(parts[4], out.hash) || out.hash.size() != kPasswordHashBytes) {
    return InvalidArgument("hash is not " + std::to_string(kPasswordHashBytes) +
                           " bytes of base64");
  }
  return Status::Ok();
}

Status check_username(std::string_view user) {
  if (user.empty()) return InvalidArgument("username is empty");
  // The file would read the line back as a comment and lose the user.
  if (user.front() == '#') return InvalidArgument("username must not start with '#'");
  for (const char c : user) {
    if (c == ':' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return InvalidArgument("username must not contain ':' or control characters");
    }
  }
  return Status::Ok();
}

bool verify_parsed(const ParsedHash& h, std::string_view password) {
  std::string computed;
  if (!pbkdf2(password, h.salt, h.iterations, computed)) return false;
  return CRYPTO_memcmp(computed.data(), h.hash.data(), kPasswordHashBytes) == 0;
}

}  // namespace

Result<std::string> hash_password(std::string_view password, std::uint32_t iterations) {
  if (iterations == 0 || iterations > kMaxPbkdf2Iterations) {
    return InvalidArgument("iterations must be 1.." + std::to_string(kMaxPbkdf2Iterations));
  }
  std::string salt(kPasswordSaltBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), static_cast<int>(salt.size())) !=
      1) {
    return Internal("RAND_bytes failed");
  }
  std::string hash;
  if (!pbkdf2(password, salt, iterations, hash)) return Internal("PKCS5_PBKDF2_HMAC failed");
  std::string out = "$";
  out += kScheme;
  out += '$';
  out += std::to_string(iterations);
  out += '$';
  out += base64_encode(salt);
  out += '$';
  out += base64_encode(hash);
  return out;
}

bool verify_password(std::string_view encoded, std::string_view password) {
  ParsedHash h;
  if (!parse_hash(encoded, h).ok()) return false;
  return verify_parsed(h, password);
}

Result<PasswordFile> PasswordFile::parse(std::string_view text) {
  PasswordFile file;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;

    auto error = [&](const std::string& what) {
      return InvalidArgument("password file line " + std::to_string(line_no) + ": " + what);
    };
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return error("expected <username>:<hash>");
    const std::string_view user = line.substr(0, colon);
    const std::string_view encoded = line.substr(colon + 1);
    if (Status s = check_username(user); !s.ok()) return error(s.message());
    ParsedHash parsed;
    if (Status s = parse_hash(encoded, parsed); !s.ok()) {
      return error(s.message() + " (user '" + std::string(user) + "')");
    }
    if (!file.users_.emplace(std::string(user), std::string(encoded)).second) {
      return error("duplicate user '" + std::string(user) + "'");
    }
  }
  return file;
}

Result<PasswordFile> PasswordFile::load(Env& env, const std::string& path) {
  auto text = env.read_file(path);
  if (!text.ok()) return text.status().with_context("password file " + path);
  auto file = parse(*text);
  if (!file.ok()) return file.status().with_context(path);
  return file;
}

std::string PasswordFile::serialize() const {
  std::string out;
  for (const auto& [user, encoded] : users_) {
    out += user;
    out += ':';
    out += encoded;
    out += '\n';
  }
  return out;
}

Status PasswordFile::save(Env& env, const std::string& path) const {
  return env.write_file_atomic(path, serialize());
}

bool PasswordFile::verify(std::string_view user, std::string_view password) const {
  auto it = users_.find(user);
  if (it == users_.end()) {
    // Spend the same effort as a real check so the response time does not reveal that the
    // user is unknown. Mirror the cost of an existing entry (or the default when empty).
    ParsedHash dummy;
    dummy.iterations = kDefaultPbkdf2Iterations;
    if (!users_.empty()) {
      ParsedHash any;
      if (parse_hash(users_.begin()->second, any).ok()) dummy.iterations = any.iterations;
    }
    dummy.salt.assign(kPasswordSaltBytes, '\0');
    dummy.hash.assign(kPasswordHashBytes, '\0');
    (void)verify_parsed(dummy, password);
    return false;
  }
  return verify_password(it->second, password);
}

Status PasswordFile::add_user(std::string_view user, std::string_view password,
                              std::uint32_t iterations) {
  GANGLION_RETURN_IF_ERROR(check_username(user));
  if (contains(user)) return AlreadyExists("user '" + std::string(user) + "' already exists");
  GANGLION_ASSIGN_OR_RETURN(std::string encoded, hash_password(password, iterations));
  users_.emplace(std::string(user), std::move(encoded));
  return Status::Ok();
}

Status PasswordFile::update_password(std::string_view user, std::string_view password,
                                     std::uint32_t iterations) {
  auto it = users_.find(user);
  if (it == users_.end()) return NotFound("no user '" + std::string(user) + "'");
  GANGLION_ASSIGN_OR_RETURN(std::string encoded, hash_password(password, iterations));
  it->second = std::move(encoded);
  return Status::Ok();
}

Status PasswordFile::remove_user(std::string_view user) {
  auto it = users_.find(user);
  if (it == users_.end()) return NotFound("no user '" + std::string(user) + "'");
  users_.erase(it);
  return Status::Ok();
}

std::optional<ScramCredentials> PasswordFile::scram_sha512_credentials(
    std::string_view user) const {
  auto it = users_.find(user);
  if (it == users_.end()) return std::nullopt;
  ParsedHash h;
  if (!parse_hash(it->second, h).ok()) return std::nullopt;
  auto c =
      scram_credentials_from_salted(ScramHash::kSha512, std::move(h.salt), h.iterations, h.hash);
  OPENSSL_cleanse(h.hash.data(), h.hash.size());
  if (!c.ok()) return std::nullopt;
  return std::move(*c);
}

ScramCredentials PasswordFile::scram_decoy_credentials(std::string_view user,
                                                       std::string_view secret) const {
  ScramCredentials c;
  c.iterations = kDefaultPbkdf2Iterations;
  if (!users_.empty()) {
    ParsedHash any;
    if (parse_hash(users_.begin()->second, any).ok()) c.iterations = any.iterations;
  }
  auto mac = [&](std::string_view label) {
    std::string data(label);
    data += '\0';
    data += user;
    std::string out(EVP_MAX_MD_SIZE, '\0');
    unsigned int len = 0;
    if (HMAC(EVP_sha512(), secret.data(), static_cast<int>(secret.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(),
             reinterpret_cast<unsigned char*>(out.data()), &len) == nullptr) {
      len = 0;
    }
    out.resize(len);
    return out;
  };
  c.salt = mac("salt").substr(0, kPasswordSaltBytes);
  if (c.salt.size() != kPasswordSaltBytes) c.salt.assign(kPasswordSaltBytes, '\x5a');
  c.stored_key = mac("stored key");
  c.server_key = mac("server key");
  return c;
}

std::vector<std::string> PasswordFile::usernames() const {
  std::vector<std::string> out;
  out.reserve(users_.size());
  for (const auto& [user, encoded] : users_) out.push_back(user);
  return out;
}

}  // namespace ganglion::broker
