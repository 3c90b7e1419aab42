/* gd_model: see include/ganglion/device/model.h and MODEL_FORMAT.md (the format is also
 * summarised beside the constants below). */
#include "ganglion/device/model.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* File header: "GDM1", u16 version, u16 layer count, u32 total file length. */
#define GDM_HEADER 12u
#define GDM_VERSION 1u
/* Layer header: u16 in, u16 out, u8 activation, 3 zero bytes, f32 in_scale, i32 in_zp,
 * f32 out_scale, i32 out_zp, i32 multiplier, i32 shift, i32 pre_zp, f32 pre_scale;
 * then out*in int8 weights (row-major), out int32 biases, and for sigmoid 256 int8 (LUT). */
#define GDM_LAYER_HEADER 40u
#define GDM_LUT 256u
/* Everything little-endian. */

static uint16_t rd16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static int32_t rdi32(const uint8_t* p) {
  uint32_t u = rd32(p);
  int32_t v;
  memcpy(&v, &u, 4); /* two's complement reinterpretation, no implementation-defined cast */
  return v;
}
static float rdf32(const uint8_t* p) {
  uint32_t u = rd32(p);
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static bool zp_ok(int32_t zp) { return zp >= -128 && zp <= 127; }
static bool scale_ok(float s) { return isfinite(s) && s > 0.0f; }

int gd_model_load(gd_model* m, const void* buf, size_t len) {
  if (!m || (!buf && len)) return GD_ERR_ARG;
  const uint8_t* b = (const uint8_t*)buf;
  memset(m, 0, sizeof *m);
  if (len < GDM_HEADER || memcmp(b, "GDM1", 4) != 0) return GD_ERR_FORMAT;
  uint16_t version = rd16(b + 4), count = rd16(b + 6);
  if (version != GDM_VERSION || count == 0 || count > GD_MODEL_MAX_LAYERS) return GD_ERR_FORMAT;
  if (rd32(b + 8) != len) return GD_ERR_FORMAT;
  size_t pos = GDM_HEADER;
  for (uint16_t i = 0; i < count; ++i) {
    if (len - pos < GDM_LAYER_HEADER) return GD_ERR_FORMAT;
    const uint8_t* h = b + pos;
    gd_layer* l = &m->layers[i];
    l->in = rd16(h);
    l->out = rd16(h + 2);
    l->activation = h[4];
    if (h[5] || h[6] || h[7]) return GD_ERR_FORMAT;
    l->in_scale = rdf32(h + 8);
    l->in_zero_point = rdi32(h + 12);
    l->out_scale = rdf32(h + 16);
    l->out_zero_point = rdi32(h + 20);
    l->multiplier = rdi32(h + 24);
    l->shift = rdi32(h + 28);
    int32_t pre_zp = l->pre_zero_point = rdi32(h + 32);
    float pre_scale = l->pre_scale = rdf32(h + 36);
    if (l->in == 0 || l->out == 0 || l->in > GD_MODEL_MAX_DIM || l->out > GD_MODEL_MAX_DIM)
      return GD_ERR_FORMAT;
    if (l->activation > GD_ACT_SOFTMAX) return GD_ERR_FORMAT;
    if (l->activation == GD_ACT_SOFTMAX && i + 1 != count) return GD_ERR_FORMAT;
    if (!scale_ok(l->in_scale) || !scale_ok(l->out_scale) || !scale_ok(pre_scale))
      return GD_ERR_FORMAT;
    if (!zp_ok(l->in_zero_point) || !zp_ok(l->out_zero_point) || !zp_ok(pre_zp))
      return GD_ERR_FORMAT;
    if (l->multiplier < (INT32_C(1) << 30) || l->shift < -30 || l->shift > 31) return GD_ERR_FORMAT;
    if ((l->activation == GD_ACT_NONE || l->activation == GD_ACT_RELU) &&
        pre_zp != l->out_zero_point)
      return GD_ERR_FORMAT;
    if (i > 0 &&
        (l->in != m->layers[i - 1].out || l->in_zero_point != m->layers[i - 1].out_zero_point))
      return GD_ERR_FORMAT;
    pos += GDM_LAYER_HEADER;
    /* Dimensions are <= 256, so these products cannot overflow size_t. */
    size_t weights = (size_t)l->in * l->out, biases = (size_t)l->out * 4u;
    size_t lut = l->activation == GD_ACT_SIGMOID ? GDM_LUT : 0;
    if (len - pos < weights) return GD_ERR_FORMAT;
    l->weights = (const int8_t*)(b + pos);
    pos += weights;
    if (len - pos < biases) return GD_ERR_FORMAT;
    l->biases = b + pos;
    pos += biases;
    if (len - pos < lut) return GD_ERR_FORMAT;
    l->lut = lut ? (const int8_t*)(b + pos) : NULL;
    pos += lut;
  }
  if (pos != len) return GD_ERR_FORMAT;
  m->version = version;
  m->layer_count = count;
  return GD_OK;
}

/* round(v / 2^s), halves away from zero; 1 <= s <= 62. */
static int64_t rounding_shift(int64_t v, int s) {
  const int64_t half = (int64_t)1 << (s - 1);
  return v >= 0 ? (v + half) >> s : -((-v + half) >> s);
}

static int8_t clamp8(int64_t v) { return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v); }

static void run_layer(const gd_layer* l, const int8_t* x, int8_t* y) {
  const int s = 31 + l->shift;
  for (size_t o = 0; o < l->out; ++o) {
    const int8_t* w = l->weights + o * l->in;
    int64_t acc = rdi32(l->biases + 4 * o);
    for (size_t i = 0; i < l->in; ++i) acc += (int32_t)w[i] * ((int32_t)x[i] - l->in_zero_point);
    if (acc > INT32_MAX) acc = INT32_MAX;
    if (acc < INT32_MIN) acc = INT32_MIN;
    int64_t q = rounding_shift(acc * l->multiplier, s) + l->pre_zero_point;
    int8_t v = clamp8(q);
    switch (l->activation) {
      case GD_ACT_RELU:
        if (v < l->out_zero_point) v = (int8_t)l->out_zero_point;
        break;
      case GD_ACT_SIGMOID:
        v = l->lut[(uint8_t)(v + 128)];
        break;
      default:
        break;
    }
    y[o] = v;
  }
  if (l->activation == GD_ACT_SOFTMAX) {
    int8_t max = y[0];
    for (size_t o = 1; o < l->out; ++o)
      if (y[o] > max) max = y[o];
    float sum = 0.0f;
    for (size_t o = 0; o < l->out; ++o) sum += expf(l->pre_scale * (float)(y[o] - max));
    for (size_t o = 0; o < l->out; ++o) {
      float p = expf(l->pre_scale * (float)(y[o] - max)) / sum;
      float q = p / l->out_scale + (float)l->out_zero_point;
      /* Saturate before converting, as gd_model_quantize() does: valid but extreme scales
       * give inf or NaN here, and converting those to an integer is undefined. */
      if (!(q > -128.0f)) {
        y[o] = -128; /* also NaN */
      } else if (q > 127.0f) {
        y[o] = 127;
      } else {
        y[o] = (int8_t)(q >= 0 ? (int)(q + 0.5f) : -(int)(-q + 0.5f));
      }
    }
  }
}

int gd_model_run(gd_model* m, const int8_t* in, int8_t* out) {
  if (!m || !in || !out || m->layer_count == 0) return GD_ERR_ARG;
  const int8_t* x = in;
  for (uint16_t i = 0; i < m->layer_count; ++i) {
    const gd_layer* l = &m->layers[i];
    int8_t* y = i + 1 == m->layer_count ? out : m->scratch[i % 2];
    run_layer(l, x, y);
    x = y;
  }
  return GD_OK;
}

int8_t gd_model_quantize(const gd_model* m, float x) {
  const gd_layer* l = &m->layers[0];
  float t = x / l->in_scale + (float)l->in_zero_point;
  if (!(t > -128.0f)) return -128; /* also NaN */
  if (t > 127.0f) return 127;
  return (int8_t)(t >= 0 ? (int)(t + 0.5f) : -(int)(-t + 0.5f));
}

float gd_model_dequantize(const gd_model* m, int8_t q) {
  const gd_layer* l = &m->layers[m->layer_count - 1];
  return l->out_scale * (float)((int32_t)q - l->out_zero_point);
}
