// The `stacklstm` command-line tool: run, inspect, bench natively; convert through Python.
// Every failure is one line `stacklstm: <command>: <message>` on stderr and exit status 1
// (2 for bad usage); nothing escapes as an uncaught exception.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "commands.hpp"
#include "util.hpp"

namespace {

const char* const kMainHelp =
    "usage: stacklstm <command> [options]\n"
    "\n"
    "Stacked LSTM models (libstacklstm model files, .safetensors) from the command line.\n"
    "\n"
    "commands:\n"
    "  run      run a model over a batch in a .npy file, write the outputs as .npy\n"
    "  inspect  architecture, tensors, metadata and SHA-256 of a model file\n"
    "  bench    time a model on the CPU or CUDA backend\n"
    "  convert  convert a PyTorch / TensorFlow / ONNX / Keras file (needs Python)\n"
    "\n"
    "  stacklstm <command> --help   that command's options\n"
    "  stacklstm --version          the libstacklstm version in use\n"
    "\n"
    "Exit status: 0 done, 1 failure, 2 bad usage.  Documentation: docs/cli.md.\n";

struct Command {
  const char* name;
  int (*fn)(const std::vector<std::string>&);
  const char* help;
};

const Command kCommands[] = {
    {"run", slstm_cli::run_command, slstm_cli::kRunHelp},
    {"inspect", slstm_cli::inspect_command, slstm_cli::kInspectHelp},
    {"bench", slstm_cli::bench_command, slstm_cli::kBenchHelp},
    {"convert", slstm_cli::convert_command, slstm_cli::kConvertHelp},
};

void report(const std::string& where, const std::string& message) {
  std::fprintf(stderr, "stacklstm: %s%s\n", where.empty() ? "" : (where + ": ").c_str(),
               slstm_cli::one_line(message).c_str());
}

int dispatch(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(kMainHelp, stderr);
    return slstm_cli::kExitUsage;
  }
  const std::string& first = args[0];
  if (first == "-h" || first == "--help") {
    std::fputs(kMainHelp, stdout);
    return slstm_cli::kExitOk;
  }
  if (first == "-V" || first == "--version") {
    std::printf("stacklstm %s\n", slstm_version_string());
    return slstm_cli::kExitOk;
  }
  if (first == "help") {
    if (args.size() == 1) {
      std::fputs(kMainHelp, stdout);
      return slstm_cli::kExitOk;
    }
    for (const Command& c : kCommands) {
      if (args[1] == c.name) {
        std::fputs(c.help, stdout);
        return slstm_cli::kExitOk;
      }
    }
    report("", "no command '" + slstm_cli::one_line(args[1]) +
                   "' (commands: run, inspect, bench, convert; see stacklstm --help)");
    return slstm_cli::kExitUsage;
  }
  for (const Command& c : kCommands) {
    if (first != c.name) continue;
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (slstm_cli::wants_help(rest) &&
        (std::strcmp(c.name, "convert") != 0 || rest.size() == 1)) {
      std::fputs(c.help, stdout);
      return slstm_cli::kExitOk;
    }
    try {
      const int status = c.fn(rest);
      // What the command printed must have reached its destination (a full disk, /dev/full):
      // a report cut short is a failure, not a success.
      if (status == slstm_cli::kExitOk && (std::fflush(stdout) != 0 || std::ferror(stdout))) {
        report(c.name, "cannot write to standard output: " + std::string(std::strerror(errno)));
        return slstm_cli::kExitFailure;
      }
      return status;
    } catch (const slstm_cli::UsageError& e) {
      report(c.name, std::string(e.what()) + " (see stacklstm " + c.name + " --help)");
      return slstm_cli::kExitUsage;
    } catch (const slstm_cli::Failure& e) {
      report(c.name, e.what());
      return slstm_cli::kExitFailure;
    } catch (const stacklstm::Error& e) {
      report(c.name, e.what());
      return slstm_cli::kExitFailure;
    } catch (const std::bad_alloc&) {
      report(c.name, "out of memory");
      return slstm_cli::kExitFailure;
    } catch (const std::exception& e) {
      report(c.name, e.what());
      return slstm_cli::kExitFailure;
    }
  }
  if (first.size() > 1 && first[0] == '-') {
    report("", "unknown option " + slstm_cli::one_line(first) +
                   " (usage: stacklstm <command> [options]; see stacklstm --help)");
  } else {
    report("", "unknown command '" + slstm_cli::one_line(first) +
                   "' (commands: run, inspect, bench, convert; see stacklstm --help)");
  }
  return slstm_cli::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return dispatch(argc, argv);
  } catch (...) {
    report("", "unexpected internal error");
    return slstm_cli::kExitFailure;
  }
}
