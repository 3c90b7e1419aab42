#include "broker/session_store.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "base/crc32c.h"
#include "mqtt/codec.h"

namespace ganglion::broker {

namespace {

enum RecordType : std::uint8_t {
  kSession = 1,
  kEnd = 2,
  kMessage = 3,
  kEnqueue = 4,
  kDone = 5,
  kRetain = 6,
  kUnretain = 7,
  kNextId = 8,
  kQos2Received = 9,
  kQos2Released = 10,
};

class Writer {
 public:
  explicit Writer(std::uint8_t type) { out_.push_back(static_cast<char>(type)); }
  Writer& u8(std::uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  Writer& u16(std::uint16_t v) { return raw(&v, 2); }
  Writer& u32(std::uint32_t v) { return raw(&v, 4); }
  Writer& u64(std::uint64_t v) { return raw(&v, 8); }
  Writer& i64(std::int64_t v) { return raw(&v, 8); }
  Writer& str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
    return *this;
  }
  std::string take() { return std::move(out_); }

 private:
  Writer& raw(const void* p, std::size_t n) {  // little-endian hosts only (x86_64, arm64)
    out_.append(static_cast<const char*>(p), n);
    return *this;
  }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  std::uint8_t u8() {
    std::uint8_t v = 0;
    raw(&v, 1);
    return v;
  }
  std::uint16_t u16() {
    std::uint16_t v = 0;
    raw(&v, 2);
    return v;
  }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    raw(&v, 4);
    return v;
  }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    raw(&v, 8);
    return v;
  }
  std::int64_t i64() {
    std::int64_t v = 0;
    raw(&v, 8);
    return v;
  }
  std::string str() {
    const std::uint32_t n = u32();
    if (!ok_ || n > in_.size()) {
      ok_ = false;
      return {};
    }
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  bool done() const { return in_.empty(); }

 private:
  void raw(void* p, std::size_t n) {
    if (in_.size() < n) {
      ok_ = false;
      std::memset(p, 0, n);
      return;
    }
    std::memcpy(p, in_.data(), n);
    in_.remove_prefix(n);
  }
  std::string_view in_;
  bool ok_ = true;
};

std::shared_ptr<const std::string> blob_or_null(std::string s) {
  if (s.empty()) return nullptr;
  return std::make_shared<const std::string>(std::move(s));
}

std::string frame(std::string_view body) {
  std::string out;
  out.reserve(kRecordHeaderSize + body.size());
  const auto len = static_cast<std::uint32_t>(body.size());
  const std::uint32_t crc = crc32c(body);
  out.append(reinterpret_cast<const char*>(&len), 4);
  out.append(reinterpret_cast<const char*>(&crc), 4);
  out.append(body);
  return out;
}

// Applies one record body to the mirror. Unknown references are ignored (see header).
// Returns false when the body does not parse.
bool apply(StoreState& s, std::string_view body, std::uint64_t& live_bytes) {
  Reader r(body);
  const std::uint8_t type = r.u8();
  switch (type) {
    case kSession: {
      const std::string id = r.str();
      StoredSession& sess = s.sessions[id];
      sess.expiry_interval = r.u32();
      sess.offline_since_wall_ms = r.i64();
      const std::uint32_t n = r.u32();
      sess.subscriptions.clear();
      for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
        std::string filter = r.str();
        SubscriptionOptions o;
        o.max_qos = r.u8();
        const std::uint8_t flags = r.u8();
        o.no_local = flags & 1;
        o.retain_as_published = flags & 2;
        o.retain_handling = r.u8();
        o.subscription_id = r.u32();
        sess.subscriptions.emplace(std::move(filter), o);
      }
      break;
    }
    case kEnd: {
      const std::string id = r.str();
      auto it = s.sessions.find(id);
      if (it == s.sessions.end()) break;
      for (const auto& d : it->second.queue) {
        auto ref = s.message_refs.find(d.message_id);
        if (ref != s.message_refs.end() && --ref->second == 0) {
          auto m = s.messages.find(d.message_id);
          if (m != s.messages.end()) {
            live_bytes -= std::min<std::uint64_t>(
                live_bytes, m->second.payload.size() + m->second.topic.size());
            s.messages.erase(m);
          }
          s.message_refs.erase(ref);
        }
      }
      s.sessions.erase(it);
      break;
    }
    case kMessage: {
      const std::uint64_t id = r.u64();
      StoredMessage m;
      m.topic = r.str();
      m.qos = r.u8();
      m.retain = r.u8() != 0;
      m.expiry_wall_ms = r.i64();
      m.properties = blob_or_null(r.str());
      m.payload = mqtt::SharedBytes(r.str());
      if (!r.ok()) return false;
      live_bytes += m.payload.size() + m.topic.size();
      s.messages[id] = std::move(m);
      s.message_refs.try_emplace(id, 0);
      s.next_message_id = std::max(s.next_message_id, id + 1);
      break;
    }
    case kEnqueue: {
      const std::string client = r.str();
      StoredDelivery d;
      d.message_id = r.u64();
      d.qos = r.u8();
      d.retain = r.u8() != 0;
      const std::uint32_t n = r.u32();
      for (std::uint32_t i = 0; i < n && r.ok() && i < 1024; ++i)
        d.subscription_ids.push_back(r.u32());
      if (!r.ok()) return false;
      auto sess = s.sessions.find(client);
      if (sess == s.sessions.end() || !s.messages.count(d.message_id)) break;
      ++s.message_refs[d.message_id];
      sess->second.queue.push_back(std::move(d));
      break;
    }
    case kDone: {
      const std::string client = r.str();
      const std::uint64_t id = r.u64();
      if (!r.ok()) return false;
      auto sess = s.sessions.find(client);
      if (sess == s.sessions.end()) break;
      auto& q = sess->second.queue;
      auto it = std::find_if(q.begin(), q.end(),
                             [&](const StoredDelivery& d) { return d.message_id == id; });
      if (it == q.end()) break;
      q.erase(it);
      auto ref = s.message_refs.find(id);
      if (ref != s.message_refs.end() && --ref->second == 0) {
        auto m = s.messages.find(id);
        if (m != s.messages.end()) {
          live_bytes -= std::min<std::uint64_t>(live_bytes,
                                                m->second.payload.size() + m->second.topic.size());
          s.messages.erase(m);
        }
        s.message_refs.erase(ref);
      }
      break;
    }
    case kRetain: {
      StoredMessage m;
      m.topic = r.str();
      m.qos = r.u8();
      m.retain = true;
      m.expiry_wall_ms = r.i64();
      m.properties = blob_or_null(r.str());
      m.payload = mqtt::SharedBytes(r.str());
      if (!r.ok()) return false;
      std::string topic = m.topic;
      s.retained[topic] = std::move(m);
      break;
    }
    case kUnretain: {
      const std::string topic = r.str();
      s.retained.erase(topic);
      break;
    }
    case kQos2Received:
    case kQos2Released: {
      const std::string client = r.str();
      const std::uint16_t packet_id = r.u16();
      if (!r.ok()) return false;
      auto sess = s.sessions.find(client);
      if (sess == s.sessions.end()) break;
      if (type == kQos2Received) {
        sess->second.inbound_qos2.insert(packet_id);
      } else {
        sess->second.inbound_qos2.erase(packet_id);
      }
      break;
    }
    case kNextId: {
      const std::uint64_t next = r.u64();
      if (!r.ok()) return false;
      s.next_message_id = std::max(s.next_message_id, next);
      break;
    }
    default:
      return false;
  }
  return r.ok();
}

std::string message_body(std::uint64_t id, const Message& m, std::int64_t expiry_wall_ms) {
  auto props = encode_properties(m.properties.get());
  return Writer(kMessage)
      .u64(id)
      .str(m.topic)
      .u8(m.qos)
      .u8(m.retain)
      .i64(expiry_wall_ms)
      .str(props ? std::string_view(*props) : std::string_view())
      .str(m.payload.view())
      .take();
}

}  // namespace

std::shared_ptr<const std::string> encode_properties(const mqtt::Properties* properties) {
  if (!properties || properties->empty()) return nullptr;
  mqtt::Publish p;
  p.topic = "r";
  p.properties = *properties;
  auto out = std::make_shared<std::string>();
  if (!mqtt::encode(p, mqtt::ProtocolVersion::kV5, *out).ok()) return nullptr;
  return out;
}

std::shared_ptr<const mqtt::Properties> decode_properties(
    const std::shared_ptr<const std::string>& blob) {
  if (!blob) return nullptr;
  auto packet = mqtt::decode_packet(*blob, mqtt::ProtocolVersion::kV5);
  if (!packet.ok()) return nullptr;
  auto* p = std::get_if<mqtt::Publish>(&*packet);
  if (!p) return nullptr;
  return std::make_shared<const mqtt::Properties>(std::move(p->properties));
}

SessionStore::SessionStore(Env& env, Clock& clock, SessionStoreOptions options)
    : env_(env),
      clock_(clock),
      options_(std::move(options)),
      path_(join_path(options_.dir, "journal")) {}

Result<std::unique_ptr<SessionStore>> SessionStore::open(Env& env, Clock& clock,
                                                         SessionStoreOptions options) {
  std::unique_ptr<SessionStore> store(new SessionStore(env, clock, std::move(options)));
  GANGLION_RETURN_IF_ERROR(env.create_dirs(store->options_.dir));
  GANGLION_RETURN_IF_ERROR(store->replay());
  if (store->options_.background) store->committer_ = std::thread([s = store.get()] { s->run(); });
  return store;
}

SessionStore::~SessionStore() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (committer_.joinable()) committer_.join();
  (void)flush();
  if (file_) (void)file_->close();
}

Status SessionStore::replay() {
  std::uint64_t valid_end = 0;
  if (env_.exists(path_)) {
    GANGLION_ASSIGN_OR_RETURN(auto content, env_.read_file(path_));
    std::string_view in(content);
    if (in.size() >= kJournalHeaderSize && std::memcmp(in.data(), kJournalMagic, 8) == 0) {
      std::size_t pos = kJournalHeaderSize;
      while (pos + kRecordHeaderSize <= in.size()) {
        std::uint32_t len = 0;
        std::uint32_t crc = 0;
        std::memcpy(&len, in.data() + pos, 4);
        std::memcpy(&crc, in.data() + pos + 4, 4);
        if (len == 0 || len > kMaxRecordBody || pos + kRecordHeaderSize + len > in.size()) break;
        const std::string_view body = in.substr(pos + kRecordHeaderSize, len);
        if (crc32c(body) != crc) break;
        if (!apply(state_, body, live_bytes_)) break;
        pos += kRecordHeaderSize + len;
      }
      valid_end = pos;
    } else if (!in.empty()) {
      // A header torn by a crash during creation: nothing in it was ever durable.
      spdlog::warn("broker store {}: bad journal header, starting empty", path_);
    }
    stats_.torn_bytes_dropped = in.size() - std::min<std::uint64_t>(in.size(), valid_end);
    if (stats_.torn_bytes_dropped > 0) {
      spdlog::warn("broker store {}: dropped {} bytes of torn or corrupt journal tail", path_,
                   stats_.torn_bytes_dropped);
    }
  }
  // Rewrite from the mirror: drops the torn tail and starts compact.
  std::unique_lock lock(mu_);
  return compact_locked();
}

void SessionStore::read(const std::function<void(const StoreState&)>& fn) const {
  std::lock_guard lock(mu_);
  fn(state_);
}

SessionStore::Seq SessionStore::commit_locked(std::string body) {
  apply(state_, body, live_bytes_);
  buffer_ += frame(body);
  ++stats_.records_written;
  ++appended_seq_;
  cv_.notify_one();
  return appended_seq_;
}

SessionStore::Seq SessionStore::put_session(
    const std::string& client_id, std::uint32_t expiry_interval, std::int64_t offline_since_wall_ms,
    const std::map<std::string, SubscriptionOptions, std::less<>>& subscriptions) {
  Writer w(kSession);
  w.str(client_id)
      .u32(expiry_interval)
      .i64(offline_since_wall_ms)
      .u32(static_cast<std::uint32_t>(subscriptions.size()));
  for (const auto& [filter, o] : subscriptions) {
    w.str(filter)
        .u8(o.max_qos)
        .u8(static_cast<std::uint8_t>((o.no_local ? 1 : 0) | (o.retain_as_published ? 2 : 0)))
        .u8(o.retain_handling)
        .u32(o.subscription_id);
  }
  std::lock_guard lock(mu_);
  return commit_locked(w.take());
}

// REQUIRES: mu_ held. Drops message `id` from the identity map (O(1): the reverse index).
void SessionStore::forget_id_locked(std::uint64_t id) {
  auto r = id_to_message_.find(id);
  if (r == id_to_message_.end()) return;
  auto it = ids_of_.find(r->second);
  if (it != ids_of_.end() && it->second == id) ids_of_.erase(it);
  id_to_message_.erase(r);
}

SessionStore::Seq SessionStore::end_session(const std::string& client_id) {
  std::lock_guard lock(mu_);
  if (!state_.sessions.count(client_id)) return appended_seq_;
  // Messages no longer referenced by any queue leave the identity map too.
  for (const auto& d : state_.sessions[client_id].queue) {
    auto ref = state_.message_refs.find(d.message_id);
    if (ref != state_.message_refs.end() && ref->second == 1) {
      forget_id_locked(d.message_id);
    }
  }
  return commit_locked(Writer(kEnd).str(client_id).take());
}

SessionStore::Seq SessionStore::enqueue(const std::string& client_id, const MessagePtr& message,
                                        std::uint8_t qos, bool retain,
                                        std::span<const std::uint32_t> subscription_ids,
                                        std::uint64_t& message_id) {
  std::lock_guard lock(mu_);
  if (!state_.sessions.count(client_id)) {
    message_id = 0;
    return appended_seq_;
  }
  auto it = ids_of_.find(message.get());
  if (it == ids_of_.end() || !state_.messages.count(it->second)) {
    const std::uint64_t id = state_.next_message_id;
    const std::int64_t expiry_wall =
        message->expiry_ms == 0
            ? 0
            : wall_ms() +
                  (message->expiry_ms - std::chrono::duration_cast<std::chrono::milliseconds>(
                                            clock_.now().time_since_epoch())
                                            .count());
    commit_locked(message_body(id, *message, expiry_wall));
    if (it != ids_of_.end()) id_to_message_.erase(it->second);  // a stale id of this address
    it = ids_of_.insert_or_assign(message.get(), id).first;
    id_to_message_[id] = message.get();
  }
  message_id = it->second;
  Writer w(kEnqueue);
  w.str(client_id)
      .u64(message_id)
      .u8(qos)
      .u8(retain)
      .u32(static_cast<std::uint32_t>(subscription_ids.size()));
  for (auto id : subscription_ids) w.u32(id);
  return commit_locked(w.take());
}

SessionStore::Seq SessionStore::done(const std::string& client_id, std::uint64_t message_id) {
  std::lock_guard lock(mu_);
  auto ref = state_.message_refs.find(message_id);
  const bool last = ref != state_.message_refs.end() && ref->second == 1;
  const Seq seq = commit_locked(Writer(kDone).str(client_id).u64(message_id).take());
  if (last && !state_.messages.count(message_id)) {
    forget_id_locked(message_id);
  }
  return seq;
}

SessionStore::Seq SessionStore::qos2_received(const std::string& client_id,
                                              std::uint16_t packet_id) {
  std::lock_guard lock(mu_);
  return commit_locked(Writer(kQos2Received).str(client_id).u16(packet_id).take());
}

SessionStore::Seq SessionStore::qos2_released(const std::string& client_id,
                                              std::uint16_t packet_id) {
  std::lock_guard lock(mu_);
  return commit_locked(Writer(kQos2Released).str(client_id).u16(packet_id).take());
}

SessionStore::Seq SessionStore::put_retained(const Message& m) {
  auto props = encode_properties(m.properties.get());
  const std::int64_t expiry_wall =
      m.expiry_ms == 0
          ? 0
          : wall_ms() + (m.expiry_ms - std::chrono::duration_cast<std::chrono::milliseconds>(
                                           clock_.now().time_since_epoch())
                                           .count());
  std::string body = Writer(kRetain)
                         .str(m.topic)
                         .u8(m.qos)
                         .i64(expiry_wall)
                         .str(props ? std::string_view(*props) : std::string_view())
                         .str(m.payload.view())
                         .take();
  std::lock_guard lock(mu_);
  return commit_locked(std::move(body));
}

SessionStore::Seq SessionStore::erase_retained(const std::string& topic) {
  std::lock_guard lock(mu_);
  if (!state_.retained.count(topic)) return appended_seq_;
  return commit_locked(Writer(kUnretain).str(topic).take());
}

void SessionStore::when_durable(Seq seq, DurableFn fn) {
  std::unique_lock lock(mu_);
  if (seq <= durable_seq_) {
    lock.unlock();
    fn(Status::Ok());
    return;
  }
  if (seq <= failed_upto_) {
    Status e = error_;
    lock.unlock();
    fn(e);
    return;
  }
  waiters_.emplace(seq, std::move(fn));
}

Status SessionStore::write_batch(std::unique_lock<std::mutex>& lock) {
  // REQUIRES: lock held on entry and exit; released while writing.
  while (writing_) cv_.wait(lock);
  if (buffer_.empty() && !dirty_) return error_;
  if (!file_) {
    auto reopened = env_.open_writable(path_, OpenMode::kAppend);
    if (!reopened.ok()) return reopened.status();
    file_ = std::move(*reopened);
  }
  writing_ = true;
  const Seq upto = appended_seq_;
  Status s;
  std::uint64_t written = 0;
  if (dirty_) {
    // A batch was lost earlier: appending more would leave a gap in the journal. Rewrite
    // the whole mirror instead; until that succeeds nothing new is durable.
    s = compact_locked();
    if (s.ok()) dirty_ = false;
  } else {
    std::string batch;
    batch.swap(buffer_);
    lock.unlock();
    s = file_->append(batch);
    if (s.ok() && options_.fsync) s = file_->sync();
    lock.lock();
    written = batch.size();
  }
  writing_ = false;
  std::vector<std::pair<DurableFn, Status>> ready;
  if (s.ok()) {
    durable_seq_ = std::max(durable_seq_, upto);
    stats_.journal_bytes += written;
    if (options_.fsync && written) ++stats_.syncs;
    error_ = Status::Ok();
  } else {
    // The batch is lost (a failed append is cut back by the Env); its mutations stay in the
    // mirror and reach disk with the next successful compaction. Waiters learn it failed.
    ++stats_.write_errors;
    failed_upto_ = upto;
    error_ = s;
    dirty_ = true;
    spdlog::error("broker store {}: journal write failed: {}", path_, s.to_string());
  }
  if (!dirty_ && stats_.journal_bytes > options_.compact_min_bytes &&
      stats_.journal_bytes > 4 * (live_bytes_ + 1)) {
    writing_ = true;
    Status c = compact_locked();
    writing_ = false;
    if (!c.ok()) spdlog::warn("broker store {}: compaction failed: {}", path_, c.to_string());
  }
  while (!waiters_.empty() && waiters_.begin()->first <= std::max(upto, durable_seq_)) {
    const bool durable = waiters_.begin()->first <= durable_seq_;
    ready.emplace_back(std::move(waiters_.begin()->second), durable ? Status::Ok() : s);
    waiters_.erase(waiters_.begin());
  }
  cv_.notify_all();
  lock.unlock();
  for (auto& [fn, status] : ready) fn(status);
  lock.lock();
  return s;
}

Status SessionStore::flush() {
  std::unique_lock lock(mu_);
  if (!file_) return error_;
  return write_batch(lock);
}

Status SessionStore::compact_locked() {
  // REQUIRES: mu_ held and no write in progress. Writes the mirror as a fresh journal.
  std::string out(kJournalMagic, kJournalHeaderSize);
  // Message ids are never reused, not even once every message was delivered: consumers
  // (the uplink) recognise a redelivery after a crash by its id.
  out += frame(Writer(kNextId).u64(state_.next_message_id).take());
  for (const auto& [id, m] : state_.messages) {
    Message tmp;
    tmp.topic = m.topic;
    tmp.payload = m.payload;
    tmp.qos = m.qos;
    tmp.retain = m.retain;
    tmp.properties = decode_properties(m.properties);
    out += frame(message_body(id, tmp, m.expiry_wall_ms));
  }
  for (const auto& [client, s] : state_.sessions) {
    Writer w(kSession);
    w.str(client)
        .u32(s.expiry_interval)
        .i64(s.offline_since_wall_ms)
        .u32(static_cast<std::uint32_t>(s.subscriptions.size()));
    for (const auto& [filter, o] : s.subscriptions) {
      w.str(filter)
          .u8(o.max_qos)
          .u8(static_cast<std::uint8_t>((o.no_local ? 1 : 0) | (o.retain_as_published ? 2 : 0)))
          .u8(o.retain_handling)
          .u32(o.subscription_id);
    }
    out += frame(w.take());
    for (const std::uint16_t packet_id : s.inbound_qos2) {
      out += frame(Writer(kQos2Received).str(client).u16(packet_id).take());
    }
    for (const auto& d : s.queue) {
      Writer e(kEnqueue);
      e.str(client)
          .u64(d.message_id)
          .u8(d.qos)
          .u8(d.retain)
          .u32(static_cast<std::uint32_t>(d.subscription_ids.size()));
      for (auto id : d.subscription_ids) e.u32(id);
      out += frame(e.take());
    }
  }
  for (const auto& [topic, m] : state_.retained) {
    out += frame(Writer(kRetain)
                     .str(topic)
                     .u8(m.qos)
                     .i64(m.expiry_wall_ms)
                     .str(m.properties ? std::string_view(*m.properties) : std::string_view())
                     .str(m.payload.view())
                     .take());
  }
  const std::string tmp = path_ + ".compact";
  {
    GANGLION_ASSIGN_OR_RETURN(auto f, env_.open_writable(tmp, OpenMode::kTruncate));
    GANGLION_RETURN_IF_ERROR(f->append(out));
    GANGLION_RETURN_IF_ERROR(f->sync());
    GANGLION_RETURN_IF_ERROR(f->close());
  }
  GANGLION_RETURN_IF_ERROR(env_.rename(tmp, path_));
  GANGLION_RETURN_IF_ERROR(env_.sync_dir(options_.dir));
  if (file_) (void)file_->close();
  file_.reset();
  GANGLION_ASSIGN_OR_RETURN(file_, env_.open_writable(path_, OpenMode::kAppend));
  // Everything appended so far is in the snapshot, hence durable. The caller runs waiters.
  buffer_.clear();
  durable_seq_ = appended_seq_;
  stats_.journal_bytes = out.size();
  ++stats_.compactions;
  return Status::Ok();
}

void SessionStore::run() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || (!buffer_.empty() && !writing_); });
    if (buffer_.empty() && stop_) return;
    if (!buffer_.empty()) (void)write_batch(lock);
  }
}

StoreStats SessionStore::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

Status SessionStore::health() const {
  std::lock_guard lock(mu_);
  return error_;
}

}  // namespace ganglion::broker
