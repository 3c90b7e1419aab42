# log_bench: durable log throughput against raw write()+fdatasync() on the same disk.
# Not a test: run by hand, e.g. build/h-log-rel/bench/log_bench --recovery-mb=1024
add_executable(log_bench ${CMAKE_CURRENT_LIST_DIR}/log_bench.cc)
target_compile_options(log_bench PRIVATE ${GANGLION_WARNINGS})
target_link_libraries(log_bench PRIVATE ganglion::log)
