// SessionStore: the broker's durable state — persistent sessions (subscriptions and queued
// QoS 1/2 deliveries) and retained messages — kept in a journal written through Env.
//
// Every mutation is applied to an in-memory mirror and appended to the journal; a committer
// thread batches appends from all threads into one write and one fdatasync (group commit)
// and then runs the durability callbacks in order. The broker acknowledges a QoS 1/2
// PUBLISH only from such a callback, so a message that was acknowledged survives a crash or
// a power loss. When the journal grows well beyond the live state it is compacted: the
// mirror is written to a new file, synced, and renamed over the old one.
//
// On-disk format (<dir>/journal; all integers little-endian):
//   file   := magic "GNGLNJ01" record*
//   record := u32 body_length, u32 crc32c(body), body
//   body   := u8 type, fields (strings and bytes as u32 length + bytes)
//   types  := 1 SESSION   client_id, u32 expiry_s, i64 offline_since_wall_ms,
//                         u32 n, n x (filter, u8 qos, u8 flags, u8 retain_handling, u32 sub_id)
//             2 END       client_id
//             3 MESSAGE   u64 id, topic, u8 qos, u8 retain, i64 expiry_wall_ms, properties, payload
//             4 ENQUEUE   client_id, u64 message_id, u8 qos, u8 retain, u32 n, n x u32 sub_id
//             5 DONE      client_id, u64 message_id
//             6 RETAIN    topic, u8 qos, i64 expiry_wall_ms, properties, payload
//             7 UNRETAIN  topic
//             8 NEXT_ID   u64 next message id (first record of a compacted journal: message
//                         ids are never reused, so a redelivery keeps a recognisable id)
//             9 QOS2_RECEIVED  client_id, u16 packet_id (an inbound QoS 2 message was routed;
//                              a resend of it must not be routed again)
//            10 QOS2_RELEASED  client_id, u16 packet_id (its PUBREL arrived)
// Recovery replays the records in order and stops at the first torn or corrupt record, which
// with everything after it is cut off (only a crash mid-append produces one). Records that
// refer to unknown sessions or messages are ignored.
//
// Thread safety: all methods are thread-safe. Durability callbacks run on the committer
// thread (or in flush()'s caller).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/env.h"
#include "broker/message.h"
#include "broker/topic_tree.h"

namespace ganglion::broker {

inline constexpr char kJournalMagic[8] = {'G', 'N', 'G', 'L', 'N', 'J', '0', '1'};
inline constexpr std::size_t kJournalHeaderSize = 8;
inline constexpr std::size_t kRecordHeaderSize = 8;
inline constexpr std::uint32_t kMaxRecordBody = 300u << 20;

struct SessionStoreOptions {
  std::string dir;
  // fdatasync before a mutation counts as durable. Off: durable once written (page cache).
  bool fsync = true;
  // Run the committer thread. Off (tests): records become durable only in flush().
  bool background = true;
  // Compact when the journal is larger than this and than 4x the live state.
  std::uint64_t compact_min_bytes = 64 << 20;
};

struct StoredMessage {
  std::string topic;
  mqtt::SharedBytes payload;
  std::uint8_t qos = 0;
  bool retain = false;
  std::shared_ptr<const std::string> properties;  // encode_properties() form; may be null
  std::int64_t expiry_wall_ms = 0;                // 0 = never
};

struct StoredDelivery {
  std::uint64_t message_id = 0;
  std::uint8_t qos = 1;
  bool retain = false;
  std::vector<std::uint32_t> subscription_ids;
};

struct StoredSession {
  std::uint32_t expiry_interval = 0;
  std::int64_t offline_since_wall_ms = 0;  // 0: was online when last written
  std::map<std::string, SubscriptionOptions> subscriptions;
  std::deque<StoredDelivery> queue;
  // Packet ids of inbound QoS 2 messages routed and awaiting PUBREL.
  std::set<std::uint16_t> inbound_qos2;
};

// The live durable state (the mirror of the journal).
struct StoreState {
  std::map<std::string, StoredSession> sessions;
  std::unordered_map<std::uint64_t, StoredMessage> messages;
  std::unordered_map<std::uint64_t, std::uint32_t> message_refs;
  std::map<std::string, StoredMessage> retained;
  std::uint64_t next_message_id = 1;
};

struct StoreStats {
  std::uint64_t journal_bytes = 0;
  std::uint64_t records_written = 0;
  std::uint64_t syncs = 0;
  std::uint64_t compactions = 0;
  std::uint64_t write_errors = 0;
  std::uint64_t torn_bytes_dropped = 0;  // at the last open
};

class SessionStore {
 public:
  using Seq = std::uint64_t;
  using DurableFn = std::function<void(const Status&)>;

  // Opens (creating if needed) and replays the journal in options.dir.
  static Result<std::unique_ptr<SessionStore>> open(Env& env, Clock& clock,
                                                    SessionStoreOptions options);
  ~SessionStore();
  SessionStore(const SessionStore&) = delete;
  SessionStore& operator=(const SessionStore&) = delete;

  // Reads the mirror under the store's lock (used to restore the broker at start-up).
  void read(const std::function<void(const StoreState&)>& fn) const;

  // Mutations. Each returns the sequence number after which it is durable.
  Seq put_session(const std::string& client_id, std::uint32_t expiry_interval,
                  std::int64_t offline_since_wall_ms,
                  const std::map<std::string, SubscriptionOptions, std::less<>>& subscriptions);
  Seq end_session(const std::string& client_id);
  // Queues `message` for `client_id`; writes the message itself the first time it is queued
  // anywhere. Returns the message's id through `message_id`.
  Seq enqueue(const std::string& client_id, const MessagePtr& message, std::uint8_t qos,
              bool retain, std::span<const std::uint32_t> subscription_ids,
              std::uint64_t& message_id);
  Seq done(const std::string& client_id, std::uint64_t message_id);
  // Inbound QoS 2 of a persistent session: the message with `packet_id` was routed (append
  // it after the routing's records, so it is never durable without them), and its PUBREL
  // arrived (durable before the PUBCOMP, or a later message reusing the id would be taken
  // for a resend).
  Seq qos2_received(const std::string& client_id, std::uint16_t packet_id);
  Seq qos2_released(const std::string& client_id, std::uint16_t packet_id);
  Seq put_retained(const Message& message);
  Seq erase_retained(const std::string& topic);

  // Calls fn(ok) once every record up to `seq` is durable, or fn(error) when writing failed.
  // Runs fn at once (in the caller) when that is already known.
  void when_durable(Seq seq, DurableFn fn);
  // Writes and syncs everything appended so far in the caller's thread.
  Status flush();

  StoreStats stats() const;
  // The last write error, or ok.
  Status health() const;

 private:
  SessionStore(Env& env, Clock& clock, SessionStoreOptions options);
  Status replay();
  // REQUIRES: mu_ held. Applies a record body to the mirror and appends it to the buffer.
  Seq commit_locked(std::string body);
  Status write_batch(std::unique_lock<std::mutex>& lock);
  Status compact_locked();
  void forget_id_locked(std::uint64_t id);
  void run();
  std::int64_t wall_ms() const { return clock_.wall_ms(); }

  Env& env_;
  Clock& clock_;
  SessionStoreOptions options_;
  std::string path_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  StoreState state_;
  std::unordered_map<const Message*, std::uint64_t> ids_of_;         // messages with live refs
  std::unordered_map<std::uint64_t, const Message*> id_to_message_;  // the reverse of ids_of_
  std::unique_ptr<WritableFile> file_;
  std::string buffer_;
  Seq appended_seq_ = 0;
  Seq durable_seq_ = 0;
  Seq failed_upto_ = 0;
  bool writing_ = false;
  bool dirty_ = false;  // a batch failed: the next write rewrites the journal
  std::multimap<Seq, DurableFn> waiters_;
  std::uint64_t live_bytes_ = 0;
  Status error_;
  StoreStats stats_;
  bool stop_ = false;
  std::thread committer_;
};

// MQTT 5 properties of a message in the journal's form (the bytes of a v5 PUBLISH carrying
// them), and back. Null when there are none / the bytes are not valid.
std::shared_ptr<const std::string> encode_properties(const mqtt::Properties* properties);
std::shared_ptr<const mqtt::Properties> decode_properties(
    const std::shared_ptr<const std::string>& blob);

}  // namespace ganglion::broker
