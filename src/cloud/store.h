// Store: everything the controller keeps — nodes and their certificates, twins, bootstrap and
// API tokens, health history, the audit log, ingested records and their per-minute rollups.
//
// One interface, one embedded implementation (SQLite, open_sqlite_store()); a PostgreSQL one
// can follow without touching the callers. Every method is thread-safe and returns errors as
// Status: kNotFound for a missing row, kAlreadyExists / kPermissionDenied where said,
// kIoError for a database failure. The SQLite store writes on one connection (taken in
// arrival order) and reads on separate read-only connections, so reads never wait behind a
// commit. The high-rate writes (heartbeats, reported twins, health changes, uplink batches)
// go through write_group(), which StoreWriter (store_writer.h) uses to commit many of them in
// one transaction.
//
// Times are Unix milliseconds (wall clock) given by the caller: the store never reads a clock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/status.h"

namespace ganglion::cloud {

using LabelMap = std::map<std::string, std::string>;

struct NodeRecord {
  std::string id;
  LabelMap labels;
  bool revoked = false;
  std::string version;             // software version from the last heartbeat
  std::string health = "offline";  // healthy | degraded | offline
  std::string health_reason;
  std::int64_t health_since_ms = 0;
  std::int64_t enrolled_at_ms = 0;
  std::int64_t last_heartbeat_ms = 0;  // 0: never heard from
  std::string last_heartbeat;          // the last heartbeat (JSON object text), "{}" if none
  std::string key_sha256;   // SHA-256 of the node key (DER SubjectPublicKeyInfo): its identity
  std::string cert_serial;  // current certificate (lower-case hex)
  std::int64_t cert_expires_at_ms = 0;
  std::string token_id;  // bootstrap token it enrolled with
  // Twins: JSON objects with versions (0 = never set).
  std::string desired = "{}";
  std::int64_t desired_version = 0;
  std::string reported = "{}";
  std::int64_t reported_version = 0;
  std::int64_t reported_at_ms = 0;
};

struct BootstrapToken {
  std::string id;    // public handle (16 hex), for listing and deletion
  std::string hash;  // SHA-256 hex of the secret token text; the secret is never stored
  LabelMap labels;   // applied to nodes that enrol with it
  std::int64_t created_at_ms = 0;
  std::int64_t expires_at_ms = 0;
  std::int64_t max_uses = 1;
  std::int64_t uses = 0;
  std::string created_by;
};

enum class Role { kViewer = 0, kOperator = 1, kAdmin = 2 };
std::string_view to_string(Role role);
std::optional<Role> parse_role(std::string_view text);

struct ApiToken {
  std::string id;
  std::string name;
  Role role = Role::kViewer;
  std::string hash;  // SHA-256 hex of the secret
  std::int64_t created_at_ms = 0;
  bool revoked = false;
};

struct AuditEntry {
  std::int64_t id = 0;
  std::int64_t ts_ms = 0;
  std::string actor;   // API token name, "bootstrap-token:<id>", "node:<id>", "system"
  std::string action;  // "node.enroll", "token.create", "node.revoke", ...
  std::string target;
  std::string outcome;  // "ok", "denied", "failed"
  std::string detail;   // free text; never a secret
};

struct HealthChange {
  std::string node;
  std::int64_t ts_ms = 0;
  std::string from, to, reason;
};

struct IngestRecord {
  std::optional<std::uint64_t> offset;  // log offset (binary batches); absent for JSON ones
  std::int64_t ts_ms = 0;
  std::string topic;
  std::string payload;  // JSON text (non-JSON payloads are wrapped by the ingester)
};

struct IngestBatch {
  std::string node;
  std::string cls;
  std::uint64_t seq = 0;
  std::uint64_t end = 0;  // one past the last offset; 0 for JSON batches
  std::vector<IngestRecord> records;
};

struct IngestOutcome {
  bool duplicate = false;  // (node, class, seq) was already stored: nothing written
  std::size_t stored = 0;
  std::size_t skipped = 0;  // records below the class's high-water mark (resent after a crash)
};

// One page of the node list (ordered by id).
struct NodePage {
  std::vector<NodeRecord> items;
  bool more = false;  // nodes after the last item match too
};

// Write-behind node state (see StoreWriter): the latest heartbeat, reported twin.
struct HeartbeatUpdate {
  std::string node;
  std::int64_t ts_ms = 0;
  std::string version;
  std::string heartbeat_json;
};
struct ReportedUpdate {
  std::string node;
  std::string json;
  std::int64_t version = 0;
  std::int64_t ts_ms = 0;
};

// An enrolment as write_group() stores it, all or nothing: one use of the bootstrap token
// `token_hash` consumed (valid at node.enrolled_at_ms), the node inserted or replaced (as by
// Store::enroll()) and `audit` appended.
struct Enrolment {
  std::string token_hash;
  NodeRecord node;
  AuditEntry audit;
};

// Everything one write_group() call commits in one transaction.
struct WriteGroup {
  std::vector<HeartbeatUpdate> heartbeats;
  std::vector<ReportedUpdate> reported;
  std::vector<HealthChange> health;   // node health set and history appended, in order
  std::vector<IngestBatch> batches;   // ingested in order, each as by ingest()
  std::vector<Enrolment> enrolments;  // each under its own savepoint, before the batches
};

// What write_group() did: `status` is the transaction's (not ok: nothing was stored and every
// batch outcome and enrolment status is that error); one outcome per batch and one status per
// enrolment (kPermissionDenied: the token is unknown, expired or used up), in order.
struct GroupResult {
  Status status;
  std::vector<Result<IngestOutcome>> batches;
  std::vector<Status> enrolments;
};

struct IngestStats {
  std::string node;
  std::int64_t batches = 0, records = 0, duplicates = 0, rejected = 0;
  std::int64_t last_ingest_ms = 0;
  std::string last_error;
};

// A prepared analytics query (see query.h): SQL text with positional parameters.
struct SqlQuery {
  std::string sql;
  std::vector<std::variant<std::int64_t, double, std::string>> params;
};
struct QueryRow {
  std::int64_t bucket_ms = 0;
  std::string group;
  double value = 0;
  std::int64_t samples = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Nodes. enroll() checks and consumes one use of the bootstrap token `token_hash` (valid at
  // `now_ms`) and inserts or replaces `node` in one transaction; kPermissionDenied when the
  // token is unknown, expired or used up (a race with another enrolment).
  virtual Status enroll(const std::string& token_hash, std::int64_t now_ms,
                        const NodeRecord& node) = 0;
  virtual Result<NodeRecord> node(const std::string& id) = 0;
  virtual Result<std::vector<NodeRecord>> nodes() = 0;
  // Up to `limit` nodes with id > `after` whose labels include `selector`, in id order.
  virtual Result<NodePage> nodes_page(const std::string& after, std::size_t limit,
                                      const LabelMap& selector) = 0;
  virtual Status set_labels(const std::string& id, const LabelMap& labels) = 0;
  virtual Status set_revoked(const std::string& id) = 0;
  // A renewed certificate (possibly for a new key: key_sha256).
  virtual Status set_certificate(const std::string& id, const std::string& serial,
                                 std::int64_t expires_at_ms, const std::string& key_sha256) = 0;
  virtual Status record_heartbeat(const std::string& id, std::int64_t ts_ms,
                                  const std::string& version,
                                  const std::string& heartbeat_json) = 0;
  // Sets the node's health and appends the change to the history.
  virtual Status set_health(const HealthChange& change) = 0;
  virtual Result<std::vector<HealthChange>> health_history(const std::string& id,
                                                           std::size_t limit) = 0;
  virtual Status set_desired(const std::string& id, const std::string& json,
                             std::int64_t version) = 0;
  virtual Status set_reported(const std::string& id, const std::string& json, std::int64_t version,
                              std::int64_t ts_ms) = 0;

  // Bootstrap tokens. find: kNotFound for an unknown hash.
  virtual Status add_bootstrap_token(const BootstrapToken& token) = 0;
  virtual Result<BootstrapToken> bootstrap_token_by_hash(const std::string& hash) = 0;
  virtual Result<std::vector<BootstrapToken>> bootstrap_tokens() = 0;
  virtual Status delete_bootstrap_token(const std::string& id) = 0;

  // API tokens.
  virtual Status add_api_token(const ApiToken& token) = 0;
  virtual Result<ApiToken> api_token_by_hash(const std::string& hash) = 0;
  virtual Result<std::vector<ApiToken>> api_tokens() = 0;

  // Audit.
  virtual Status audit(const AuditEntry& entry) = 0;
  virtual Result<std::vector<AuditEntry>> audit_log(std::int64_t since_id, std::size_t limit) = 0;

  // Group commit: applies `group` in one transaction (one synchronous commit). A batch or an
  // enrolment whose own statements failed is rolled back alone (its savepoint) and gets that
  // error; when the
  // transaction as a whole fails (BEGIN, node state, COMMIT), nothing is stored. Node-state
  // rows for unknown nodes are ignored.
  virtual GroupResult write_group(const WriteGroup& group, std::int64_t now_ms) = 0;

  // Ingestion: stores `batch` durably (synchronous commit) unless (node, class, seq) is
  // already stored; records whose offset is below the class's high-water mark are skipped.
  virtual Result<IngestOutcome> ingest(const IngestBatch& batch, std::int64_t now_ms) = 0;
  virtual Status ingest_rejected(const std::string& node, const std::string& error,
                                 std::int64_t now_ms) = 0;
  virtual Result<std::vector<IngestStats>> ingest_stats() = 0;
  // One node's row (zeros when it never sent a batch): one indexed read, not the fleet's.
  virtual Result<IngestStats> node_ingest_stats(const std::string& node) = 0;
  virtual Result<std::int64_t> record_count(const std::string& node) = 0;

  // Analytics: runs a query built by build_query(); rows are (bucket, group, value, samples).
  virtual Result<std::vector<QueryRow>> query(const SqlQuery& q) = 0;
  // Folds raw records with ts in [rollup watermark, before_ms) into the per-minute rollup of
  // each numeric top-level payload field; before_ms is rounded down to a minute.
  virtual Status rollup(std::int64_t before_ms) = 0;
  // Deletes raw records older than raw_before_ms and rollups older than rollup_before_ms.
  virtual Result<std::int64_t> apply_retention(std::int64_t raw_before_ms,
                                               std::int64_t rollup_before_ms) = 0;

  virtual std::int64_t schema_version() = 0;
};

// Opens (creating if needed) the SQLite store at `path` (":memory:" for tests) in WAL mode
// with synchronous=FULL, and applies pending schema migrations. `readers` read-only
// connections serve the read methods (none for ":memory:", which reads on the writer's
// connection). Errors: kIoError.
Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path, int readers = 2);

}  // namespace ganglion::cloud
