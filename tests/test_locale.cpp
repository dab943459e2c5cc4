// The library's text does not follow the process's locale: an application that calls
// setlocale(LC_ALL, "") under a comma-decimal locale (de_DE, fr_FR, ...) still gets "1.5"
// in messages and plans (src/number_text.hpp), as in model files. Hidden, tagged [locale]:
// ctest runs them through tests/check_locale.sh, which makes a de_DE.UTF-8 locale and names
// it in SLSTM_TEST_LOCALE (a run of every case, e.g. tests/cross.sh --slice, leaves them out).
#include <clocale>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

#include "support.hpp"

namespace {

// Sets the locale SLSTM_TEST_LOCALE names for the scope (its decimal point must be a comma).
struct CommaLocale {
  std::string before = std::setlocale(LC_ALL, nullptr);
  CommaLocale() {
    const char* name = std::getenv("SLSTM_TEST_LOCALE");
    REQUIRE(name != nullptr);  // (tests/check_locale.sh sets it)
    REQUIRE(std::setlocale(LC_ALL, name) != nullptr);
    REQUIRE(std::string(std::localeconv()->decimal_point) == ",");
  }
  ~CommaLocale() { std::setlocale(LC_ALL, before.c_str()); }
};

}  // namespace

TEST_CASE("a refused clip's message writes its value with a point under a comma locale",
          "[.][locale]") {
  const CommaLocale comma;
  slstm_layer_config l = t::lstm_layer(4);
  l.cell_clip = -1.5f;
  slstm_model_config c;
  slstm_model_config_init(&c);
  c.input_size = 3;
  c.num_layers = 1;
  c.layers = &l;
  slstm_model* m = nullptr;
  REQUIRE(slstm_model_create_random(&c, 1, 0.0f, &m) == SLSTM_ERR_INVALID_ARGUMENT);
  const std::string msg = slstm_last_error();
  INFO(msg);
  CHECK(msg.find("got -1.5") != std::string::npos);
  CHECK(msg.find("-1,5") == std::string::npos);
}

TEST_CASE("a value beyond binary16's range is named with a point under a comma locale",
          "[.][locale]") {
  const CommaLocale comma;
  std::vector<float> wx(16 * 3, 0.5f);
  wx[2] = 65940.375f;
  t::Model big = t::canonical_model(3, 4, wx, std::vector<float>(16 * 4, 0.5f),
                                    std::vector<float>(16, 0.0f));
  slstm_session_options o = t::options(1, 1);
  o.precision = SLSTM_PRECISION_FP16;
  slstm_session* s = nullptr;
  REQUIRE(slstm_session_create(big.get(), &o, &s) == SLSTM_ERR_UNSUPPORTED);
  const std::string msg = slstm_last_error();
  INFO(msg);
  CHECK(msg.find("is 65940.375, beyond binary16's range") != std::string::npos);
}

TEST_CASE("a fast session's plan writes its measured rates with a point under a comma locale",
          "[.][locale]") {
  t::Model m = t::random_model(8, {64}, 3);
  slstm_session_options o = t::options(4, 4);
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  o.num_threads = 2;
  o.config = "cpu.calibration=measured";
  slstm_session* raw = nullptr;
  const CommaLocale comma;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  t::Session s(raw);
  for (const slstm_describe_format f : {SLSTM_DESCRIBE_TEXT, SLSTM_DESCRIBE_JSON}) {
    std::size_t n = 0;
    REQUIRE(slstm_session_describe(s.get(), f, nullptr, 0, &n) == SLSTM_OK);
    std::string text(n + 1, '\0');
    REQUIRE(slstm_session_describe(s.get(), f, &text[0], text.size(), &n) == SLSTM_OK);
    text.resize(n);
    INFO(text);
    CHECK(std::regex_search(text, std::regex("kernel [0-9]+\\.[0-9] GFLOP/s")));
    CHECK(!std::regex_search(text, std::regex("[0-9],[0-9]")));
  }
}
