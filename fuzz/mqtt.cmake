# MQTT codec fuzzing: random bytes into the decoder (server and client side, 3.1.1 and 5.0);
# whatever decodes is re-encoded and must decode again to the same packet.
ganglion_fuzz(mqtt_codec_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mqtt_codec_fuzz.cc DEPS ganglion::mqtt)
