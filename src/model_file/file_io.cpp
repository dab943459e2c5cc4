// Model files on disk: load_model_file (the length, then the header, validated, then the
// tensor bytes through one bounded buffer) and save_model_file (atomic replacement).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "../file_path.hpp"
#include "../model_file.hpp"
#include "reader.hpp"
#include "writer.hpp"

namespace slstm {
namespace model_file {
namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Reads exactly n bytes (fewer only at the end of the file); returns the count read.
std::size_t read_full(int fd, unsigned char* buf, std::size_t n, const std::string& path) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, buf + got, std::min<std::size_t>(n - got, std::size_t{1} << 30));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(SLSTM_ERR_BACKEND_FAILURE,
           "path: reading \"" + path + "\" failed: " + std::strerror(errno));
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}

void write_full(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<std::size_t>(n, std::size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category());
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

std::atomic<unsigned> g_temp_counter{0};

// Where a save goes: the file the name refers to (a symbolic link is followed: its target
// is replaced), its directory and name, and the mode of a file already there.
struct SaveTarget {
  std::string target, dir, base;
  bool exists = false;
  mode_t mode = 0;
};

SaveTarget resolve_target(const std::string& path) {
  SaveTarget s;
  // Links are followed to the name at the end of the chain, whether a file is there or not
  // (a link to a file not made yet: the file is made, the link stays).
  std::string why;
  if (!follow_links(path, &s.target, &why)) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         "path: cannot follow the symbolic link \"" + path + "\": " + why);
  }
  struct stat st {};
  s.exists = ::stat(s.target.c_str(), &st) == 0;
  if (s.exists && !S_ISREG(st.st_mode)) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "path: \"" + path + "\" is not a regular file");
  }
  s.mode = st.st_mode;
  const std::size_t slash = s.target.rfind('/');
  s.dir = slash == std::string::npos ? "." : slash == 0 ? "/" : s.target.substr(0, slash);
  s.base = slash == std::string::npos ? s.target : s.target.substr(slash + 1);
  return s;
}

// A new file of our own (O_EXCL), named after the target and hidden; mode 0666 less the
// umask, as fopen would create it (the caller applies the old file's mode).
int create_temp(const SaveTarget& s, const std::string& path, std::string* temp) {
  int f = -1;
  for (int attempt = 0; f < 0; ++attempt) {
    *temp = (s.dir == "/" ? "" : s.dir) + "/." + s.base.substr(0, 160) + ".tmp-" +
            std::to_string(::getpid()) + "-" + std::to_string(g_temp_counter++);
    f = ::open(temp->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f < 0 && (errno != EEXIST || attempt >= 100)) {
      fail(SLSTM_ERR_INVALID_ARGUMENT,
           "path: cannot create \"" + path + "\": " + std::strerror(errno));
    }
  }
  return f;
}

// The image (length, header, tensors in file order) into fd; throws std::system_error.
void write_image(int fd, const std::string& text, const Model& model) {
  unsigned char len[8];
  encode_length(text.size(), len);
  write_full(fd, len, 8);
  write_full(fd, text.data(), text.size());
  for_each_tensor(model, [fd](std::size_t, int, int, const std::vector<float>& v) {
    write_full(fd, v.data(), v.size() * sizeof(float));
  });
}

// Opens path for reading; it must be a regular file. Returns its size.
std::uint64_t open_regular(const std::string& path, Fd* fd) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
  Fd opened(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (opened.get() < 0) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "path: cannot open \"" + path + "\": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(opened.get(), &st) != 0) {
    fail(SLSTM_ERR_BACKEND_FAILURE, "path: cannot stat \"" + path + "\": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "path: \"" + path + "\" is not a regular file");
  }
  const int flags = ::fcntl(opened.get(), F_GETFL);
  if (flags >= 0) ::fcntl(opened.get(), F_SETFL, flags & ~O_NONBLOCK);
  fd->reset(opened.release());
  return static_cast<std::uint64_t>(st.st_size);
}

}  // namespace
}  // namespace model_file

// Atomic replacement: the image goes to a new file beside the target (same directory, so the
// same file system), which is flushed to disk, then renamed over the target. Any failure
// before the rename removes the temporary and leaves the target as it was.
void save_model_file(const Model& model, const std::string& path,
                     const std::string& source_layout) {
  using namespace model_file;
  require_little_endian();
  std::size_t data_size = 0;
  const std::string text = header_text(model, check_source_layout(source_layout), &data_size);
  image_size(text, data_size);
  const SaveTarget s = resolve_target(path);
  std::string temp;
  Fd fd(create_temp(s, path, &temp));
  try {
    if (s.exists) ::fchmod(fd.get(), s.mode & 07777);  // best effort
    write_image(fd.get(), text, model);
    if (::fsync(fd.get()) != 0) throw std::system_error(errno, std::generic_category());
    if (::close(fd.release()) != 0) throw std::system_error(errno, std::generic_category());
    if (::rename(temp.c_str(), s.target.c_str()) != 0) {
      throw std::system_error(errno, std::generic_category());
    }
  } catch (const std::system_error& e) {
    fd.reset();
    ::unlink(temp.c_str());
    fail(SLSTM_ERR_BACKEND_FAILURE, "path: writing \"" + path + "\" failed: " +
                                        std::strerror(e.code().value()) +
                                        " (the file there before, if any, is unchanged)");
  } catch (...) {
    fd.reset();
    ::unlink(temp.c_str());
    throw;
  }
  // Make the rename itself durable (best effort: the new file is in place already).
  Fd dfd(::open(s.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());
}

// The header length first (8 bytes), checked against the size fstat reports; then the
// header, validated completely; only then the model's allocation and the tensor bytes, read
// front to back in kChunk pieces and converted in place (no copy of the whole file).
ModelPtr load_model_file(const std::string& path) {
  using namespace model_file;
  require_little_endian();
  Fd fd;
  const std::uint64_t size = open_regular(path, &fd);
  std::uint64_t pos = 0;
  auto changed = [&]() {
    fail(SLSTM_ERR_BACKEND_FAILURE, "path: \"" + path + "\" ended at byte " +
                                        std::to_string(pos) + " of the " + std::to_string(size) +
                                        " it had when opened (did it change while being read?)");
  };
  check_min_size(size);
  unsigned char first8[8];
  pos += read_full(fd.get(), first8, 8, path);
  if (pos != 8) changed();
  const std::size_t header_len = header_length(first8, size);
  Plan plan;
  {
    std::vector<unsigned char> header(header_len);
    pos += read_full(fd.get(), header.data(), header_len, path);
    if (pos != 8 + header_len) changed();
    plan = plan_model(header.data(), header_len, size - 8 - header_len);
  }
  // The data section through one buffer of at most kChunk bytes, refilled with as much as
  // fits (a tensor's bytes are handed out whole or in kChunk pieces, so they always fit).
  const std::uint64_t data_end = size;
  std::vector<unsigned char> buf(
      static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, size - pos)));
  std::size_t lo = 0, hi = 0;  // buf[lo, hi) is read and not yet handed out
  return build_model(plan, [&](std::size_t n) {
    if (hi - lo < n) {
      std::memmove(buf.data(), buf.data() + lo, hi - lo);
      hi -= lo;
      lo = 0;
      const std::size_t want = static_cast<std::size_t>(
          std::min<std::uint64_t>(buf.size() - hi, data_end - pos));
      const std::size_t got = read_full(fd.get(), buf.data() + hi, want, path);
      pos += got;
      hi += got;
      if (hi < n) changed();
    }
    const unsigned char* p = buf.data() + lo;
    lo += n;
    return p;
  });
}

}  // namespace slstm
