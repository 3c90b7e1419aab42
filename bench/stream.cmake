# stream_bench: streaming SQL engine throughput and memory against simdjson parse-only on the
# same payloads. Run by hand: build/h-engine-rel/bench/stream_bench [--events=N]
add_executable(stream_bench ${CMAKE_CURRENT_LIST_DIR}/stream_bench.cc)
target_compile_options(stream_bench PRIVATE ${GANGLION_WARNINGS})
target_link_libraries(stream_bench PRIVATE ganglion::stream simdjson::simdjson)
