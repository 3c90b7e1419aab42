# The demo's readers of ground truth and /metrics text. Their two sources are compiled in
# rather than linking ganglion::demo, which pulls in the edge (sim -> edge): the edge's HTTPS
# client uses Asio coroutines, which Boost 1.74 does not enable under clang with libstdc++.
ganglion_fuzz(demo_readers_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/demo_readers_fuzz.cc ${PROJECT_SOURCE_DIR}/src/demo/metrics_text.cc
          ${PROJECT_SOURCE_DIR}/src/demo/scoring.cc
  DEPS ganglion::base nlohmann_json::nlohmann_json)
