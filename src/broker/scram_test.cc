// The SCRAM server without sockets: RFC 7677's SCRAM-SHA-256 exchange, a SCRAM-SHA-512
// known answer computed independently with Python's hashlib/hmac, the password file as the
// credential source, and malformed client messages.
#include "broker/scram.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/base64.h"
#include "broker/password_file.h"

namespace ganglion::broker {
namespace {

// RFC 7677 section 3.
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

// SCRAM-SHA-512, password "pencil", salt "ganglion-salt-16", 4096 iterations. Computed with
//   sp = hashlib.pbkdf2_hmac("sha512", b"pencil", b"ganglion-salt-16", 4096)
//   ck = hmac.new(sp, b"Client Key", "sha512").digest(); sk = hashlib.sha512(ck).digest()
//   am = client_first_bare + b"," + server_first + b"," + client_final_without_proof
//   proof = ck XOR hmac(sk, am); v = hmac(hmac(sp, b"Server Key"), am)
constexpr std::string_view kSalt512 = "ganglion-salt-16";
constexpr std::string_view kSaltedPassword512 =
    "gqYwnpLixSepTm3wonDh2zEiTYdrpFBxcgCT1SaICYKNWkBKIW+cQPzHaKnRMBblhDeij9ID+RMW4kQmKQJKMQ==";
constexpr std::string_view k512ClientFirst = "n,,n=user,r=clientNONCE123";
constexpr std::string_view k512ServerFirst =
    "r=clientNONCE123serverNONCE456,s=Z2FuZ2xpb24tc2FsdC0xNg==,i=4096";
constexpr std::string_view k512ClientFinal =
    "c=biws,r=clientNONCE123serverNONCE456,p=jaD8CkDCMZmBrPIk4Yf43hDD2r8CEsl3KkLfVH8afsBnDL4/"
    "S2khWSzYRBCWYb6xTferLVQ1JYZlayHGJNn/mw==";
constexpr std::string_view k512ServerFinal =
    "v=W5M6Go0Exw2OIgErAs1oD7ohZR0iLsDcZB9QAi6ToHSvD5DVbewME60EqCYL9my1UbKjAZypvqeh3mGg5kQ5ug==";

ScramCredentials rfc_credentials() {
  auto c = scram_credentials_from_password(
      ScramHash::kSha256, "pencil", *base64_decode_canonical("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
  EXPECT_TRUE(c.ok());
  return *c;
}

ScramCredentials credentials_512(std::string_view password = "pencil") {
  auto c =
      scram_credentials_from_password(ScramHash::kSha512, password, std::string(kSalt512), 4096);
  EXPECT_TRUE(c.ok());
  return *c;
}

// A client side for the round trips: the client-final-message for `server_first`.
std::string client_final(ScramHash hash, std::string_view password, std::string_view salt,
                         std::uint32_t iterations, std::string_view client_first_bare,
                         std::string_view server_first, std::string_view without_proof) {
  const EVP_MD* md = hash == ScramHash::kSha256 ? EVP_sha256() : EVP_sha512();
  const std::size_t n = scram_hash_size(hash);
  std::string salted(n, '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), static_cast<int>(iterations), md,
                    static_cast<int>(n), reinterpret_cast<unsigned char*>(salted.data()));
  auto mac = [&](std::string_view key, std::string_view data) {
    std::string out(n, '\0');
    unsigned int len = 0;
    HMAC(md, key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         reinterpret_cast<unsigned char*>(out.data()), &len);
    return out;
  };
  const std::string client_key = mac(salted, "Client Key");
  std::string stored_key(n, '\0');
  EVP_Digest(client_key.data(), n, reinterpret_cast<unsigned char*>(stored_key.data()), nullptr, md,
             nullptr);
  const std::string auth_message = std::string(client_first_bare) + "," +
                                   std::string(server_first) + "," + std::string(without_proof);
  const std::string signature = mac(stored_key, auth_message);
  std::string proof(n, '\0');
  for (std::size_t i = 0; i < n; ++i) proof[i] = client_key[i] ^ signature[i];
  return std::string(without_proof) + ",p=" + base64_encode(proof);
}

TEST(ScramTest, Rfc7677Sha256ExchangeGivesTheServerSignature) {
  ScramServer server(ScramHash::kSha256);
  auto user = server.receive_client_first(kRfcClientFirst);
  ASSERT_TRUE(user.ok()) << user.status().to_string();
  EXPECT_EQ(*user, "user");
  EXPECT_EQ(server.server_first(rfc_credentials(), kRfcServerNonce), kRfcServerFirst);
  auto final = server.receive_client_final(kRfcClientFinal);
  ASSERT_TRUE(final.ok()) << final.status().to_string();
  EXPECT_EQ(*final, kRfcServerFinal);
}

TEST(ScramTest, Sha512KnownAnswerFromPython) {
  ScramServer server(ScramHash::kSha512);
  ASSERT_TRUE(server.receive_client_first(k512ClientFirst).ok());
  EXPECT_EQ(server.server_first(credentials_512(), "serverNONCE456"), k512ServerFirst);
  auto final = server.receive_client_final(k512ClientFinal);
  ASSERT_TRUE(final.ok()) << final.status().to_string();
  EXPECT_EQ(*final, k512ServerFinal);
}

TEST(ScramTest, PasswordFileHashIsTheSaltedPassword) {
  // The line `ganglion passwd` would write for "pencil" with this salt and 4096 iterations.
  const std::string line = "user:$pbkdf2-sha512$4096$" + base64_encode(kSalt512) + "$" +
                           std::string(kSaltedPassword512) + "\n";
  auto file = PasswordFile::parse(line);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  ASSERT_TRUE(file->verify("user", "pencil"));
  auto from_file = file->scram_sha512_credentials("user");
  ASSERT_TRUE(from_file.has_value());
  const ScramCredentials expected = credentials_512();
  EXPECT_EQ(from_file->salt, expected.salt);
  EXPECT_EQ(from_file->iterations, 4096u);
  EXPECT_EQ(from_file->stored_key, expected.stored_key);
  EXPECT_EQ(from_file->server_key, expected.server_key);
  EXPECT_FALSE(file->scram_sha512_credentials("nobody").has_value());

  ScramServer server(ScramHash::kSha512);
  ASSERT_TRUE(server.receive_client_first(k512ClientFirst).ok());
  server.server_first(*from_file, "serverNONCE456");
  auto final = server.receive_client_final(k512ClientFinal);
  ASSERT_TRUE(final.ok()) << final.status().to_string();
  EXPECT_EQ(*final, k512ServerFinal);
}

TEST(ScramTest, RandomlySaltedPasswordFileEntryRoundTrips) {
  PasswordFile file;
  ASSERT_TRUE(file.add_user("alice", "s3cret", 1000).ok());
  auto creds = file.scram_sha512_credentials("alice");
  ASSERT_TRUE(creds.has_value());
  ScramServer server(ScramHash::kSha512);
  ASSERT_TRUE(server.receive_client_first("n,,n=alice,r=abc").ok());
  const std::string first = server.server_first(*creds, "def");
  const std::string final =
      client_final(ScramHash::kSha512, "s3cret", creds->salt, creds->iterations, "n=alice,r=abc",
                   first, "c=biws,r=abcdef");
  EXPECT_TRUE(server.receive_client_final(final).ok());
}

TEST(ScramTest, WrongPasswordIsPermissionDenied) {
  ScramServer server(ScramHash::kSha512);
  ASSERT_TRUE(server.receive_client_first(k512ClientFirst).ok());
  const std::string first = server.server_first(credentials_512(), "serverNONCE456");
  const std::string final =
      client_final(ScramHash::kSha512, "pencils", kSalt512, 4096, "n=user,r=clientNONCE123", first,
                   "c=biws,r=clientNONCE123serverNONCE456");
  auto r = server.receive_client_final(final);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
}

TEST(ScramTest, UnknownUserWithDecoyCredentialsFailsLikeAWrongPassword) {
  PasswordFile file;
  ASSERT_TRUE(file.add_user("alice", "s3cret", 1000).ok());
  const ScramCredentials decoy = file.scram_decoy_credentials("mallory", "secret");
  EXPECT_EQ(decoy.salt.size(), kPasswordSaltBytes);
  EXPECT_EQ(decoy.iterations, 1000u);  // like the real entries
  // The same salt on every attempt, another for another user.
  EXPECT_EQ(file.scram_decoy_credentials("mallory", "secret").salt, decoy.salt);
  EXPECT_NE(file.scram_decoy_credentials("eve", "secret").salt, decoy.salt);

  ScramServer server(ScramHash::kSha512);
  ASSERT_TRUE(server.receive_client_first("n,,n=mallory,r=abc").ok());
  const std::string first = server.server_first(decoy, "def");
  const std::string final = client_final(ScramHash::kSha512, "s3cret", decoy.salt, 1000,
                                         "n=mallory,r=abc", first, "c=biws,r=abcdef");
  auto r = server.receive_client_final(final);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
}

TEST(ScramTest, ChannelBindingRequestIsRefused) {
  ScramServer server(ScramHash::kSha512);
  auto r = server.receive_client_first("p=tls-unique,,n=user,r=abc");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("channel binding"), std::string::npos);
}

TEST(ScramTest, YFlagIsAcceptedAndMustBeEchoed) {
  ScramServer server(ScramHash::kSha512);
  ASSERT_TRUE(server.receive_client_first("y,,n=user,r=abc").ok());
  const std::string first = server.server_first(credentials_512(), "def");
  // "eSws" is base64("y,,").
  const std::string good = client_final(ScramHash::kSha512, "pencil", kSalt512, 4096,
                                        "n=user,r=abc", first, "c=eSws,r=abcdef");
  EXPECT_TRUE(server.receive_client_final(good).ok());

  ScramServer other(ScramHash::kSha512);
  ASSERT_TRUE(other.receive_client_first("y,,n=user,r=abc").ok());
  const std::string first2 = other.server_first(credentials_512(), "def");
  const std::string bad = client_final(ScramHash::kSha512, "pencil", kSalt512, 4096, "n=user,r=abc",
                                       first2, "c=biws,r=abcdef");
  auto r = other.receive_client_final(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(ScramTest, WrongNonceIsRefused) {
  ScramServer server(ScramHash::kSha512);
  ASSERT_TRUE(server.receive_client_first("n,,n=user,r=abc").ok());
  const std::string first = server.server_first(credentials_512(), "def");
  const std::string final = client_final(ScramHash::kSha512, "pencil", kSalt512, 4096,
                                         "n=user,r=abc", first, "c=biws,r=abcdeX");
  auto r = server.receive_client_final(final);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(ScramTest, UsernamesAreUnescaped) {
  auto first = parse_scram_client_first("n,,n=a=2Cb=3Dc,r=xyz");
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_EQ(first->username, "a,b=c");
  EXPECT_EQ(first->bare, "n=a=2Cb=3Dc,r=xyz");
  EXPECT_EQ(first->gs2_header, "n,,");
  EXPECT_FALSE(parse_scram_client_first("n,,n=a=2Xb,r=xyz").ok());
  EXPECT_FALSE(parse_scram_client_first("n,,n=ab=,r=xyz").ok());
}

TEST(ScramTest, AuthzidMustBeTheUser) {
  auto same = parse_scram_client_first("n,a=user,n=user,r=xyz");
  ASSERT_TRUE(same.ok()) << same.status().to_string();
  EXPECT_EQ(same->gs2_header, "n,a=user,");
  EXPECT_FALSE(parse_scram_client_first("n,a=admin,n=user,r=xyz").ok());
}

TEST(ScramTest, MalformedClientFirstMessagesAreErrors) {
  const std::string too_long = "n,,n=user,r=" + std::string(kMaxScramMessageBytes, 'x');
  for (std::string_view m :
       {std::string_view(""), std::string_view("n"), std::string_view("n,,"),
        std::string_view("n,,n=user"), std::string_view("n,,r=abc"),
        std::string_view("n,,n=,r=abc"), std::string_view("n,,n=user,r="),
        std::string_view("n,,n=user,r=a\x01"), std::string_view("x,,n=user,r=abc"),
        std::string_view("n,,m=ext,n=user,r=abc"), std::string_view("n,,n=user,r=abc,"),
        std::string_view("n,,n=user,r=abc,1=x"), std::string_view("n,,n=us\0er,r=abc", 16),
        std::string_view("n,b=x,n=user,r=abc"), std::string_view(too_long)}) {
    auto r = parse_scram_client_first(m);
    EXPECT_FALSE(r.ok()) << "accepted: " << m;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << m;
    }
  }
  EXPECT_TRUE(parse_scram_client_first("n,,n=user,r=abc,x=ext").ok());
}

TEST(ScramTest, MalformedClientFinalMessagesAreErrors) {
  for (std::string_view m :
       {"", "c=biws", "c=biws,r=abc", "r=abc,c=biws,p=AAAA", "c=bi!s,r=abc,p=AAAA",
        "c=biws,r=abc,p=AAA", "c=biws,r=abc,p=", "c=,r=abc,p=AAAA", "c=biws,r=abc,p=AAAA,x=y",
        "c=biws,r=abc,1=x,p=AAAA", "c=biws,,p=AAAA"}) {
    EXPECT_FALSE(parse_scram_client_final(m).ok()) << "accepted: " << m;
  }
  auto ok = parse_scram_client_final("c=biws,r=abc,x=ext,p=AAAA");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok->without_proof, "c=biws,r=abc,x=ext");
  EXPECT_EQ(ok->channel_binding, "n,,");
  EXPECT_EQ(ok->proof, std::string(3, '\0'));
}

TEST(ScramTest, ShortProofIsRefusedWithoutReadingPastIt) {
  ScramServer server(ScramHash::kSha512);
  ASSERT_TRUE(server.receive_client_first("n,,n=user,r=abc").ok());
  server.server_first(credentials_512(), "def");
  auto r = server.receive_client_final("c=biws,r=abcdef,p=AAAA");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
}

TEST(ScramTest, StepsOutOfOrderAreErrors) {
  ScramServer server(ScramHash::kSha512);
  EXPECT_FALSE(server.receive_client_final(k512ClientFinal).ok());
  ASSERT_TRUE(server.receive_client_first(k512ClientFirst).ok());
  EXPECT_FALSE(server.receive_client_first(k512ClientFirst).ok());
  server.server_first(credentials_512(), "serverNONCE456");
  ASSERT_TRUE(server.receive_client_final(k512ClientFinal).ok());
  // Single use: a replayed final message is not accepted again.
  EXPECT_FALSE(server.receive_client_final(k512ClientFinal).ok());
}

TEST(ScramTest, ClientSideProducesTheRfc7677Messages) {
  ScramClient client(ScramHash::kSha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
  EXPECT_EQ(client.client_first(), kRfcClientFirst);
  auto final = client.receive_server_first(kRfcServerFirst);
  ASSERT_TRUE(final.ok()) << final.status().to_string();
  EXPECT_EQ(*final, kRfcClientFinal);
  EXPECT_TRUE(client.receive_server_final(kRfcServerFinal).ok());
  EXPECT_EQ(client.receive_server_final("v=" + base64_encode(std::string(32, 'x'))).code(),
            StatusCode::kPermissionDenied);
}

TEST(ScramTest, ClientAndServerRoundTripWithAnEscapedUsername) {
  ScramClient client(ScramHash::kSha512, "a,b=c", "pw", "n0nce");
  ScramServer server(ScramHash::kSha512);
  auto user = server.receive_client_first(client.client_first());
  ASSERT_TRUE(user.ok()) << user.status().to_string();
  EXPECT_EQ(*user, "a,b=c");
  auto creds = scram_credentials_from_password(ScramHash::kSha512, "pw", "salty", 16);
  ASSERT_TRUE(creds.ok());
  auto final = client.receive_server_first(server.server_first(*creds, "srv"));
  ASSERT_TRUE(final.ok()) << final.status().to_string();
  auto server_final = server.receive_client_final(*final);
  ASSERT_TRUE(server_final.ok()) << server_final.status().to_string();
  EXPECT_TRUE(client.receive_server_final(*server_final).ok());
}

TEST(ScramTest, MethodNames) {
  EXPECT_EQ(parse_scram_method("SCRAM-SHA-512"), ScramHash::kSha512);
  EXPECT_EQ(parse_scram_method("SCRAM-SHA-256"), ScramHash::kSha256);
  EXPECT_FALSE(parse_scram_method("SCRAM-SHA-1").has_value());
  EXPECT_EQ(scram_method_name(ScramHash::kSha512), "SCRAM-SHA-512");
}

}  // namespace
}  // namespace ganglion::broker
