/* gd_model: inference of a small int8 fully-connected network ("tinyML").
 *
 * The file format (magic "GDM1") is documented in src/device/MODEL_FORMAT.md;
 * tools/make_model.py writes it. gd_model_load() checks every length, dimension and
 * parameter before it returns GD_OK, so a hostile or truncated file is rejected with
 * GD_ERR_FORMAT and never read out of bounds. The model points into the caller's buffer
 * (zero copy): keep `buf` alive and unchanged as long as the model is used.
 *
 * Arithmetic is integer only (int32 accumulators widened to int64, Q31 multipliers), except
 * softmax and the float helpers gd_model_quantize()/gd_model_dequantize(). The activations
 * live in two scratch vectors inside gd_model, so gd_model_run() allocates nothing; a
 * gd_model is about 2 * GD_MODEL_MAX_DIM bytes plus the layer table.
 *
 * Thread: gd_model_run() writes the model's scratch: one caller at a time per model. */
#ifndef GANGLION_DEVICE_MODEL_H
#define GANGLION_DEVICE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "ganglion/device/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GD_MODEL_MAX_LAYERS 8
#define GD_MODEL_MAX_DIM 256

typedef enum gd_activation {
  GD_ACT_NONE = 0,
  GD_ACT_RELU = 1,
  GD_ACT_SIGMOID = 2, /* through a 256-entry int8 table stored in the file */
  GD_ACT_SOFTMAX = 3  /* last layer only */
} gd_activation;

typedef struct gd_layer {
  uint16_t in, out;
  uint8_t activation;
  int32_t in_zero_point;
  int32_t out_zero_point; /* of the layer's output, after the activation */
  float in_scale;
  float out_scale;
  int32_t pre_zero_point; /* of the accumulator requantized to int8, before the activation */
  float pre_scale;        /* its scale (used by softmax) */
  int32_t multiplier;     /* Q31, in [2^30, 2^31) */
  int32_t shift;          /* right shift after the Q31 product, in [-30, 31] */
  const int8_t* weights;  /* out x in, row-major, symmetric (zero point 0) */
  const uint8_t* biases;  /* out little-endian int32 (unaligned) */
  const int8_t* lut;      /* 256 entries for sigmoid, else NULL */
} gd_layer;

typedef struct gd_model {
  uint16_t version;
  uint16_t layer_count;
  gd_layer layers[GD_MODEL_MAX_LAYERS];
  int8_t scratch[2][GD_MODEL_MAX_DIM];
} gd_model;

/* Validates and indexes `buf`. GD_ERR_ARG for NULL arguments, GD_ERR_FORMAT for anything
 * wrong in the file (magic, version, layer count, dimensions, chaining, activation,
 * parameters out of range, truncation, trailing bytes). */
int gd_model_load(gd_model* model, const void* buf, size_t len);

static inline size_t gd_model_input_size(const gd_model* m) { return m->layers[0].in; }
static inline size_t gd_model_output_size(const gd_model* m) {
  return m->layers[m->layer_count - 1].out;
}

/* Runs the network: `in` has input_size() values quantized with layer 0's input scale and
 * zero point; `out` receives output_size() values in the last layer's output quantization.
 * GD_ERR_ARG for NULL arguments. */
int gd_model_run(gd_model* model, const int8_t* in, int8_t* out);

/* real -> int8 with layer 0's input quantization (rounded, saturated). */
int8_t gd_model_quantize(const gd_model* model, float x);
/* int8 -> real with the last layer's output quantization. */
float gd_model_dequantize(const gd_model* model, int8_t q);

#ifdef __cplusplus
}
#endif

#endif
