// SHA-256 (FIPS 180-4), written for the tool's `inspect` (the model file's checksum).
#ifndef STACKLSTM_CLI_SHA256_HPP
#define STACKLSTM_CLI_SHA256_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace slstm_cli {

class Sha256 {
 public:
  Sha256() noexcept;
  /// Adds `size` bytes (any split of a message gives the same digest).
  void update(const void* data, std::size_t size) noexcept;
  /// The digest of everything added; the object must not be updated afterwards.
  std::array<std::uint8_t, 32> finish() noexcept;

 private:
  void block(const std::uint8_t* p) noexcept;
  std::uint32_t h_[8];
  std::uint8_t buf_[64];
  std::size_t buf_len_ = 0;
  std::uint64_t total_ = 0;  // bytes
};

/// Lower-case hex of a digest.
std::string to_hex(const std::array<std::uint8_t, 32>& digest);

/// The SHA-256 of a file's bytes as lower-case hex; throws Failure naming the path when it
/// cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace slstm_cli

#endif  // STACKLSTM_CLI_SHA256_HPP
