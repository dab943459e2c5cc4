// `stacklstm convert ...`: handed over to Python, where the framework readers live
// (python/stacklstm/convert.py: torch, tf, onnx, keras).
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "commands.hpp"
#include "util.hpp"

namespace slstm_cli {

const char* const kConvertHelp =
    "usage: stacklstm convert KIND SRC DST.safetensors [options]\n"
    "\n"
    "Converts a framework's file to a stacklstm model file.  Runs\n"
    "`python3 -m stacklstm.convert KIND SRC DST ...` (the stacklstm Python package, and the\n"
    "framework that reads SRC, must be importable by that python3).\n"
    "\n"
    "  KIND                 torch (a state_dict .pt), tf (a checkpoint prefix, or a .npz of\n"
    "                       its variables by name), onnx, keras (.h5)\n"
    "  --prefix P           torch: the state_dict key prefix (e.g. rnn.)\n"
    "  --scope S            tf: the variable scope of the RNN\n"
    "  --forget-bias F      tf: BasicLSTMCell's forget_bias (not in checkpoints; default 1.0)\n"
    "  --cell-clip C[,C..]  tf: LSTMCell's cell_clip, every LSTM layer or one per layer\n"
    "  --proj-clip P[,P..]  tf: LSTMCell's proj_clip, every projected layer or one per layer\n"
    "  --residual L[,L..]   tf: the layers in a ResidualWrapper (indices from 0)\n"
    "  -h, --help           this text\n"
    "\n"
    "The interpreter is $SLSTM_PYTHON when set, else python3 on PATH.\n"
    "\n"
    "example: stacklstm convert torch lstm_state_dict.pt model.safetensors --prefix rnn.\n";

namespace {

// Runs `python -c code` and returns its exit status (127: could not be started); what it
// writes on stderr goes to *err.
int run_python_check(const char* python, const char* code, std::string* err) {
  int fds[2];
  if (pipe(fds) != 0) throw Failure(std::string("cannot start ") + python + ": " +
                                    std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) {
    const std::string why = std::strerror(errno);
    close(fds[0]);
    close(fds[1]);
    throw Failure(std::string("cannot start ") + python + ": " + why);
  }
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    execlp(python, python, "-c", code, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) {
      if (err->size() < 65536) err->append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw Failure(std::string("waiting for ") + python + ": " +
                                      std::strerror(errno));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128;
}

// The last non-empty line of a text (a Python traceback's is the exception).
std::string last_line(const std::string& text) {
  std::size_t end = text.find_last_not_of(" \n\r\t");
  if (end == std::string::npos) return std::string();
  const std::size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1,
                     end + 1 - (start == std::string::npos ? 0 : start + 1));
}

}  // namespace

int convert_command(const std::vector<std::string>& args) {
  const char* env = std::getenv("SLSTM_PYTHON");
  const std::string python = (env != nullptr && *env != '\0') ? env : "python3";
  std::string err;
  const int found = run_python_check(
      python.c_str(),
      "import importlib.util, sys\n"
      "if importlib.util.find_spec('stacklstm') is None: sys.exit(3)\n"
      "import stacklstm.convert\n",   // it must import too (numpy, the library)
      &err);
  if (found == 127) {
    throw Failure("cannot run " + python +
                  " (convert needs Python with the stacklstm package; put python3 on PATH or "
                  "set SLSTM_PYTHON to an interpreter)");
  }
  if (found == 3) {
    throw Failure("the stacklstm Python package is not importable by " + python +
                  "; install it from a source checkout of libstacklstm with `" + python +
                  " -m pip install ./python` (or from its sdist; the package is not on PyPI)");
  }
  if (found != 0) {
    const std::string why = last_line(err);
    throw Failure("the stacklstm Python package of " + python + " cannot be imported" +
                  (why.empty() ? " (exit status " + std::to_string(found) + ")" : ": " + why));
  }
  std::vector<std::string> words = {python, "-m", "stacklstm.convert"};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(&w[0]);
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  execvp(python.c_str(), argv.data());
  throw Failure("cannot run " + python + ": " + std::strerror(errno));
}

}  // namespace slstm_cli
