# The YAML configuration reader against the edge's and the controller's schemas, plus what
# the edge derives from it beyond the schema (uplink classes, routes and data-policy rules).
ganglion_fuzz(config_yaml_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/config_yaml_fuzz.cc
  DEPS ganglion::edge ganglion::cloud ganglion::uplink)
