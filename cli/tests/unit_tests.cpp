// Unit tests of the tool's own parts: SHA-256 (published vectors), the .npy reader and
// writer, the option parser.  The tool as a whole is tested by cli_tests.sh and
// python/tests/test_cli.py.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "args.hpp"
#include "npy.hpp"
#include "sha256.hpp"
#include "util.hpp"

using namespace slstm_cli;

namespace {

std::string sha_hex(const std::string& s) {
  Sha256 h;
  h.update(s.data(), s.size());
  return to_hex(h.finish());
}

// A .npy image: magic, version, header length, `dict` padded to 64 bytes, then `data`.
std::vector<std::uint8_t> npy(const std::string& dict, const std::vector<std::uint8_t>& data,
                              int major = 1) {
  const std::size_t prefix = major == 1 ? 10 : 12;
  std::string h = dict;
  const std::size_t total = (prefix + h.size() + 1 + 63) / 64 * 64;
  h.append(total - prefix - h.size() - 1, ' ');
  h.push_back('\n');
  std::vector<std::uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y',
                                   static_cast<std::uint8_t>(major), 0};
  for (std::size_t i = 0; i < prefix - 8; ++i) out.push_back(static_cast<std::uint8_t>(h.size() >> (8 * i)));
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

template <class T>
std::vector<std::uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<std::uint8_t> b(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::string failure_of(const std::vector<std::uint8_t>& image) {
  try {
    parse_npy(image.data(), image.size(), "x.npy");
  } catch (const Failure& e) {
    return e.what();
  }
  return "(accepted)";
}

std::string usage_error_of(const std::vector<std::string>& args,
                           const std::vector<OptionSpec>& specs) {
  try {
    parse_args(args, specs);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

// ---- SHA-256 -------------------------------------------------------------------------------

TEST_CASE("sha256 of the empty message is the FIPS 180-4 value", "[sha256]") {
  CHECK(sha_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("sha256 of abc is the FIPS 180-4 value", "[sha256]") {
  CHECK(sha_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("sha256 of the 448-bit two-block message is the FIPS 180-4 value", "[sha256]") {
  CHECK(sha_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("sha256 of the 896-bit message is the FIPS 180-4 value", "[sha256]") {
  CHECK(sha_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqk"
                "lmnopqrlmnopqrsmnopqrstnopqrstu") ==
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST_CASE("sha256 of one million 'a' is the FIPS 180-4 value", "[sha256]") {
  CHECK(sha_hex(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256 padding boundaries: 55, 56, 63 and 64 bytes", "[sha256]") {
  // Lengths where the length field just fits, just does not, and a full block.
  CHECK(sha_hex(std::string(55, 'a')) ==
        "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  CHECK(sha_hex(std::string(56, 'a')) ==
        "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  CHECK(sha_hex(std::string(63, 'a')) ==
        "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34");
  CHECK(sha_hex(std::string(64, 'a')) ==
        "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST_CASE("sha256 gives the same digest however the message is split", "[sha256]") {
  std::mt19937 rng(7);
  std::string msg(10000, '\0');
  for (char& c : msg) c = static_cast<char>(rng() & 0xff);
  const std::string whole = sha_hex(msg);
  for (int trial = 0; trial < 20; ++trial) {
    Sha256 h;
    std::size_t pos = 0;
    while (pos < msg.size()) {
      std::size_t n = rng() % 150;
      if (n > msg.size() - pos) n = msg.size() - pos;
      h.update(msg.data() + pos, n);
      pos += n;
    }
    CHECK(to_hex(h.finish()) == whole);
  }
}

// ---- .npy ----------------------------------------------------------------------------------

TEST_CASE("npy: a written float32 array reads back with its shape and values", "[npy]") {
  const std::vector<float> v = {1.5f, -2.0f, 0.0f, 3.25f, 1e-30f, -1e30f};
  const std::vector<std::uint8_t> image = npy_image_float32(v.data(), {2, 1, 3});
  const NpyHeader h = parse_npy(image.data(), image.size(), "x.npy");
  CHECK(h.descr == "<f4");
  CHECK(h.shape == std::vector<std::int64_t>{2, 1, 3});
  CHECK(h.data_offset % 64 == 0);
  CHECK(std::memcmp(image.data() + h.data_offset, v.data(), v.size() * 4) == 0);
}

TEST_CASE("npy: the writer's header is what numpy writes for the shape", "[npy]") {
  const float v[2] = {1, 2};
  const std::vector<std::uint8_t> image = npy_image_float32(v, {2});
  const NpyHeader h = parse_npy(image.data(), image.size(), "x.npy");
  const std::string text(image.begin() + 10, image.begin() + static_cast<long>(h.data_offset));
  CHECK(h.data_offset == 128);
  CHECK(text.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 0) == 0);
  CHECK(image[6] == 1);
  CHECK(text.back() == '\n');
}

TEST_CASE("npy: an empty array (a zero dimension) round-trips", "[npy]") {
  const std::vector<std::uint8_t> image = npy_image_float32(nullptr, {3, 0, 4});
  const NpyHeader h = parse_npy(image.data(), image.size(), "x.npy");
  CHECK(h.element_count == 0);
  CHECK(h.shape == std::vector<std::int64_t>{3, 0, 4});
}

TEST_CASE("npy: version 2.0 and 3.0 headers are read", "[npy]") {
  const std::vector<float> v = {1, 2, 3};
  for (int major : {2, 3}) {
    const auto image =
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", bytes_of(v), major);
    const NpyHeader h = parse_npy(image.data(), image.size(), "x.npy");
    CHECK(h.major_version == major);
    CHECK(h.element_count == 3);
  }
}

TEST_CASE("npy: keys in any order and double quotes are accepted", "[npy]") {
  const std::vector<float> v = {1, 2};
  const auto image = npy("{\"shape\": (1, 2), \"fortran_order\": False, \"descr\": \"<f4\"}",
                         bytes_of(v));
  CHECK(parse_npy(image.data(), image.size(), "x.npy").shape ==
        std::vector<std::int64_t>{1, 2});
}

TEST_CASE("npy: a file that does not start with the magic is refused", "[npy]") {
  const std::vector<std::uint8_t> junk = {'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK_THAT(failure_of(junk), Catch::Contains("not a .npy file"));
}

TEST_CASE("npy: an unknown format version is refused", "[npy]") {
  auto image = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", {});
  image[6] = 4;
  CHECK_THAT(failure_of(image), Catch::Contains("format version 4.0"));
}

TEST_CASE("npy: big-endian data is refused with how to fix it", "[npy]") {
  const auto image = npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                         {0, 0, 0x80, 0x3f});
  CHECK_THAT(failure_of(image), Catch::Contains("big-endian") && Catch::Contains(">f4"));
}

TEST_CASE("npy: a Fortran-ordered matrix is refused", "[npy]") {
  const auto image = npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                         std::vector<std::uint8_t>(16, 0));
  CHECK_THAT(failure_of(image), Catch::Contains("Fortran order"));
}

TEST_CASE("npy: a Fortran-ordered 1-D array is read (its layout is C order)", "[npy]") {
  const auto image = npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
                         std::vector<std::uint8_t>(8, 0));
  CHECK(failure_of(image) == "(accepted)");
}

TEST_CASE("npy: an object array is refused", "[npy]") {
  const auto image = npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
                         std::vector<std::uint8_t>(8, 0));
  CHECK_THAT(failure_of(image), Catch::Contains("object array"));
}

TEST_CASE("npy: a structured dtype is refused", "[npy]") {
  const auto image = npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                         std::vector<std::uint8_t>(4, 0));
  CHECK_THAT(failure_of(image), Catch::Contains("structured"));
}

TEST_CASE("npy: a string dtype is refused", "[npy]") {
  const auto image = npy("{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }",
                         std::vector<std::uint8_t>(12, 0));
  CHECK_THAT(failure_of(image), Catch::Contains("not a plain numeric dtype"));
}

TEST_CASE("npy: truncated data is refused with both byte counts", "[npy]") {
  const auto image = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                         std::vector<std::uint8_t>(20, 0));
  CHECK_THAT(failure_of(image), Catch::Contains("truncated") && Catch::Contains("24 bytes") &&
                                    Catch::Contains("has 20"));
}

TEST_CASE("npy: bytes after the data are refused", "[npy]") {
  const auto image = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
                         std::vector<std::uint8_t>(8, 0));
  CHECK_THAT(failure_of(image), Catch::Contains("4 bytes follow"));
}

TEST_CASE("npy: a header length past the end of the file is refused", "[npy]") {
  auto image = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", {});
  image[8] = 0xff;
  image[9] = 0x7f;
  CHECK_THAT(failure_of(image), Catch::Contains("truncated .npy header"));
}

TEST_CASE("npy: a header without shape is refused naming the key", "[npy]") {
  const auto image = npy("{'descr': '<f4', 'fortran_order': False, }", {});
  CHECK_THAT(failure_of(image), Catch::Contains("lacks the key 'shape'"));
}

TEST_CASE("npy: a header with an unknown key is refused", "[npy]") {
  const auto image =
      npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0,), 'extra': 1}", {});
  CHECK_THAT(failure_of(image), Catch::Contains("unknown key 'extra'"));
}

TEST_CASE("npy: a shape whose byte count overflows is refused", "[npy]") {
  const auto image = npy(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", {});
  CHECK_THAT(failure_of(image), Catch::Contains("too large"));
}

TEST_CASE("npy: a header string with a backslash escape is refused", "[npy]") {
  const auto image = npy("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (0,), }", {});
  CHECK_THAT(failure_of(image), Catch::Contains("escaped string"));
}

TEST_CASE("npy: a dimension beyond int64 is refused", "[npy]") {
  const auto image =
      npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", {});
  CHECK_THAT(failure_of(image), Catch::Contains("dimension too large"));
}

TEST_CASE("npy: Python 2 long literals in the shape are read", "[npy]") {
  const std::vector<float> v = {1, 2, 3};
  const auto image = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3L,), }",
                         bytes_of(v));
  CHECK(parse_npy(image.data(), image.size(), "x.npy").shape == std::vector<std::int64_t>{3});
}

TEST_CASE("npy: a shape of more than 32 dimensions is refused", "[npy]") {
  std::string shape;
  for (int i = 0; i < 33; ++i) shape += "1, ";
  const auto image =
      npy("{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }", {0, 0, 0, 0});
  CHECK_THAT(failure_of(image), Catch::Contains("more than 32 dimensions"));
}

TEST_CASE("npy: big-endian float16 is refused", "[npy]") {
  const auto image = npy("{'descr': '>f2', 'fortran_order': False, 'shape': (1,), }",
                         {0x3c, 0x00});
  CHECK_THAT(failure_of(image), Catch::Contains("big-endian"));
}

TEST_CASE("npy: a version 1 header with a non-ASCII byte is refused", "[npy]") {
  auto image = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", {});
  image[image.size() - 2] = 0xe9;  // a padding space before the final newline
  CHECK_THAT(failure_of(image), Catch::Contains("must be ASCII"));
}

TEST_CASE("npy: a dtype with characters after its size is refused", "[npy]") {
  const auto image = npy("{'descr': '<f4x', 'fortran_order': False, 'shape': (1,), }",
                         {0, 0, 0, 0});
  CHECK_THAT(failure_of(image), Catch::Contains("not a plain numeric dtype"));
}

// ---- conversions through files -------------------------------------------------------------

namespace {
// A private temporary directory for the files these tests write, removed at exit.
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                          "/slstm_cli_unit_XXXXXX";
    if (mkdtemp(&pattern[0]) != nullptr) path_ = pattern;
  }
  ~ScratchDir() {
    for (const std::string& f : files_) std::remove(f.c_str());
    if (!path_.empty()) rmdir(path_.c_str());
  }
  std::string file(const std::string& name) {
    REQUIRE(!path_.empty());
    files_.push_back(path_ + "/" + name);
    return files_.back();
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

std::string scratch(const std::string& name) {
  static ScratchDir dir;
  return dir.file(name);
}
void put(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  write_file_atomically(path, bytes);
}
}  // namespace

TEST_CASE("npy: float64 input is converted to the nearest float32, and says so", "[npy]") {
  const std::vector<double> v = {0.1, -3.0, 1e-300};
  const std::string p = scratch("f64.npy");
  put(p, npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", bytes_of(v)));
  const FloatArray a = read_npy_floats(p);
  CHECK(a.converted_from == "float64");
  CHECK(a.values == std::vector<float>{0.1f, -3.0f, 0.0f});
}

TEST_CASE("npy: a float64 value beyond float32's range is refused naming its index", "[npy]") {
  const std::vector<double> v = {1.0, 1e39};
  const std::string p = scratch("f64big.npy");
  put(p, npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", bytes_of(v)));
  CHECK_THROWS_WITH(read_npy_floats(p), Catch::Contains("element 1") &&
                                            Catch::Contains("outside float32's range"));
}

TEST_CASE("npy: float16 input is converted exactly", "[npy]") {
  // 1, -2, 65504 (largest), 2^-24 (smallest subnormal), -0, inf
  const std::vector<std::uint16_t> v = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00};
  const std::string p = scratch("f16.npy");
  put(p, npy("{'descr': '<f2', 'fortran_order': False, 'shape': (6,), }", bytes_of(v)));
  const FloatArray a = read_npy_floats(p);
  CHECK(a.converted_from == "float16");
  CHECK(a.values[0] == 1.0f);
  CHECK(a.values[1] == -2.0f);
  CHECK(a.values[2] == 65504.0f);
  CHECK(a.values[3] == std::ldexp(1.0f, -24));
  CHECK((a.values[4] == 0.0f && std::signbit(a.values[4])));
  CHECK(std::isinf(a.values[5]));
}

TEST_CASE("npy: integer data given as floats is refused naming the dtype", "[npy]") {
  const std::vector<std::int32_t> v = {1, 2};
  const std::string p = scratch("i32.npy");
  put(p, npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", bytes_of(v)));
  CHECK_THROWS_WITH(read_npy_floats(p), Catch::Contains("int32 is not a float array"));
}

TEST_CASE("npy: int64 lengths are read", "[npy]") {
  const std::vector<std::int64_t> v = {3, 0, 7};
  const std::string p = scratch("len64.npy");
  put(p, npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", bytes_of(v)));
  std::vector<std::int64_t> shape;
  CHECK(read_npy_lengths(p, &shape) == std::vector<std::int32_t>{3, 0, 7});
}

TEST_CASE("npy: negative int32 lengths are passed on (the library rejects them)", "[npy]") {
  const std::vector<std::int32_t> v = {-1, 2};
  const std::string p = scratch("len32.npy");
  put(p, npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", bytes_of(v)));
  std::vector<std::int64_t> shape;
  CHECK(read_npy_lengths(p, &shape) == std::vector<std::int32_t>{-1, 2});
}

TEST_CASE("npy: an int64 length beyond int32 is refused", "[npy]") {
  const std::vector<std::int64_t> v = {1, std::int64_t{1} << 31};
  const std::string p = scratch("lenbig.npy");
  put(p, npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", bytes_of(v)));
  std::vector<std::int64_t> shape;
  CHECK_THROWS_WITH(read_npy_lengths(p, &shape), Catch::Contains("length 1 (2147483648)"));
}

TEST_CASE("npy: unsigned lengths beyond int32 are refused naming their value", "[npy]") {
  const std::vector<std::uint32_t> v = {1, 2147483648u};
  const std::string p = scratch("lenu32.npy");
  put(p, npy("{'descr': '<u4', 'fortran_order': False, 'shape': (2,), }", bytes_of(v)));
  std::vector<std::int64_t> shape;
  CHECK_THROWS_WITH(read_npy_lengths(p, &shape), Catch::Contains("length 1 (2147483648)"));
  const std::vector<std::uint64_t> v64 = {std::uint64_t{1} << 63};  // negative as an int64
  const std::string p64 = scratch("lenu64.npy");
  put(p64, npy("{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }", bytes_of(v64)));
  CHECK_THROWS_WITH(read_npy_lengths(p64, &shape),
                    Catch::Contains("length 0 (9223372036854775808)"));
}

TEST_CASE("npy: int8 and int16 lengths are read, negative ones sign-extended", "[npy]") {
  const std::vector<std::int8_t> v8 = {3, -1};
  const std::vector<std::int16_t> v16 = {300, -2};
  const std::string p8 = scratch("len8.npy"), p16 = scratch("len16.npy");
  put(p8, npy("{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }", bytes_of(v8)));
  put(p16, npy("{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }", bytes_of(v16)));
  std::vector<std::int64_t> shape;
  CHECK(read_npy_lengths(p8, &shape) == std::vector<std::int32_t>{3, -1});
  CHECK(read_npy_lengths(p16, &shape) == std::vector<std::int32_t>{300, -2});
}

TEST_CASE("npy: float lengths are refused", "[npy]") {
  const std::vector<float> v = {1, 2};
  const std::string p = scratch("lenf.npy");
  put(p, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", bytes_of(v)));
  std::vector<std::int64_t> shape;
  CHECK_THROWS_WITH(read_npy_lengths(p, &shape), Catch::Contains("must be integers"));
}

TEST_CASE("npy: 2-D lengths are refused", "[npy]") {
  const std::vector<std::int32_t> v = {1, 2};
  const std::string p = scratch("len2d.npy");
  put(p, npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2), }", bytes_of(v)));
  std::vector<std::int64_t> shape;
  CHECK_THROWS_WITH(read_npy_lengths(p, &shape), Catch::Contains("must be 1-D"));
}

TEST_CASE("an output path ending in / is refused as a directory, nothing made", "[npy]") {
  const std::string dir = scratch("not_made");
  CHECK_THROWS_WITH(write_file_atomically(dir + "/", {1, 2}),
                    Catch::Contains("names a directory, not a file"));
  CHECK(access(dir.c_str(), F_OK) != 0);
}

TEST_CASE("npy: a missing file is a Failure naming it", "[npy]") {
  CHECK_THROWS_WITH(read_npy_floats("no/such/file.npy"),
                    Catch::Contains("cannot open no/such/file.npy"));
}

TEST_CASE("npy: a directory is refused", "[npy]") {
  CHECK_THROWS_WITH(read_npy_floats("."), Catch::Contains("not a regular file"));
}

// ---- options -------------------------------------------------------------------------------

TEST_CASE("args: --name value, --name=value, -o value and -ovalue all set the option",
          "[args]") {
  const std::vector<OptionSpec> specs = {{"output", 'o', true}, {"time", 0, true}};
  for (const auto& words : std::vector<std::vector<std::string>>{
           {"--output", "y", "--time", "5"}, {"--output=y", "--time=5"}, {"-o", "y", "--time=5"},
           {"-oy", "--time", "5"}}) {
    const ParsedArgs a = parse_args(words, specs);
    CHECK(a.get("output") == "y");
    CHECK(a.get_int("time", 0, 0, 10) == 5);
  }
}

TEST_CASE("args: words after -- are positionals even when they start with -", "[args]") {
  const ParsedArgs a = parse_args({"--", "-x.npy"}, {});
  CHECK(a.positionals == std::vector<std::string>{"-x.npy"});
}

TEST_CASE("args: an unknown option is a usage error naming it", "[args]") {
  CHECK(usage_error_of({"--nope"}, {}) == "unknown option --nope");
}

TEST_CASE("args: an option given twice is a usage error", "[args]") {
  CHECK(usage_error_of({"--time", "1", "--time", "2"}, {{"time", 0, true}}) ==
        "--time is given more than once");
}

TEST_CASE("args: an option without its value is a usage error", "[args]") {
  CHECK(usage_error_of({"--time"}, {{"time", 0, true}}) == "--time needs a value");
}

TEST_CASE("args: a flag given a value is a usage error", "[args]") {
  CHECK(usage_error_of({"--json=1"}, {{"json", 0, false}}) == "--json takes no value");
}

TEST_CASE("args: a non-integer or out-of-range integer is a usage error", "[args]") {
  const ParsedArgs a = parse_args({"--n", "12x", "--m", "99"}, {{"n", 0, true}, {"m", 0, true}});
  CHECK_THROWS_WITH(a.get_int("n", 0, 0, 50), "--n needs an integer (0 to 50), got \"12x\"");
  CHECK_THROWS_WITH(a.get_int("m", 0, 0, 50), "--m must be between 0 and 50, got 99");
}

TEST_CASE("args: -h or --help asks for help, but not after --", "[args]") {
  CHECK(wants_help({"x.npy", "-h"}));
  CHECK(wants_help({"--help"}));
  CHECK_FALSE(wants_help({"--", "-h"}));
  CHECK_FALSE(wants_help({"-hx"}));
}

TEST_CASE("args: a lone - is a positional, not an option", "[args]") {
  CHECK(parse_args({"-"}, {}).positionals == std::vector<std::string>{"-"});
}

TEST_CASE("args: an integer at either end of its range is accepted", "[args]") {
  const ParsedArgs a = parse_args({"--n", "50", "--m", "-3"}, {{"n", 0, true}, {"m", 0, true}});
  CHECK(a.get_int("n", 0, 0, 50) == 50);
  CHECK(a.get_int("m", 0, -3, 5) == -3);
}

TEST_CASE("args: a minus sign inside an integer is a usage error", "[args]") {
  const ParsedArgs a = parse_args({"--n", "1-2"}, {{"n", 0, true}});
  CHECK_THROWS_WITH(a.get_int("n", 0, 0, 50), "--n needs an integer (0 to 50), got \"1-2\"");
}

TEST_CASE("args: a choice outside the list is a usage error listing the choices", "[args]") {
  const ParsedArgs a = parse_args({"--backend", "tpu"}, {{"backend", 0, true}});
  CHECK_THROWS_WITH(a.get_choice("backend", "cpu", {"cpu", "cuda"}),
                    "--backend must be cpu or cuda, got \"tpu\"");
}

TEST_CASE("one_line folds newlines into spaces", "[util]") {
  CHECK(one_line("a\nb\r\n\tc\n") == "a b c");
}

TEST_CASE("one_line folds tabs and carriage returns too and drops other control bytes",
          "[util]") {
  CHECK(one_line("a\tb\rc") == "a b c");
  CHECK(one_line("a\x01" "b\x7f" "\x1b[0m") == "ab[0m");
}

TEST_CASE("quoted puts a path in quotes only when it is empty or has a space", "[util]") {
  CHECK(quoted("model.safetensors") == "model.safetensors");
  CHECK(quoted("my model.safetensors") == "\"my model.safetensors\"");
  CHECK(quoted("") == "\"\"");
}

TEST_CASE("human_bytes gives bytes below 1 KiB, else one decimal and the exact count",
          "[util]") {
  CHECK(human_bytes(0) == "0 bytes");
  CHECK(human_bytes(1023) == "1023 bytes");
  CHECK(human_bytes(1536) == "1.5 KiB (1536 bytes)");
  CHECK(human_bytes(3735296) == "3.6 MiB (3735296 bytes)");
}
