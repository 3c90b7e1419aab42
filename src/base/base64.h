// Base64 (RFC 4648, standard alphabet, padded): one implementation for JSON bytes, SQL
// BYTEA, SCRAM messages and password files.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ganglion {

std::string base64_encode(std::string_view bytes);

// Lenient, for data from devices: the padding may be left out and stray low bits of the last
// character are ignored. nullopt on a character outside the alphabet or an impossible length.
std::optional<std::string> base64_decode(std::string_view text);

// Strict, for protocol fields and stored secrets: only the one text base64_encode() writes
// for the result is accepted (padding present, no stray bits).
std::optional<std::string> base64_decode_canonical(std::string_view text);

}  // namespace ganglion
