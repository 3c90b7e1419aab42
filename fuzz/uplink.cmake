# Uplink batch and record decoding, and the controller's ingest decoder (both read bytes
# that crossed the network).
ganglion_fuzz(uplink_batch_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/uplink_batch_fuzz.cc
  DEPS ganglion::uplink ganglion::cloud)
