# Device SDK fuzzing: hostile model files into gd_model_load() / gd_model_run().
ganglion_fuzz(device_model_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/device_model_fuzz.cc DEPS ganglion::device)
