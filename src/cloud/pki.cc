#include "cloud/pki.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <chrono>

namespace ganglion::cloud {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
template <class T>
using Owned = std::unique_ptr<T, Free>;

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n > 0 ? n : 0));
}

std::string hex(const unsigned char* p, std::size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

Owned<EVP_PKEY> new_ec_key() { return Owned<EVP_PKEY>(EVP_EC_gen("P-256")); }

std::string key_pem(EVP_PKEY* key) {
  Owned<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return bio_string(bio.get());
}

std::string cert_pem(X509* cert) {
  Owned<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return bio_string(bio.get());
}

Owned<EVP_PKEY> read_key(std::string_view pem) {
  Owned<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Owned<EVP_PKEY>(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

Owned<X509> read_cert(std::string_view pem) {
  Owned<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Owned<X509>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::string key_fingerprint(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(key, &der);
  if (n <= 0) return {};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(der, static_cast<std::size_t>(n), md, &len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  return hex(md, len);
}

// The key's type name, or "" when it is not one we accept.
std::string accepted_key_type(EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_ED25519:
      return "ed25519";
    case EVP_PKEY_RSA: {
      const int bits = EVP_PKEY_get_bits(key);
      return bits >= 2048 ? "rsa-" + std::to_string(bits) : "";
    }
    case EVP_PKEY_EC: {
      char group[64] = {0};
      std::size_t len = 0;
      if (!EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof group, &len)) return "";
      const std::string g(group, len);
      if (g == "prime256v1" || g == "P-256") return "ec-p256";
      if (g == "secp384r1" || g == "P-384") return "ec-p384";
      return "";
    }
    default:
      return "";
  }
}

// Ed25519 signs without a separate digest; everything else with SHA-256.
const EVP_MD* digest_for(EVP_PKEY* key) {
  return EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
}

bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Owned<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

std::int64_t to_unix_s(WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// A certificate skeleton: version 3, random serial, validity, subject CN, public key.
Owned<X509> new_cert(const std::string& cn, EVP_PKEY* pub, WallTime from, WallTime to,
                     std::string* serial_hex) {
  Owned<X509> cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive
  serial[0] |= 0x01;  // and no leading zero byte, so the hex form is stable
  Owned<BIGNUM> bn(BN_bin2bn(serial, sizeof serial, nullptr));
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
  if (serial_hex) *serial_hex = hex(serial, sizeof serial);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(to_unix_s(from)));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(to_unix_s(to)));
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_pubkey(cert.get(), pub);
  return cert;
}

Status write_secret(Env& env, const std::string& path, std::string_view content) {
  GANGLION_RETURN_IF_ERROR(env.write_file_atomic(path, content));
  restrict_to_owner(path);
  return Status::Ok();
}

}  // namespace

struct CertificateAuthority::Keys {
  Owned<EVP_PKEY> key;
  Owned<X509> cert;
};

CertificateAuthority::~CertificateAuthority() = default;

void restrict_to_owner(const std::string& path) { ::chmod(path.c_str(), 0600); }

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return hex(md, len);
}

std::string random_hex(std::size_t n) {
  std::string bytes(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n));
  return hex(reinterpret_cast<const unsigned char*>(bytes.data()), n);
}

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::create(WallTime now) {
  std::unique_ptr<CertificateAuthority> ca(new CertificateAuthority());
  ca->keys_ = std::make_unique<Keys>();
  ca->keys_->key = new_ec_key();
  if (!ca->keys_->key) return Internal("cannot generate the CA key");
  using namespace std::chrono;
  auto cert = new_cert("Ganglion fleet CA " + random_hex(4), ca->keys_->key.get(), now - minutes(5),
                       now + hours(24 * 3650), nullptr);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_ext(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  if (X509_sign(cert.get(), ca->keys_->key.get(), EVP_sha256()) <= 0)
    return Internal("cannot sign the CA");
  ca->ca_pem_ = cert_pem(cert.get());
  ca->keys_->cert = std::move(cert);
  return ca;
}

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::load_or_create(
    Env& env, const std::string& dir, WallTime now) {
  GANGLION_RETURN_IF_ERROR(env.create_dirs(dir));
  const std::string key_path = join_path(dir, "ca.key");
  const std::string cert_path = join_path(dir, "ca.pem");
  if (!env.exists(key_path) || !env.exists(cert_path)) {
    GANGLION_ASSIGN_OR_RETURN(auto ca, create(now));
    GANGLION_RETURN_IF_ERROR(write_secret(env, key_path, key_pem(ca->keys_->key.get())));
    GANGLION_RETURN_IF_ERROR(env.write_file_atomic(cert_path, ca->ca_pem_));
    return ca;
  }
  GANGLION_ASSIGN_OR_RETURN(std::string key_text, env.read_file(key_path));
  GANGLION_ASSIGN_OR_RETURN(std::string cert_text, env.read_file(cert_path));
  std::unique_ptr<CertificateAuthority> ca(new CertificateAuthority());
  ca->keys_ = std::make_unique<Keys>();
  ca->keys_->key = read_key(key_text);
  ca->keys_->cert = read_cert(cert_text);
  if (!ca->keys_->key || !ca->keys_->cert)
    return Corruption("unreadable CA key or certificate in " + dir);
  if (X509_check_private_key(ca->keys_->cert.get(), ca->keys_->key.get()) != 1) {
    return Corruption("CA key and certificate in " + dir + " do not match");
  }
  ca->ca_pem_ = cert_text;
  return ca;
}

Result<CsrInfo> CertificateAuthority::inspect_csr(std::string_view csr_pem) const {
  if (csr_pem.size() > 64 * 1024) return InvalidArgument("csr too large");
  Owned<BIO> bio(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  Owned<X509_REQ> req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) return InvalidArgument("csr is not a PEM certificate request");
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (!key) return InvalidArgument("csr has no public key");
  CsrInfo info;
  info.key_type = accepted_key_type(key);
  if (info.key_type.empty()) {
    return InvalidArgument(
        "csr key type not accepted (use EC P-256/P-384, Ed25519 or RSA >= 2048)");
  }
  if (X509_REQ_verify(req.get(), key) != 1) return InvalidArgument("csr signature does not verify");
  char cn[256] = {0};
  const int n = X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req.get()), NID_commonName, cn,
                                          sizeof cn);
  if (n > 0) info.common_name.assign(cn, static_cast<std::size_t>(n));
  info.key_sha256 = key_fingerprint(key);
  return info;
}

Result<IssuedCertificate> CertificateAuthority::sign_node_csr(std::string_view csr_pem,
                                                              const std::string& node_id,
                                                              WallTime now,
                                                              Duration validity) const {
  GANGLION_ASSIGN_OR_RETURN(CsrInfo info, inspect_csr(csr_pem));
  if (info.common_name != node_id) {
    return InvalidArgument("csr common name \"" + info.common_name +
                           "\" does not match node id \"" + node_id + "\"");
  }
  Owned<BIO> bio(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  Owned<X509_REQ> req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  IssuedCertificate out;
  const WallTime not_after = now + validity;
  auto cert = new_cert(node_id, X509_REQ_get0_pubkey(req.get()), now - std::chrono::minutes(5),
                       not_after, &out.serial);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(keys_->cert.get()));
  add_ext(cert.get(), keys_->cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), keys_->cert.get(), NID_key_usage,
          "critical,digitalSignature,keyEncipherment");
  add_ext(cert.get(), keys_->cert.get(), NID_ext_key_usage, "clientAuth");
  add_ext(cert.get(), keys_->cert.get(), NID_authority_key_identifier, "keyid:always");
  if (X509_sign(cert.get(), keys_->key.get(), digest_for(keys_->key.get())) <= 0) {
    return Internal("cannot sign the node certificate");
  }
  out.pem = cert_pem(cert.get());
  out.not_after_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(not_after.time_since_epoch()).count();
  out.not_after_ms -= out.not_after_ms % 1000;
  out.key_sha256 = info.key_sha256;
  return out;
}

Result<KeyPairPem> CertificateAuthority::issue_server_certificate(
    const std::vector<std::string>& names, WallTime now, Duration validity) const {
  auto key = new_ec_key();
  if (!key) return Internal("cannot generate the server key");
  auto cert = new_cert(names.empty() ? "ganglion-cloud" : names.front(), key.get(),
                       now - std::chrono::minutes(5), now + validity, nullptr);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(keys_->cert.get()));
  std::string san;
  for (const auto& n : names) {
    const bool ip = !n.empty() &&
                    n.find_first_not_of("0123456789.:abcdefABCDEF") == std::string::npos &&
                    (n.find('.') != std::string::npos || n.find(':') != std::string::npos);
    san += (san.empty() ? "" : ",") + std::string(ip ? "IP:" : "DNS:") + n;
  }
  add_ext(cert.get(), keys_->cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), keys_->cert.get(), NID_key_usage,
          "critical,digitalSignature,keyEncipherment");
  add_ext(cert.get(), keys_->cert.get(), NID_ext_key_usage, "serverAuth");
  if (!san.empty() && !add_ext(cert.get(), keys_->cert.get(), NID_subject_alt_name, san.c_str())) {
    return InvalidArgument("bad server name in \"" + san + "\"");
  }
  if (X509_sign(cert.get(), keys_->key.get(), EVP_sha256()) <= 0)
    return Internal("cannot sign the server certificate");
  return KeyPairPem{cert_pem(cert.get()) + ca_pem_, key_pem(key.get())};
}

Result<std::string> load_or_create_signing_key(Env& env, const std::string& dir) {
  GANGLION_RETURN_IF_ERROR(env.create_dirs(dir));
  const std::string key_path = join_path(dir, "signing.key");
  const std::string pub_path = join_path(dir, "signing.pub");
  Owned<EVP_PKEY> key;
  if (env.exists(key_path)) {
    GANGLION_ASSIGN_OR_RETURN(std::string text, env.read_file(key_path));
    key = read_key(text);
    if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_ED25519) {
      return Corruption("unreadable Ed25519 signing key " + key_path);
    }
  } else {
    key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    if (!key) return Internal("cannot generate the signing key");
    GANGLION_RETURN_IF_ERROR(write_secret(env, key_path, key_pem(key.get())));
  }
  Owned<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), key.get());
  std::string pub = bio_string(bio.get());
  if (!env.exists(pub_path)) GANGLION_RETURN_IF_ERROR(env.write_file_atomic(pub_path, pub));
  return pub;
}

}  // namespace ganglion::cloud
