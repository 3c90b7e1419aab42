#include "edge/cloud_agent_crypto.h"

#include <gtest/gtest.h>

#include "edge/cloud_agent_test_ca.h"

namespace ganglion::edge {
namespace {

constexpr std::int64_t kT0 = 1'800'000'000;
constexpr std::int64_t kDay = 86'400;

TEST(CloudAgentCrypto, CsrCarriesNodeIdAndKeyAndParsesBack) {
  auto key = generate_node_key();
  ASSERT_TRUE(key.ok()) << key.status().to_string();
  EXPECT_NE(key->find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  auto csr = make_csr(*key, "plant-7-line-3");
  ASSERT_TRUE(csr.ok()) << csr.status().to_string();
  EXPECT_NE(csr->find("-----BEGIN CERTIFICATE REQUEST-----"), std::string::npos);

  auto facts = parse_csr(*csr);
  ASSERT_TRUE(facts.ok()) << facts.status().to_string();
  EXPECT_EQ(facts->common_name, "plant-7-line-3");
  EXPECT_TRUE(facts->signature_valid);

  // The certificate issued for the CSR carries the same public key, so it matches the key.
  testing::TestCa ca("test-ca", kT0, kT0 + 365 * kDay);
  const std::string cert = ca.issue(*csr, kT0, kT0 + 90 * kDay);
  auto cert_facts = parse_certificate(cert);
  ASSERT_TRUE(cert_facts.ok()) << cert_facts.status().to_string();
  EXPECT_EQ(cert_facts->public_key_pem, facts->public_key_pem);
  EXPECT_EQ(cert_facts->common_name, "plant-7-line-3");
  EXPECT_EQ(cert_facts->issuer_common_name, "test-ca");
  EXPECT_EQ(cert_facts->not_before, kT0);
  EXPECT_EQ(cert_facts->not_after, kT0 + 90 * kDay);
  EXPECT_FALSE(cert_facts->is_ca);
  EXPECT_TRUE(check_key_matches(cert, *key).ok());
}

TEST(CloudAgentCrypto, EveryKeyIsNew) {
  auto a = generate_node_key();
  auto b = generate_node_key();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST(CloudAgentCrypto, GarbageIsAnErrorNotACrash) {
  EXPECT_EQ(parse_csr("not a csr").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_certificate("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(make_csr("not a key", "n").status().code(), StatusCode::kInvalidArgument);
  auto key = generate_node_key();
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(make_csr(*key, "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(verify_chain("x", "y", kT0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(signed_by("x", "y").code(), StatusCode::kInvalidArgument);
}

TEST(CloudAgentCrypto, CertificateForAnotherKeyDoesNotMatch) {
  auto key = generate_node_key();
  auto other = generate_node_key();
  ASSERT_TRUE(key.ok() && other.ok());
  testing::TestCa ca("test-ca", kT0, kT0 + 365 * kDay);
  const std::string cert = ca.issue(*make_csr(*key, "n1"), kT0, kT0 + kDay);
  EXPECT_EQ(check_key_matches(cert, *other).code(), StatusCode::kInvalidArgument);
}

TEST(CloudAgentCrypto, ChainVerifiesOnlyAgainstItsCaAndWhileValid) {
  auto key = generate_node_key();
  ASSERT_TRUE(key.ok());
  testing::TestCa ca("test-ca", kT0, kT0 + 365 * kDay);
  testing::TestCa stranger("other-ca", kT0, kT0 + 365 * kDay);
  const std::string cert = ca.issue(*make_csr(*key, "n1"), kT0, kT0 + 90 * kDay);

  EXPECT_TRUE(verify_chain(cert, ca.certificate_pem(), kT0 + kDay).ok());
  Status expired = verify_chain(cert, ca.certificate_pem(), kT0 + 91 * kDay);
  EXPECT_EQ(expired.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(expired.message().find("expired"), std::string::npos) << expired.message();
  EXPECT_FALSE(verify_chain(cert, ca.certificate_pem(), kT0 - kDay).ok());  // not yet valid
  EXPECT_FALSE(verify_chain(cert, stranger.certificate_pem(), kT0 + kDay).ok());
  // A bundle with the right CA in it is enough.
  EXPECT_TRUE(
      verify_chain(cert, stranger.certificate_pem() + ca.certificate_pem(), kT0 + kDay).ok());

  EXPECT_TRUE(signed_by(cert, ca.certificate_pem()).ok());
  EXPECT_FALSE(signed_by(cert, stranger.certificate_pem()).ok());
  auto ca_facts = parse_certificate(ca.certificate_pem());
  ASSERT_TRUE(ca_facts.ok());
  EXPECT_TRUE(ca_facts->is_ca);
}

}  // namespace
}  // namespace ganglion::edge
