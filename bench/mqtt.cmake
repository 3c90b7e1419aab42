# MQTT load generator (bench/mqtt/mqtt_load.cc); bench/mqtt/compare.sh runs it against our
# broker and Debian's mosquitto and prints the two side by side.
add_executable(mqtt_load ${CMAKE_CURRENT_SOURCE_DIR}/mqtt/mqtt_load.cc)
target_link_libraries(mqtt_load PRIVATE ganglion::mqtt CLI11::CLI11 Boost::headers Threads::Threads)
