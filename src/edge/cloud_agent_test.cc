#include "edge/cloud_agent.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/mem_env.h"
#include "edge/cloud_agent_crypto.h"
#include "edge/cloud_agent_test_ca.h"
#include "edge/edge_config.h"

namespace ganglion::edge {
namespace {

using json = nlohmann::json;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::int64_t kDay = 86'400;

// The controller's enrolment endpoints, answered by the test.
class FakeApi final : public EnrolmentApi {
 public:
  void enrol(EnrolmentRequest request, GrantCompletion done) override {
    enrolments.push_back({std::move(request), std::move(done)});
  }
  void renew(RenewalRequest request, GrantCompletion done) override {
    renewals.push_back({std::move(request), std::move(done)});
  }
  std::vector<std::pair<EnrolmentRequest, GrantCompletion>> enrolments;
  std::vector<std::pair<RenewalRequest, GrantCompletion>> renewals;
};

// The MQTT link, driven by the test: it says when it is up and delivers messages.
class FakeLink final : public CloudLink {
 public:
  struct Sent {
    std::string topic, payload;
    std::function<void(Status)> done;
  };
  Status start(Handlers h) override {
    handlers = std::move(h);
    started = true;
    return Status::Ok();
  }
  void stop() override { stopped = true; }
  void publish(std::string topic, std::string payload, bool,
               std::function<void(Status)> done) override {
    sent.push_back({std::move(topic), std::move(payload), std::move(done)});
  }
  void subscribe(std::vector<std::string> filters) override {
    subscriptions.insert(subscriptions.end(), filters.begin(), filters.end());
  }

  void up() { handlers.on_state(true, Status::Ok()); }
  void down() { handlers.on_state(false, Unavailable("connection lost")); }
  std::vector<Sent> sent_to(std::string_view leaf) const {
    std::vector<Sent> out;
    for (const auto& s : sent) {
      if (s.topic == CloudAgent::topic("n1", leaf)) out.push_back(s);
    }
    return out;
  }

  Handlers handlers;
  CloudIdentity identity;
  bool started = false;
  bool stopped = false;
  std::vector<Sent> sent;
  std::vector<std::string> subscriptions;
};

class CloudAgentTest : public ::testing::Test {
 protected:
  CloudAgentTest()
      : clock_(WallTime(seconds(1'800'000'000))),
        ca_("controller-ca", now_s() - kDay, now_s() + 3650 * kDay) {}

  std::int64_t now_s() const { return clock_.wall_ms() / 1000; }

  CloudAgentOptions options() {
    CloudAgentOptions o;
    o.node_id = "n1";
    o.controller_url = "https://controller.example:8443";
    o.token = "bootstrap-token";
    o.data_dir = "/data";
    o.heartbeat_interval = seconds(10);
    o.labels = {{"site", "plant-7"}};
    o.version = "0.1.0";
    o.log_events = false;
    return o;
  }

  std::unique_ptr<CloudAgent> make_agent(CloudAgentOptions o) {
    return std::make_unique<CloudAgent>(
        std::move(o), env_, clock_, api_,
        [this](const CloudIdentity& id) -> Result<std::unique_ptr<CloudLink>> {
          auto link = std::make_unique<FakeLink>();
          link->identity = id;
          links_.push_back(link.get());
          return std::unique_ptr<CloudLink>(std::move(link));
        },
        [this] { return facts_; });
  }

  // What the controller answers to an enrolment request: a certificate for the CSR.
  EnrolmentGrant grant_for(const std::string& csr, std::int64_t validity = 90 * kDay) {
    EnrolmentGrant g;
    g.node_id = "n1";
    g.certificate_pem = ca_.issue(csr, now_s() - 60, now_s() - 60 + validity, ++serial_);
    g.ca_pem = ca_.certificate_pem();
    g.mqtt_url = "tls://controller.example:8883";
    g.expires_at = now_s() - 60 + validity;
    // The HTTPS server's own certificate, from the same CA.
    g.server_chain_pem = ca_.issue(*make_csr(*generate_node_key(), "controller.example"),
                                   now_s() - 60, now_s() + kDay, ++serial_);
    return g;
  }

  // Starts an agent and completes its enrolment.
  std::unique_ptr<CloudAgent> enrolled_agent(CloudAgentOptions o) {
    auto agent = make_agent(std::move(o));
    EXPECT_TRUE(agent->start().ok());
    EXPECT_EQ(api_->enrolments.size(), 1u);
    auto& [req, done] = api_->enrolments.back();
    done(grant_for(req.csr_pem));
    EXPECT_EQ(agent->stats().enrolment, EnrolmentState::kEnrolled);
    return agent;
  }

  ManualClock clock_;
  MemEnv env_;
  testing::TestCa ca_;
  long serial_ = 10;
  std::shared_ptr<FakeApi> api_ = std::make_shared<FakeApi>();
  std::vector<FakeLink*> links_;
  NodeFacts facts_{
      .cpu = 0.25, .mem_bytes = 1000, .disk_free_bytes = 2000, .uplink_backlog = 3, .rules = 4};
};

TEST_F(CloudAgentTest, EnrolsWithACsrForItsNodeIdAndStoresTheIdentity) {
  auto agent = make_agent(options());
  ASSERT_TRUE(agent->start().ok());
  EXPECT_EQ(agent->stats().enrolment, EnrolmentState::kEnrolling);
  ASSERT_EQ(api_->enrolments.size(), 1u);
  const EnrolmentRequest& req = api_->enrolments[0].first;
  EXPECT_EQ(req.token, "bootstrap-token");
  EXPECT_EQ(req.node_id, "n1");
  EXPECT_TRUE(req.trusted_ca_pem.empty());  // no cloud.ca: trust on first use
  auto csr = parse_csr(req.csr_pem);
  ASSERT_TRUE(csr.ok());
  EXPECT_EQ(csr->common_name, "n1");
  EXPECT_TRUE(csr->signature_valid);
  EXPECT_TRUE(env_.exists("/data/cloud/node.key"));
  EXPECT_TRUE(links_.empty());  // no link before the identity

  api_->enrolments[0].second(grant_for(req.csr_pem));
  EXPECT_EQ(agent->stats().enrolment, EnrolmentState::kEnrolled);
  for (auto f : {"node.pem", "ca.pem", "enrolment.json"}) {
    EXPECT_TRUE(env_.exists(std::string("/data/cloud/") + f)) << f;
  }
  auto id = agent->identity();
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->mqtt_url, "tls://controller.example:8883");
  EXPECT_EQ(id->ca_source, "first-use");
  ASSERT_EQ(links_.size(), 1u);
  EXPECT_TRUE(links_[0]->started);
  EXPECT_EQ(links_[0]->identity.certificate_file, "/data/cloud/node.pem");
  EXPECT_EQ(links_[0]->subscriptions,
            (std::vector<std::string>{"ganglion/v1/n1/desired", "ganglion/v1/n1/commands"}));

  // The uplink endpoint is the identity.
  auto endpoint = cloud_uplink_endpoint(env_, "/data", "n1", now_s());
  ASSERT_TRUE(endpoint.ok()) << endpoint.status().to_string();
  EXPECT_EQ(endpoint->url, "tls://controller.example:8883");
  EXPECT_EQ(endpoint->key_file, "/data/cloud/node.key");
}

TEST_F(CloudAgentTest, SkipsEnrolmentWhenAValidCertificateIsStored) {
  enrolled_agent(options())->stop();
  auto again = make_agent(options());
  ASSERT_TRUE(again->start().ok());
  EXPECT_EQ(api_->enrolments.size(), 1u);  // only the first agent asked
  EXPECT_EQ(again->stats().enrolment, EnrolmentState::kEnrolled);
  ASSERT_EQ(links_.size(), 2u);
  EXPECT_TRUE(links_[1]->started);
}

TEST_F(CloudAgentTest, AnEnrolledNodeNeedsNoToken) {
  enrolled_agent(options())->stop();
  auto o = options();
  o.token.clear();
  auto again = make_agent(o);
  EXPECT_TRUE(again->start().ok());
  EXPECT_EQ(again->stats().enrolment, EnrolmentState::kEnrolled);
}

TEST_F(CloudAgentTest, NoTokenAndNoIdentityIsAConfigurationError) {
  auto o = options();
  o.token.clear();
  auto agent = make_agent(o);
  EXPECT_EQ(agent->start().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(api_->enrolments.empty());
}

TEST_F(CloudAgentTest, RetriesAnUnreachableControllerWithBackoff) {
  auto agent = make_agent(options());
  ASSERT_TRUE(agent->start().ok());
  api_->enrolments[0].second(Unavailable("connect: refused"));
  EXPECT_EQ(agent->stats().enrolment, EnrolmentState::kEnrolling);
  EXPECT_EQ(api_->enrolments.size(), 1u);  // nothing before the clock moves
  clock_.advance(milliseconds(1001));      // first retry is below enrol_retry_min
  ASSERT_EQ(api_->enrolments.size(), 2u);
  api_->enrolments[1].second(Timeout("no answer"));
  clock_.advance(seconds(61));  // never beyond enrol_retry_max
  ASSERT_EQ(api_->enrolments.size(), 3u);
  api_->enrolments[2].second(grant_for(api_->enrolments[2].first.csr_pem));
  EXPECT_EQ(agent->stats().enrolment, EnrolmentState::kEnrolled);
  EXPECT_EQ(agent->stats().enrol_attempts, 3u);
  // The same key throughout: a retry does not make a new one.
  EXPECT_EQ(parse_csr(api_->enrolments[0].first.csr_pem)->public_key_pem,
            parse_csr(api_->enrolments[2].first.csr_pem)->public_key_pem);
}

TEST_F(CloudAgentTest, ARefusedTokenFailsForGoodWithoutRetrying) {
  for (Status refusal : {PermissionDenied("401 token used"), InvalidArgument("400 bad CSR"),
                         AlreadyExists("409 node id taken")}) {
    api_->enrolments.clear();
    MemEnv env;
    auto agent = std::make_unique<CloudAgent>(
        options(), env, clock_, api_,
        [](const CloudIdentity&) -> Result<std::unique_ptr<CloudLink>> {
          return std::unique_ptr<CloudLink>(new FakeLink);
        });
    ASSERT_TRUE(agent->start().ok());
    api_->enrolments[0].second(refusal);
    EXPECT_EQ(agent->stats().enrolment, EnrolmentState::kFailed) << refusal.to_string();
    EXPECT_EQ(agent->wait_while_enrolling(milliseconds(0)), EnrolmentState::kFailed);
    EXPECT_EQ(agent->stats().last_error, refusal.message());
    clock_.advance(hours(1));
    EXPECT_EQ(api_->enrolments.size(), 1u);
  }
}

TEST_F(CloudAgentTest, TrustOnFirstUseRejectsAServerTheReturnedCaDidNotSign) {
  auto agent = make_agent(options());
  ASSERT_TRUE(agent->start().ok());
  auto g = grant_for(api_->enrolments[0].first.csr_pem);
  testing::TestCa impostor("impostor", now_s() - kDay, now_s() + kDay);
  g.server_chain_pem = impostor.issue(*make_csr(*generate_node_key(), "controller.example"),
                                      now_s() - 60, now_s() + kDay);
  api_->enrolments[0].second(g);
  EXPECT_EQ(agent->stats().enrolment, EnrolmentState::kFailed);
  EXPECT_FALSE(env_.exists("/data/cloud/node.pem"));
  EXPECT_TRUE(links_.empty());
}

TEST_F(CloudAgentTest, AnOperatorCaIsPassedToTheRequestAndRecorded) {
  auto o = options();
  o.trusted_ca_pem = ca_.certificate_pem();
  auto agent = make_agent(o);
  ASSERT_TRUE(agent->start().ok());
  EXPECT_EQ(api_->enrolments[0].first.trusted_ca_pem, ca_.certificate_pem());
  auto g = grant_for(api_->enrolments[0].first.csr_pem);
  g.server_chain_pem.clear();  // the TLS layer verified the server already
  api_->enrolments[0].second(g);
  ASSERT_EQ(agent->stats().enrolment, EnrolmentState::kEnrolled);
  EXPECT_EQ(agent->identity()->ca_source, "operator");
}

TEST_F(CloudAgentTest, RejectsACertificateForAnotherKeyOrNode) {
  auto agent = make_agent(options());
  ASSERT_TRUE(agent->start().ok());
  auto other = grant_for(*make_csr(*generate_node_key(), "n1"));  // right name, wrong key
  api_->enrolments[0].second(other);
  EXPECT_EQ(agent->stats().enrolment, EnrolmentState::kFailed);

  MemEnv env;
  auto second = std::make_unique<CloudAgent>(
      options(), env, clock_, api_, [](const CloudIdentity&) -> Result<std::unique_ptr<CloudLink>> {
        return std::unique_ptr<CloudLink>(new FakeLink);
      });
  ASSERT_TRUE(second->start().ok());
  auto g = grant_for(api_->enrolments[1].first.csr_pem);
  g.node_id = "n2";
  api_->enrolments[1].second(g);
  EXPECT_EQ(second->stats().enrolment, EnrolmentState::kFailed);
}

TEST_F(CloudAgentTest, HeartbeatsEveryIntervalOnlyWhileConnected) {
  auto agent = enrolled_agent(options());
  FakeLink& link = *links_[0];
  clock_.advance(seconds(30));
  EXPECT_TRUE(link.sent.empty());  // not connected yet

  link.up();
  ASSERT_EQ(link.sent_to("reported").size(), 1u);
  ASSERT_EQ(link.sent_to("heartbeat").size(), 1u);  // at once on connect
  link.sent_to("heartbeat")[0].done(Status::Ok());
  clock_.advance(seconds(9));
  EXPECT_EQ(link.sent_to("heartbeat").size(), 1u);
  clock_.advance(seconds(1));
  ASSERT_EQ(link.sent_to("heartbeat").size(), 2u);
  link.sent_to("heartbeat")[1].done(Status::Ok());
  clock_.advance(seconds(10));
  EXPECT_EQ(link.sent_to("heartbeat").size(), 3u);
  EXPECT_EQ(agent->stats().heartbeats_sent, 3u);

  link.down();
  clock_.advance(seconds(60));
  EXPECT_EQ(link.sent_to("heartbeat").size(), 3u);  // none while down

  link.up();  // reconnect: reported again, heartbeat at once, then the interval again
  EXPECT_EQ(link.sent_to("reported").size(), 2u);
  EXPECT_EQ(link.sent_to("heartbeat").size(), 4u);
  link.sent_to("heartbeat")[3].done(Status::Ok());
  clock_.advance(seconds(10));
  EXPECT_EQ(link.sent_to("heartbeat").size(), 5u);
  EXPECT_EQ(clock_.pending(), 2u);  // one heartbeat timer and the renewal timer, no leftovers
}

TEST_F(CloudAgentTest, SkipsAHeartbeatWhileThePreviousIsUnacknowledged) {
  auto agent = enrolled_agent(options());
  FakeLink& link = *links_[0];
  link.up();
  clock_.advance(seconds(10));
  clock_.advance(seconds(10));
  EXPECT_EQ(link.sent_to("heartbeat").size(), 1u);
  EXPECT_EQ(agent->stats().heartbeats_skipped, 2u);
  link.sent_to("heartbeat")[0].done(Status::Ok());
  clock_.advance(seconds(10));
  EXPECT_EQ(link.sent_to("heartbeat").size(), 2u);
}

TEST_F(CloudAgentTest, HeartbeatCarriesTheProtocolFieldsAndTheMeasuredRoundTrip) {
  auto agent = enrolled_agent(options());
  FakeLink& link = *links_[0];
  link.up();
  json first = json::parse(link.sent_to("heartbeat")[0].payload);
  EXPECT_EQ(first["ts"], clock_.wall_ms());
  EXPECT_EQ(first["version"], "0.1.0");
  EXPECT_EQ(first["cpu"], 0.25);
  EXPECT_EQ(first["mem_bytes"], 1000);
  EXPECT_EQ(first["disk_free_bytes"], 2000);
  EXPECT_EQ(first["uplink_backlog"], 3);
  EXPECT_EQ(first["rules"], 4);
  EXPECT_EQ(first["link_rtt_ms"], 0);  // nothing measured yet
  clock_.advance(milliseconds(42));
  link.sent_to("heartbeat")[0].done(Status::Ok());
  EXPECT_EQ(agent->stats().link_rtt_ms, 42);
  clock_.advance(seconds(10));
  json second = json::parse(link.sent_to("heartbeat")[1].payload);
  EXPECT_EQ(second["link_rtt_ms"], 42);

  json reported = json::parse(link.sent_to("reported")[0].payload);
  EXPECT_EQ(reported["node_id"], "n1");
  EXPECT_EQ(reported["labels"]["site"], "plant-7");
  EXPECT_TRUE(reported["desired_version"].is_null());
}

TEST_F(CloudAgentTest, StoresTheDesiredStateAndReportsItsVersion) {
  auto agent = enrolled_agent(options());
  FakeLink& link = *links_[0];
  link.up();
  const std::string desired = R"({"version":7,"digest":"sha256:ab"})";
  link.handlers.on_message("ganglion/v1/n1/desired", desired);
  EXPECT_EQ(*env_.read_file("/data/cloud/desired.json"), desired);
  EXPECT_EQ(agent->desired_json(), desired);
  EXPECT_EQ(agent->stats().desired_version, "7");
  ASSERT_EQ(link.sent_to("reported").size(), 2u);  // on connect, then on the change
  EXPECT_EQ(json::parse(link.sent_to("reported")[1].payload)["desired_version"], "7");

  // The retained copy again after a reconnect changes nothing.
  link.handlers.on_message("ganglion/v1/n1/desired", desired);
  EXPECT_EQ(link.sent_to("reported").size(), 2u);
  // Garbage is refused and the stored state kept.
  link.handlers.on_message("ganglion/v1/n1/desired", "{not json");
  link.handlers.on_message("ganglion/v1/n1/desired", "[1,2]");
  EXPECT_EQ(agent->stats().desired_rejected, 2u);
  EXPECT_EQ(*env_.read_file("/data/cloud/desired.json"), desired);
  // Commands are counted.
  link.handlers.on_message("ganglion/v1/n1/commands", R"({"op":"restart"})");
  EXPECT_EQ(agent->stats().commands_received, 1u);

  // After a restart with no controller the node still knows its desired state.
  agent->stop();
  auto again = make_agent(options());
  ASSERT_TRUE(again->start().ok());
  EXPECT_EQ(again->desired_json(), desired);
  EXPECT_EQ(again->stats().desired_version, "7");
}

TEST_F(CloudAgentTest, RenewsOnceLessThanAThirdOfTheValidityIsLeft) {
  auto o = options();
  o.renew_retry = hours(1);
  auto agent = enrolled_agent(o);  // valid for 90 days from now - 60 s
  clock_.advance(hours(24 * 59));
  EXPECT_TRUE(api_->renewals.empty());
  clock_.advance(hours(24 * 1) + seconds(1));
  ASSERT_EQ(api_->renewals.size(), 1u);
  const RenewalRequest& req = api_->renewals[0].first;
  EXPECT_EQ(parse_csr(req.csr_pem)->common_name, "n1");
  EXPECT_FALSE(req.certificate_pem.empty());  // mutual TLS with the current identity
  EXPECT_FALSE(req.key_pem.empty());

  // A controller without the endpoint: asked again after renew_retry, not before.
  api_->renewals[0].second(NotFound("renewal refused (HTTP 404)"));
  EXPECT_EQ(agent->stats().enrolment, EnrolmentState::kEnrolled);
  clock_.advance(milliseconds(3'599'000));
  EXPECT_EQ(api_->renewals.size(), 1u);
  clock_.advance(seconds(1));
  ASSERT_EQ(api_->renewals.size(), 2u);

  // A renewal replaces the certificate and the link (new TLS context).
  const std::string old_cert = *env_.read_file("/data/cloud/node.pem");
  api_->renewals[1].second(grant_for(api_->renewals[1].first.csr_pem));
  EXPECT_NE(*env_.read_file("/data/cloud/node.pem"), old_cert);
  ASSERT_EQ(links_.size(), 2u);
  EXPECT_TRUE(links_[0]->stopped);
  EXPECT_TRUE(links_[1]->started);
  EXPECT_GT(agent->identity()->not_after, now_s() + 80 * kDay);
}

TEST_F(CloudAgentTest, AnExpiredCertificateIsNotUsed) {
  enrolled_agent(options())->stop();
  clock_.advance(hours(24 * 91));
  auto loaded = load_cloud_identity(env_, "/data", "n1", now_s());
  EXPECT_EQ(loaded.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(load_cloud_identity(env_, "/data", "n2", now_s() - 91 * kDay).status().code(),
            StatusCode::kFailedPrecondition);  // another node's folder
  EXPECT_EQ(load_cloud_identity(env_, "/nowhere", "n1", now_s()).status().code(),
            StatusCode::kNotFound);
  // Without a token the node runs standalone and says so.
  auto o = options();
  o.token.clear();
  auto agent = make_agent(o);
  EXPECT_TRUE(agent->start().ok());
  EXPECT_EQ(agent->stats().enrolment, EnrolmentState::kExpired);
}

TEST_F(CloudAgentTest, TheUplinkGetsTheIdentityUnlessItsUrlIsSet) {
  auto agent = enrolled_agent(options());
  Config config(edge_schema());
  ASSERT_TRUE(config.set("cloud.url", "https://controller.example:8443", "test").ok());
  Config filled = agent->uplink_config(config);
  EXPECT_EQ(filled.str("uplink.url"), "tls://controller.example:8883");
  EXPECT_EQ(filled.str("uplink.tls.ca"), "/data/cloud/ca.pem");
  EXPECT_EQ(filled.str("uplink.tls.certificate"), "/data/cloud/node.pem");
  EXPECT_EQ(filled.str("uplink.tls.key"), "/data/cloud/node.key");
  EXPECT_EQ(filled.origin("uplink.url"), "cloud enrolment");
  EXPECT_TRUE(config.str("uplink.url").empty());  // the node's own config is untouched

  ASSERT_TRUE(config.set("uplink.url", "tls://elsewhere:8883", "--uplink.url").ok());
  EXPECT_EQ(agent->uplink_config(config).str("uplink.url"), "tls://elsewhere:8883");
  EXPECT_TRUE(agent->uplink_config(config).str("uplink.tls.key").empty());
}

TEST_F(CloudAgentTest, ReportedPropertiesArePublishedWhenTheyChange) {
  auto agent = enrolled_agent(options());
  FakeLink& link = *links_[0];
  link.up();
  ASSERT_TRUE(agent->report("modules", R"(["a"])").ok());
  ASSERT_TRUE(agent->report("modules", R"(["a"])").ok());
  EXPECT_EQ(link.sent_to("reported").size(), 2u);
  EXPECT_EQ(json::parse(link.sent_to("reported")[1].payload)["modules"][0], "a");
  EXPECT_EQ(agent->report("x", "{bad").code(), StatusCode::kInvalidArgument);
}

TEST(CloudAgentFiles, TheKeyIsOwnerOnlyOnTheRealDisk) {
  char tmpl[] = "/tmp/ganglion-agent-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  {
    ManualClock clock;
    auto api = std::make_shared<FakeApi>();
    CloudAgentOptions o;
    o.node_id = "n1";
    o.controller_url = "https://controller.example:8443";
    o.token = "t";
    o.data_dir = dir;
    o.log_events = false;
    CloudAgent agent(o, Env::posix(), clock, api,
                     [](const CloudIdentity&) -> Result<std::unique_ptr<CloudLink>> {
                       return std::unique_ptr<CloudLink>(new FakeLink);
                     });
    const mode_t old_umask = ::umask(022);  // the default that would make files 0644
    ASSERT_TRUE(agent.start().ok());
    ::umask(old_umask);
    struct stat st {};
    ASSERT_EQ(::stat((dir + "/cloud/node.key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat((dir + "/cloud").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_FALSE(std::filesystem::exists(dir + "/cloud/node.key.tmp"));
    agent.stop();
  }
  std::filesystem::remove_all(dir);
}

TEST_F(CloudAgentTest, MqttUrlOptionOverridesTheEnrolmentsAddressForTheLinkAndTheUplink) {
  auto o = options();
  o.mqtt_url = "tls://127.0.0.1:18883";  // a proxy in front of the controller
  {
    auto agent = enrolled_agent(o);
    ASSERT_EQ(links_.size(), 1u);
    EXPECT_EQ(links_[0]->identity.mqtt_url, "tls://127.0.0.1:18883");
    agent->stop();
  }
  // enrolment.json keeps what the controller said; a restart applies the option again.
  auto stored = load_cloud_identity(env_, "/data", "n1", now_s());
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->mqtt_url, "tls://controller.example:8883");
  links_.clear();
  auto agent = make_agent(o);
  ASSERT_TRUE(agent->start().ok());
  ASSERT_EQ(links_.size(), 1u);
  EXPECT_EQ(links_[0]->identity.mqtt_url, "tls://127.0.0.1:18883");
  Config config(edge_schema());
  ASSERT_TRUE(config.set("cloud.url", "https://controller.example:8443", "test").ok());
  EXPECT_EQ(agent->uplink_config(config).str("uplink.url"), "tls://127.0.0.1:18883");
}
}  // namespace
}  // namespace ganglion::edge
