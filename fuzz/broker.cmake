# The broker's authentication files: the ACL file (with %u/%c patterns compiled for an
# identity and checked against topics) and the password file.
ganglion_fuzz(broker_auth_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/broker_auth_fuzz.cc
  DEPS ganglion::broker)
