/* gd_example_sensor: a temperature/vibration sensor that publishes JSON readings to an edge
 * node over MQTT, keeps them in a ring buffer while the broker is unreachable, and flushes
 * them in order once it is back.
 *
 *   gd_example_sensor --host 127.0.0.1 --port 1883 --id sensor-1 --site demo \
 *       [--count 0] [--interval-ms 1000] [--protocol 4|5] [--ring 256] [--tls --ca ca.pem]
 *
 * Topic: sites/<site>/sensor/<id>/telemetry, QoS 1. Payload:
 *   {"device":"sensor-1","seq":17,"ts":1700000000123,"temperature_c":41.52,"vibration_rms_g":0.412}
 * Every reading goes through the ring (one path, so the order on the wire is the order of
 * the readings); while connected the ring drains as fast as the in-flight window allows.
 * With --count N the program exits 0 once N readings were taken and all were acknowledged.
 * Status lines go to stderr. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ganglion/device/mqtt.h"
#include "ganglion/device/ring.h"

#define RECORD_MAX 200

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_state(void* user, gd_mqtt_state state, int status, int reason) {
  (void)user;
  fprintf(stderr, "sensor: %s (%s, reason %d)\n", gd_mqtt_state_str(state), gd_status_str(status),
          reason);
}

/* A plausible machine: temperature drifting around 40 C, vibration RMS around 0.4 g. */
static void read_sensors(uint64_t seq, double* temp, double* rms) {
  *temp = 40.0 + 5.0 * sin((double)seq / 50.0) + 0.3 * sin((double)seq * 1.7);
  *rms = 0.4 + 0.05 * sin((double)seq * 0.9) + 0.02 * cos((double)seq * 2.3);
}

static void usage(void) {
  fprintf(stderr,
          "usage: gd_example_sensor --host H --port P [--id ID] [--site S] [--count N]\n"
          "       [--interval-ms MS] [--protocol 4|5] [--ring N] [--tls] [--ca FILE]\n");
}

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  const char* id = "sensor-1";
  const char* site = "demo";
  const char* ca = NULL;
  unsigned port = 1883, protocol = 4, ring_slots = 256;
  unsigned long long count = 0, interval_ms = 1000;
  int tls = 0;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--tls")) {
      tls = 1;
      continue;
    }
    if (!v) {
      usage();
      return 2;
    }
    if (!strcmp(a, "--host"))
      host = v;
    else if (!strcmp(a, "--port"))
      port = (unsigned)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--id"))
      id = v;
    else if (!strcmp(a, "--site"))
      site = v;
    else if (!strcmp(a, "--count"))
      count = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--interval-ms"))
      interval_ms = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--protocol"))
      protocol = (unsigned)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--ring"))
      ring_slots = (unsigned)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--ca"))
      ca = v;
    else {
      usage();
      return 2;
    }
    ++i;
  }
  if (port == 0 || port > 65535 || (protocol != 4 && protocol != 5) || ring_slots == 0 ||
      ring_slots > 100000) {
    usage();
    return 2;
  }
  if (tls && !gd_tls_available()) {
    fprintf(stderr, "sensor: built without TLS (GANGLION_DEVICE_TLS=OFF)\n");
    return 2;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  /* The only allocation: the ring's memory, once, at start-up. */
  size_t mem_size = (size_t)ring_slots * ((GD_RING_SLOT_HEADER + RECORD_MAX + 3u) & ~3u);
  void* mem = malloc(mem_size);
  static gd_ring ring;
  if (!mem || gd_ring_init(&ring, mem, mem_size, RECORD_MAX) != GD_OK) return 1;

  static gd_posix_transport net;
  gd_posix_transport_init(&net);
  net.use_tls = tls != 0;
  net.ca_file = ca;

  char topic[160];
  snprintf(topic, sizeof topic, "sites/%s/sensor/%s/telemetry", site, id);
  char will_topic[160];
  snprintf(will_topic, sizeof will_topic, "sites/%s/sensor/%s/status", site, id);

  gd_mqtt_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.host = host;
  cfg.port = (uint16_t)port;
  cfg.client_id = id;
  cfg.protocol = (uint8_t)protocol;
  cfg.keep_alive_s = 10;
  cfg.clean_start = true;
  cfg.will_topic = will_topic;
  cfg.will_payload = "offline";
  cfg.will_len = 7;
  cfg.backoff_initial_ms = 200;
  cfg.backoff_max_ms = 2000;
  cfg.seed = (uint32_t)wall_ms();
  cfg.transport = gd_posix_transport_get(&net);
  cfg.clock = gd_posix_clock();
  cfg.on_state = on_state;
  static gd_mqtt client;
  if (gd_mqtt_init(&client, &cfg) != GD_OK) {
    fprintf(stderr, "sensor: bad MQTT configuration\n");
    return 2;
  }
  gd_mqtt_start(&client);

  uint64_t seq = 0, next_reading = cfg.clock.now_ms(NULL), last_status = next_reading;
  while (!g_stop) {
    uint64_t now = cfg.clock.now_ms(NULL);
    if ((count == 0 || seq < count) && now >= next_reading) {
      double temp, rms;
      read_sensors(seq, &temp, &rms);
      char json[RECORD_MAX];
      int n = snprintf(json, sizeof json,
                       "{\"device\":\"%s\",\"seq\":%llu,\"ts\":%llu,\"temperature_c\":%.2f,"
                       "\"vibration_rms_g\":%.3f}",
                       id, (unsigned long long)seq, (unsigned long long)wall_ms(), temp, rms);
      if (n > 0 && n < (int)sizeof json) gd_ring_push(&ring, json, (size_t)n, NULL);
      ++seq;
      next_reading += interval_ms;
      if (next_reading < now) next_reading = now; /* fell behind: do not burst */
    }
    /* Drain the ring, oldest first, as far as the in-flight window allows. */
    while (gd_mqtt_connected(&client) && gd_mqtt_can_publish(&client) && !gd_ring_empty(&ring)) {
      const void* data;
      size_t len;
      gd_ring_peek(&ring, &data, &len, NULL);
      if (gd_mqtt_publish(&client, topic, data, len, 1, false, NULL) != GD_OK) break;
      gd_ring_pop(&ring);
    }
    if (count && seq >= count && gd_ring_empty(&ring) && gd_mqtt_inflight_count(&client) == 0 &&
        gd_mqtt_connected(&client))
      break;
    if (now - last_status >= 2000) {
      last_status = now;
      fprintf(stderr, "sensor: readings %llu buffered %zu dropped %llu inflight %zu acked %llu\n",
              (unsigned long long)seq, gd_ring_count(&ring),
              (unsigned long long)gd_ring_dropped(&ring), gd_mqtt_inflight_count(&client),
              (unsigned long long)gd_mqtt_get_stats(&client)->acked);
    }
    uint64_t wait = next_reading > now ? next_reading - now : 0;
    if (wait > 100) wait = 100;
    gd_mqtt_poll(&client, (uint32_t)wait);
  }
  fprintf(stderr, "sensor: done: readings %llu acked %llu dropped %llu retransmitted %llu\n",
          (unsigned long long)seq, (unsigned long long)gd_mqtt_get_stats(&client)->acked,
          (unsigned long long)gd_ring_dropped(&ring),
          (unsigned long long)gd_mqtt_get_stats(&client)->retransmitted);
  gd_mqtt_stop(&client);
  free(mem);
  return 0;
}
