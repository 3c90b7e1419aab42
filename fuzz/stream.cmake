# Fuzz targets of the stream part (SQL parser, printer and evaluator).
ganglion_fuzz(stream_sql_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/stream_sql_fuzz.cc
  DEPS ganglion::stream)
# The stream's decoder of device payloads into rows (src/stream/catalog.h): JSON checked and
# converted against a schema with every column type, strict and not, whole and projected.
ganglion_fuzz(stream_row_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/stream_row_fuzz.cc
  DEPS ganglion::stream)
# The datetime reader: a TIMESTAMP_FORMAT pattern and a timestamp string (src/stream/time_format.h).
ganglion_fuzz(stream_time_fuzz
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/stream_time_fuzz.cc
  DEPS ganglion::stream)
