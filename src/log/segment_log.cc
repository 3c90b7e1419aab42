#include "log/segment_log.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "base/crc32c.h"
#include "log/format.h"

namespace ganglion::log {
namespace {

// A sparse index entry every this many bytes: a read seeks to the entry at or before its
// offset and skips at most this much.
constexpr std::uint64_t kIndexIntervalBytes = 64 * 1024;
constexpr std::size_t kMaxFailuresKept = 256;
constexpr std::uint64_t kOffsetWindow = 1ULL << 32;  // resync: plausible offsets ahead

// True when a valid record starts at b[p]: complete, length in bounds, offset within
// [min_off, max_off) and CRC correct. Sets the view and the framed size.
bool decode_at(const char* b, std::size_t n, std::size_t p, std::uint64_t min_off,
               std::uint64_t max_off, RecordView& r, std::size_t& rec_size) {
  if (p > n || n - p < kRecordHeaderSize) return false;
  const char* h = b + p;
  const std::uint32_t len = get_u32(h);
  if (len > kMaxPayloadBytes || len > n - p - kRecordHeaderSize) return false;
  const std::uint64_t off = get_u64(h + 8);
  if (off < min_off || off >= max_off) return false;
  if (get_u32(h + 4) != crc32c(h + 8, kRecordHeaderSize - 8 + len)) return false;
  r.offset = off;
  r.timestamp_ms = static_cast<std::int64_t>(get_u64(h + 16));
  r.payload = std::string_view(h + kRecordHeaderSize, len);
  rec_size = kRecordHeaderSize + len;
  return true;
}

// The first position after `p` where a valid record starts, or npos.
std::size_t resync(const char* b, std::size_t n, std::size_t p, std::uint64_t min_off,
                   std::uint64_t max_off) {
  RecordView r;
  std::size_t sz;
  for (std::size_t q = p + 1; q + kRecordHeaderSize <= n; ++q) {
    if (decode_at(b, n, q, min_off, max_off, r, sz)) return q;
  }
  return std::string::npos;
}

// True when the bytes at p are a record header whose body lies beyond the buffer end.
bool incomplete_at(const char* b, std::size_t n, std::size_t p, std::size_t& need) {
  if (n - p < kRecordHeaderSize) {
    need = kRecordHeaderSize;
    return true;
  }
  const std::uint32_t len = get_u32(b + p);
  if (len > kMaxPayloadBytes) return false;
  need = kRecordHeaderSize + len;
  return need > n - p;
}

std::string consumer_line(std::uint64_t offset) {
  std::string body = "ganglion-log-consumer 1 " + std::to_string(offset);
  return body + " " + std::to_string(crc32c(body)) + "\n";
}

bool parse_consumer_line(std::string_view s, std::uint64_t& offset) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  auto sp = s.rfind(' ');
  if (sp == std::string_view::npos) return false;
  std::string_view body = s.substr(0, sp);
  std::uint32_t crc = 0;
  auto crc_s = s.substr(sp + 1);
  if (std::from_chars(crc_s.data(), crc_s.data() + crc_s.size(), crc).ec != std::errc()) {
    return false;
  }
  if (crc != crc32c(body)) return false;
  constexpr std::string_view kPrefix = "ganglion-log-consumer 1 ";
  if (body.substr(0, kPrefix.size()) != kPrefix) return false;
  auto num = body.substr(kPrefix.size());
  return std::from_chars(num.data(), num.data() + num.size(), offset).ec == std::errc();
}

}  // namespace

struct SegmentLog::Segment {
  std::uint64_t base = 0;
  std::string path;
  // Guarded by the log's mu_.
  std::uint64_t size = 0;          // bytes written to the file
  std::uint64_t durable_size = 0;  // bytes readers may read (durable per policy)
  std::uint64_t end_offset = 0;    // one past the last record written
  std::uint64_t records = 0;
  std::int64_t min_ts = INT64_MAX;
  std::int64_t max_ts = INT64_MIN;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> index;    // (offset, position)
  std::vector<std::pair<std::uint64_t, std::uint64_t>> corrupt;  // known bad [begin, end)
  // Lazily opened reader.
  std::mutex file_mu;
  std::shared_ptr<ReadableFile> reader;
};

// Lets a timer callback reach the log only while it is alive.
struct SegmentLog::TimerGate {
  std::mutex mu;
  SegmentLog* log = nullptr;
};

SegmentLog::SegmentLog(Env& env, Clock& clock, std::string dir, LogOptions options)
    : env_(env), clock_(clock), dir_(std::move(dir)), options_(std::move(options)) {
  if (options_.quota_bytes != UINT64_MAX) {
    const std::uint64_t min_seg = kSegmentHeaderSize + kRecordHeaderSize + 1;
    options_.segment_bytes =
        std::max(min_seg, std::min(options_.segment_bytes, options_.quota_bytes / 4));
  }
  options_.segment_bytes = std::max<std::uint64_t>(options_.segment_bytes, kSegmentHeaderSize + 1);
  gate_ = std::make_shared<TimerGate>();
  gate_->log = this;
}

Result<std::unique_ptr<SegmentLog>> SegmentLog::open(Env& env, Clock& clock, std::string dir,
                                                     LogOptions options) {
  std::unique_ptr<SegmentLog> log(new SegmentLog(env, clock, std::move(dir), std::move(options)));
  GANGLION_RETURN_IF_ERROR(log->recover().with_context("open log " + log->dir_));
  log->committer_ = std::thread([l = log.get()] { l->committer_loop(); });
  return log;
}

void SegmentLog::warn(const std::string& line) const {
  if (options_.warn) {
    options_.warn(line);
  } else {
    std::fprintf(stderr, "log %s: %s\n", dir_.c_str(), line.c_str());
  }
}

Status SegmentLog::recover() {
  GANGLION_RETURN_IF_ERROR(env_.create_dirs(dir_));
  GANGLION_ASSIGN_OR_RETURN(auto names, env_.list_dir(dir_));

  const std::string consumer_path = join_path(dir_, kConsumerFile);
  if (env_.exists(consumer_path)) {
    auto content = env_.read_file(consumer_path);
    std::uint64_t off = 0;
    if (content.ok() && parse_consumer_line(*content, off)) {
      consumer_offset_ = off;
    } else {
      // At-least-once: redeliver everything rather than lose anything.
      warn("consumer offset file unreadable; starting from the oldest record");
    }
  }

  std::vector<std::uint64_t> bases;
  for (const auto& name : names) {
    std::uint64_t base;
    if (parse_segment_file_name(name, base)) bases.push_back(base);
  }
  std::sort(bases.begin(), bases.end());

  std::string buf;
  std::uint64_t next = 0;
  for (std::size_t i = 0; i < bases.size(); ++i) {
    const bool last = i + 1 == bases.size();
    const std::uint64_t max_off = last ? UINT64_MAX : bases[i + 1];
    auto seg = std::make_shared<Segment>();
    seg->base = bases[i];
    seg->path = join_path(dir_, segment_file_name(seg->base));
    seg->end_offset = seg->base;
    {
      GANGLION_ASSIGN_OR_RETURN(auto file, env_.open_readable(seg->path));
      GANGLION_ASSIGN_OR_RETURN(auto size, file->size());
      GANGLION_RETURN_IF_ERROR(file->read_at(0, size, buf));
    }
    std::size_t n = buf.size();
    std::uint64_t hdr_base = 0;
    if (n < kSegmentHeaderSize) {
      // A segment torn while being created holds no record: drop it.
      warn("segment " + seg->path + " shorter than its header (" + std::to_string(n) +
           " bytes); removed");
      m_.torn_tails_truncated += 1;
      m_.torn_bytes_truncated += n;
      GANGLION_RETURN_IF_ERROR(env_.remove_file(seg->path));
      continue;
    }
    if (!decode_segment_header(buf.data(), hdr_base) || hdr_base != seg->base) {
      warn("segment " + seg->path + " has a bad header; scanning its records anyway");
      m_.corrupt_records_skipped += 1;
    }
    std::size_t p = kSegmentHeaderSize;
    std::uint64_t expect = seg->base;
    bool after_gap = true;
    std::uint64_t last_index_pos = 0;
    RecordView r;
    std::size_t rec = 0;
    while (p < n) {
      if (decode_at(buf.data(), n, p, expect, max_off, r, rec)) {
        if (after_gap || p - last_index_pos >= kIndexIntervalBytes) {
          seg->index.emplace_back(r.offset, p);
          last_index_pos = p;
          after_gap = false;
        }
        seg->records += 1;
        seg->min_ts = std::min(seg->min_ts, r.timestamp_ms);
        seg->max_ts = std::max(seg->max_ts, r.timestamp_ms);
        expect = r.offset + 1;
        p += rec;
        continue;
      }
      const std::uint64_t window = last ? expect + kOffsetWindow : max_off;
      const std::size_t q = resync(buf.data(), n, p, expect, std::max(window, expect + 1));
      if (q != std::string::npos) {
        (void)decode_at(buf.data(), n, q, expect, UINT64_MAX, r, rec);
        const std::uint64_t lost = std::max<std::uint64_t>(1, r.offset - expect);
        m_.corrupt_records_skipped += lost;
        seg->corrupt.emplace_back(p, q);
        warn("segment " + seg->path + ": corrupt bytes [" + std::to_string(p) + ", " +
             std::to_string(q) + ") skipped, about " + std::to_string(lost) + " record(s)");
        after_gap = true;
        p = q;
        continue;
      }
      if (last) {
        warn("segment " + seg->path + ": torn tail of " + std::to_string(n - p) + " bytes at " +
             std::to_string(p) + " truncated");
        m_.torn_tails_truncated += 1;
        m_.torn_bytes_truncated += n - p;
        GANGLION_RETURN_IF_ERROR(env_.truncate(seg->path, p));
        n = p;
      } else {
        const std::uint64_t lost = std::max<std::uint64_t>(1, max_off - expect);
        m_.corrupt_records_skipped += lost;
        seg->corrupt.emplace_back(p, n);
        warn("segment " + seg->path + ": corrupt tail [" + std::to_string(p) + ", " +
             std::to_string(n) + ") skipped, up to " + std::to_string(lost) + " record(s)");
      }
      break;
    }
    seg->size = seg->durable_size = n;
    seg->end_offset = expect;
    next = std::max(next, expect);
    disk_bytes_ += n;
    segments_.push_back(std::move(seg));
  }

  // Offsets never go back, not even below an acknowledged offset whose records were lost.
  next = std::max(next, consumer_offset_);
  next_offset_ = written_offset_ = synced_offset_ = sync_target_ = next;
  pending_first_ = next;

  if (segments_.empty()) {
    GANGLION_RETURN_IF_ERROR(roll_segment(next));
  } else {
    active_ = segments_.back();
    GANGLION_ASSIGN_OR_RETURN(active_file_, env_.open_writable(active_->path, OpenMode::kAppend));
    active_size_ = active_synced_size_ = active_->size;
  }
  GANGLION_RETURN_IF_ERROR(enforce_retention());
  return Status::Ok();
}

// Committer (or recovery) only.
Status SegmentLog::roll_segment(std::uint64_t base_offset) {
  // Always, even under kNever: a later sync() fsyncs only the active file, so a closed
  // segment must not keep unsynced bytes. One fsync per segment is cheap.
  if (active_file_ && unsynced_bytes_ > 0) {
    GANGLION_RETURN_IF_ERROR(sync_active());
  }
  auto seg = std::make_shared<Segment>();
  seg->base = base_offset;
  seg->path = join_path(dir_, segment_file_name(base_offset));
  seg->end_offset = base_offset;
  char header[kSegmentHeaderSize];
  encode_segment_header(base_offset, header);
  auto created = [&]() -> Result<std::unique_ptr<WritableFile>> {
    GANGLION_ASSIGN_OR_RETURN(auto file, env_.open_writable(seg->path, OpenMode::kTruncate));
    GANGLION_RETURN_IF_ERROR(file->append(std::string_view(header, sizeof header)));
    GANGLION_RETURN_IF_ERROR(file->sync());
    GANGLION_RETURN_IF_ERROR(env_.sync_dir(dir_));
    return file;
  }();
  if (!created.ok()) {
    if (env_.exists(seg->path)) (void)env_.remove_file(seg->path);
    return created.status().with_context("create segment " + seg->path);
  }
  if (active_file_) (void)active_file_->close();
  active_file_ = std::move(created).value();
  active_size_ = active_synced_size_ = kSegmentHeaderSize;
  unsynced_bytes_ = 0;
  seg->size = seg->durable_size = kSegmentHeaderSize;
  {
    std::lock_guard lock(mu_);
    segments_.push_back(seg);
    disk_bytes_ += kSegmentHeaderSize;
  }
  active_ = std::move(seg);
  return Status::Ok();
}

SegmentLog::~SegmentLog() {
  {
    std::lock_guard g(gate_->mu);
    gate_->log = nullptr;
  }
  std::vector<std::pair<std::uint64_t, DurableCallback>> abandoned;
  {
    std::lock_guard lock(mu_);
    if (timer_armed_) clock_.cancel(timer_id_);
    stop_ = true;
  }
  work_cv_.notify_all();
  durable_cv_.notify_all();
  if (committer_.joinable()) committer_.join();
  abandoned.swap(waiting_callbacks_);
  for (auto& cb : pending_callbacks_) abandoned.push_back(std::move(cb));
  for (auto& [off, cb] : abandoned) {
    if (cb) cb(off, Cancelled("log closed before the record was durable"));
  }
  if (active_file_) (void)active_file_->close();
}

Result<std::uint64_t> SegmentLog::enqueue(std::string_view payload, std::int64_t timestamp_ms,
                                          DurableCallback cb) {
  if (payload.size() > kMaxPayloadBytes) {
    return InvalidArgument("record of " + std::to_string(payload.size()) +
                           " bytes exceeds the maximum of " + std::to_string(kMaxPayloadBytes));
  }
  const std::size_t rec = kRecordHeaderSize + payload.size();
  std::unique_lock lock(mu_);
  if (closed_ || stop_) return FailedPrecondition("log " + dir_ + " is closed");
  if (!broken_.ok())
    return FailedPrecondition("log " + dir_ + " is broken: " + broken_.to_string());
  if (options_.quota_bytes != UINT64_MAX) {
    while (disk_bytes_ + rec > options_.quota_bytes) {
      if (options_.quota_policy == QuotaPolicy::kDropOldest && segments_.size() <= 1 &&
          written_offset_ < next_offset_) {
        // Queued records have not reached their segments yet, so there is nothing old to
        // drop: wait for the committer (back-pressure) and look again.
        const std::uint64_t target = next_offset_;
        durable_cv_.wait(lock, [&] { return written_offset_ >= target || stop_; });
        if (stop_) return FailedPrecondition("log " + dir_ + " is closed");
        continue;
      }
      if (options_.quota_policy == QuotaPolicy::kRefuseNewest || segments_.size() <= 1) {
        m_.refused_by_quota += 1;
        return ResourceExhausted("log " + dir_ + " is over its quota of " +
                                 std::to_string(options_.quota_bytes) + " bytes");
      }
      std::uint64_t unacked = 0;
      GANGLION_RETURN_IF_ERROR(delete_front_segment_locked(&unacked));
      m_.dropped_by_quota += unacked;
    }
  }
  const std::uint64_t off = next_offset_++;
  if (pending_.empty()) pending_first_ = off;
  append_record(pending_, off, timestamp_ms, payload);
  disk_bytes_ += rec;
  m_.records_appended += 1;
  m_.bytes_appended += payload.size();
  if (cb) pending_callbacks_.emplace_back(off, std::move(cb));
  if (options_.fsync == FsyncPolicy::kInterval && !timer_armed_) {
    timer_armed_ = true;
    std::weak_ptr<TimerGate> gate = gate_;
    timer_id_ = clock_.schedule_after(options_.sync_interval, [gate] {
      if (auto g = gate.lock()) {
        std::lock_guard lk(g->mu);
        if (g->log) g->log->on_sync_timer();
      }
    });
  }
  work_cv_.notify_one();
  return off;
}

void SegmentLog::on_sync_timer() {
  std::lock_guard lock(mu_);
  timer_armed_ = false;
  if (synced_offset_ < next_offset_) {
    sync_due_ = true;
    work_cv_.notify_one();
  }
}

Result<std::uint64_t> SegmentLog::append(std::string_view payload, std::int64_t timestamp_ms) {
  GANGLION_ASSIGN_OR_RETURN(std::uint64_t off, enqueue(payload, timestamp_ms, {}));
  GANGLION_RETURN_IF_ERROR(wait_durable(off));
  return off;
}

Result<std::uint64_t> SegmentLog::append_async(std::string_view payload, std::int64_t timestamp_ms,
                                               DurableCallback on_durable) {
  return enqueue(payload, timestamp_ms, std::move(on_durable));
}

std::uint64_t SegmentLog::durable_offset_locked() const {
  return options_.fsync == FsyncPolicy::kNever ? written_offset_ : synced_offset_;
}

Status SegmentLog::status_of_locked(std::uint64_t offset) const {
  for (const auto& f : failures_) {
    if (offset >= f.begin && offset < f.end) return f.status;
  }
  return Status::Ok();
}

Status SegmentLog::wait_durable(std::uint64_t offset) {
  std::unique_lock lock(mu_);
  if (offset >= next_offset_)
    return InvalidArgument("offset " + std::to_string(offset) + " was never appended");
  durable_cv_.wait(lock, [&] { return durable_offset_locked() > offset || stop_; });
  if (durable_offset_locked() <= offset)
    return Cancelled("log closed before the record was durable");
  return status_of_locked(offset);
}

Status SegmentLog::sync() {
  std::unique_lock lock(mu_);
  if (!broken_.ok()) return broken_;
  const std::uint64_t target = next_offset_;
  const std::uint64_t from = synced_offset_;
  if (synced_offset_ >= target) return Status::Ok();
  const std::uint64_t epoch = error_epoch_;
  sync_target_ = std::max(sync_target_, target);
  work_cv_.notify_one();
  durable_cv_.wait(lock,
                   [&] { return synced_offset_ >= target || error_epoch_ != epoch || stop_; });
  // Conservative: any failure while we waited may have hit our records.
  if (error_epoch_ != epoch) return last_error_;
  if (synced_offset_ < target) return Cancelled("log closed during sync");
  for (const auto& f : failures_) {
    if (f.end > from && f.begin < target) return f.status;
  }
  return Status::Ok();
}

Status SegmentLog::close() {
  Status s = sync();
  std::lock_guard lock(mu_);
  closed_ = true;
  return s;
}

void SegmentLog::committer_loop() {
  std::unique_lock lock(mu_);
  std::vector<std::pair<std::uint64_t, DurableCallback>> ready;
  for (;;) {
    work_cv_.wait(lock, [&] {
      return stop_ || !pending_.empty() || sync_target_ > synced_offset_ ||
             (sync_due_ && synced_offset_ < written_offset_);
    });
    if (stop_) return;
    batch_.clear();
    batch_.swap(pending_);
    const std::uint64_t first = pending_first_;
    const std::uint64_t batch_end = next_offset_;
    pending_first_ = next_offset_;
    for (auto& cb : pending_callbacks_) waiting_callbacks_.push_back(std::move(cb));
    pending_callbacks_.clear();
    const bool sync_now = sync_target_ > synced_offset_ || sync_due_;
    sync_due_ = false;
    const bool broken = !broken_.ok();
    lock.unlock();

    Status s;
    if (broken) {
      s = FailedPrecondition("log is broken");
    } else if (!batch_.empty()) {
      s = write_batch(batch_, first, sync_now);
    } else if (active_synced_size_ < active_size_ || sync_now) {
      s = sync_active();
    }
    if (!s.ok()) handle_write_failure(s, batch_end);

    lock.lock();
    if (!batch_.empty()) m_.commits += 1;
    if (!s.ok()) {
      error_epoch_ += 1;
      last_error_ = s;
      written_offset_ = std::max(written_offset_, batch_end);
      if (options_.fsync != FsyncPolicy::kNever) {
        synced_offset_ = std::max(synced_offset_, batch_end);  // synced or failed
      } else {
        // Nothing was cut back: what was written stays, unsynced, for the next sync().
        sync_target_ = std::min(sync_target_, synced_offset_);
      }
    }
    const std::uint64_t durable = durable_offset_locked();
    std::size_t k = 0;
    while (k < waiting_callbacks_.size() && waiting_callbacks_[k].first < durable) ++k;
    ready.clear();
    for (std::size_t i = 0; i < k; ++i) ready.push_back(std::move(waiting_callbacks_[i]));
    waiting_callbacks_.erase(waiting_callbacks_.begin(), waiting_callbacks_.begin() + k);
    std::vector<Status> statuses;
    statuses.reserve(ready.size());
    for (auto& [off, cb] : ready) statuses.push_back(status_of_locked(off));
    durable_cv_.notify_all();
    if (!ready.empty()) {
      lock.unlock();
      for (std::size_t i = 0; i < ready.size(); ++i) ready[i].second(ready[i].first, statuses[i]);
      lock.lock();
    }
  }
}

Status SegmentLog::write_batch(const std::string& batch, std::uint64_t first, bool sync_now) {
  (void)first;
  const char* b = batch.data();
  const std::size_t n = batch.size();
  std::size_t pos = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> new_index;
  while (pos < n) {
    std::size_t run = pos;
    std::uint64_t last_off = 0;
    std::int64_t min_ts = INT64_MAX;
    std::int64_t max_ts = INT64_MIN;
    std::uint64_t records = 0;
    new_index.clear();
    std::uint64_t last_index_pos = active_->index.empty() ? 0 : active_->index.back().second;
    bool need_index = active_->index.empty();
    while (run < n) {
      const std::size_t rec = kRecordHeaderSize + get_u32(b + run);
      const std::uint64_t at = active_size_ + (run - pos);
      const bool segment_empty = at == kSegmentHeaderSize;
      if (!segment_empty && at + rec > options_.segment_bytes) break;
      const std::uint64_t off = get_u64(b + run + 8);
      if (need_index || at - last_index_pos >= kIndexIntervalBytes) {
        new_index.emplace_back(off, at);
        last_index_pos = at;
        need_index = false;
      }
      const auto ts = static_cast<std::int64_t>(get_u64(b + run + 16));
      min_ts = std::min(min_ts, ts);
      max_ts = std::max(max_ts, ts);
      last_off = off;
      records += 1;
      run += rec;
    }
    if (run == pos) {
      GANGLION_RETURN_IF_ERROR(roll_segment(get_u64(b + pos + 8)));
      continue;
    }
    GANGLION_RETURN_IF_ERROR(
        active_file_->append(std::as_bytes(std::span<const char>(b + pos, run - pos))));
    active_size_ += run - pos;
    unsynced_bytes_ += run - pos;
    if (options_.fsync == FsyncPolicy::kNever) active_synced_size_ = active_size_;
    {
      std::lock_guard lock(mu_);
      Segment& seg = *active_;
      seg.size = active_size_;
      seg.end_offset = last_off + 1;
      seg.records += records;
      seg.min_ts = std::min(seg.min_ts, min_ts);
      seg.max_ts = std::max(seg.max_ts, max_ts);
      seg.index.insert(seg.index.end(), new_index.begin(), new_index.end());
      written_offset_ = last_off + 1;
      if (options_.fsync == FsyncPolicy::kNever) seg.durable_size = active_size_;
    }
    pos = run;
  }
  const bool policy_sync =
      options_.fsync == FsyncPolicy::kAlways ||
      (options_.fsync == FsyncPolicy::kInterval && unsynced_bytes_ >= options_.sync_bytes);
  if (sync_now || policy_sync) GANGLION_RETURN_IF_ERROR(sync_active());
  return Status::Ok();
}

Status SegmentLog::sync_active() {
  std::uint64_t written;
  {
    std::lock_guard lock(mu_);
    written = written_offset_;
  }
  GANGLION_RETURN_IF_ERROR(active_file_->sync());
  active_synced_size_ = active_size_;
  unsynced_bytes_ = 0;
  std::lock_guard lock(mu_);
  m_.syncs += 1;
  active_->durable_size = active_size_;
  synced_offset_ = std::max(synced_offset_, written);
  return Status::Ok();
}

// Committer only. The records not yet durable per the policy, up to batch_end, have failed:
// cut the active file back to its durable prefix so that later records follow valid ones.
void SegmentLog::handle_write_failure(const Status& s, std::uint64_t batch_end) {
  Status fix;
  if (active_size_ != active_synced_size_) {
    fix = env_.truncate(active_->path, active_synced_size_);
    if (fix.ok()) {
      auto reopened = env_.open_writable(active_->path, OpenMode::kAppend);
      if (reopened.ok()) {
        if (active_file_) (void)active_file_->close();
        active_file_ = std::move(reopened).value();
      } else {
        fix = reopened.status();
      }
    }
  }
  if (active_size_ != active_synced_size_) unsynced_bytes_ = 0;  // cut back to the synced size
  active_size_ = active_synced_size_;
  std::lock_guard lock(mu_);
  const std::uint64_t begin =
      options_.fsync == FsyncPolicy::kNever ? written_offset_ : synced_offset_;
  if (options_.fsync != FsyncPolicy::kNever) written_offset_ = synced_offset_;
  Segment& seg = *active_;
  seg.size = seg.durable_size = active_size_;
  while (!seg.index.empty() && seg.index.back().second >= active_size_) seg.index.pop_back();
  seg.end_offset = std::max(seg.base, std::min(seg.end_offset, begin));
  m_.append_failures += batch_end > begin ? batch_end - begin : 0;
  failures_.push_back({begin, batch_end, s});
  if (failures_.size() > kMaxFailuresKept) failures_.pop_front();
  if (!fix.ok()) {
    broken_ = fix;
    warn("cannot cut back after a failed write (" + s.to_string() + "): " + fix.to_string() +
         "; the log refuses appends until reopened");
  }
  std::uint64_t total = pending_.size();
  for (const auto& sg : segments_) total += sg->size;
  disk_bytes_ = total;
}

std::uint64_t SegmentLog::start_offset() const {
  std::lock_guard lock(mu_);
  return segments_.empty() ? next_offset_ : segments_.front()->base;
}

std::uint64_t SegmentLog::end_offset() const {
  std::lock_guard lock(mu_);
  return next_offset_;
}

std::uint64_t SegmentLog::durable_offset() const {
  std::lock_guard lock(mu_);
  return durable_offset_locked();
}

std::uint64_t SegmentLog::consumer_offset() const {
  std::lock_guard lock(mu_);
  return consumer_offset_;
}

std::uint64_t SegmentLog::disk_bytes() const {
  std::lock_guard lock(mu_);
  return disk_bytes_;
}

Result<RecordBatch> SegmentLog::read(std::uint64_t from_offset, std::size_t max_bytes) const {
  RecordBatch out;
  max_bytes = std::max<std::size_t>(max_bytes, 1);
  const std::int64_t ttl_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.ttl).count();
  const std::int64_t cutoff = ttl_ms > 0 ? clock_.wall_ms() - ttl_ms : INT64_MIN;
  std::uint64_t cur = from_offset;
  std::size_t used = 0;
  std::uint64_t expired = 0;
  std::string buf;
  bool done = false;
  int deleted_retries = 0;

  while (!done) {
    std::shared_ptr<Segment> seg;
    std::uint64_t pos = kSegmentHeaderSize;
    std::uint64_t limit_size = 0;
    std::uint64_t limit_off = 0;
    std::uint64_t next_base = UINT64_MAX;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> corrupt;
    {
      std::lock_guard lock(mu_);
      limit_off = durable_offset_locked();
      if (segments_.empty()) break;
      cur = std::max(cur, segments_.front()->base);
      if (cur >= limit_off) break;
      auto it = std::upper_bound(segments_.begin(), segments_.end(), cur,
                                 [](std::uint64_t v, const auto& s) { return v < s->base; });
      --it;  // cur >= front base, so `it` is not begin
      seg = *it;
      if (std::next(it) != segments_.end()) next_base = (*std::next(it))->base;
      auto ix = std::upper_bound(seg->index.begin(), seg->index.end(), cur,
                                 [](std::uint64_t v, const auto& e) { return v < e.first; });
      if (ix != seg->index.begin()) pos = std::prev(ix)->second;
      limit_size = seg->durable_size;
      corrupt = seg->corrupt;
    }
    std::shared_ptr<ReadableFile> file;
    {
      std::lock_guard fl(seg->file_mu);
      if (!seg->reader) {
        auto opened = env_.open_readable(seg->path);
        if (!opened.ok()) {
          // Deleted under us (retention or quota): look again from the new start.
          if (opened.status().code() == StatusCode::kNotFound && ++deleted_retries < 8) continue;
          return opened.status();
        }
        seg->reader = std::shared_ptr<ReadableFile>(std::move(opened).value());
      }
      file = seg->reader;
    }

    bool seg_done = false;
    bool read_rest = false;
    while (!seg_done && !done) {
      if (pos >= limit_size) {
        seg_done = true;
        break;
      }
      std::size_t want =
          read_rest ? limit_size - pos
                    : std::min<std::uint64_t>(limit_size - pos,
                                              (max_bytes - used) + kIndexIntervalBytes + 4096);
      GANGLION_RETURN_IF_ERROR(file->read_at(pos, want, buf));
      const std::size_t n = buf.size();
      if (n == 0) {
        seg_done = true;
        break;
      }
      std::size_t p = 0;
      while (p < n) {
        RecordView r;
        std::size_t rec = 0;
        if (decode_at(buf.data(), n, p, seg->base, next_base, r, rec)) {
          if (r.offset >= limit_off) {
            done = true;
            break;
          }
          if (r.offset >= cur) {
            if (r.timestamp_ms < cutoff) {
              expired += 1;
            } else {
              if (!out.records_.empty() && used + rec > max_bytes) {
                done = true;
                break;
              }
              out.positions_.push_back(out.data_->size());
              out.data_->append(r.payload);
              out.records_.push_back({r.offset, r.timestamp_ms, {}});
              used += rec;
            }
            cur = r.offset + 1;
          }
          p += rec;
          continue;
        }
        std::size_t need = 0;
        if (incomplete_at(buf.data(), n, p, need) && pos + p + need <= limit_size) {
          break;  // the record continues past this window: read the next one from here
        }
        // Corrupt bytes at pos + p.
        const std::uint64_t at = pos + p;
        auto known = std::find_if(corrupt.begin(), corrupt.end(),
                                  [&](const auto& c) { return c.first == at; });
        if (known != corrupt.end()) {
          p = static_cast<std::size_t>(std::min<std::uint64_t>(known->second - pos, n));
          if (known->second > pos + n) break;
          continue;
        }
        if (!read_rest && pos + n < limit_size) {
          read_rest = true;  // look for the next valid record in the rest of the segment
          break;
        }
        const std::size_t q = resync(buf.data(), n, p, cur, next_base);
        const std::uint64_t region_end = q == std::string::npos ? limit_size : pos + q;
        {
          std::lock_guard lock(mu_);
          auto& known_bad = seg->corrupt;
          if (std::none_of(known_bad.begin(), known_bad.end(),
                           [&](const auto& c) { return c.first == at; })) {
            known_bad.emplace_back(at, region_end);
            m_.corrupt_records_skipped += 1;
          }
        }
        warn("segment " + seg->path + ": corrupt bytes at " + std::to_string(at) +
             " found while reading; skipped");
        corrupt.emplace_back(at, region_end);
        if (q == std::string::npos) {
          p = n;
          break;
        }
        p = q;
      }
      if (p == 0 && !done && !read_rest) read_rest = true;  // one record larger than the window
      pos += p;
      if (p > 0 && !read_rest) continue;
      if (p > 0) read_rest = false;
    }
    if (seg_done && !done) {
      if (next_base == UINT64_MAX) break;
      cur = std::max(cur, next_base);
    }
  }

  // Views point into the one buffer, now that it no longer grows.
  for (std::size_t i = 0; i < out.records_.size(); ++i) {
    const std::size_t start = out.positions_[i];
    const std::size_t end =
        i + 1 < out.positions_.size() ? out.positions_[i + 1] : out.data_->size();
    out.records_[i].payload = std::string_view(out.data_->data() + start, end - start);
  }
  out.positions_.clear();
  out.next_offset_ = cur;
  if (expired > 0) {
    std::lock_guard lock(mu_);
    m_.expired_skipped += expired;
  }
  return out;
}

Status SegmentLog::delete_front_segment_locked(std::uint64_t* unacked_records) {
  auto seg = segments_.front();
  Status s = env_.remove_file(seg->path);
  if (!s.ok() && s.code() != StatusCode::kNotFound) return s;
  std::uint64_t unacked = 0;
  if (consumer_offset_ <= seg->base) {
    unacked = seg->records;
  } else if (consumer_offset_ < seg->end_offset) {
    unacked = std::min(seg->records, seg->end_offset - consumer_offset_);
  }
  if (unacked_records) *unacked_records = unacked;
  disk_bytes_ -= std::min(disk_bytes_, seg->size);
  segments_.pop_front();
  return Status::Ok();
}

Result<bool> SegmentLog::drop_oldest_segment() {
  std::lock_guard lock(mu_);
  if (segments_.size() <= 1) return false;
  std::uint64_t unacked = 0;
  GANGLION_RETURN_IF_ERROR(delete_front_segment_locked(&unacked));
  m_.dropped_by_quota += unacked;
  return true;
}

Status SegmentLog::commit_consumer(std::uint64_t offset) {
  {
    std::lock_guard cl(consumer_mu_);
    {
      std::lock_guard lock(mu_);
      offset = std::min(offset, durable_offset_locked());
      if (offset <= consumer_offset_) return Status::Ok();
    }
    GANGLION_RETURN_IF_ERROR(
        env_.write_file_atomic(join_path(dir_, kConsumerFile), consumer_line(offset)));
    std::lock_guard lock(mu_);
    consumer_offset_ = std::max(consumer_offset_, offset);
  }
  return enforce_retention();
}

Status SegmentLog::enforce_retention() {
  const std::int64_t ttl_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.ttl).count();
  const std::int64_t cutoff = ttl_ms > 0 ? clock_.wall_ms() - ttl_ms : INT64_MIN;
  std::lock_guard lock(mu_);
  while (segments_.size() > 1) {
    const auto& front = segments_.front();
    const bool acked = front->end_offset <= consumer_offset_;
    const bool expired = ttl_ms > 0 && (front->records == 0 || front->max_ts < cutoff);
    if (!acked && !expired) break;
    std::uint64_t unacked = 0;
    GANGLION_RETURN_IF_ERROR(delete_front_segment_locked(&unacked));
    if (!acked) m_.expired_records += unacked;
  }
  return Status::Ok();
}

LogMetrics SegmentLog::metrics() const {
  const std::int64_t now_ms = clock_.wall_ms();
  std::lock_guard lock(mu_);
  LogMetrics m = m_;
  m.disk_bytes = disk_bytes_;
  m.segments = segments_.size();
  const std::uint64_t durable = durable_offset_locked();
  std::int64_t oldest = INT64_MAX;
  for (const auto& seg : segments_) {
    if (seg->end_offset <= consumer_offset_ || seg->records == 0) continue;
    const std::uint64_t end = std::min(seg->end_offset, durable);
    const std::uint64_t begin = std::max(seg->base, consumer_offset_);
    if (end <= begin) continue;
    const std::uint64_t span = seg->end_offset - seg->base;
    const std::uint64_t recs = std::min(seg->records, end - begin);
    m.backlog_records += recs;
    const std::uint64_t body = seg->size - kSegmentHeaderSize;
    m.backlog_bytes += span == 0 ? 0
                                 : static_cast<std::uint64_t>(static_cast<double>(body) *
                                                              static_cast<double>(end - begin) /
                                                              static_cast<double>(span));
    oldest = std::min(oldest, seg->min_ts);
  }
  m.oldest_unacked_age_ms = oldest == INT64_MAX ? 0 : std::max<std::int64_t>(0, now_ms - oldest);
  return m;
}

}  // namespace ganglion::log
