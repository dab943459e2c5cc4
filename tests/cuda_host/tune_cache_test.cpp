// The CUDA module's tuning cache file (cuda/tune_cache.hpp), which is plain C++: checked on
// every machine, GPU or not.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "tune_cache.hpp"

using slstm_cuda::StackKey;
using slstm_cuda::StepPath;
using slstm_cuda::TuneCache;
using slstm_cuda::TuneKey;
using slstm_cuda::tune_file_target;

namespace {

TuneKey key(std::int64_t h, std::int64_t b, const char* precision = "fp32",
            const char* device = "NVIDIA H200 sm90 132sm",
            const char* timed = "cublas+fused+persistent") {
  TuneKey k;
  k.device = device;
  k.precision = precision;
  k.input = 128;
  k.hidden = h;
  k.batch = b;
  k.timed = timed;
  return k;
}

StackKey stack(const char* hidden, std::int64_t b) {
  StackKey k;
  k.device = "NVIDIA H200 sm90 132sm";
  k.precision = "fp32";
  k.input = 128;
  k.hidden = hidden;
  k.batch = b;
  return k;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh folder under /tmp, removed with what it holds (files only) at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/slstm_tune_XXXXXX";
    const char* p = mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~TempDir() {  // every file in it (the cache, its lock, what a test put there)
    if (DIR* d = opendir(path.c_str())) {
      while (const dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") std::remove((path + "/" + name).c_str());
      }
      closedir(d);
    }
    rmdir(path.c_str());
  }
};

}  // namespace

TEST_CASE("tuning cache: entries survive serialize and parse, one TAB-separated line each",
          "[tune]") {
  TuneCache c;
  c.put(key(300, 10), StepPath::kPersistent);
  c.put(key(100, 1, "tf32"), StepPath::kFused);
  c.put(key(2048, 4, "fp32", "NVIDIA H100 80GB HBM3 sm90 132sm"), StepPath::kCublas);
  const std::string text = c.serialize();
  CHECK(text.rfind(std::string(TuneCache::kHeader) + "\n", 0) == 0);
  CHECK(text.find("NVIDIA H200 sm90 132sm\tfp32\t128\t300\t10\tpersistent\t"
                  "cublas+fused+persistent\n") != std::string::npos);
  TuneCache back;
  REQUIRE(back.parse(text));
  CHECK(back.size() == 3);
  CHECK(back.skipped() == 0);
  StepPath p = StepPath::kCublas;
  REQUIRE(back.find(key(100, 1, "tf32"), &p));
  CHECK(p == StepPath::kFused);
  REQUIRE(back.find(key(2048, 4, "fp32", "NVIDIA H100 80GB HBM3 sm90 132sm"), &p));
  CHECK(p == StepPath::kCublas);
  CHECK_FALSE(back.find(key(100, 1, "fp32"), &p));  // another precision is another key
  CHECK(back.serialize() == text);
}

TEST_CASE("tuning cache: a stack's choice survives serialize, parse, store and load, beside "
          "the layers' entries",
          "[tune]") {
  TuneCache c;
  c.put(key(300, 10), StepPath::kPersistent);
  c.put_stack(stack("100:200:300", 10), true);
  c.put_stack(stack("100:200:300", 3), false);
  const std::string text = c.serialize();
  CHECK(text.find("NVIDIA H200 sm90 132sm\tfp32\t128\t100:200:300\t10\tstack\n") !=
        std::string::npos);
  CHECK(text.find("\t100:200:300\t3\tlayers\n") != std::string::npos);
  TuneCache back;
  REQUIRE(back.parse(text));
  CHECK(back.size() == 1);
  CHECK(back.stack_size() == 2);
  CHECK(back.skipped() == 0);
  bool whole = false;
  REQUIRE(back.find_stack(stack("100:200:300", 10), &whole));
  CHECK(whole);
  REQUIRE(back.find_stack(stack("100:200:300", 3), &whole));
  CHECK_FALSE(whole);
  CHECK_FALSE(back.find_stack(stack("100:200", 10), &whole));  // another stack
  CHECK(back.serialize() == text);
  TempDir d;
  std::string why;
  REQUIRE(c.store(d.path + "/cache", &why));
  TuneCache more;
  more.put_stack(stack("64:64", 1), true);
  REQUIRE(more.store(d.path + "/cache", &why));  // merges with the file's entries
  TuneCache loaded;
  REQUIRE(loaded.load(d.path + "/cache", &why));
  CHECK(loaded.stack_size() == 3);
  CHECK(loaded.size() == 1);
}

TEST_CASE("tuning cache: a stack line that does not parse is skipped", "[tune]") {
  const std::string h = std::string(TuneCache::kHeader) + "\n";
  TuneCache c;
  REQUIRE(c.parse(h + "dev\tfp32\t8\t16:32\t2\tstack\n"      // good
                      "dev\tfp32\t8\t16:32\t2\tfused\n"      // a layer's path
                      "dev\tfp32\t8\t16:\t2\tstack\n"        // empty size
                      "dev\tfp32\t8\t16:0\t2\tlayers\n"      // size 0
                      "dev\tfp32\t8\t:16\t2\tstack\n"        // empty first size
                      "dev\tfp16\t8\t16:32\t2\tstack\n"      // precision
                      "dev\tfp32\t8\t16:32\t2\n"              // field missing
                      "dev\tfp32\t8\t16:32:48\t4\tlayers\n"));  // good
  CHECK(c.stack_size() == 2);
  CHECK(c.size() == 0);
  CHECK(c.skipped() == 6);
}

TEST_CASE("tuning cache: a line that does not parse is skipped, the others are kept", "[tune]") {
  const std::string h = std::string(TuneCache::kHeader) + "\n";
  TuneCache c;
  REQUIRE(c.parse(h + "# a comment\n\n"
                      "dev\tfp32\t8\t16\t2\tfused\n"          // good
                      "dev\tfp16\t8\t16\t2\tfused\n"          // precision
                      "dev\tfp32\t0\t16\t2\tfused\n"          // input 0
                      "dev\tfp32\t08\t16\t2\tfused\n"         // leading zero
                      "dev\tfp32\t8\t16\t2\tgraph\n"          // path
                      "dev\tfp32\t8\t16\t2\n"                 // field missing
                      "dev\tfp32\t8\t16\t2\tfused\textra\n"   // timed set
                      "dev\tfp32\t8\t16\t2\tfused\tcublas+fused\tx\n"  // field extra
                      "dev\tfp32\t8\t99999999999\t2\tfused\n" // beyond int
                      "\tfp32\t8\t16\t2\tfused\n"             // no device
                      "d\x01v\tfp32\t8\t16\t2\tfused\n"       // control character
                      "dev\tfp32\t8\t16\t3\tcublas\r\n"));    // CRLF: good
  CHECK(c.size() == 2);
  CHECK(c.skipped() == 10);
}

TEST_CASE("tuning cache: an entry is taken only by a session that times the same paths",
          "[tune]") {
  // A choice among cuBLAS and the fused step says nothing about the persistent kernel that a
  // session with cuda.persistent=on could run: that session times again.
  TuneCache c;
  c.put(key(256, 2, "fp32", "NVIDIA H200 sm90 132sm", "cublas+fused"), StepPath::kFused);
  StepPath p = StepPath::kCublas;
  CHECK_FALSE(c.find(key(256, 2, "fp32", "NVIDIA H200 sm90 132sm", "cublas+fused+persistent"),
                     &p));
  REQUIRE(c.find(key(256, 2, "fp32", "NVIDIA H200 sm90 132sm", "cublas+fused"), &p));
  CHECK(p == StepPath::kFused);
  // Both kinds of session keep their own entry, side by side in the file.
  c.put(key(256, 2), StepPath::kPersistent);
  TuneCache back;
  REQUIRE(back.parse(c.serialize()));
  CHECK(back.size() == 2);
  REQUIRE(back.find(key(256, 2), &p));
  CHECK(p == StepPath::kPersistent);
}

TEST_CASE("tuning cache: the timed paths are named in one order, whatever the candidates'",
          "[tune]") {
  using slstm_cuda::timed_paths_name;
  CHECK(timed_paths_name({StepPath::kPersistent, StepPath::kCublas, StepPath::kFused}) ==
        "cublas+fused+persistent");
  CHECK(timed_paths_name(std::vector<StepPath>{StepPath::kCublas, StepPath::kPersistent}) ==
        "cublas+persistent");
  CHECK(timed_paths_name({StepPath::kFused, StepPath::kFused}) == "fused");
}

TEST_CASE("tuning cache: a line of a version before 0.12 (no timed paths) is kept, not taken",
          "[tune]") {
  const std::string h = std::string(TuneCache::kHeader) + "\n";
  const std::string old_line = "dev\tfp32\t8\t16\t2\tfused\n";
  TuneCache c;
  REQUIRE(c.parse(h + old_line));
  CHECK(c.size() == 1);
  CHECK(c.skipped() == 0);
  StepPath p = StepPath::kCublas;
  for (const char* timed : {"cublas+fused", "cublas+fused+persistent"}) {
    TuneKey k;
    k.device = "dev";
    k.precision = "fp32";
    k.input = 8;
    k.hidden = 16;
    k.batch = 2;
    k.timed = timed;
    CHECK_FALSE(c.find(k, &p));
  }
  CHECK(c.serialize() == h + old_line);  // written back as it was, for the older version
}

TEST_CASE("tuning cache: a timed set that does not parse makes the line skipped", "[tune]") {
  const std::string h = std::string(TuneCache::kHeader) + "\n";
  TuneCache c;
  REQUIRE(c.parse(h + "dev\tfp32\t8\t16\t2\tfused\tcublas+fused\n"               // good
                      "dev\tfp32\t8\t16\t3\tfused\tfused+cublas\n"               // order
                      "dev\tfp32\t8\t16\t4\tfused\tfused\n"                      // one path
                      "dev\tfp32\t8\t16\t5\tfused\tcublas+cublas\n"              // repeat
                      "dev\tfp32\t8\t16\t6\tpersistent\tcublas+fused\n"          // chosen
                      "dev\tfp32\t8\t16\t7\tfused\t\n"                           // empty
                      "dev\tfp32\t8\t16\t8\tcublas\tcublas+fused+persistent\n"));  // good
  CHECK(c.size() == 2);
  CHECK(c.skipped() == 5);
}

TEST_CASE("tuning cache: a text without the header is not a cache, an empty one is empty",
          "[tune]") {
  TuneCache c;
  CHECK_FALSE(c.parse("dev\tfp32\t8\t16\t2\tfused\n"));
  CHECK(c.size() == 0);
  CHECK(c.parse(""));
  CHECK(c.size() == 0);
}

TEST_CASE("tuning cache: store writes the file, merging what it held, and load reads it back",
          "[tune]") {
  TempDir d;
  const std::string path = d.path + "/cache";
  std::string why;
  TuneCache none;
  CHECK(none.load(path, &why));  // no file yet: an empty cache
  CHECK(none.size() == 0);
  TuneCache first;
  first.put(key(100, 1), StepPath::kFused);
  first.put(key(200, 1), StepPath::kCublas);
  REQUIRE(first.store(path, &why));
  TuneCache second;
  second.put(key(200, 1), StepPath::kPersistent);  // replaces the file's entry
  second.put(key(300, 1), StepPath::kFused);
  REQUIRE(second.store(path, &why));
  std::vector<std::string> files;  // the temporary renamed, not left behind
  if (DIR* dir = opendir(d.path.c_str())) {
    while (const dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') files.push_back(e->d_name);
    }
    closedir(dir);
  }
  std::sort(files.begin(), files.end());
  CHECK(files == std::vector<std::string>{"cache", "cache.lock"});
  TuneCache back;
  REQUIRE(back.load(path, &why));
  CHECK(back.size() == 3);
  StepPath p = StepPath::kCublas;
  REQUIRE(back.find(key(200, 1), &p));
  CHECK(p == StepPath::kPersistent);
  REQUIRE(back.find(key(100, 1), &p));
  CHECK(p == StepPath::kFused);
}

TEST_CASE("tuning cache: a file that is not a cache is neither read nor overwritten",
          "[tune]") {
  TempDir d;
  const std::string path = d.path + "/other";
  {
    std::ofstream out(path);
    out << "precious data\n";
  }
  std::string why;
  TuneCache c;
  CHECK_FALSE(c.load(path, &why));
  CHECK(why.find("not a libstacklstm tuning cache") != std::string::npos);
  c.put(key(100, 1), StepPath::kFused);
  CHECK_FALSE(c.store(path, &why));
  CHECK(slurp(path) == "precious data\n");
}

TEST_CASE("tuning cache: a file in a folder that does not exist cannot be written, and says so",
          "[tune]") {
  TuneCache c;
  c.put(key(100, 1), StepPath::kFused);
  std::string why;
  CHECK_FALSE(c.store("/nonexistent-slstm-dir/cache", &why));
  CHECK(why.find("/nonexistent-slstm-dir/cache") != std::string::npos);
  TuneCache d;
  CHECK_FALSE(d.load("/", &why));  // a folder is not a cache file
  CHECK(why.find("not a regular file") != std::string::npos);
}

TEST_CASE("tuning cache: sessions storing into one file at once keep every entry, and none "
          "fails",
          "[tune]") {
  TempDir d;
  const std::string path = d.path + "/cache";
  constexpr int kWriters = 4, kStores = 40;
  std::vector<std::string> errors(kWriters);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      TuneCache c;  // one session's cache: each store adds one entry it learned
      for (int i = 0; i < kStores; ++i) {
        c.put(key(100 + w, i + 1), StepPath::kFused);
        std::string why;
        if (!c.store(path, &why)) errors[w] += why + "; ";
      }
    });
  }
  for (std::thread& t : writers) t.join();
  for (int w = 0; w < kWriters; ++w) CHECK(errors[w].empty());
  TuneCache back;
  std::string why;
  REQUIRE(back.load(path, &why));
  CHECK(back.size() == static_cast<std::size_t>(kWriters * kStores));
  CHECK(back.skipped() == 0);
}

TEST_CASE("tuning cache: an entry a cache only read is not written back over a newer one",
          "[tune]") {
  TempDir d;
  const std::string path = d.path + "/cache";
  std::string why;
  TuneCache first;
  first.put(key(100, 1), StepPath::kCublas);
  REQUIRE(first.store(path, &why));
  TuneCache old_session;  // reads the file at its creation
  REQUIRE(old_session.load(path, &why));
  TuneCache new_session;
  new_session.put(key(100, 1), StepPath::kPersistent);  // measured again since
  REQUIRE(new_session.store(path, &why));
  old_session.put(key(200, 1), StepPath::kFused);  // learns something else, then stores
  REQUIRE(old_session.store(path, &why));
  TuneCache back;
  REQUIRE(back.load(path, &why));
  StepPath p = StepPath::kCublas;
  REQUIRE(back.find(key(100, 1), &p));
  CHECK(p == StepPath::kPersistent);
  REQUIRE(back.find(key(200, 1), &p));
  CHECK(p == StepPath::kFused);
}

TEST_CASE("tuning cache: a file above 16 MiB is refused before it is read", "[tune]") {
  TempDir d;
  const std::string path = d.path + "/cache";
  {
    std::ofstream out(path);
    out << TuneCache::kHeader << "\n";
  }
  // 64 GiB, sparse: reading it whole would take minutes or fail to allocate.
  REQUIRE(truncate(path.c_str(), std::int64_t{64} << 30) == 0);
  TuneCache c;
  std::string why;
  CHECK_FALSE(c.load(path, &why));
  CHECK(why.find("larger than 16 MiB") != std::string::npos);
  c.put(key(100, 1), StepPath::kFused);
  CHECK_FALSE(c.store(path, &why));  // nor replaced
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK(st.st_size == (std::int64_t{64} << 30));
}

TEST_CASE("tuning cache: a line longer than 1 KiB is skipped, the others are kept", "[tune]") {
  TuneCache c;
  const std::string tabs(100000, '\t');
  REQUIRE(c.parse(std::string(TuneCache::kHeader) + "\n" + tabs + "\n" +
                  "NVIDIA H200 sm90 132sm\tfp32\t128\t100\t1\tfused\n"));
  CHECK(c.size() == 1);
  CHECK(c.skipped() == 1);
}

TEST_CASE("tuning cache: a link where a temporary file could be is not followed", "[tune]") {
  TempDir d;
  const std::string path = d.path + "/cache";
  const std::string victim = d.path + "/victim";
  {
    std::ofstream out(victim);
    out << "precious\n";
  }
  REQUIRE(symlink(victim.c_str(), (path + ".tmp").c_str()) == 0);
  TuneCache c;
  c.put(key(100, 1), StepPath::kFused);
  std::string why;
  REQUIRE(c.store(path, &why));
  CHECK(slurp(victim) == "precious\n");
  TuneCache back;
  REQUIRE(back.load(path, &why));
  CHECK(back.size() == 1);
}

TEST_CASE("tuning cache: a rewritten file keeps its mode, a new one gets the umask's",
          "[tune]") {
  TempDir d;
  const std::string path = d.path + "/cache";
  const mode_t mask = umask(022);  // (restored below)
  TuneCache c;
  c.put(key(100, 1), StepPath::kFused);
  std::string why;
  REQUIRE(c.store(path, &why));
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);  // not mkstemp's 0600
  REQUIRE(chmod(path.c_str(), 0640) == 0);
  c.put(key(200, 1), StepPath::kCublas);
  REQUIRE(c.store(path, &why));
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  umask(mask);
}

TEST_CASE("tuning cache: a tune_file that is a symbolic link updates the file it names, the "
          "link stays",
          "[tune]") {
  TempDir d;
  const std::string link = d.path + "/mine.tune";
  REQUIRE(symlink("shared.tune", link.c_str()) == 0);  // a link to a file not made yet
  std::string why;
  const std::string target = tune_file_target(link, &why);
  CHECK(target == d.path + "/shared.tune");
  TuneCache first;
  first.put(key(100, 1), StepPath::kFused);
  REQUIRE(first.store(target, &why));
  TuneCache second;  // through the file's own name: the same file, the same lock
  second.put(key(200, 1), StepPath::kPersistent);
  REQUIRE(second.store(tune_file_target(d.path + "/shared.tune", &why), &why));
  struct stat st {};
  REQUIRE(lstat(link.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  TuneCache back;
  REQUIRE(back.load(link, &why));
  CHECK(back.size() == 2);
  CHECK(access((d.path + "/mine.tune.lock").c_str(), F_OK) != 0);  // one lock: shared's
}

TEST_CASE("tuning cache: a relative tune_file is fixed against the directory of its session",
          "[tune]") {
  TempDir d;
  char old[4096];
  REQUIRE(getcwd(old, sizeof old) != nullptr);
  REQUIRE(chdir(d.path.c_str()) == 0);
  std::string why;
  const std::string target = tune_file_target("rel.tune", &why);
  REQUIRE(chdir(old) == 0);  // the process moves on; the session's file does not
  CHECK(target == d.path + "/rel.tune");
  TuneCache c;
  c.put(key(100, 1), StepPath::kFused);
  REQUIRE(c.store(target, &why));
  CHECK(access((d.path + "/rel.tune").c_str(), F_OK) == 0);
}

TEST_CASE("tuning cache: a tune_file in a loop of symbolic links is refused with the reason",
          "[tune]") {
  TempDir d;
  REQUIRE(symlink("b", (d.path + "/a").c_str()) == 0);
  REQUIRE(symlink("a", (d.path + "/b").c_str()) == 0);
  std::string why;
  CHECK(tune_file_target(d.path + "/a", &why).empty());
  CHECK_THAT(why, Catch::Contains("cannot follow the symbolic link"));
}

TEST_CASE("tuning cache: a size of 2^31 - 1 is read, one of 2^31 is skipped", "[tune]") {
  const std::string h = std::string(TuneCache::kHeader) + "\n";
  TuneCache c;
  REQUIRE(c.parse(h + "dev\tfp32\t2147483647\t16\t2\tfused\n"    // the largest size: good
                      "dev\tfp32\t2147483648\t16\t2\tfused\n"    // beyond int32
                      "dev\tfp32\t8\t4294967295\t2\tfused\n"));  // beyond int32
  CHECK(c.size() == 1);
  CHECK(c.skipped() == 2);
}

TEST_CASE("tuning cache: load counts the file's lines that do not parse in skipped()", "[tune]") {
  TempDir d;
  const std::string path = d.path + "/cache";
  {
    std::ofstream out(path, std::ios::binary);
    out << TuneCache::kHeader << "\n"
        << "dev\tfp32\t8\t16\t2\tfused\n"   // good
        << "dev\tfp16\t8\t16\t2\tfused\n"   // precision
        << "dev\tfp32\t8\t16\t2\tgraph\n";  // path
  }
  TuneCache c;
  std::string why;
  REQUIRE(c.load(path, &why));
  CHECK(c.size() == 1);
  CHECK(c.skipped() == 2);
}

TEST_CASE("tuning cache: the cluster tier is a path of its own, named last in a timed set",
          "[tune]") {
  using slstm_cuda::timed_paths_name;
  CHECK(timed_paths_name({StepPath::kCluster, StepPath::kPersistent, StepPath::kCublas,
                          StepPath::kFused}) == "cublas+fused+persistent+cluster");
  const std::string h = std::string(TuneCache::kHeader) + "\n";
  const std::string line = "dev\tfp32\t128\t16\t2\tcluster\tcublas+fused+persistent+cluster\n";
  TuneCache c;
  REQUIRE(c.parse(h + line +
                  "dev\tfp32\t128\t16\t3\tcluster\tcublas+fused+persistent\n"   // not timed
                  "dev\tfp32\t128\t16\t4\tfused\tcluster+persistent\n"          // order
                  "dev\tfp32\t128\t16\t5\tpersistent\tpersistent+cluster\n"));  // good
  CHECK(c.size() == 2);
  CHECK(c.skipped() == 2);
  TuneKey k = key(16, 2, "fp32", "dev", "cublas+fused+persistent+cluster");
  StepPath p = StepPath::kCublas;
  REQUIRE(c.find(k, &p));
  CHECK(p == StepPath::kCluster);
  k.timed = "cublas+fused+persistent";  // a session without the cluster tier does not take it
  CHECK_FALSE(c.find(k, &p));
  CHECK(c.serialize().find(line) != std::string::npos);
}
