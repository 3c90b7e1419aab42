# JSON request bodies and query strings of the REST APIs that have their own decoders: the
# edge's rule documents (POST /rules) and function documents, the controller's /v1/query
# parameters and label lists (token create, where=). The controller's other bodies are
# decoded inline in its handlers (src/cloud/controller.cc) and are not reachable from here.
ganglion_fuzz(api_body_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/api_body_fuzz.cc
  DEPS ganglion::rules ganglion::functions ganglion::cloud ganglion::net)
