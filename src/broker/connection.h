// Connection: the MQTT protocol state machine of one transport connection, server side.
//
// The transport decodes packets (mqtt::Decoder) and feeds them here; this class checks them
// against the session and the specs (CONNECT first, authentication, ACLs, topic aliases,
// QoS flows, limits) and answers through the Link. No sockets, no clock reads except through
// the broker's Clock: unit tests drive it with in-memory links and a ManualClock.
//
// Thread: on_packet(), on_decode_error() and on_closed() are called on the transport's
// thread, one at a time. The keep-alive check runs on the Clock's thread (the broker's
// KeepAliveWheel) and only touches atomics and the (thread-safe) Link.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "base/status.h"
#include "broker/acl.h"
#include "broker/keep_alive_wheel.h"
#include "broker/link.h"
#include "mqtt/packet.h"

namespace ganglion::broker {

class Broker;
class Session;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Broker& broker, std::shared_ptr<Link> link, TransportInfo info);
  ~Connection();

  void on_packet(mqtt::Packet&& packet);
  // The decoder failed: answer with the reason code it carries (CONNACK before the session
  // exists, DISCONNECT after, MQTT 5 only) and close.
  void on_decode_error(const Status& error);
  // The transport closed (peer gone, I/O error, or after close()). Publishes the will if
  // due and detaches the session. Idempotent.
  void on_closed();

  const TransportInfo& info() const { return info_; }
  const std::string& client_id() const { return client_id_; }
  // The authenticated identity (certificate CN, username, or the SCRAM user of enhanced
  // authentication) once CONNECT was accepted.
  const std::optional<std::string>& username() const { return username_; }
  bool connected() const { return state_.load() == State::kConnected; }
  // Ends the connection with a DISCONNECT carrying `reason` (MQTT 5) and closes it.
  void disconnect(mqtt::ReasonCode reason);
  // The connection's session was taken over by a new connection with the same client id.
  void taken_over();
  // The keep-alive deadline passed (from the broker's KeepAliveWheel, on the Clock's
  // thread): disconnects when no packet came within 1.5 keep-alives, else re-arms.
  void check_keep_alive();

 private:
  // kAuthenticating: a CONNECT named an Authentication Method and the AUTH exchange is
  // running (the listener's connect timeout still applies: connected() is false).
  enum class State : std::uint8_t { kAwaitConnect, kAuthenticating, kConnected, kClosed };
  struct EnhancedAuth;

  void handle(mqtt::Connect& p);
  void handle(mqtt::Publish& p);
  void handle(mqtt::Puback& p);
  void handle(mqtt::Pubrec& p);
  void handle(mqtt::Pubrel& p);
  void handle(mqtt::Pubcomp& p);
  void handle(mqtt::Subscribe& p);
  void handle(mqtt::Unsubscribe& p);
  void handle(mqtt::Disconnect& p);
  void handle(mqtt::Auth& p);  // re-authentication (spec 4.12.1)
  // CONNECT with an Authentication Method: the first step of the exchange.
  void begin_enhanced_auth(mqtt::Connect& c);
  // AUTH while kAuthenticating: the client-final-message, then CONNACK.
  void continue_enhanced_auth(mqtt::Auth& a);
  // Starts an exchange from the client-first-message for `auth_`; returns the
  // server-first-message, or an error (kInvalidArgument: malformed; kInternal: no entropy).
  Result<std::string> scram_server_first(std::string_view client_first);
  // The identity is settled: checks the rest of the CONNECT, attaches the session and sends
  // the CONNACK (carrying `auth_data` with the method when enhanced authentication ran).
  void accept_connect(mqtt::Connect& c, std::optional<std::string> auth_data);
  void refuse_connect(mqtt::ReasonCode reason);
  void protocol_error(mqtt::ReasonCode reason);
  void arm_keep_alive();
  void publish_will_now();
  bool v5() const { return version_ == mqtt::ProtocolVersion::kV5; }

  Broker& broker_;
  std::shared_ptr<Link> link_;
  TransportInfo info_;
  std::atomic<State> state_{State::kAwaitConnect};
  mqtt::ProtocolVersion version_ = mqtt::ProtocolVersion::kV311;
  std::string client_id_;
  std::optional<std::string> username_;
  std::shared_ptr<Session> session_;
  std::shared_ptr<const IdentityAcl> acl_;
  std::unique_ptr<EnhancedAuth> auth_;  // set when the CONNECT named an Authentication Method
  std::unique_ptr<mqtt::Will> will_;    // (mqtt::Will is ~700 bytes; most clients have none)
  bool will_on_close_ = true;           // false after a normal DISCONNECT
  std::atomic<bool> taken_over_{false};
  bool counted_ = false;  // counted in the broker's connection total
  bool problem_information_ = true;
  std::uint32_t connect_session_expiry_ = 0;
  std::uint16_t keep_alive_ = 0;
  std::atomic<std::int64_t> last_activity_ms_{0};
  KeepAliveWheel::Entry keep_alive_entry_;  // guarded by the wheel
  // Topic aliases the client set (MQTT 5); created on the first one.
  std::unique_ptr<std::unordered_map<std::uint16_t, std::string>> inbound_aliases_;
};

}  // namespace ganglion::broker
