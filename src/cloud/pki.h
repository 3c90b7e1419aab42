// The controller's PKI: the fleet CA that signs node certificates (enrolment and renewal),
// the controller's own TLS server certificate, and the Ed25519 deployment-signing key.
//
// Files under <data_dir>/pki, PEM, written through Env (mode 0600 where the Env is the real
// filesystem; `ganglion cloud` also runs with umask 077):
//   ca.key / ca.pem            EC P-256 CA key and self-signed certificate (10 years)
//   server.key / server.pem    the controller's TLS certificate (SAN 127.0.0.1, localhost and
//                              configured names), re-issued at every start
//   signing.key / signing.pub  Ed25519 key signing deployment bundles
//
// Node certificates: subject CN = node id, the CSR's public key (after its self-signature is
// checked), random 128-bit serial, clientAuth only, no other CSR extension copied.
// Accepted keys: EC P-256/P-384, Ed25519, RSA >= 2048 bits.
//
// Thread-safe after construction (signing uses no shared mutable state).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/env.h"
#include "base/status.h"

namespace ganglion::cloud {

struct CsrInfo {
  std::string common_name;  // "" when the subject has none
  std::string key_type;     // "ec-p256", "ec-p384", "ed25519", "rsa-2048", ...
  std::string key_sha256;   // hex SHA-256 of the DER SubjectPublicKeyInfo
};

struct IssuedCertificate {
  std::string pem;
  std::string serial;  // lower-case hex
  std::int64_t not_after_ms = 0;
  std::string key_sha256;
};

struct KeyPairPem {
  std::string certificate;
  std::string key;
};

class CertificateAuthority {
 public:
  ~CertificateAuthority();
  CertificateAuthority(const CertificateAuthority&) = delete;
  CertificateAuthority& operator=(const CertificateAuthority&) = delete;

  // Loads ca.key/ca.pem from `dir`, creating both when absent. Errors: kIoError, kCorruption
  // for unreadable PEM.
  static Result<std::unique_ptr<CertificateAuthority>> load_or_create(Env& env,
                                                                      const std::string& dir,
                                                                      WallTime now);
  // A CA in memory only (tests).
  static Result<std::unique_ptr<CertificateAuthority>> create(WallTime now);

  const std::string& certificate_pem() const { return ca_pem_; }

  // Parses a PEM CSR and checks its self-signature and key. Errors: kInvalidArgument naming
  // what is wrong (not PEM, bad signature, unsupported key).
  Result<CsrInfo> inspect_csr(std::string_view csr_pem) const;
  // Signs `csr_pem` for `node_id`: its CN must equal node_id. Valid from now - 5 min to now +
  // validity. Errors: kInvalidArgument (as inspect_csr, or a CN mismatch), kInternal.
  Result<IssuedCertificate> sign_node_csr(std::string_view csr_pem, const std::string& node_id,
                                          WallTime now, Duration validity) const;
  // A fresh EC P-256 server key and certificate with the given DNS names / IP addresses as
  // subject alternative names, signed by this CA.
  Result<KeyPairPem> issue_server_certificate(const std::vector<std::string>& names, WallTime now,
                                              Duration validity) const;

 private:
  CertificateAuthority() = default;
  struct Keys;
  std::unique_ptr<Keys> keys_;
  std::string ca_pem_;
};

// Loads or creates the Ed25519 deployment-signing key in `dir` (signing.key, signing.pub);
// returns the public key PEM.
Result<std::string> load_or_create_signing_key(Env& env, const std::string& dir);

// Restricts a file to its owner (0600) when it exists on the real filesystem; no-op
// otherwise (in-memory Env).
void restrict_to_owner(const std::string& path);

// Hex SHA-256 of `data`; `n` random bytes as hex (OpenSSL's CSPRNG).
std::string sha256_hex(std::string_view data);
std::string random_hex(std::size_t n);

}  // namespace ganglion::cloud
