// NumPy .npy files (format versions 1.0, 2.0 and 3.0): the reader of `run`'s inputs and the
// writer of its outputs.  https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
//
// Read: little-endian (or byte-order-free) numeric arrays in C order.  Refused, each with a
// message naming the file: a bad magic or version, a header that is not the dict numpy
// writes, big-endian data, Fortran order, object / structured / string dtypes, and data
// whose size disagrees with the shape (truncated or with trailing bytes).
// Written: float32 ('<f4'), C order, version 1.0 (2.0 only for a header above 64 KiB), the
// header padded so the data start at a multiple of 64 bytes, as numpy writes it.
#ifndef STACKLSTM_CLI_NPY_HPP
#define STACKLSTM_CLI_NPY_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace slstm_cli {

/// The parsed header of a .npy file.
struct NpyHeader {
  int major_version = 0;
  std::string descr;            ///< as written, e.g. "<f4"
  char kind = 0;                ///< 'f' float, 'i' signed, 'u' unsigned, 'b' bool, ...
  std::size_t item_size = 0;    ///< bytes per element
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
  std::size_t data_offset = 0;  ///< where the data begin
  std::size_t element_count = 0;
};

/// Parses and checks the header of a .npy image of `size` bytes; `name` (the file's path)
/// prefixes every error.  Checks that the data that follow hold exactly element_count
/// elements.  Throws Failure.
NpyHeader parse_npy(const std::uint8_t* data, std::size_t size, const std::string& name);

/// A float array read from a .npy file, converted to float32 when it was float16 or float64.
struct FloatArray {
  std::vector<std::int64_t> shape;
  std::vector<float> values;
  std::string converted_from;  ///< "" when the file held float32, else e.g. "float64"
};

/// Reads a float16/float32/float64 .npy file.  Integer and other dtypes are refused with a
/// message naming the dtype; a float64 value too large for float32 is refused (a float64 or
/// float16 infinity or NaN stays what it is).  Throws Failure.
FloatArray read_npy_floats(const std::string& path);

/// read_npy_floats on a .npy image in memory (`path` names it in messages).
FloatArray npy_floats(const std::uint8_t* data, std::size_t size, const std::string& path);

/// A 1-D array of sequence lengths: any integer dtype (int32 and int64 are what NumPy
/// gives), every value in [0, 2^31 - 1] (the library then checks them against the time).
/// Throws Failure.
std::vector<std::int32_t> read_npy_lengths(const std::string& path,
                                           std::vector<std::int64_t>* shape);

/// read_npy_lengths on a .npy image in memory (`path` names it in messages).
std::vector<std::int32_t> npy_lengths(const std::uint8_t* data, std::size_t size,
                                      const std::string& path, std::vector<std::int64_t>* shape);

/// The .npy image of a float32 array (header + data).
std::vector<std::uint8_t> npy_image_float32(const float* values,
                                            const std::vector<std::int64_t>& shape);

/// Writes a float32 .npy file: to a temporary file in the same directory, then renamed over
/// `path`, so a failed write leaves no half file.  Throws Failure.
void write_npy_float32(const std::string& path, const float* values,
                       const std::vector<std::int64_t>& shape);

/// The whole file, read; throws Failure naming the path (and refuses directories).
std::vector<std::uint8_t> read_whole_file(const std::string& path);

/// An output file written in two steps, so that a command writing several leaves none when
/// any fails: the constructor writes `bytes` to a temporary file next to `path` (throws
/// Failure naming the path, leaving nothing), commit() renames it over `path`; destroyed
/// uncommitted, it removes the temporary file.  A file replaced keeps its permissions; a
/// symbolic link's target is written (the link stays); a device, FIFO or socket (e.g.
/// /dev/null) is written in place by commit(), never replaced.
class OutputFile {
 public:
  OutputFile(const std::string& path, std::vector<std::uint8_t> bytes);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  void commit();

 private:
  void discard() noexcept;
  std::string path_;    // as given, for messages
  std::string target_;  // what is written: path_, or a symbolic link's target
  std::string tmp_;     // the temporary file while staged
  std::vector<std::uint8_t> bytes_;
  bool direct_ = false;  // not a regular file: written in place
};

/// Whether two paths name one file (the same string, or the same existing file).
bool same_file(const std::string& a, const std::string& b);

/// Writes `bytes` to `path` as OutputFile does, at once.  Throws Failure.
void write_file_atomically(const std::string& path, const std::vector<std::uint8_t>& bytes);

/// NumPy's name of a dtype, e.g. "float64", "int32", "bool", or the descr itself.
std::string dtype_name(const NpyHeader& h);

/// "(2, 3, 4)" for messages.
std::string shape_string(const std::vector<std::int64_t>& shape);

}  // namespace slstm_cli

#endif  // STACKLSTM_CLI_NPY_HPP
