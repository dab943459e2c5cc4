#include "npy.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include "../src/file_path.hpp"
#include "util.hpp"

namespace slstm_cli {
namespace {

// ---- the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } ----------

class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& name) : s_(text), name_(name) {}

  void parse(NpyHeader* h) {
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') {
        ++i_;
        break;
      }
      const std::string key = string_literal();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (peek() == '[') {
          fail("its dtype is a structured (record) dtype; only plain numeric arrays are read");
        }
        h->descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        h->fortran_order = boolean();
        have_order = true;
      } else if (key == "shape") {
        h->shape = int_tuple();
        have_shape = true;
      } else {
        fail("its header has an unknown key '" + one_line(key) + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++i_;
      } else if (peek() != '}') {
        fail("its header is not a well-formed dict (expected ',' or '}' at byte " +
             std::to_string(i_) + ")");
      }
    }
    skip_space();
    if (i_ != s_.size()) fail("its header has text after the dict");
    if (!have_descr || !have_order || !have_shape) {
      fail(std::string("its header lacks the key '") +
           (!have_descr ? "descr" : !have_order ? "fortran_order" : "shape") + "'");
    }
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Failure(quoted(name_) + ": not a .npy file this tool reads: " + why);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' ||
                              s_[i_] == '\r')) {
      ++i_;
    }
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) {
      fail(std::string("its header is not a well-formed dict (expected '") + c + "' at byte " +
           std::to_string(i_) + ")");
    }
    ++i_;
  }
  std::string string_literal() {
    skip_space();
    const char q = peek();
    if (q != '\'' && q != '"') {
      fail("its header is not a well-formed dict (expected a string at byte " +
           std::to_string(i_) + ")");
    }
    ++i_;
    std::string out;
    while (i_ < s_.size() && s_[i_] != q) {
      if (s_[i_] == '\\') fail("its header has an escaped string");
      out.push_back(s_[i_++]);
    }
    if (i_ >= s_.size()) fail("its header has an unterminated string");
    ++i_;
    return out;
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    fail("its header's fortran_order is not True or False");
  }
  std::vector<std::int64_t> int_tuple() {
    std::vector<std::int64_t> dims;
    expect('(');
    for (;;) {
      skip_space();
      if (peek() == ')') {
        ++i_;
        break;
      }
      if (peek() < '0' || peek() > '9') fail("its header's shape is not a tuple of integers");
      std::int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        const int digit = peek() - '0';
        if (v > (std::numeric_limits<std::int64_t>::max() - digit) / 10) {
          fail("its shape has a dimension too large");
        }
        v = v * 10 + digit;
        ++i_;
      }
      if (peek() == 'L') ++i_;  // Python 2 long literals
      dims.push_back(v);
      skip_space();
      if (peek() == ',') {
        ++i_;
      } else if (peek() != ')') {
        fail("its header's shape is not a tuple of integers");
      }
    }
    if (dims.size() > 32) fail("its shape has more than 32 dimensions");
    return dims;
  }

  const std::string& s_;
  const std::string& name_;
  std::size_t i_ = 0;
};

void parse_descr(NpyHeader* h, const std::string& name) {
  const std::string& d = h->descr;
  const std::string shown = "'" + one_line(d) + "'";
  if (d.size() < 2) throw Failure(quoted(name) + ": unknown dtype " + shown);
  const char order = d[0];
  const char kind = d[1];
  if (order != '<' && order != '>' && order != '|' && order != '=') {
    throw Failure(quoted(name) + ": unknown dtype " + shown);
  }
  std::size_t size = 0;
  std::size_t i = 2;
  for (; i < d.size() && d[i] >= '0' && d[i] <= '9' && size < 1000000; ++i) {
    size = size * 10 + static_cast<std::size_t>(d[i] - '0');
  }
  const bool numeric = (kind == 'f' || kind == 'i' || kind == 'u' || kind == 'b' || kind == 'c');
  if (kind == 'O') {
    throw Failure(quoted(name) + ": an object array (dtype " + shown +
                  ") holds Python objects, not numbers; save a numeric array instead");
  }
  if (!numeric || i != d.size() || size == 0) {
    throw Failure(quoted(name) + ": dtype " + shown +
                  " is not a plain numeric dtype (float, integer or bool)");
  }
  if (order == '>' && size > 1) {
    throw Failure(quoted(name) + ": big-endian data (dtype " + shown +
                  ") is not read; save it little-endian, e.g. np.save(path, a.astype(a.dtype"
                  ".newbyteorder('<')))");
  }
  h->kind = kind;
  h->item_size = size;
}

std::uint64_t read_le(const std::uint8_t* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h >> 15) & 1u;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t mant = h & 0x3ffu;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant == 0 ? std::numeric_limits<float>::infinity()
                  : std::numeric_limits<float>::quiet_NaN();
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

std::string error_text() { return std::strerror(errno); }

}  // namespace

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

std::string dtype_name(const NpyHeader& h) {
  const std::string bits = std::to_string(h.item_size * 8);
  switch (h.kind) {
    case 'f': return "float" + bits;
    case 'i': return "int" + bits;
    case 'u': return "uint" + bits;
    case 'c': return "complex" + bits;
    case 'b': return "bool";
    default: return h.descr;
  }
}

NpyHeader parse_npy(const std::uint8_t* data, std::size_t size, const std::string& name) {
  static const std::uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (size < 6 || std::memcmp(data, magic, 6) != 0) {
    throw Failure(quoted(name) + ": not a .npy file (it does not start with \\x93NUMPY; "
                  "write one with numpy.save)");
  }
  if (size < 10) throw Failure(quoted(name) + ": truncated .npy header");
  NpyHeader h;
  h.major_version = data[6];
  if ((h.major_version < 1 || h.major_version > 3) || data[7] != 0) {
    throw Failure(quoted(name) + ": .npy format version " + std::to_string(data[6]) + "." +
                  std::to_string(data[7]) + " is not one this tool reads (1.0, 2.0, 3.0)");
  }
  const int len_bytes = h.major_version == 1 ? 2 : 4;
  const std::size_t prefix = 8 + static_cast<std::size_t>(len_bytes);
  if (size < prefix) throw Failure(quoted(name) + ": truncated .npy header");
  const std::uint64_t header_len = read_le(data + 8, len_bytes);
  if (header_len > size - prefix) {
    throw Failure(quoted(name) + ": truncated .npy header (it says " +
                  std::to_string(header_len) + " bytes, the file has " +
                  std::to_string(size - prefix) + " after the prefix)");
  }
  const std::string text(reinterpret_cast<const char*>(data + prefix),
                         static_cast<std::size_t>(header_len));
  if (h.major_version < 3) {
    for (const char c : text) {
      if (static_cast<unsigned char>(c) >= 0x80) {
        throw Failure(quoted(name) + ": a version 1/2 .npy header must be ASCII");
      }
    }
  }
  HeaderParser(text, name).parse(&h);
  parse_descr(&h, name);
  if (h.fortran_order && h.shape.size() > 1) {
    throw Failure(quoted(name) + ": the array is in Fortran order; save a C-ordered copy, "
                  "e.g. np.save(path, np.ascontiguousarray(a))");
  }
  h.data_offset = prefix + static_cast<std::size_t>(header_len);
  std::size_t count = 1;
  for (const std::int64_t d : h.shape) {
    const std::size_t du = static_cast<std::size_t>(d);
    if (du != 0 && count > std::numeric_limits<std::size_t>::max() / du / h.item_size) {
      throw Failure(quoted(name) + ": shape " + shape_string(h.shape) + " is too large");
    }
    count *= du;
  }
  h.element_count = count;
  const std::size_t want = count * h.item_size;
  const std::size_t have = size - h.data_offset;
  if (have < want) {
    throw Failure(quoted(name) + ": truncated: shape " + shape_string(h.shape) + " of " +
                  dtype_name(h) + " needs " + std::to_string(want) + " bytes of data, the file has " +
                  std::to_string(have));
  }
  if (have > want) {
    throw Failure(quoted(name) + ": " + std::to_string(have - want) +
                  " bytes follow the array's data (shape " + shape_string(h.shape) + " of " +
                  dtype_name(h) + "); not a .npy file as numpy.save writes it");
  }
  return h;
}

std::vector<std::uint8_t> read_whole_file(const std::string& path) {
  struct Closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Failure("cannot open " + quoted(path) + ": " + error_text());
  struct stat st {};
  if (fstat(fileno(f.get()), &st) != 0) {
    throw Failure("cannot read " + quoted(path) + ": " + error_text());
  }
  if (!S_ISREG(st.st_mode)) throw Failure(quoted(path) + " is not a regular file");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  const std::size_t n = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f.get());
  if (n != bytes.size()) {
    throw Failure("cannot read " + quoted(path) + ": " +
                  (std::ferror(f.get()) ? error_text() : std::string("the file shrank")));
  }
  return bytes;
}

FloatArray read_npy_floats(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_whole_file(path);
  return npy_floats(bytes.data(), bytes.size(), path);
}

FloatArray npy_floats(const std::uint8_t* data, std::size_t size, const std::string& path) {
  const NpyHeader h = parse_npy(data, size, path);
  if (h.kind != 'f' || (h.item_size != 2 && h.item_size != 4 && h.item_size != 8)) {
    throw Failure(quoted(path) + ": dtype " + dtype_name(h) +
                  " is not a float array (float32, or float16/float64 converted to float32); "
                  "e.g. np.save(path, a.astype(np.float32))");
  }
  FloatArray out;
  out.shape = h.shape;
  out.values.resize(h.element_count);
  const std::uint8_t* p = data + h.data_offset;
  if (h.item_size == 4) {
    if (!out.values.empty()) std::memcpy(out.values.data(), p, h.element_count * 4);
  } else if (h.item_size == 2) {
    out.converted_from = "float16";
    for (std::size_t i = 0; i < h.element_count; ++i) {
      out.values[i] = half_to_float(static_cast<std::uint16_t>(read_le(p + 2 * i, 2)));
    }
  } else {
    out.converted_from = "float64";
    for (std::size_t i = 0; i < h.element_count; ++i) {
      double d;
      std::memcpy(&d, p + 8 * i, 8);
      const float f = static_cast<float>(d);
      if (std::isinf(f) && std::isfinite(d)) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17g", d);
        throw Failure(quoted(path) + ": element " + std::to_string(i) + " (" + buf +
                      ") is outside float32's range");
      }
      out.values[i] = f;
    }
  }
  return out;
}

std::vector<std::int32_t> read_npy_lengths(const std::string& path,
                                           std::vector<std::int64_t>* shape) {
  const std::vector<std::uint8_t> bytes = read_whole_file(path);
  return npy_lengths(bytes.data(), bytes.size(), path, shape);
}

std::vector<std::int32_t> npy_lengths(const std::uint8_t* data, std::size_t size,
                                      const std::string& path, std::vector<std::int64_t>* shape) {
  const NpyHeader h = parse_npy(data, size, path);
  if ((h.kind != 'i' && h.kind != 'u') ||
      (h.item_size != 1 && h.item_size != 2 && h.item_size != 4 && h.item_size != 8)) {
    throw Failure(quoted(path) + ": sequence lengths must be integers (int32 or int64), got " +
                  dtype_name(h));
  }
  if (h.shape.size() != 1) {
    throw Failure(quoted(path) + ": sequence lengths must be 1-D [batch], got shape " +
                  shape_string(h.shape));
  }
  *shape = h.shape;
  std::vector<std::int32_t> out(h.element_count);
  const std::uint8_t* p = data + h.data_offset;
  const int n = static_cast<int>(h.item_size);
  for (std::size_t i = 0; i < h.element_count; ++i) {
    const std::uint64_t raw = read_le(p + i * h.item_size, n);
    std::int64_t v;
    constexpr auto kInt32Max = static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max());
    if (h.kind == 'u' && raw > kInt32Max) {
      throw Failure(quoted(path) + ": length " + std::to_string(i) + " (" + std::to_string(raw) +
                    ") does not fit in an int32");
    }
    if (h.kind == 'u' || n == 8) {
      v = static_cast<std::int64_t>(raw);
    } else {  // sign-extend
      const std::uint64_t sign = std::uint64_t{1} << (8 * n - 1);
      v = static_cast<std::int64_t>((raw ^ sign)) - static_cast<std::int64_t>(sign);
    }
    if (v < std::numeric_limits<std::int32_t>::min() ||
        v > std::numeric_limits<std::int32_t>::max()) {
      throw Failure(quoted(path) + ": length " + std::to_string(i) + " (" + std::to_string(v) +
                    ") does not fit in an int32");
    }
    out[i] = static_cast<std::int32_t>(v);
  }
  return out;
}

std::vector<std::uint8_t> npy_image_float32(const float* values,
                                            const std::vector<std::int64_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " +
                     shape_string(shape) + ", }";
  std::size_t count = 1;
  for (const std::int64_t d : shape) count *= static_cast<std::size_t>(d);
  // Pad with spaces and end with '\n' so the data start at a multiple of 64 bytes.
  std::size_t prefix = 10;
  if (dict.size() + 1 + prefix > 65535) prefix = 12;
  const std::size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict.push_back('\n');
  std::vector<std::uint8_t> out;
  out.reserve(total + count * 4);
  const std::uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  out.insert(out.end(), magic, magic + 6);
  out.push_back(prefix == 10 ? 1 : 2);
  out.push_back(0);
  const std::size_t hl = dict.size();
  for (std::size_t i = 0; i < prefix - 8; ++i) out.push_back(static_cast<std::uint8_t>(hl >> (8 * i)));
  out.insert(out.end(), dict.begin(), dict.end());
  const std::uint8_t* v = reinterpret_cast<const std::uint8_t*>(values);
  if (count > 0) out.insert(out.end(), v, v + count * 4);
  return out;
}

namespace {

// Writes all of `bytes` to an open file and closes it; "" or why it failed.
std::string write_and_close(std::FILE* f, const std::vector<std::uint8_t>& bytes) {
  const std::size_t n = bytes.empty() ? 0 : std::fwrite(bytes.data(), 1, bytes.size(), f);
  const bool flushed = std::fflush(f) == 0;
  std::string why = n == bytes.size() && flushed ? std::string() : error_text();
  if (std::fclose(f) != 0 && why.empty()) why = error_text();
  return why;
}

}  // namespace

namespace {

// The directory part of a path ("" or ending in '/') and its last component.
std::pair<std::string, std::string> split_path(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {std::string(), path};
  return {path.substr(0, slash + 1), path.substr(slash + 1)};
}

}  // namespace

OutputFile::OutputFile(const std::string& path, std::vector<std::uint8_t> bytes)
    : path_(path), target_(path), bytes_(std::move(bytes)) {
  struct stat st {};
  bool exists = stat(path.c_str(), &st) == 0;   // follows links
  struct stat lst {};
  if (lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    if (exists && S_ISREG(st.st_mode)) {
      // A link to a file: the file is replaced (the link stays a link).
      char* resolved = realpath(path.c_str(), nullptr);
      if (resolved == nullptr) throw Failure("cannot write " + quoted(path) + ": " + error_text());
      target_ = resolved;
      std::free(resolved);
    } else if (!exists) {
      // A link to a file not made yet (through any chain of links): the file is made.
      std::string why;
      if (!slstm::follow_links(path, &target_, &why)) {
        throw Failure("cannot write " + quoted(path) + ": cannot follow the symbolic link (" +
                      why + ")");
      }
    }   // else a link to a device, FIFO or socket (/dev/stdout): written through, below
  }
  const auto [dir, base] = split_path(target_);
  if (base.empty()) throw Failure(quoted(path) + " names a directory, not a file");
  if (exists && S_ISDIR(st.st_mode)) throw Failure(quoted(path) + " is a directory");
  if (exists && !S_ISREG(st.st_mode)) {
    // A device, FIFO or socket (e.g. /dev/null): written in place at commit, never replaced.
    direct_ = true;
    if (access(path.c_str(), W_OK) != 0) {
      throw Failure("cannot write " + quoted(path) + ": " + error_text());
    }
    target_ = path;
    return;
  }
  // A temporary file of a name no other process holds (mkstemp: created, never followed).
  std::string tmpl = dir + "." + base + ".tmp-XXXXXX";
  const int fd = mkstemp(&tmpl[0]);
  if (fd < 0) throw Failure("cannot write " + quoted(path) + ": " + error_text());
  tmp_ = tmpl;
  // The mode: a replaced file keeps its own (a private output stays private), a new one
  // gets what the umask leaves of 0666, as fopen would have made it.
  mode_t mode = 0;
  if (exists) {
    mode = st.st_mode & 07777;
  } else {
    const mode_t mask = umask(0);
    umask(mask);
    mode = 0666 & ~mask;
  }
  std::FILE* f = fchmod(fd, mode) == 0 ? fdopen(fd, "wb") : nullptr;
  if (f == nullptr) {
    const std::string why = error_text();
    close(fd);
    discard();
    throw Failure("cannot write " + quoted(path) + ": " + why);
  }
  const std::string why = write_and_close(f, bytes_);
  if (!why.empty()) {
    discard();
    throw Failure("cannot write " + quoted(path) + ": " + why);
  }
}

OutputFile::~OutputFile() { discard(); }

void OutputFile::discard() noexcept {
  if (!tmp_.empty()) std::remove(tmp_.c_str());
  tmp_.clear();
}

void OutputFile::commit() {
  if (direct_) {
    std::FILE* f = std::fopen(target_.c_str(), "wb");
    if (f == nullptr) throw Failure("cannot write " + quoted(path_) + ": " + error_text());
    const std::string why = write_and_close(f, bytes_);
    if (!why.empty()) throw Failure("cannot write " + quoted(path_) + ": " + why);
    return;
  }
  if (std::rename(tmp_.c_str(), target_.c_str()) != 0) {
    const std::string why = error_text();
    discard();
    throw Failure("cannot write " + quoted(path_) + ": " + why);
  }
  tmp_.clear();
}

namespace {

// A path's file as one spelling: the real path of its directory and its last component
// (the file need not exist; "" when the directory does not).
std::string canonical_file(const std::string& path) {
  const auto [dir, base] = split_path(path);
  char* real = realpath(dir.empty() ? "." : dir.c_str(), nullptr);
  if (real == nullptr) return std::string();
  std::string out = std::string(real) + "/" + base;
  std::free(real);
  return out;
}

}  // namespace

bool same_file(const std::string& a, const std::string& b) {
  if (a == b) return true;
  struct stat sa {}, sb {};
  if (stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0) {
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  }
  const std::string ca = canonical_file(a);   // a file not made yet, spelt two ways
  return !ca.empty() && ca == canonical_file(b);
}

void write_file_atomically(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  OutputFile(path, bytes).commit();
}

void write_npy_float32(const std::string& path, const float* values,
                       const std::vector<std::int64_t>& shape) {
  write_file_atomically(path, npy_image_float32(values, shape));
}

}  // namespace slstm_cli
