// The node's X.509 identity: key generation, the enrolment CSR, and the checks run on what
// the controller returns. OpenSSL 3 (EVP) stays inside cloud_agent_crypto.cc.
//
// Everything here is a pure function of its inputs (PEM text in, PEM text or facts out): no
// files, no clock (times are passed in as unix seconds). Errors are Status values:
// kInvalidArgument for PEM that does not parse or does not match, kInternal when OpenSSL
// itself fails (out of memory, no EC support).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace ganglion::edge {

// A fresh EC P-256 private key, PEM (PKCS#8, unencrypted: the file holding it is 0600).
Result<std::string> generate_node_key();

// A PKCS#10 certificate signing request, PEM: subject CN=<common_name>, the key's public
// half, signed with the key (ECDSA-SHA256). No extensions: the controller decides the
// certificate's usage and validity.
Result<std::string> make_csr(std::string_view key_pem, std::string_view common_name);

struct CsrFacts {
  std::string common_name;
  std::string public_key_pem;  // SubjectPublicKeyInfo, PEM
  bool signature_valid = false;
};
Result<CsrFacts> parse_csr(std::string_view csr_pem);

struct CertificateFacts {
  std::string common_name;  // of the subject
  std::string issuer_common_name;
  std::int64_t not_before = 0;  // unix seconds
  std::int64_t not_after = 0;
  std::string public_key_pem;
  bool is_ca = false;  // basicConstraints CA:TRUE
};
// The first certificate of a PEM text (a chain's leaf).
Result<CertificateFacts> parse_certificate(std::string_view certificate_pem);

// ok when the certificate's public key is the key's public half.
Status check_key_matches(std::string_view certificate_pem, std::string_view key_pem);

// ok when `certificate_pem` (leaf, optionally followed by intermediates) chains to one of the
// CAs in `ca_pem` and is valid at `at_unix_seconds`. The message says what failed
// ("certificate has expired", "unable to get local issuer certificate", ...).
Status verify_chain(std::string_view certificate_pem, std::string_view ca_pem,
                    std::int64_t at_unix_seconds);

// ok when the certificate's signature verifies with one of the CAs' public keys (no time or
// purpose check). Used after a trust-on-first-use enrolment: the server that answered must
// hold a certificate from the CA it handed out.
Status signed_by(std::string_view certificate_pem, std::string_view ca_pem);

}  // namespace ganglion::edge
