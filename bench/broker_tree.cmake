# SubscriptionTree match throughput vs. an exact-topic unordered_map lookup.
add_executable(broker_tree_bench ${CMAKE_CURRENT_LIST_DIR}/broker_tree_bench.cc)
target_link_libraries(broker_tree_bench PRIVATE ganglion::broker benchmark::benchmark)
