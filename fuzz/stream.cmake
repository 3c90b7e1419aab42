# Fuzz targets of the stream part (SQL parser, printer and evaluator).
ganglion_fuzz(stream_sql_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/stream_sql_fuzz.cc
  DEPS ganglion::stream)
