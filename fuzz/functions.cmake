# Fuzz targets of the functions part (Lua sandbox: random source and event, define and call).
ganglion_fuzz(functions_lua_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/functions_lua_fuzz.cc DEPS ganglion::functions)
