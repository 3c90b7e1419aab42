// CloudAgent: the edge node's link to its controller (DESIGN.md "Edge <-> cloud").
//
//   no identity --POST /v1/enroll {token, node_id, csr}--> certificate + CA + mqtt_url
//        (HTTPS; key generated here and never sent; files under <data.dir>/cloud)
//   identity  --MQTT 5 over mutual TLS to mqtt_url (client id = node id)-->
//        publish  ganglion/v1/<node>/heartbeat  every heartbeat_interval while connected
//        publish  ganglion/v1/<node>/reported   on every connect and when it changes
//        subscribe ganglion/v1/<node>/desired   (retained; persisted to desired.json)
//        subscribe ganglion/v1/<node>/commands  (counted and logged; no command exists yet)
//
// Files under <data.dir>/cloud (the folder is 0700):
//   node.key        EC P-256 private key, PEM, mode 0600; generated once, reused on renewal
//   node.pem        the certificate the controller issued (CN = node id)
//   ca.pem          the controller's CA (verifies its HTTPS and MQTT servers from now on)
//   enrolment.json  {"node_id","mqtt_url","controller","ca_source":"operator"|"first-use",
//                    "enrolled_at","expires_at"}
//   desired.json    the last desired state received (verification comes with deployments)
//
// Trust on the very first call: with cloud.ca the controller's HTTPS certificate must chain
// to that CA. Without it the first call trusts whoever answers (TOFU), then checks that the
// answering server's certificate is signed by the CA it returned and pins that CA. Risk: an
// attacker on the path during the first start can impersonate the controller, take the
// bootstrap token and become the node's CA; after that first start nothing changes hands
// without the pinned CA. Give cloud.ca where the path is not trusted.
//
// Renewal: once less than a third of the certificate's validity is left, the agent asks
// POST /v1/renew over mutual TLS (same key, new CSR). That endpoint is not in the protocol
// yet: a 404/405 is logged once and asked again every renew_retry. When the certificate
// expires without renewal the node must be enrolled again: a new cloud.token, and the node
// removed from the controller first (otherwise 409), and <data.dir>/cloud/node.pem deleted.
//
// Seams: the HTTPS side is an EnrolmentApi and the MQTT side a CloudLink, both abstract, so
// tests drive the state machine with fakes and a ManualClock (no sockets, no sleeps).
// Time comes from the Clock only (heartbeat timer, renewal timer, enrolment backoff, and the
// wall time that certificate validity is checked against).
//
// Thread model: callbacks arrive from the clock's thread (timers) and from the loop running
// the link and the API (completions, messages); one mutex guards the agent's state, and the
// link is never called with it held. Public methods are thread-safe. Destroy the agent after
// the loop that runs its link has stopped, or on that loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/config.h"
#include "base/env.h"
#include "base/metrics.h"
#include "base/status.h"
#include "client/mqtt_client.h"

namespace boost::asio {
class io_context;
}
namespace ganglion::net {
class HttpRouter;
}

namespace ganglion::edge {

// Where the identity lives under a data folder.
struct CloudFiles {
  std::string dir, key, certificate, ca, enrolment, desired;
  static CloudFiles under(const std::string& data_dir);
};

// What enrolment produced: enough to open the MQTT link (the agent's and the uplink's).
struct CloudIdentity {
  std::string node_id;
  std::string mqtt_url;  // tls://host:port
  std::string ca_file;   // paths of the PEM files, for MqttClient / uplink.tls.*
  std::string certificate_file;
  std::string key_file;
  std::int64_t not_before = 0;  // unix seconds
  std::int64_t not_after = 0;
  std::string ca_source;  // "operator" (cloud.ca) or "first-use"
};

// Reads and checks the identity stored under <data_dir>/cloud: the certificate parses, is for
// `node_id`, matches node.key and chains to ca.pem at `now_unix` (expiry included).
// Errors: kNotFound (never enrolled: no certificate), kFailedPrecondition (expired, another
// node, key mismatch, untrusted: the message says which), kCorruption (files do not parse).
Result<CloudIdentity> load_cloud_identity(Env& env, const std::string& data_dir,
                                          std::string_view node_id, std::int64_t now_unix);

// --- the uplink's use of the identity -------------------------------------------------
//
// The uplink connects to the same mqtt_url with the same certificate. EdgeNode starts the
// agent before the uplink and gives the uplink CloudAgent::uplink_config(config): a copy of
// the node's configuration where, when cloud.url is set, an identity exists and uplink.url
// was left empty, uplink.url = mqtt_url and uplink.tls.{ca,certificate,key} = the files
// above. An explicit uplink.url wins (the uplink then goes wherever the operator said, with
// the uplink.tls.* given). Other programs take cloud_uplink_endpoint() below.
struct UplinkEndpoint {
  std::string url;  // tls://host:port
  std::string ca_file, certificate_file, key_file;
};
// The endpoint of an enrolled node's uplink; errors as load_cloud_identity().
Result<UplinkEndpoint> cloud_uplink_endpoint(Env& env, const std::string& data_dir,
                                             std::string_view node_id, std::int64_t now_unix);
// Sets uplink.url and uplink.tls.* in `config` from `identity` unless uplink.url is set.
Status fill_uplink_from_identity(const CloudIdentity& identity, Config& config);

// --- seams --------------------------------------------------------------------------------

struct EnrolmentRequest {
  std::string token;
  std::string node_id;
  std::string csr_pem;
  std::vector<std::pair<std::string, std::string>> labels;
  std::string trusted_ca_pem;  // empty: trust on first use
};
struct RenewalRequest {
  std::string node_id;
  std::string csr_pem;
  std::string certificate_pem, key_pem, ca_pem;  // mutual TLS with the current identity
};
struct EnrolmentGrant {
  std::string node_id;
  std::string certificate_pem;
  std::string ca_pem;
  std::string mqtt_url;
  std::int64_t expires_at = 0;
  std::string server_chain_pem;  // what the HTTPS server presented (for the TOFU check)
};
using GrantCompletion = std::function<void(Result<EnrolmentGrant>)>;

// The controller's enrolment endpoints. Completions run once, on any thread.
// Errors: kPermissionDenied (401: bad, expired or used token), kInvalidArgument (400:
// malformed CSR, or an answer that does not parse), kAlreadyExists (409: node id taken),
// kNotFound (404/405: no such endpoint, for renew), kUnavailable / kTimeout (retry later).
class EnrolmentApi {
 public:
  virtual ~EnrolmentApi() = default;
  virtual void enrol(EnrolmentRequest request, GrantCompletion done) = 0;
  virtual void renew(RenewalRequest request, GrantCompletion done) = 0;
};
// HTTPS to `controller_url` (https://host:port) on `loop`.
std::unique_ptr<EnrolmentApi> make_https_enrolment_api(boost::asio::io_context& loop,
                                                       std::string controller_url);

// The agent's MQTT session to the controller. Publishes are QoS 1; subscriptions are kept
// across reconnects; the link reconnects by itself until stop(). Handlers run on any thread
// but never concurrently, and never inside a call made by the agent.
class CloudLink {
 public:
  struct Handlers {
    std::function<void(bool up, const Status& why)> on_state;
    std::function<void(const std::string& topic, const std::string& payload)> on_message;
  };
  virtual ~CloudLink() = default;
  virtual Status start(Handlers handlers) = 0;
  virtual void stop() = 0;
  virtual void publish(std::string topic, std::string payload, bool retain,
                       std::function<void(Status)> done) = 0;
  virtual void subscribe(std::vector<std::string> filters) = 0;
};
using CloudLinkFactory =
    std::function<Result<std::unique_ptr<CloudLink>>(const CloudIdentity& identity)>;
// The MqttClient options of the link: MQTT 5, mutual TLS with the identity's files, client
// id = node id, a persistent session (1 day), keep-alive 30 s, reconnect backoff 1..60 s.
client::MqttClientOptions cloud_mqtt_options(const CloudIdentity& identity);
// A CloudLink over MqttClient with those options, on `loop`.
std::unique_ptr<CloudLink> make_mqtt_cloud_link(boost::asio::io_context& loop, Clock& clock,
                                                const CloudIdentity& identity);

// What a heartbeat reports besides the time and version.
struct NodeFacts {
  double cpu = 0;                     // this process's CPU use, 0..1 of the machine
  std::uint64_t mem_bytes = 0;        // resident set size
  std::uint64_t disk_free_bytes = 0;  // on the data folder's file system
  std::uint64_t uplink_backlog = 0;   // records not yet acknowledged upstream
  std::uint64_t rules = 0;            // stream rules running
};
using NodeFactsSource = std::function<NodeFacts()>;
// /proc for CPU and memory, env.free_space(data_dir), and the metrics registry (may be
// null) for the sums of ganglion_uplink_backlog_records and ganglion_rule_running.
NodeFactsSource process_node_facts(Env& env, std::string data_dir, MetricsRegistry* metrics);

// --- the agent --------------------------------------------------------------------------

enum class EnrolmentState : std::uint8_t {
  kNone,       // not started
  kEnrolling,  // no valid identity yet; asking the controller (retries with backoff)
  kEnrolled,   // identity on disk and valid
  kFailed,     // the controller refused (token, CSR, node id taken) or no token to enrol
  kExpired,    // the certificate expired and could not be renewed
};
std::string_view to_string(EnrolmentState s);

struct CloudAgentOptions {
  std::string node_id;
  std::string controller_url;  // https://host:port
  std::string token;           // bootstrap token; only used while not enrolled
  std::string trusted_ca_pem;  // cloud.ca's content; empty: trust on first use
  std::string data_dir;
  // The controller's MQTT endpoint as this node reaches it (through a proxy or NAT); empty:
  // the one the controller handed at enrolment. Used by the link and the uplink.
  std::string mqtt_url;
  Duration heartbeat_interval = std::chrono::seconds(10);
  std::vector<std::pair<std::string, std::string>> labels;
  std::string version;
  Duration enrol_retry_min = std::chrono::seconds(1);  // backoff with full jitter
  Duration enrol_retry_max = std::chrono::seconds(60);
  Duration renew_retry = std::chrono::hours(1);
  bool log_events = true;  // false for the simulator's thousands of agents
};

struct CloudAgentStats {
  EnrolmentState enrolment = EnrolmentState::kNone;
  bool link_up = false;
  std::uint64_t enrol_attempts = 0;
  std::uint64_t heartbeats_sent = 0;
  std::uint64_t heartbeats_acked = 0;
  std::uint64_t heartbeats_skipped = 0;  // the previous one was still unacknowledged
  std::uint64_t reported_sent = 0;
  std::uint64_t desired_received = 0;
  std::uint64_t desired_rejected = 0;
  std::uint64_t commands_received = 0;
  std::int64_t link_rtt_ms = -1;  // last heartbeat's PUBACK round trip; -1 unknown
  std::string desired_version;    // "" when none
  std::string last_error;
};

class CloudAgent {
 public:
  CloudAgent(CloudAgentOptions options, Env& env, Clock& clock, std::shared_ptr<EnrolmentApi> api,
             CloudLinkFactory make_link, NodeFactsSource facts = {},
             MetricsRegistry* metrics = nullptr);
  ~CloudAgent();
  CloudAgent(const CloudAgent&) = delete;
  CloudAgent& operator=(const CloudAgent&) = delete;

  // Loads desired.json and the identity. With a valid identity: opens the link and returns.
  // Without one: writes a key if none exists and starts enrolling in the background
  // (kEnrolling). Errors: kInvalidArgument (options), kFailedPrecondition (not enrolled and
  // no token), kIoError (files).
  Status start();
  // Closes the link (DISCONNECT) and cancels timers. Idempotent; start() cannot follow.
  void stop();

  // Waits (real time) while the state is kEnrolling; returns the state then.
  EnrolmentState wait_while_enrolling(std::chrono::milliseconds timeout);

  std::optional<CloudIdentity> identity() const;
  CloudAgentStats stats() const;
  // The last desired state (JSON text), "" when none.
  std::string desired_json() const;
  // Sets a top-level property of the reported twin (JSON text of the value); publishes the
  // twin when it changed and the link is up. kInvalidArgument when `json_value` is not JSON.
  Status report(const std::string& key, const std::string& json_value);
  // GET /cloud: state, identity (paths, expiry; never the key), link, counters, desired.
  std::string status_json() const;
  void add_http_routes(net::HttpRouter& router);

  // A copy of `config` with the uplink pointed at the identity (see fill_uplink_from_identity);
  // `config` unchanged when there is no identity.
  Config uplink_config(const Config& config) const;

  // Topics of a node, per the protocol.
  static std::string topic(std::string_view node_id, std::string_view leaf);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Builds the agent from cloud.* (nullptr when cloud.url is empty: a standalone node), with
// the HTTPS API and MQTT link on `loop`, and starts it. Without an identity it waits up to
// cloud.enrol_wait for the first enrolment, so that the uplink starts with the identity; a
// refused enrolment is returned (kInvalidArgument: the token or node id needs the
// operator), a controller still unreachable after the wait is only logged (the agent keeps
// trying; the uplink gets the identity at the next start). Adds GET /cloud to `router`.
Result<std::unique_ptr<CloudAgent>> start_cloud_agent(const Config& config, Env& env, Clock& clock,
                                                      boost::asio::io_context& loop,
                                                      MetricsRegistry* metrics,
                                                      net::HttpRouter* router);

}  // namespace ganglion::edge
