// SQLite implementation of Store. One writing connection behind a fair (first come, first
// served) lock, so an enrolment waits for at most the commits queued before it, never behind
// a stream of them; read methods use separate read-only connections (WAL lets readers run
// while a commit is in progress). WAL with synchronous=FULL: a commit that returned is on
// disk, which is what the deferred MQTT acknowledgement of an uplink batch rests on. The
// statements of the hot write path (write_group) are prepared once and cached.
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <unordered_map>

#include "cloud/store.h"

namespace ganglion::cloud {

std::string_view to_string(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "viewer";
}

std::optional<Role> parse_role(std::string_view text) {
  if (text == "viewer") return Role::kViewer;
  if (text == "operator") return Role::kOperator;
  if (text == "admin") return Role::kAdmin;
  return std::nullopt;
}

namespace {

// Numbered migrations: migration i brings the schema from version i to i + 1. Never edit one
// that shipped; append a new one.
const char* const kMigrations[] = {
    // 1: registry, tokens, audit, ingestion, rollups.
    R"sql(
CREATE TABLE nodes (
  id TEXT PRIMARY KEY,
  labels TEXT NOT NULL DEFAULT '{}',
  revoked INTEGER NOT NULL DEFAULT 0,
  version TEXT NOT NULL DEFAULT '',
  health TEXT NOT NULL DEFAULT 'offline',
  health_reason TEXT NOT NULL DEFAULT '',
  health_since INTEGER NOT NULL DEFAULT 0,
  enrolled_at INTEGER NOT NULL,
  last_heartbeat INTEGER NOT NULL DEFAULT 0,
  heartbeat TEXT NOT NULL DEFAULT '{}',
  key_sha256 TEXT NOT NULL,
  cert_serial TEXT NOT NULL DEFAULT '',
  cert_expires_at INTEGER NOT NULL DEFAULT 0,
  token_id TEXT NOT NULL DEFAULT '',
  desired TEXT NOT NULL DEFAULT '{}',
  desired_version INTEGER NOT NULL DEFAULT 0,
  reported TEXT NOT NULL DEFAULT '{}',
  reported_version INTEGER NOT NULL DEFAULT 0,
  reported_at INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE certificates (
  serial TEXT PRIMARY KEY,
  node TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE health_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  node TEXT NOT NULL, ts INTEGER NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX health_history_node ON health_history(node, id);
CREATE TABLE bootstrap_tokens (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  labels TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  max_uses INTEGER NOT NULL,
  uses INTEGER NOT NULL DEFAULT 0,
  created_by TEXT NOT NULL DEFAULT ''
);
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ts INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
  outcome TEXT NOT NULL, detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE ingest_batches (
  node TEXT NOT NULL, class TEXT NOT NULL, seq INTEGER NOT NULL, end_offset INTEGER NOT NULL,
  records INTEGER NOT NULL, received_at INTEGER NOT NULL,
  PRIMARY KEY (node, class, seq)
);
CREATE TABLE ingest_cursor (
  node TEXT NOT NULL, class TEXT NOT NULL, high_water INTEGER NOT NULL,
  PRIMARY KEY (node, class)
);
CREATE TABLE ingest_stats (
  node TEXT PRIMARY KEY,
  batches INTEGER NOT NULL DEFAULT 0, records INTEGER NOT NULL DEFAULT 0,
  duplicates INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0,
  last_ingest INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE records (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  node TEXT NOT NULL, class TEXT NOT NULL, ts INTEGER NOT NULL, topic TEXT NOT NULL,
  payload TEXT NOT NULL, log_offset INTEGER
);
CREATE INDEX records_ts ON records(ts);
CREATE INDEX records_node_ts ON records(node, ts);
CREATE TABLE rollup_1m (
  node TEXT NOT NULL, class TEXT NOT NULL, minute INTEGER NOT NULL, field TEXT NOT NULL,
  count INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
  PRIMARY KEY (node, class, minute, field)
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
)sql",
};

std::string labels_json(const LabelMap& labels) { return nlohmann::json(labels).dump(); }

LabelMap parse_labels(const char* text) {
  LabelMap out;
  auto j = nlohmann::json::parse(text ? text : "{}", nullptr, false);
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      if (v.is_string()) out[k] = v.get<std::string>();
    }
  }
  return out;
}

class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql) {
    rc_ = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &s_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK && s_; }

  Stmt& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, int v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind_null(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(s_); }
  std::int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  double dbl(int c) const { return sqlite3_column_double(s_, c); }
  bool is_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string str(int c) const {
    const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s_, c));
    return t ? std::string(t, static_cast<std::size_t>(sqlite3_column_bytes(s_, c)))
             : std::string();
  }
  sqlite3_stmt* raw() { return s_; }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

// A ticket lock: waiters get the lock in the order they asked for it. The group committer
// takes the writing connection back to back; with a plain mutex an enrolment could wait
// behind many of its commits.
class FairMutex {
 public:
  void lock() {
    std::unique_lock l(mu_);
    const std::uint64_t ticket = next_++;
    cv_.wait(l, [&] { return serving_ == ticket; });
  }
  void unlock() {
    {
      std::lock_guard l(mu_);
      ++serving_;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t next_ = 0, serving_ = 0;
};

Status conn_error(sqlite3* db, std::string_view what) {
  return IoError("sqlite " + std::string(what) + ": " + sqlite3_errmsg(db));
}

constexpr const char* kNodeColumns =
    "id, labels, revoked, version, health, health_reason, health_since, enrolled_at, "
    "last_heartbeat, heartbeat, key_sha256, cert_serial, cert_expires_at, token_id, desired, "
    "desired_version, reported, reported_version, reported_at";

NodeRecord read_node(Stmt& s) {
  NodeRecord n;
  n.id = s.str(0);
  n.labels = parse_labels(s.str(1).c_str());
  n.revoked = s.i64(2) != 0;
  n.version = s.str(3);
  n.health = s.str(4);
  n.health_reason = s.str(5);
  n.health_since_ms = s.i64(6);
  n.enrolled_at_ms = s.i64(7);
  n.last_heartbeat_ms = s.i64(8);
  n.last_heartbeat = s.str(9);
  n.key_sha256 = s.str(10);
  n.cert_serial = s.str(11);
  n.cert_expires_at_ms = s.i64(12);
  n.token_id = s.str(13);
  n.desired = s.str(14);
  n.desired_version = s.i64(15);
  n.reported = s.str(16);
  n.reported_version = s.i64(17);
  n.reported_at_ms = s.i64(18);
  return n;
}

// A row of SELECT node, batches, records, duplicates, rejected, last_ingest, last_error.
IngestStats read_ingest(Stmt& s) {
  return {s.str(0), s.i64(1), s.i64(2), s.i64(3), s.i64(4), s.i64(5), s.str(6)};
}

BootstrapToken read_bootstrap(Stmt& s) {
  BootstrapToken t;
  t.id = s.str(0);
  t.hash = s.str(1);
  t.labels = parse_labels(s.str(2).c_str());
  t.created_at_ms = s.i64(3);
  t.expires_at_ms = s.i64(4);
  t.max_uses = s.i64(5);
  t.uses = s.i64(6);
  t.created_by = s.str(7);
  return t;
}

ApiToken read_api(Stmt& s) {
  ApiToken t;
  t.id = s.str(0);
  t.name = s.str(1);
  t.role = parse_role(s.str(2)).value_or(Role::kViewer);
  t.hash = s.str(3);
  t.created_at_ms = s.i64(4);
  t.revoked = s.i64(5) != 0;
  return t;
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(sqlite3* db) : db_(db) {}
  ~SqliteStore() override {
    cache_.clear();
    for (auto& r : readers_) {
      if (r->owned) sqlite3_close(r->db);
    }
    sqlite3_close(db_);
  }

  // Opens `n` read-only connections to `path` (after init()); none for ":memory:", where
  // reads share the writing connection.
  Status open_readers(const std::string& path, int n) {
    if (path == ":memory:" || path.empty() || n <= 0) {
      readers_.push_back(std::make_unique<ReaderConn>(db_, false));
      return Status::Ok();
    }
    for (int i = 0; i < n; ++i) {
      sqlite3* db = nullptr;
      const int rc =
          sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, nullptr);
      if (rc != SQLITE_OK) {
        std::string m = db ? sqlite3_errmsg(db) : "out of memory";
        sqlite3_close(db);
        return IoError("cannot open a reader on " + path + ": " + m);
      }
      sqlite3_busy_timeout(db, 5000);
      readers_.push_back(std::make_unique<ReaderConn>(db, true));
    }
    return Status::Ok();
  }

  Status init() {
    std::lock_guard lock(wmu_);
    GANGLION_RETURN_IF_ERROR(exec("PRAGMA journal_mode=WAL"));
    GANGLION_RETURN_IF_ERROR(exec("PRAGMA synchronous=FULL"));
    GANGLION_RETURN_IF_ERROR(exec("PRAGMA foreign_keys=ON"));
    sqlite3_busy_timeout(db_, 5000);
    GANGLION_RETURN_IF_ERROR(
        exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
    std::int64_t version = 0;
    {
      Stmt s(db_, "SELECT version FROM schema_version");
      if (s.ok() && s.step() == SQLITE_ROW) {
        version = s.i64(0);
      } else {
        GANGLION_RETURN_IF_ERROR(exec("INSERT INTO schema_version VALUES (0)"));
      }
    }
    const auto total = static_cast<std::int64_t>(std::size(kMigrations));
    if (version > total) {
      return FailedPrecondition("store schema version " + std::to_string(version) +
                                " is newer than this binary (" + std::to_string(total) + ")");
    }
    for (; version < total; ++version) {
      GANGLION_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
      Status s = exec(kMigrations[version]);
      if (s.ok()) s = exec("UPDATE schema_version SET version = " + std::to_string(version + 1));
      if (!s.ok()) {
        (void)exec("ROLLBACK");
        return s.with_context("migration " + std::to_string(version + 1));
      }
      GANGLION_RETURN_IF_ERROR(exec("COMMIT"));
    }
    schema_version_ = version;
    return Status::Ok();
  }

  std::int64_t schema_version() override { return schema_version_; }

  Status enroll(const std::string& token_hash, std::int64_t now_ms, const NodeRecord& n) override {
    std::lock_guard lock(wmu_);
    GANGLION_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    Status s = enroll_locked(token_hash, now_ms, n);
    if (!s.ok()) {
      (void)exec("ROLLBACK");
      return s;
    }
    return exec("COMMIT");
  }

  Result<NodeRecord> node(const std::string& id) override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(db, std::string("SELECT ") + kNodeColumns + " FROM nodes WHERE id = ?");
    s.bind(1, id);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return read_node(s);
    if (rc == SQLITE_DONE) return NotFound("node " + id);
    return conn_error(db, "read node");
  }

  Result<std::vector<NodeRecord>> nodes() override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(db, std::string("SELECT ") + kNodeColumns + " FROM nodes ORDER BY id");
    std::vector<NodeRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_node(s));
    if (rc != SQLITE_DONE) return conn_error(db, "list nodes");
    return out;
  }

  Result<NodePage> nodes_page(const std::string& after, std::size_t limit,
                              const LabelMap& selector) override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(db, std::string("SELECT ") + kNodeColumns + " FROM nodes WHERE id > ? ORDER BY id");
    s.bind(1, after);
    NodePage page;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      NodeRecord n = read_node(s);
      bool match = true;
      for (const auto& [k, v] : selector) {
        auto it = n.labels.find(k);
        if (it == n.labels.end() || it->second != v) {
          match = false;
          break;
        }
      }
      if (!match) continue;
      if (page.items.size() == limit) {
        page.more = true;
        return page;
      }
      page.items.push_back(std::move(n));
    }
    if (rc != SQLITE_DONE) return conn_error(db, "list nodes");
    return page;
  }

  Status set_labels(const std::string& id, const LabelMap& labels) override {
    return update_node("UPDATE nodes SET labels = ?2 WHERE id = ?1", id, labels_json(labels));
  }

  Status set_revoked(const std::string& id) override {
    std::lock_guard lock(wmu_);
    GANGLION_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    Stmt s(db_, "UPDATE nodes SET revoked = 1 WHERE id = ?");
    s.bind(1, id);
    if (s.step() != SQLITE_DONE) {
      (void)exec("ROLLBACK");
      return db_error("revoke");
    }
    if (sqlite3_changes(db_) == 0) {
      (void)exec("ROLLBACK");
      return NotFound("node " + id);
    }
    Stmt c(db_, "UPDATE certificates SET revoked = 1 WHERE node = ?");
    c.bind(1, id);
    if (c.step() != SQLITE_DONE) {
      (void)exec("ROLLBACK");
      return db_error("revoke certificates");
    }
    return exec("COMMIT");
  }

  Status set_certificate(const std::string& id, const std::string& serial,
                         std::int64_t expires_at_ms, const std::string& key_sha256) override {
    std::lock_guard lock(wmu_);
    Stmt s(
        db_,
        "UPDATE nodes SET cert_serial = ?2, cert_expires_at = ?3, key_sha256 = ?4 WHERE id = ?1");
    s.bind(1, id).bind(2, serial).bind(3, expires_at_ms).bind(4, key_sha256);
    if (s.step() != SQLITE_DONE) return db_error("set certificate");
    if (sqlite3_changes(db_) == 0) return NotFound("node " + id);
    return insert_cert(id, serial, expires_at_ms);
  }

  Status record_heartbeat(const std::string& id, std::int64_t ts_ms, const std::string& version,
                          const std::string& heartbeat_json) override {
    std::lock_guard lock(wmu_);
    Stmt s(db_, "UPDATE nodes SET last_heartbeat = ?2, version = ?3, heartbeat = ?4 WHERE id = ?1");
    s.bind(1, id).bind(2, ts_ms).bind(3, version).bind(4, heartbeat_json);
    if (s.step() != SQLITE_DONE) return db_error("heartbeat");
    if (sqlite3_changes(db_) == 0) return NotFound("node " + id);
    return Status::Ok();
  }

  Status set_health(const HealthChange& c) override {
    std::lock_guard lock(wmu_);
    GANGLION_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    Stmt s(db_,
           "UPDATE nodes SET health = ?2, health_reason = ?3, health_since = ?4 WHERE id = ?1");
    s.bind(1, c.node).bind(2, c.to).bind(3, c.reason).bind(4, c.ts_ms);
    Stmt h(db_,
           "INSERT INTO health_history (node, ts, from_state, to_state, reason) VALUES (?, ?, ?, "
           "?, ?)");
    h.bind(1, c.node).bind(2, c.ts_ms).bind(3, c.from).bind(4, c.to).bind(5, c.reason);
    if (s.step() != SQLITE_DONE || h.step() != SQLITE_DONE) {
      (void)exec("ROLLBACK");
      return db_error("set health");
    }
    return exec("COMMIT");
  }

  Result<std::vector<HealthChange>> health_history(const std::string& id,
                                                   std::size_t limit) override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(db,
           "SELECT node, ts, from_state, to_state, reason FROM (SELECT * FROM health_history "
           "WHERE node = ? ORDER BY id DESC LIMIT ?) ORDER BY id");
    s.bind(1, id).bind(2, static_cast<std::int64_t>(limit));
    std::vector<HealthChange> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back({s.str(0), s.i64(1), s.str(2), s.str(3), s.str(4)});
    if (rc != SQLITE_DONE) return conn_error(db, "health history");
    return out;
  }

  Status set_desired(const std::string& id, const std::string& json,
                     std::int64_t version) override {
    std::lock_guard lock(wmu_);
    Stmt s(db_, "UPDATE nodes SET desired = ?2, desired_version = ?3 WHERE id = ?1");
    s.bind(1, id).bind(2, json).bind(3, version);
    if (s.step() != SQLITE_DONE) return db_error("set desired");
    if (sqlite3_changes(db_) == 0) return NotFound("node " + id);
    return Status::Ok();
  }

  Status set_reported(const std::string& id, const std::string& json, std::int64_t version,
                      std::int64_t ts_ms) override {
    std::lock_guard lock(wmu_);
    Stmt s(db_,
           "UPDATE nodes SET reported = ?2, reported_version = ?3, reported_at = ?4 WHERE id = ?1");
    s.bind(1, id).bind(2, json).bind(3, version).bind(4, ts_ms);
    if (s.step() != SQLITE_DONE) return db_error("set reported");
    if (sqlite3_changes(db_) == 0) return NotFound("node " + id);
    return Status::Ok();
  }

  Status add_bootstrap_token(const BootstrapToken& t) override {
    std::lock_guard lock(wmu_);
    Stmt s(db_,
           "INSERT INTO bootstrap_tokens (id, hash, labels, created_at, expires_at, max_uses, "
           "uses, created_by) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, t.id)
        .bind(2, t.hash)
        .bind(3, labels_json(t.labels))
        .bind(4, t.created_at_ms)
        .bind(5, t.expires_at_ms)
        .bind(6, t.max_uses)
        .bind(7, t.uses)
        .bind(8, t.created_by);
    const int rc = s.step();
    if (rc == SQLITE_CONSTRAINT) return AlreadyExists("token exists");
    if (rc != SQLITE_DONE) return db_error("add token");
    return Status::Ok();
  }

  Result<BootstrapToken> bootstrap_token_by_hash(const std::string& hash) override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(db,
           "SELECT id, hash, labels, created_at, expires_at, max_uses, uses, created_by "
           "FROM bootstrap_tokens WHERE hash = ?");
    s.bind(1, hash);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return read_bootstrap(s);
    if (rc == SQLITE_DONE) return NotFound("token");
    return conn_error(db, "read token");
  }

  Result<std::vector<BootstrapToken>> bootstrap_tokens() override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(db,
           "SELECT id, hash, labels, created_at, expires_at, max_uses, uses, created_by "
           "FROM bootstrap_tokens ORDER BY created_at, id");
    std::vector<BootstrapToken> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_bootstrap(s));
    if (rc != SQLITE_DONE) return conn_error(db, "list tokens");
    return out;
  }

  Status delete_bootstrap_token(const std::string& id) override {
    std::lock_guard lock(wmu_);
    Stmt s(db_, "DELETE FROM bootstrap_tokens WHERE id = ?");
    s.bind(1, id);
    if (s.step() != SQLITE_DONE) return db_error("delete token");
    if (sqlite3_changes(db_) == 0) return NotFound("token " + id);
    return Status::Ok();
  }

  Status add_api_token(const ApiToken& t) override {
    std::lock_guard lock(wmu_);
    Stmt s(db_,
           "INSERT INTO api_tokens (id, name, role, hash, created_at, revoked) VALUES (?, ?, ?, ?, "
           "?, ?)");
    s.bind(1, t.id)
        .bind(2, t.name)
        .bind(3, to_string(t.role))
        .bind(4, t.hash)
        .bind(5, t.created_at_ms)
        .bind(6, t.revoked ? 1 : 0);
    const int rc = s.step();
    if (rc == SQLITE_CONSTRAINT) return AlreadyExists("api token exists");
    if (rc != SQLITE_DONE) return db_error("add api token");
    return Status::Ok();
  }

  Result<ApiToken> api_token_by_hash(const std::string& hash) override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(db, "SELECT id, name, role, hash, created_at, revoked FROM api_tokens WHERE hash = ?");
    s.bind(1, hash);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return read_api(s);
    if (rc == SQLITE_DONE) return NotFound("api token");
    return conn_error(db, "read api token");
  }

  Result<std::vector<ApiToken>> api_tokens() override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(
        db,
        "SELECT id, name, role, hash, created_at, revoked FROM api_tokens ORDER BY created_at, id");
    std::vector<ApiToken> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_api(s));
    if (rc != SQLITE_DONE) return conn_error(db, "list api tokens");
    return out;
  }

  Status audit(const AuditEntry& e) override {
    std::lock_guard lock(wmu_);
    return audit_locked(e);
  }

  // Consumes one use of the token and inserts or replaces the node. REQUIRES: wmu_ held, a
  // transaction open.
  Status enroll_locked(const std::string& token_hash, std::int64_t now_ms, const NodeRecord& n) {
    Stmt t(db_,
           "UPDATE bootstrap_tokens SET uses = uses + 1 WHERE hash = ? AND expires_at > ? AND "
           "uses < max_uses");
    t.bind(1, token_hash).bind(2, now_ms);
    if (t.step() != SQLITE_DONE) return db_error("consume token");
    if (sqlite3_changes(db_) != 1)
      return PermissionDenied("bootstrap token invalid, expired or used up");
    Stmt i(db_,
           "INSERT INTO nodes (id, labels, revoked, enrolled_at, key_sha256, cert_serial, "
           "cert_expires_at, token_id, health_since) "
           "VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?3) ON CONFLICT(id) DO UPDATE SET labels = ?2, "
           "enrolled_at = ?3, key_sha256 = ?4, cert_serial = ?5, cert_expires_at = ?6, token_id = "
           "?7");
    i.bind(1, n.id)
        .bind(2, labels_json(n.labels))
        .bind(3, n.enrolled_at_ms)
        .bind(4, n.key_sha256)
        .bind(5, n.cert_serial)
        .bind(6, n.cert_expires_at_ms)
        .bind(7, n.token_id);
    if (i.step() != SQLITE_DONE) return db_error("insert node");
    return insert_cert(n.id, n.cert_serial, n.cert_expires_at_ms);
  }

  Status audit_locked(const AuditEntry& e) {
    Stmt s(
        db_,
        "INSERT INTO audit (ts, actor, action, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)");
    s.bind(1, e.ts_ms)
        .bind(2, e.actor)
        .bind(3, e.action)
        .bind(4, e.target)
        .bind(5, e.outcome)
        .bind(6, e.detail);
    if (s.step() != SQLITE_DONE) return db_error("audit");
    return Status::Ok();
  }

  Result<std::vector<AuditEntry>> audit_log(std::int64_t since_id, std::size_t limit) override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(db,
           "SELECT id, ts, actor, action, target, outcome, detail FROM audit WHERE id > ? ORDER BY "
           "id LIMIT ?");
    s.bind(1, since_id).bind(2, static_cast<std::int64_t>(limit));
    std::vector<AuditEntry> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      out.push_back({s.i64(0), s.i64(1), s.str(2), s.str(3), s.str(4), s.str(5), s.str(6)});
    }
    if (rc != SQLITE_DONE) return conn_error(db, "audit log");
    return out;
  }

  Result<IngestOutcome> ingest(const IngestBatch& b, std::int64_t now_ms) override {
    WriteGroup g;
    g.batches.push_back(b);
    GroupResult r = write_group(g, now_ms);
    if (!r.status.ok()) return r.status;
    return std::move(r.batches.front());
  }

  GroupResult write_group(const WriteGroup& g, std::int64_t now_ms) override {
    std::lock_guard lock(wmu_);
    auto all = [&](Status s) {
      std::vector<Result<IngestOutcome>> each(g.batches.size(), Result<IngestOutcome>(s));
      std::vector<Status> enrolments(g.enrolments.size(), s);
      return GroupResult{std::move(s), std::move(each), std::move(enrolments)};
    };
    if (Status s = exec("BEGIN IMMEDIATE"); !s.ok()) return all(s);
    if (Status s = write_state_locked(g); !s.ok()) {
      (void)exec("ROLLBACK");
      return all(s);
    }
    GroupResult out;
    out.enrolments.reserve(g.enrolments.size());
    for (const auto& e : g.enrolments) {
      if (Status s = exec("SAVEPOINT enrolment"); !s.ok()) {
        (void)exec("ROLLBACK");
        return all(s);
      }
      Status r = enroll_locked(e.token_hash, e.node.enrolled_at_ms, e.node);
      if (r.ok()) r = audit_locked(e.audit);
      if (!r.ok()) (void)exec("ROLLBACK TO enrolment");
      if (Status s = exec("RELEASE enrolment"); !s.ok()) {
        (void)exec("ROLLBACK");
        return all(s);
      }
      out.enrolments.push_back(std::move(r));
    }
    out.batches.reserve(g.batches.size());
    for (const auto& b : g.batches) {
      if (Status s = exec("SAVEPOINT batch"); !s.ok()) {
        (void)exec("ROLLBACK");
        return all(s);
      }
      auto r = ingest_locked(b, now_ms);
      if (!r.ok()) (void)exec("ROLLBACK TO batch");
      if (Status s = exec("RELEASE batch"); !s.ok()) {
        (void)exec("ROLLBACK");
        return all(s);
      }
      out.batches.push_back(std::move(r));
    }
    if (Status s = exec("COMMIT"); !s.ok()) {
      (void)exec("ROLLBACK");
      return all(s);
    }
    return out;
  }

  Status ingest_rejected(const std::string& node, const std::string& error,
                         std::int64_t now_ms) override {
    std::lock_guard lock(wmu_);
    Stmt s(
        db_,
        "INSERT INTO ingest_stats (node, rejected, last_error, last_ingest) VALUES (?1, 1, ?2, ?3) "
        "ON CONFLICT(node) DO UPDATE SET rejected = rejected + 1, last_error = ?2");
    s.bind(1, node).bind(2, error).bind(3, now_ms);
    if (s.step() != SQLITE_DONE) return db_error("ingest stats");
    return Status::Ok();
  }

  Result<std::vector<IngestStats>> ingest_stats() override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(db,
           "SELECT node, batches, records, duplicates, rejected, last_ingest, last_error FROM "
           "ingest_stats ORDER BY node");
    std::vector<IngestStats> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      out.push_back(read_ingest(s));
    }
    if (rc != SQLITE_DONE) return conn_error(db, "ingest stats");
    return out;
  }

  Result<IngestStats> node_ingest_stats(const std::string& node) override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(db,
           "SELECT node, batches, records, duplicates, rejected, last_ingest, last_error FROM "
           "ingest_stats WHERE node = ?");
    s.bind(1, node);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return read_ingest(s);
    if (rc != SQLITE_DONE) return conn_error(db, "ingest stats");
    IngestStats none;
    none.node = node;
    return none;
  }

  Result<std::int64_t> record_count(const std::string& node) override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(db, "SELECT count(*) FROM records WHERE node = ?");
    s.bind(1, node);
    if (s.step() != SQLITE_ROW) return conn_error(db, "count");
    return s.i64(0);
  }

  Result<std::vector<QueryRow>> query(const SqlQuery& q) override {
    Reader r = reader();
    sqlite3* db = r.db;
    Stmt s(db, q.sql);
    if (!s.ok()) return conn_error(db, "prepare query");
    int i = 1;
    for (const auto& p : q.params) {
      std::visit([&](const auto& v) { s.bind(i, v); }, p);
      ++i;
    }
    std::vector<QueryRow> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back({s.i64(0), s.str(1), s.dbl(2), s.i64(3)});
    if (rc != SQLITE_DONE) return conn_error(db, "query");
    return out;
  }

  Status rollup(std::int64_t before_ms) override {
    std::lock_guard lock(wmu_);
    before_ms -= before_ms % 60'000;
    std::int64_t from = 0;
    {
      Stmt m(db_, "SELECT value FROM meta WHERE key = 'rollup_watermark'");
      if (m.step() == SQLITE_ROW) from = std::stoll(m.str(0));
    }
    if (before_ms <= from) return Status::Ok();
    GANGLION_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
    Stmt s(db_, R"sql(
INSERT INTO rollup_1m (node, class, minute, field, count, sum, min, max)
SELECT r.node, r.class, (r.ts / 60000) * 60000, j.key, count(*), sum(j.value), min(j.value), max(j.value)
FROM records r, json_each(CASE WHEN json_valid(r.payload) AND json_type(r.payload) = 'object' THEN r.payload ELSE '{}' END) j
WHERE r.ts >= ?1 AND r.ts < ?2 AND j.type IN ('integer', 'real')
GROUP BY 1, 2, 3, 4
ON CONFLICT (node, class, minute, field) DO UPDATE SET count = count + excluded.count,
  sum = sum + excluded.sum, min = min(min, excluded.min), max = max(max, excluded.max))sql");
    s.bind(1, from).bind(2, before_ms);
    Stmt m(db_,
           "INSERT INTO meta (key, value) VALUES ('rollup_watermark', ?) ON CONFLICT(key) DO "
           "UPDATE SET value = excluded.value");
    m.bind(1, std::to_string(before_ms));
    if (s.step() != SQLITE_DONE || m.step() != SQLITE_DONE) {
      Status err = db_error("rollup");
      (void)exec("ROLLBACK");
      return err;
    }
    return exec("COMMIT");
  }

  Result<std::int64_t> apply_retention(std::int64_t raw_before_ms,
                                       std::int64_t rollup_before_ms) override {
    std::lock_guard lock(wmu_);
    Stmt r(db_, "DELETE FROM records WHERE ts < ?");
    r.bind(1, raw_before_ms);
    if (r.step() != SQLITE_DONE) return db_error("retention");
    const std::int64_t n = sqlite3_changes(db_);
    Stmt u(db_, "DELETE FROM rollup_1m WHERE minute < ?");
    u.bind(1, rollup_before_ms);
    if (u.step() != SQLITE_DONE) return db_error("retention");
    return n;
  }

 private:
  // REQUIRES: wmu_ held, in a transaction.
  Status write_state_locked(const WriteGroup& g) {
    if (!g.heartbeats.empty()) {
      Cached s = cached(
          "UPDATE nodes SET last_heartbeat = ?2, version = ?3, heartbeat = ?4 WHERE id = ?1");
      for (const auto& h : g.heartbeats) {
        s->reset();
        s->bind(1, h.node).bind(2, h.ts_ms).bind(3, h.version).bind(4, h.heartbeat_json);
        if (s->step() != SQLITE_DONE) return db_error("heartbeat");
      }
    }
    if (!g.reported.empty()) {
      Cached s = cached(
          "UPDATE nodes SET reported = ?2, reported_version = ?3, reported_at = ?4 WHERE id = ?1");
      for (const auto& r : g.reported) {
        s->reset();
        s->bind(1, r.node).bind(2, r.json).bind(3, r.version).bind(4, r.ts_ms);
        if (s->step() != SQLITE_DONE) return db_error("set reported");
      }
    }
    if (!g.health.empty()) {
      Cached s = cached(
          "UPDATE nodes SET health = ?2, health_reason = ?3, health_since = ?4 WHERE id = ?1");
      Cached h = cached(
          "INSERT INTO health_history (node, ts, from_state, to_state, reason) VALUES (?, ?, ?, ?, "
          "?)");
      for (const auto& c : g.health) {
        s->reset();
        h->reset();
        s->bind(1, c.node).bind(2, c.to).bind(3, c.reason).bind(4, c.ts_ms);
        h->bind(1, c.node).bind(2, c.ts_ms).bind(3, c.from).bind(4, c.to).bind(5, c.reason);
        if (s->step() != SQLITE_DONE || h->step() != SQLITE_DONE) return db_error("set health");
      }
    }
    return Status::Ok();
  }

  // Stores one batch (dedupe by (node, class, seq), records below the high-water mark
  // skipped). REQUIRES: wmu_ held, in a transaction (the caller rolls back on error).
  Result<IngestOutcome> ingest_locked(const IngestBatch& b, std::int64_t now_ms) {
    IngestOutcome out;
    {
      Cached d = cached("SELECT 1 FROM ingest_batches WHERE node = ? AND class = ? AND seq = ?");
      d->bind(1, b.node).bind(2, b.cls).bind(3, static_cast<std::int64_t>(b.seq));
      const int rc = d->step();
      if (rc == SQLITE_ROW) {
        out.duplicate = true;
        Cached u = cached(
            "INSERT INTO ingest_stats (node, duplicates) VALUES (?, 1) ON CONFLICT(node) "
            "DO UPDATE SET duplicates = duplicates + 1");
        u->bind(1, b.node);
        if (u->step() != SQLITE_DONE) return db_error("ingest stats");
        return out;
      }
      if (rc != SQLITE_DONE) return db_error("dedupe lookup");
    }
    std::int64_t high_water = -1;
    {
      Cached c = cached("SELECT high_water FROM ingest_cursor WHERE node = ? AND class = ?");
      c->bind(1, b.node).bind(2, b.cls);
      if (c->step() == SQLITE_ROW) high_water = c->i64(0);
    }
    {
      Cached r = cached(
          "INSERT INTO records (node, class, ts, topic, payload, log_offset) VALUES (?, ?, ?, "
          "?, ?, ?)");
      for (const auto& rec : b.records) {
        if (rec.offset && high_water >= 0 && static_cast<std::int64_t>(*rec.offset) < high_water) {
          ++out.skipped;
          continue;
        }
        r->reset();
        r->bind(1, b.node)
            .bind(2, b.cls)
            .bind(3, rec.ts_ms)
            .bind(4, rec.topic)
            .bind(5, rec.payload);
        if (rec.offset)
          r->bind(6, static_cast<std::int64_t>(*rec.offset));
        else
          r->bind_null(6);
        if (r->step() != SQLITE_DONE) return db_error("insert record");
        ++out.stored;
      }
    }
    {
      Cached bt = cached(
          "INSERT INTO ingest_batches (node, class, seq, end_offset, records, received_at) "
          "VALUES (?, ?, ?, ?, ?, ?)");
      bt->bind(1, b.node)
          .bind(2, b.cls)
          .bind(3, static_cast<std::int64_t>(b.seq))
          .bind(4, static_cast<std::int64_t>(b.end))
          .bind(5, static_cast<std::int64_t>(out.stored))
          .bind(6, now_ms);
      if (bt->step() != SQLITE_DONE) return db_error("insert batch");
    }
    if (b.end > 0) {
      Cached cu = cached(
          "INSERT INTO ingest_cursor (node, class, high_water) VALUES (?1, ?2, ?3) ON "
          "CONFLICT(node, class) DO UPDATE SET high_water = max(high_water, ?3)");
      cu->bind(1, b.node).bind(2, b.cls).bind(3, static_cast<std::int64_t>(b.end));
      if (cu->step() != SQLITE_DONE) return db_error("cursor");
    }
    // `duplicates` counts whole batches received again; records skipped below the
    // high-water mark show as records not added.
    Cached st = cached(
        "INSERT INTO ingest_stats (node, batches, records, last_ingest) VALUES (?1, 1, ?2, ?3) "
        "ON CONFLICT(node) DO UPDATE SET batches = batches + 1, records = records + ?2, "
        "last_ingest = ?3");
    st->bind(1, b.node).bind(2, static_cast<std::int64_t>(out.stored)).bind(3, now_ms);
    if (st->step() != SQLITE_DONE) return db_error("ingest stats");
    return out;
  }

  Status exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string m = err ? err : "unknown error";
      sqlite3_free(err);
      return IoError("sqlite: " + m);
    }
    return Status::Ok();
  }
  Status db_error(std::string_view what) {
    return IoError("sqlite " + std::string(what) + ": " + sqlite3_errmsg(db_));
  }
  Status update_node(const char* sql, const std::string& id, const std::string& value) {
    std::lock_guard lock(wmu_);
    Stmt s(db_, sql);
    s.bind(1, id).bind(2, value);
    if (s.step() != SQLITE_DONE) return db_error("update node");
    if (sqlite3_changes(db_) == 0) return NotFound("node " + id);
    return Status::Ok();
  }
  // REQUIRES: mu_ held.
  Status insert_cert(const std::string& node, const std::string& serial,
                     std::int64_t expires_at_ms) {
    Stmt c(db_,
           "INSERT OR REPLACE INTO certificates (serial, node, expires_at, revoked) VALUES (?, ?, "
           "?, 0)");
    c.bind(1, serial).bind(2, node).bind(3, expires_at_ms);
    if (c.step() != SQLITE_DONE) return db_error("insert certificate");
    return Status::Ok();
  }

  struct ReaderConn {
    ReaderConn(sqlite3* d, bool o) : db(d), owned(o) {}
    sqlite3* db;
    bool owned;
    std::mutex mu;
  };
  struct Reader {
    std::unique_lock<std::mutex> lock;
    sqlite3* db;
  };
  // A free read-only connection, or (all busy) the next one in turn.
  Reader reader() {
    for (auto& r : readers_) {
      std::unique_lock l(r->mu, std::try_to_lock);
      if (l.owns_lock()) return {std::move(l), r->db};
    }
    auto& r = *readers_[next_reader_.fetch_add(1) % readers_.size()];
    return {std::unique_lock(r.mu), r.db};
  }

  // A cached statement of the writing connection, reset (and its bindings cleared) when the
  // holder goes out of scope. REQUIRES: wmu_ held.
  class Cached {
   public:
    Cached(Stmt& s) : s_(s) {}  // NOLINT(google-explicit-constructor)
    ~Cached() { s_.reset(); }
    Cached(const Cached&) = delete;
    Cached& operator=(const Cached&) = delete;
    Stmt* operator->() { return &s_; }
    Stmt& operator*() { return s_; }

   private:
    Stmt& s_;
  };
  Cached cached(const char* sql) {
    auto& slot = cache_[sql];
    if (!slot) slot = std::make_unique<Stmt>(db_, sql);
    return Cached(*slot);
  }

  FairMutex wmu_;
  sqlite3* db_;
  std::int64_t schema_version_ = 0;
  std::unordered_map<std::string, std::unique_ptr<Stmt>> cache_;  // guarded by wmu_
  std::vector<std::unique_ptr<ReaderConn>> readers_;
  std::atomic<std::size_t> next_reader_{0};
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path, int readers) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string m = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return IoError("cannot open store " + path + ": " + m);
  }
  auto store = std::make_unique<SqliteStore>(db);
  GANGLION_RETURN_IF_ERROR(store->init().with_context("store " + path));
  GANGLION_RETURN_IF_ERROR(store->open_readers(path, readers).with_context("store " + path));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace ganglion::cloud
