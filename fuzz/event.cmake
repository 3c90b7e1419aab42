# Event JSON decoding (simdjson): the whole-document, field-subset and filtered decoders, and
# the canonical-form check the data path uses to skip re-encoding.
ganglion_fuzz(event_json_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/event_json_fuzz.cc
  DEPS ganglion::event)
