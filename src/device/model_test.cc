// gd_model: the file format (built here by an independent C++ writer), inference against a
// float reference and an exact integer reference, and hostile files (random bytes, every
// truncation, huge dimensions, bit flips) rejected without reading out of bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "ganglion/device/model.h"

namespace {

struct LayerSpec {
  int in = 0, out = 0, act = GD_ACT_NONE;
  std::vector<float> w;  // out x in
  std::vector<float> b;
};

struct QLayer {
  int in, out, act;
  float in_scale, out_scale, pre_scale, w_scale;
  int in_zp, out_zp, pre_zp;
  std::int32_t mult, shift;
  std::vector<std::int8_t> w;
  std::vector<std::int32_t> b;
  std::vector<std::int8_t> lut;
};

void put16(std::string& s, std::uint16_t v) {
  s.push_back(char(v & 0xFF));
  s.push_back(char(v >> 8));
}
void put32(std::string& s, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(char((v >> (8 * i)) & 0xFF));
}
void putf(std::string& s, float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  put32(s, u);
}

int clamp8(long v) { return v < -128 ? -128 : v > 127 ? 127 : static_cast<int>(v); }

// Quantizes float layers the way tools/make_model.py does: symmetric per-layer weights,
// activation ranges given per layer as [lo, hi].
std::vector<QLayer> quantize(const std::vector<LayerSpec>& spec, float in_lo, float in_hi,
                             const std::vector<std::pair<float, float>>& ranges) {
  std::vector<QLayer> q;
  float in_scale = (in_hi - in_lo) / 255.0f;
  int in_zp = clamp8(std::lround(-128 - in_lo / in_scale));
  for (size_t i = 0; i < spec.size(); ++i) {
    const auto& s = spec[i];
    QLayer l{};
    l.in = s.in, l.out = s.out, l.act = s.act;
    l.in_scale = in_scale, l.in_zp = in_zp;
    float wmax = 1e-6f;
    for (float w : s.w) wmax = std::max(wmax, std::fabs(w));
    l.w_scale = wmax / 127.0f;
    for (float w : s.w) l.w.push_back(static_cast<std::int8_t>(std::lround(w / l.w_scale)));
    for (float b : s.b)
      l.b.push_back(static_cast<std::int32_t>(std::lround(b / (in_scale * l.w_scale))));
    auto [lo, hi] = ranges[i];
    l.pre_scale = (hi - lo) / 255.0f;
    l.pre_zp = clamp8(std::lround(-128 - lo / l.pre_scale));
    if (s.act == GD_ACT_SIGMOID || s.act == GD_ACT_SOFTMAX) {
      l.out_scale = 1.0f / 256.0f;
      l.out_zp = -128;
    } else {
      l.out_scale = l.pre_scale;
      l.out_zp = l.pre_zp;
    }
    double m = double(in_scale) * l.w_scale / l.pre_scale;
    int e;
    double frac = std::frexp(m, &e);
    std::int64_t mult = std::llround(frac * (1LL << 31));
    if (mult == (1LL << 31)) mult /= 2, ++e;
    l.mult = static_cast<std::int32_t>(mult);
    l.shift = -e;
    if (s.act == GD_ACT_SIGMOID)
      for (int k = -128; k < 128; ++k) {
        double x = l.pre_scale * (k - l.pre_zp);
        double y = 1.0 / (1.0 + std::exp(-x));
        l.lut.push_back(static_cast<std::int8_t>(clamp8(std::lround(y * 256.0) - 128)));
      }
    q.push_back(l);
    in_scale = l.out_scale;
    in_zp = l.out_zp;
  }
  return q;
}

std::string serialize(const std::vector<QLayer>& layers) {
  std::string s = "GDM1";
  put16(s, 1);
  put16(s, static_cast<std::uint16_t>(layers.size()));
  put32(s, 0);  // total length, patched below
  for (const auto& l : layers) {
    put16(s, l.in);
    put16(s, l.out);
    s.push_back(char(l.act));
    s.append(3, '\0');
    putf(s, l.in_scale);
    put32(s, l.in_zp);
    putf(s, l.out_scale);
    put32(s, l.out_zp);
    put32(s, l.mult);
    put32(s, l.shift);
    put32(s, l.pre_zp);
    putf(s, l.pre_scale);
    for (auto w : l.w) s.push_back(char(w));
    for (auto b : l.b) put32(s, b);
    for (auto v : l.lut) s.push_back(char(v));
  }
  std::uint32_t n = s.size();
  std::memcpy(&s[8], &n, 4);  // little-endian host assumed by this test
  return s;
}

// The exact integer arithmetic the format specifies (MODEL_FORMAT.md), written independently.
std::vector<int> reference_int(const std::vector<QLayer>& layers, std::vector<int> x) {
  for (const auto& l : layers) {
    std::vector<int> y(l.out);
    for (int o = 0; o < l.out; ++o) {
      long long acc = l.b[o];
      for (int i = 0; i < l.in; ++i)
        acc += static_cast<long long>(l.w[o * l.in + i]) * (x[i] - l.in_zp);
      acc = std::clamp<long long>(acc, INT32_MIN, INT32_MAX);
      long double r = static_cast<long double>(acc) * l.mult / std::ldexp(1.0L, 31 + l.shift);
      long long rounded = r >= 0 ? static_cast<long long>(std::floor(r + 0.5L))
                                 : -static_cast<long long>(std::floor(-r + 0.5L));
      int v = clamp8(rounded + l.pre_zp);
      if (l.act == GD_ACT_RELU) v = std::max(v, l.out_zp);
      if (l.act == GD_ACT_SIGMOID) v = l.lut[v + 128];
      y[o] = v;
    }
    if (l.act == GD_ACT_SOFTMAX) {
      int mx = *std::max_element(y.begin(), y.end());
      double sum = 0;
      for (int v : y) sum += std::exp(l.pre_scale * (v - mx));
      for (int& v : y)
        v = clamp8(std::lround(std::exp(l.pre_scale * (v - mx)) / sum / l.out_scale + l.out_zp));
    }
    x = y;
  }
  return x;
}

std::vector<float> reference_float(const std::vector<LayerSpec>& spec, std::vector<float> x) {
  for (const auto& s : spec) {
    std::vector<float> y(s.out);
    for (int o = 0; o < s.out; ++o) {
      float acc = s.b[o];
      for (int i = 0; i < s.in; ++i) acc += s.w[o * s.in + i] * x[i];
      if (s.act == GD_ACT_RELU) acc = std::max(acc, 0.0f);
      if (s.act == GD_ACT_SIGMOID) acc = 1.0f / (1.0f + std::exp(-acc));
      y[o] = acc;
    }
    if (s.act == GD_ACT_SOFTMAX) {
      float mx = *std::max_element(y.begin(), y.end()), sum = 0;
      for (float v : y) sum += std::exp(v - mx);
      for (float& v : y) v = std::exp(v - mx) / sum;
    }
    x = y;
  }
  return x;
}

LayerSpec random_layer(std::mt19937& rng, int in, int out, int act) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  LayerSpec s{in, out, act, {}, {}};
  for (int i = 0; i < in * out; ++i) s.w.push_back(d(rng));
  for (int i = 0; i < out; ++i) s.b.push_back(d(rng) * 0.5f);
  return s;
}

TEST(DeviceModel, HandBuiltIdentityLayerIsExact) {
  QLayer l{2, 2, GD_ACT_NONE, 1.0f, 1.0f,          1.0f,    1.0f, 0,
           0, 0, 1 << 30,     -1,   {1, 0, 0, -1}, {5, -5}, {}};
  std::string file = serialize({l});
  gd_model m;
  ASSERT_EQ(gd_model_load(&m, file.data(), file.size()), GD_OK);
  EXPECT_EQ(gd_model_input_size(&m), 2u);
  EXPECT_EQ(gd_model_output_size(&m), 2u);
  const std::int8_t in[2] = {10, 20};
  std::int8_t out[2];
  ASSERT_EQ(gd_model_run(&m, in, out), GD_OK);
  EXPECT_EQ(out[0], 15);   // 10 + 5
  EXPECT_EQ(out[1], -25);  // -20 - 5
  const std::int8_t big[2] = {127, -128};
  ASSERT_EQ(gd_model_run(&m, big, out), GD_OK);
  EXPECT_EQ(out[0], 127);  // saturated
  EXPECT_EQ(out[1], 123);  // 128 - 5
}

TEST(DeviceModel, ReluSigmoidNetworkMatchesIntegerAndFloatReferences) {
  std::mt19937 rng(42);
  std::vector<LayerSpec> spec = {random_layer(rng, 4, 16, GD_ACT_RELU),
                                 random_layer(rng, 16, 8, GD_ACT_RELU),
                                 random_layer(rng, 8, 1, GD_ACT_SIGMOID)};
  auto q = quantize(spec, -1.0f, 1.0f, {{0.0f, 4.0f}, {0.0f, 6.0f}, {-8.0f, 8.0f}});
  std::string file = serialize(q);
  gd_model m;
  ASSERT_EQ(gd_model_load(&m, file.data(), file.size()), GD_OK);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  double worst = 0;
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> x(4);
    std::vector<int> xq(4);
    std::int8_t in[4];
    for (int i = 0; i < 4; ++i) {
      x[i] = d(rng);
      in[i] = gd_model_quantize(&m, x[i]);
      xq[i] = in[i];
      x[i] = m.layers[0].in_scale * (in[i] - m.layers[0].in_zero_point);  // what the model sees
    }
    std::int8_t out[1];
    ASSERT_EQ(gd_model_run(&m, in, out), GD_OK);
    EXPECT_EQ(out[0], reference_int(q, xq)[0]);
    worst = std::max(
        worst, std::fabs(double(gd_model_dequantize(&m, out[0])) - reference_float(spec, x)[0]));
  }
  EXPECT_LT(worst, 0.06);  // int8 end to end: a few quantization steps
}

TEST(DeviceModel, SoftmaxOutputsAProbabilityVector) {
  std::mt19937 rng(3);
  std::vector<LayerSpec> spec = {random_layer(rng, 3, 6, GD_ACT_RELU),
                                 random_layer(rng, 6, 4, GD_ACT_SOFTMAX)};
  auto q = quantize(spec, -1.0f, 1.0f, {{0.0f, 3.0f}, {-4.0f, 4.0f}});
  std::string file = serialize(q);
  gd_model m;
  ASSERT_EQ(gd_model_load(&m, file.data(), file.size()), GD_OK);
  const std::int8_t in[3] = {100, -50, 7};
  std::int8_t out[4];
  ASSERT_EQ(gd_model_run(&m, in, out), GD_OK);
  float sum = 0;
  for (auto v : out) sum += gd_model_dequantize(&m, v);
  EXPECT_NEAR(sum, 1.0f, 0.02f);
  EXPECT_EQ(std::vector<int>(out, out + 4), reference_int(q, {100, -50, 7}));
}

TEST(DeviceModel, SoftmaxWithExtremeScalesSaturatesInsteadOfConvertingInfinity) {
  // Found by fuzz/device_model_fuzz once UBSan findings stopped it: a tiny (valid) output
  // scale made p / out_scale infinite, and a huge pre-scale made exp() overflow to a NaN;
  // both were converted to an integer (undefined behaviour).
  std::mt19937 rng(3);
  std::vector<LayerSpec> spec = {random_layer(rng, 3, 6, GD_ACT_RELU),
                                 random_layer(rng, 6, 4, GD_ACT_SOFTMAX)};
  const std::string good = serialize(quantize(spec, -1.0f, 1.0f, {{0.0f, 3.0f}, {-4.0f, 4.0f}}));
  const size_t layer2 = 12 + 40 + 3 * 6 + 4 * 6;  // file header, layer 1: header, weights, biases
  for (auto [offset, value] : {std::pair<size_t, float>{layer2 + 16, 1e-38f},    // out_scale
                               std::pair<size_t, float>{layer2 + 36, 1e38f}}) {  // pre_scale
    std::string file = good;
    std::memcpy(&file[offset], &value, sizeof value);  // little-endian, as the format
    gd_model m;
    ASSERT_EQ(gd_model_load(&m, file.data(), file.size()), GD_OK) << offset;
    const std::int8_t in[3] = {100, -50, 7};
    std::int8_t out[4];
    EXPECT_EQ(gd_model_run(&m, in, out), GD_OK);  // and no undefined behaviour (UBSan)
  }
}

std::string valid_file() {
  std::mt19937 rng(1);
  std::vector<LayerSpec> spec = {random_layer(rng, 2, 8, GD_ACT_RELU),
                                 random_layer(rng, 8, 1, GD_ACT_SIGMOID)};
  return serialize(quantize(spec, 0.0f, 2.0f, {{0.0f, 3.0f}, {-8.0f, 8.0f}}));
}

TEST(DeviceModel, EveryTruncationAndTrailingBytesAreRejected) {
  std::string file = valid_file();
  gd_model m;
  ASSERT_EQ(gd_model_load(&m, file.data(), file.size()), GD_OK);
  for (size_t n = 0; n < file.size(); ++n) {
    std::vector<char> copy(file.begin(), file.begin() + n);  // exact-size heap buffer for ASan
    EXPECT_EQ(gd_model_load(&m, copy.data(), copy.size()), GD_ERR_FORMAT) << n;
  }
  std::string longer = file + '\0';
  EXPECT_EQ(gd_model_load(&m, longer.data(), longer.size()), GD_ERR_FORMAT);
  EXPECT_EQ(gd_model_load(&m, nullptr, 10), GD_ERR_ARG);
}

TEST(DeviceModel, HostileHeadersAreRejected) {
  const std::string good = valid_file();
  gd_model m;
  auto patched = [&](size_t off, std::initializer_list<unsigned char> bytes) {
    std::string f = good;
    size_t i = off;
    for (auto b : bytes) f[i++] = char(b);
    return gd_model_load(&m, f.data(), f.size());
  };
  EXPECT_EQ(patched(0, {'G', 'D', 'M', '2'}), GD_ERR_FORMAT);       // magic
  EXPECT_EQ(patched(4, {2, 0}), GD_ERR_FORMAT);                     // version
  EXPECT_EQ(patched(6, {0, 0}), GD_ERR_FORMAT);                     // no layers
  EXPECT_EQ(patched(6, {0xFF, 0xFF}), GD_ERR_FORMAT);               // 65535 layers
  EXPECT_EQ(patched(8, {0xFF, 0xFF, 0xFF, 0xFF}), GD_ERR_FORMAT);   // total length
  EXPECT_EQ(patched(12, {0xFF, 0xFF}), GD_ERR_FORMAT);              // in = 65535
  EXPECT_EQ(patched(14, {0x00, 0x10}), GD_ERR_FORMAT);              // out = 4096
  EXPECT_EQ(patched(12, {0x00, 0x00}), GD_ERR_FORMAT);              // in = 0
  EXPECT_EQ(patched(16, {9}), GD_ERR_FORMAT);                       // activation
  EXPECT_EQ(patched(17, {1}), GD_ERR_FORMAT);                       // reserved byte
  EXPECT_EQ(patched(20, {0x00, 0x00, 0xC0, 0x7F}), GD_ERR_FORMAT);  // in_scale NaN
  EXPECT_EQ(patched(20, {0x00, 0x00, 0x80, 0xBF}), GD_ERR_FORMAT);  // in_scale -1
  EXPECT_EQ(patched(24, {0x00, 0x01, 0x00, 0x00}), GD_ERR_FORMAT);  // in zero point 256
  EXPECT_EQ(patched(36, {0x00, 0x00, 0x00, 0x00}), GD_ERR_FORMAT);  // multiplier 0
  EXPECT_EQ(patched(40, {0x40, 0x00, 0x00, 0x00}), GD_ERR_FORMAT);  // shift 64
  // Layer 2 no longer chains to layer 1 (in = 7 while layer 1 out = 8): its offset is
  // header + layer 1 (40 + 16 weights + 32 biases).
  EXPECT_EQ(patched(12 + 40 + 16 + 32, {7, 0}), GD_ERR_FORMAT);
}

TEST(DeviceModel, RandomBytesAndBitFlipsNeverCrash) {
  std::mt19937 rng(99);
  gd_model m;
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<unsigned char> junk(rng() % 300);
    for (auto& b : junk) b = static_cast<unsigned char>(rng());
    if (trial % 2 && junk.size() >= 12) {  // a plausible header makes the parser go deeper
      std::memcpy(junk.data(), "GDM1\x01\x00", 6);
      junk[6] = static_cast<unsigned char>(1 + rng() % 3);
      junk[7] = 0;
      std::uint32_t n = junk.size();
      std::memcpy(&junk[8], &n, 4);
    }
    EXPECT_EQ(gd_model_load(&m, junk.data(), junk.size()), GD_ERR_FORMAT);
  }
  const std::string good = valid_file();
  const std::int8_t in[2] = {1, 2};
  std::int8_t out[GD_MODEL_MAX_DIM];
  for (size_t bit = 0; bit < good.size() * 8; ++bit) {
    std::vector<char> f(good.begin(), good.end());
    f[bit / 8] = static_cast<char>(f[bit / 8] ^ (1 << (bit % 8)));
    if (gd_model_load(&m, f.data(), f.size()) == GD_OK && gd_model_input_size(&m) == 2) {
      EXPECT_EQ(gd_model_run(&m, in, out), GD_OK);  // accepted flips (weights) must still run
    }
  }
}

#ifdef GD_EXAMPLE_MODEL
TEST(DeviceModel, ShippedAnomalyModelLoadsAndSeparatesNormalFromAnomalous) {
  std::ifstream f(GD_EXAMPLE_MODEL, std::ios::binary);
  ASSERT_TRUE(f) << GD_EXAMPLE_MODEL;
  std::string file((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  gd_model m;
  ASSERT_EQ(gd_model_load(&m, file.data(), file.size()), GD_OK);
  ASSERT_EQ(gd_model_input_size(&m), 2u);
  ASSERT_EQ(gd_model_output_size(&m), 1u);
  // Features as examples/device/README.md defines them: vibration RMS / 4 g, (temp - 20) / 80.
  auto score = [&](float rms_g, float temp_c) {
    std::int8_t in[2] = {gd_model_quantize(&m, rms_g / 4.0f),
                         gd_model_quantize(&m, (temp_c - 20.0f) / 80.0f)};
    std::int8_t out[1];
    EXPECT_EQ(gd_model_run(&m, in, out), GD_OK);
    return gd_model_dequantize(&m, out[0]);
  };
  EXPECT_LT(score(0.5f, 40.0f), 0.2f);
  EXPECT_GT(score(3.0f, 45.0f), 0.8f);
  EXPECT_GT(score(0.5f, 95.0f), 0.8f);
}
#endif

}  // namespace
