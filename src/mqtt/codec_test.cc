#include "mqtt/codec.h"
#include <gtest/gtest.h>
