// The subcommands of the `stacklstm` tool.  Each takes the words after its name and returns
// the exit status; it throws UsageError (exit 2), Failure or stacklstm::Error (exit 1), which
// main() turns into one line `stacklstm: <command>: <message>` on stderr.
#ifndef STACKLSTM_CLI_COMMANDS_HPP
#define STACKLSTM_CLI_COMMANDS_HPP

#include <string>
#include <vector>

#include "args.hpp"
#include "stacklstm/stacklstm.hpp"

namespace slstm_cli {

int run_command(const std::vector<std::string>& args);
int inspect_command(const std::vector<std::string>& args);
int bench_command(const std::vector<std::string>& args);
int convert_command(const std::vector<std::string>& args);

extern const char* const kRunHelp;
extern const char* const kInspectHelp;
extern const char* const kBenchHelp;
extern const char* const kConvertHelp;

/// The session options shared by `run` and `bench`, as OptionSpecs and as read back.
std::vector<OptionSpec> session_option_specs();
/// Session options for exactly `batch` x `time` (max_time at least 1) from --backend,
/// --cpu-path, --threads, --device, --tf32 and --config.
stacklstm::SessionOptions session_options(const ParsedArgs& a, std::int64_t batch,
                                          std::int64_t time);

/// slstm_model_load_file, with the path at the front of the library's message when the
/// message does not already name it.
stacklstm::Model load_model(const std::string& path);

/// The shortest decimal text that reads back as `v` (e.g. "1", "0.1", "1e-07").
std::string shortest_float(float v);

}  // namespace slstm_cli

#endif  // STACKLSTM_CLI_COMMANDS_HPP
