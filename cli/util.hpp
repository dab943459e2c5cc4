// Shared pieces of the command-line tool: its two kinds of failure and small helpers.
#ifndef STACKLSTM_CLI_UTIL_HPP
#define STACKLSTM_CLI_UTIL_HPP

#include <cstdint>
#include <stdexcept>
#include <string>

namespace slstm_cli {

/// Exit status of a command: 0 success, 1 a runtime failure, 2 bad usage.
enum ExitCode : int { kExitOk = 0, kExitFailure = 1, kExitUsage = 2 };

/// The command line is wrong (unknown option, missing argument, bad value): exit 2.
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& message) : std::runtime_error(message) {}
};

/// Something failed while doing what the command line asked (a file that cannot be read, a
/// malformed .npy, a shape that does not fit the model): exit 1.
class Failure : public std::runtime_error {
 public:
  explicit Failure(const std::string& message) : std::runtime_error(message) {}
};

/// `text` on one line: newlines and tabs become spaces, other control bytes are dropped.
std::string one_line(const std::string& text);

/// A byte count for people: "512 bytes", or "1.5 MiB (1572864 bytes)" from 1 KiB on.
std::string human_bytes(std::uint64_t bytes);

/// Whether standard error is a terminal (the progress bar is drawn only then).
bool stderr_is_terminal();

/// A shell-safe rendering of a path for messages: the path in double quotes when it holds a
/// space or is empty, else as is.
std::string quoted(const std::string& path);

}  // namespace slstm_cli

#endif  // STACKLSTM_CLI_UTIL_HPP
