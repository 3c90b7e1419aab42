// Device model loader fuzzing: arbitrary bytes into gd_model_load(); whatever loads must run
// (inputs of every value) without reading outside the buffer.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ganglion/device/model.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static gd_model model;
  // An exact-size copy, so that AddressSanitizer sees any read past the end.
  std::vector<std::uint8_t> buf(data, data + size);
  if (gd_model_load(&model, buf.data(), buf.size()) != GD_OK) return 0;
  std::int8_t in[GD_MODEL_MAX_DIM];
  std::int8_t out[GD_MODEL_MAX_DIM];
  for (std::size_t i = 0; i < gd_model_input_size(&model); ++i)
    in[i] = static_cast<std::int8_t>(i * 37);
  gd_model_run(&model, in, out);
  return 0;
}
