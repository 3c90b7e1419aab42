// CRC-32C (Castagnoli), as used by iSCSI, ext4 and leveldb. Uses the SSE4.2 crc32
// instruction when the CPU has it, else a portable slicing-by-8 table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ganglion {

// Extends `crc` (the CRC of some prefix, 0 for none) with `n` bytes at `data`.
std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t n);
inline std::uint32_t crc32c(const void* data, std::size_t n) { return crc32c_extend(0, data, n); }
inline std::uint32_t crc32c(std::string_view s) { return crc32c(s.data(), s.size()); }

// The portable path alone, for tests that compare both.
std::uint32_t crc32c_extend_portable(std::uint32_t crc, const void* data, std::size_t n);

}  // namespace ganglion
