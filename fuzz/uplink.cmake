# Uplink batch and record decoding, and the controller's ingest decoder (both read bytes
# that crossed the network).
ganglion_fuzz(uplink_batch_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/uplink_batch_fuzz.cc
  DEPS ganglion::uplink ganglion::cloud)
# The data-sovereignty policy: its rule syntax (uplink.policy.fields), and apply() on the
# topic and JSON payload of every message about to leave the site.
ganglion_fuzz(uplink_policy_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/uplink_policy_fuzz.cc
  DEPS ganglion::uplink)
