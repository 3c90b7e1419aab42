# The YAML configuration reader against the edge's and the controller's schemas, plus what
# the edge derives from it beyond the schema (uplink classes, routes and data-policy rules).
# edge_config.cc (the schema, which needs only base) is compiled in rather than linking
# ganglion::edge: the edge's HTTPS client uses Asio coroutines, which Boost 1.74 does not
# enable under clang with libstdc++, so the edge library does not build with the fuzz preset.
ganglion_fuzz(config_yaml_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/config_yaml_fuzz.cc ${PROJECT_SOURCE_DIR}/src/edge/edge_config.cc
  DEPS ganglion::base ganglion::cloud ganglion::uplink)
