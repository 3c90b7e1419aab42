# The demo's readers of ground truth and /metrics text.
ganglion_fuzz(demo_readers_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/demo_readers_fuzz.cc
  DEPS ganglion::demo)
