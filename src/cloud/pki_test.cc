#include "cloud/pki.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base/mem_env.h"

namespace ganglion::cloud {
namespace {

const WallTime kNow{std::chrono::seconds(1'700'000'000)};

// A CSR for `cn` with a fresh key of the given type ("EC" P-256, "ED25519", "RSA").
std::string make_csr(const std::string& cn, const char* type = "EC", int rsa_bits = 2048) {
  EVP_PKEY* key = std::string(type) == "EC" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                  : std::string(type) == "RSA"
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(rsa_bits))
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  X509_REQ* req = X509_REQ_new();
  X509_REQ_set_pubkey(req, key);
  X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_REQ_sign(req, key, std::string(type) == "ED25519" ? nullptr : EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(bio, req);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  X509_REQ_free(req);
  EVP_PKEY_free(key);
  return pem;
}

X509* read_cert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* c = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return c;
}

TEST(Pki, SignsACsrForItsNodeWithShortValidity) {
  auto ca = CertificateAuthority::create(kNow);
  ASSERT_TRUE(ca.ok());
  for (const char* type : {"EC", "ED25519", "RSA"}) {
    auto issued =
        (*ca)->sign_node_csr(make_csr("edge-1", type), "edge-1", kNow, std::chrono::hours(24 * 30));
    ASSERT_TRUE(issued.ok()) << type << ": " << issued.status().to_string();
    X509* cert = read_cert(issued->pem);
    ASSERT_NE(cert, nullptr);
    char cn[64] = {0};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    EXPECT_STREQ(cn, "edge-1");
    X509* ca_cert = read_cert((*ca)->certificate_pem());
    EVP_PKEY* ca_key = X509_get0_pubkey(ca_cert);
    EXPECT_EQ(X509_verify(cert, ca_key), 1);
    EXPECT_EQ(issued->not_after_ms, (1'700'000'000LL + 30 * 86400) * 1000);
    EXPECT_EQ(issued->serial.size(), 32u);
    X509_free(ca_cert);
    X509_free(cert);
  }
}

TEST(Pki, RefusesMismatchedNamesBadPemAndWeakKeys) {
  auto ca = CertificateAuthority::create(kNow);
  ASSERT_TRUE(ca.ok());
  EXPECT_EQ((*ca)
                ->sign_node_csr(make_csr("edge-2"), "edge-1", kNow, std::chrono::hours(1))
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE((*ca)->inspect_csr("not a csr").ok());
  EXPECT_FALSE((*ca)->inspect_csr(make_csr("x", "RSA", 1024)).ok());
  std::string tampered = make_csr("edge-1");
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE((*ca)->inspect_csr(tampered).ok());
}

TEST(Pki, CaIsCreatedOnceAndReloaded) {
  MemEnv env;
  auto first = CertificateAuthority::load_or_create(env, "/data/pki", kNow);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  auto second = CertificateAuthority::load_or_create(env, "/data/pki", kNow);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*first)->certificate_pem(), (*second)->certificate_pem());
  auto server =
      (*second)->issue_server_certificate({"127.0.0.1", "localhost"}, kNow, std::chrono::hours(24));
  ASSERT_TRUE(server.ok());
  auto key = load_or_create_signing_key(env, "/data/pki");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, *load_or_create_signing_key(env, "/data/pki"));
  ASSERT_TRUE(env.write_file_atomic("/data/pki/ca.key", "junk").ok());
  EXPECT_EQ(CertificateAuthority::load_or_create(env, "/data/pki", kNow).status().code(),
            StatusCode::kCorruption);
}

}  // namespace
}  // namespace ganglion::cloud
