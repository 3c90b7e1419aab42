/* gd_example_reflex: a machine guard that acts on its own, without the network.
 *
 *   gd_example_reflex [--model anomaly.gdm] [--steps 600] [--window 20]
 *
 * It simulates a motor: temperature and vibration samples at 10 Hz (simulated time, so the
 * run is instant and reproducible), with an overheating episode and a bearing fault. A reflex
 * rule opens the relay when the temperature reaches 80 C for 3 samples and closes it only
 * when it is back at or below 70 C for 3 samples (hysteresis: no relay chatter around 80 C).
 * Every --window samples it runs the int8 anomaly model (tools/make_model.py) on the window's
 * features, f0 = vibration RMS / 4 g and f1 = (mean temperature - 20 C) / 80 C, and prints
 * the score. Output lines:
 *   t=12.3s RELAY OPEN  (overtemp, 80.4 C)
 *   t=20.0s window score 0.97 ANOMALY (rms 3.10 g, temp 45.1 C) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ganglion/device/model.h"
#include "ganglion/device/reflex.h"

#ifndef GD_DEFAULT_MODEL
#define GD_DEFAULT_MODEL "anomaly.gdm"
#endif

static void relay_open(void* user, const gd_reflex_rule* rule, float value, uint64_t now_ms) {
  (void)user;
  printf("t=%.1fs RELAY OPEN  (%s, %.1f C)\n", (double)now_ms / 1000.0, rule->name, (double)value);
}
static void relay_close(void* user, const gd_reflex_rule* rule, float value, uint64_t now_ms) {
  (void)user;
  printf("t=%.1fs RELAY CLOSED (%s, %.1f C)\n", (double)now_ms / 1000.0, rule->name, (double)value);
}

/* Simulated motor: overheats between 20 s and 35 s, bearing fault between 45 s and 50 s. */
static void sample(unsigned step, float* temp, float* vib) {
  double t = step / 10.0;
  double base = 45.0 + 2.0 * sin(t / 3.0);
  if (t >= 20 && t < 35) base += 40.0 * sin((t - 20) / 15.0 * 3.14159265);
  *temp = (float)(base + 0.4 * sin(t * 7.1));
  double amp = (t >= 45 && t < 50) ? 4.2 : 0.55;
  *vib = (float)(amp * sin(t * 2 * 3.14159265 * 3.3 + 0.5 * sin(t))); /* instantaneous g */
}

int main(int argc, char** argv) {
  const char* path = GD_DEFAULT_MODEL;
  unsigned steps = 600, window = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--model"))
      path = argv[i + 1];
    else if (!strcmp(argv[i], "--steps"))
      steps = (unsigned)strtoul(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--window"))
      window = (unsigned)strtoul(argv[i + 1], NULL, 10);
    else {
      fprintf(stderr, "usage: gd_example_reflex [--model F] [--steps N] [--window N]\n");
      return 2;
    }
  }
  if (window == 0 || window > 1000) return 2;

  /* The model file is read once into static memory; gd_model points into it. */
  static unsigned char file[4096];
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "reflex: cannot open %s\n", path);
    return 1;
  }
  size_t len = fread(file, 1, sizeof file, f);
  int too_big = fgetc(f) != EOF;
  fclose(f);
  static gd_model model;
  if (too_big || gd_model_load(&model, file, len) != GD_OK || gd_model_input_size(&model) != 2 ||
      gd_model_output_size(&model) != 1) {
    fprintf(stderr, "reflex: %s is not a 2-input, 1-output GDM1 model\n", path);
    return 1;
  }

  gd_reflex_rule overtemp;
  memset(&overtemp, 0, sizeof overtemp);
  overtemp.name = "overtemp";
  overtemp.dir = GD_REFLEX_ABOVE;
  overtemp.high = 80.0f;
  overtemp.low = 70.0f;
  overtemp.debounce = 3;
  overtemp.on_trigger = relay_open;
  overtemp.on_clear = relay_close;
  if (gd_reflex_init(&overtemp) != GD_OK) return 1;

  double sum_sq = 0, sum_temp = 0;
  unsigned in_window = 0, anomalies = 0;
  for (unsigned step = 0; step < steps; ++step) {
    float temp, vib;
    sample(step, &temp, &vib);
    uint64_t now_ms = (uint64_t)step * 100u;
    gd_reflex_update(&overtemp, temp, now_ms); /* acts at once, inside this call */
    sum_sq += (double)vib * vib;
    sum_temp += temp;
    if (++in_window == window) {
      float rms = (float)sqrt(sum_sq / window), mean_temp = (float)(sum_temp / window);
      int8_t in[2] = {gd_model_quantize(&model, rms / 4.0f),
                      gd_model_quantize(&model, (mean_temp - 20.0f) / 80.0f)};
      int8_t out[1];
      gd_model_run(&model, in, out);
      float score = gd_model_dequantize(&model, out[0]);
      int anomaly = score > 0.5f;
      anomalies += (unsigned)anomaly;
      printf("t=%.1fs window score %.2f %s(rms %.2f g, temp %.1f C)\n",
             (double)(now_ms + 100) / 1000.0, (double)score, anomaly ? "ANOMALY " : "", (double)rms,
             (double)mean_temp);
      sum_sq = sum_temp = 0;
      in_window = 0;
    }
  }
  printf("relay trips %llu, anomalous windows %u\n", (unsigned long long)overtemp.triggers,
         anomalies);
  return 0;
}
