// Test only: a tiny CA that plays the controller's role in unit tests (issues a certificate
// for a CSR with chosen validity), so that the agent's checks run on real X.509.
#pragma once

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "edge/cloud_agent_crypto.h"

namespace ganglion::edge::testing {

class TestCa {
 public:
  TestCa(std::string_view cn, std::int64_t not_before, std::int64_t not_after) {
    auto key = generate_node_key();
    if (!key.ok()) throw std::runtime_error(key.status().to_string());
    key_pem_ = *key;
    EVP_PKEY* k = load_key();
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.data()),
                               static_cast<int>(cn.size()), -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, k);
    ASN1_TIME_set(X509_getm_notBefore(x), static_cast<time_t>(not_before));
    ASN1_TIME_set(X509_getm_notAfter(x), static_cast<time_t>(not_after));
    add_extension(x, x, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    X509_sign(x, k, EVP_sha256());
    cert_pem_ = to_pem(x);
    X509_free(x);
    EVP_PKEY_free(k);
  }

  const std::string& certificate_pem() const { return cert_pem_; }

  // A certificate for the CSR's subject and key, signed by this CA.
  std::string issue(std::string_view csr_pem, std::int64_t not_before, std::int64_t not_after,
                    long serial = 2) const {
    BIO* bio = BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size()));
    X509_REQ* req = PEM_read_bio_X509_REQ(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (!req) throw std::runtime_error("bad CSR");
    EVP_PKEY* k = load_key();
    X509* ca = load_cert();
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_set_subject_name(x, X509_REQ_get_subject_name(req));
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    X509_set_pubkey(x, X509_REQ_get0_pubkey(req));
    ASN1_TIME_set(X509_getm_notBefore(x), static_cast<time_t>(not_before));
    ASN1_TIME_set(X509_getm_notAfter(x), static_cast<time_t>(not_after));
    add_extension(x, ca, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(x, ca, NID_ext_key_usage, "clientAuth,serverAuth");
    X509_sign(x, k, EVP_sha256());
    std::string out = to_pem(x);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(k);
    X509_REQ_free(req);
    return out;
  }

 private:
  EVP_PKEY* load_key() const {
    BIO* bio = BIO_new_mem_buf(key_pem_.data(), static_cast<int>(key_pem_.size()));
    EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    return k;
  }
  X509* load_cert() const {
    BIO* bio = BIO_new_mem_buf(cert_pem_.data(), static_cast<int>(cert_pem_.size()));
    X509* c = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    return c;
  }
  static void add_extension(X509* x, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  static std::string to_pem(X509* x) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
  }

  std::string key_pem_;
  std::string cert_pem_;
};

}  // namespace ganglion::edge::testing
