#include "edge/cloud_agent_crypto.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>
#include <vector>

namespace ganglion::edge {
namespace {

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;

// The OpenSSL error queue as one line (and emptied, so the next call starts clean).
std::string openssl_error() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

BioPtr read_bio(std::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

Result<std::string> bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  if (n < 0 || data == nullptr) return Internal("empty PEM output");
  return std::string(data, static_cast<std::size_t>(n));
}

Result<KeyPtr> load_key(std::string_view key_pem) {
  auto bio = read_bio(key_pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return InvalidArgument("private key does not parse: " + openssl_error());
  return key;
}

Result<CertPtr> load_certificate(std::string_view pem) {
  auto bio = read_bio(pem);
  CertPtr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return InvalidArgument("certificate does not parse: " + openssl_error());
  return cert;
}

// Every certificate of a PEM text, in order. At least one, or an error.
Result<std::vector<CertPtr>> load_certificates(std::string_view pem) {
  auto bio = read_bio(pem);
  std::vector<CertPtr> out;
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
  ERR_clear_error();  // the loop ends on "no start line"
  if (out.empty()) return InvalidArgument("no certificate in PEM text");
  return out;
}

std::string common_name(const X509_NAME* name) {
  const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

Result<std::string> public_key_pem(EVP_PKEY* key) {
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!key || PEM_write_bio_PUBKEY(out.get(), key) != 1) return Internal(openssl_error());
  return bio_text(out.get());
}

std::int64_t unix_seconds(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

}  // namespace

Result<std::string> generate_node_key() {
  KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return Internal("EC P-256 key generation failed: " + openssl_error());
  BioPtr out(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Internal("writing the key failed: " + openssl_error());
  }
  return bio_text(out.get());
}

Result<std::string> make_csr(std::string_view key_pem, std::string_view cn) {
  if (cn.empty() || cn.size() > 64) return InvalidArgument("CSR common name must be 1..64 bytes");
  GANGLION_ASSIGN_OR_RETURN(KeyPtr key, load_key(key_pem));
  ReqPtr req(X509_REQ_new());
  NamePtr name(X509_NAME_new());
  if (!req || !name || X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.data()),
                                 static_cast<int>(cn.size()), -1, 0) != 1 ||
      X509_REQ_set_subject_name(req.get(), name.get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return Internal("building the CSR failed: " + openssl_error());
  }
  BioPtr out(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509_REQ(out.get(), req.get()) != 1) return Internal(openssl_error());
  return bio_text(out.get());
}

Result<CsrFacts> parse_csr(std::string_view csr_pem) {
  auto bio = read_bio(csr_pem);
  ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) return InvalidArgument("CSR does not parse: " + openssl_error());
  CsrFacts facts;
  facts.common_name = common_name(X509_REQ_get_subject_name(req.get()));
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  GANGLION_ASSIGN_OR_RETURN(facts.public_key_pem, public_key_pem(key));
  facts.signature_valid = X509_REQ_verify(req.get(), key) == 1;
  ERR_clear_error();
  return facts;
}

Result<CertificateFacts> parse_certificate(std::string_view certificate_pem) {
  GANGLION_ASSIGN_OR_RETURN(CertPtr cert, load_certificate(certificate_pem));
  CertificateFacts facts;
  facts.common_name = common_name(X509_get_subject_name(cert.get()));
  facts.issuer_common_name = common_name(X509_get_issuer_name(cert.get()));
  facts.not_before = unix_seconds(X509_get0_notBefore(cert.get()));
  facts.not_after = unix_seconds(X509_get0_notAfter(cert.get()));
  GANGLION_ASSIGN_OR_RETURN(facts.public_key_pem, public_key_pem(X509_get0_pubkey(cert.get())));
  facts.is_ca = X509_check_ca(cert.get()) >= 1;
  return facts;
}

Status check_key_matches(std::string_view certificate_pem, std::string_view key_pem) {
  GANGLION_ASSIGN_OR_RETURN(CertPtr cert, load_certificate(certificate_pem));
  GANGLION_ASSIGN_OR_RETURN(KeyPtr key, load_key(key_pem));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument("the certificate is not for this private key");
  }
  return Status::Ok();
}

Status verify_chain(std::string_view certificate_pem, std::string_view ca_pem,
                    std::int64_t at_unix_seconds) {
  GANGLION_ASSIGN_OR_RETURN(auto chain, load_certificates(certificate_pem));
  GANGLION_ASSIGN_OR_RETURN(auto cas, load_certificates(ca_pem));
  StorePtr store(X509_STORE_new());
  for (auto& ca : cas) X509_STORE_add_cert(store.get(), ca.get());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (std::size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted, chain[i].get());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  Status result;
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted) != 1) {
    result = Internal(openssl_error());
  } else {
    X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(at_unix_seconds));
    if (X509_verify_cert(ctx.get()) != 1) {
      result = InvalidArgument(std::string("certificate does not verify: ") +
                               X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
    }
  }
  sk_X509_free(untrusted);  // the certificates themselves belong to `chain`
  ERR_clear_error();
  return result;
}

Status signed_by(std::string_view certificate_pem, std::string_view ca_pem) {
  GANGLION_ASSIGN_OR_RETURN(CertPtr cert, load_certificate(certificate_pem));
  GANGLION_ASSIGN_OR_RETURN(auto cas, load_certificates(ca_pem));
  for (auto& ca : cas) {
    if (X509_verify(cert.get(), X509_get0_pubkey(ca.get())) == 1) return Status::Ok();
  }
  ERR_clear_error();
  return InvalidArgument("certificate is not signed by the given CA");
}

}  // namespace ganglion::edge
