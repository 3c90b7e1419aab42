# uplink_bench: zstd ratio/CPU on realistic telemetry batches and end-to-end drain throughput
# (log -> Sender -> in-memory receiver). Run by hand, e.g. build/h-uplink-rel/bench/uplink_bench
if(TARGET ganglion_uplink)
  add_executable(uplink_bench ${CMAKE_CURRENT_LIST_DIR}/uplink_bench.cc)
  target_compile_options(uplink_bench PRIVATE ${GANGLION_WARNINGS})
  target_link_libraries(uplink_bench PRIVATE ganglion::uplink)
endif()
