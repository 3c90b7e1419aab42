# The HTTP layer's own code (Beast parses the request line and headers): the request target's
# path and query-string decoding, routing with "{name}" parameters, and host:port splitting.
ganglion_fuzz(http_target_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/http_target_fuzz.cc
  DEPS ganglion::net)
