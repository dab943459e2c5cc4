// A small, strict command-line parser: long options (--name VALUE or --name=VALUE), a few
// short aliases (-o VALUE), flags, positionals, and `--` to end the options.  Every mistake is
// a UsageError naming the option.
#ifndef STACKLSTM_CLI_ARGS_HPP
#define STACKLSTM_CLI_ARGS_HPP

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace slstm_cli {

struct OptionSpec {
  std::string name;        ///< long name without the dashes, e.g. "backend"
  char short_name = 0;     ///< e.g. 'o' for -o; 0: none
  bool takes_value = true; ///< false: a flag
};

class ParsedArgs {
 public:
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  /// The option's value, or `fallback` when it was not given.
  std::string get(const std::string& name, const std::string& fallback = "") const;
  /// The option as an integer in [lo, hi]; `fallback` when absent.  A UsageError names the
  /// option when the value is not a decimal integer or is out of range.
  std::int64_t get_int(const std::string& name, std::int64_t fallback, std::int64_t lo,
                       std::int64_t hi) const;
  /// The option as one of `choices`; `fallback` when absent.
  std::string get_choice(const std::string& name, const std::string& fallback,
                         const std::vector<std::string>& choices) const;

  std::vector<std::string> positionals;

 private:
  friend ParsedArgs parse_args(const std::vector<std::string>&, const std::vector<OptionSpec>&);
  std::map<std::string, std::string> values_;
};

/// Parses `args` (the words after the subcommand) against `specs`.  "-h"/"--help" are
/// recognised by the caller before this is called.  Each option may be given once.
ParsedArgs parse_args(const std::vector<std::string>& args, const std::vector<OptionSpec>& specs);

/// Whether `args` asks for help (-h or --help before a `--`).
bool wants_help(const std::vector<std::string>& args);

/// A decimal integer in [lo, hi] (no sign other than a leading '-', no spaces, no suffix);
/// `what` names the value in the UsageError.
std::int64_t parse_int(const std::string& text, const std::string& what, std::int64_t lo,
                       std::int64_t hi);

}  // namespace slstm_cli

#endif  // STACKLSTM_CLI_ARGS_HPP
