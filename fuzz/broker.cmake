# The broker's authentication files: the ACL file (with %u/%c patterns compiled for an
# identity and checked against topics) and the password file.
ganglion_fuzz(broker_auth_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/broker_auth_fuzz.cc
  DEPS ganglion::broker)
# The SCRAM messages of MQTT 5 enhanced authentication (client-first, client-final, the
# server exchange, base64).
ganglion_fuzz(broker_scram_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/broker_scram_fuzz.cc
  DEPS ganglion::broker)
