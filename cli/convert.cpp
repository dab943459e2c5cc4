// `stacklstm convert ...`: handed over to Python, where the framework readers live
// (python/stacklstm/convert.py: torch, tf, onnx, keras).
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

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

// Runs `python -c code` and returns its exit status (127: could not be started).
int run_python_check(const char* python, const char* code) {
  const pid_t pid = fork();
  if (pid < 0) throw Failure(std::string("cannot start ") + python + ": " + std::strerror(errno));
  if (pid == 0) {
    execlp(python, python, "-c", code, static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw Failure(std::string("waiting for ") + python + ": " +
                                      std::strerror(errno));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128;
}

}  // namespace

int convert_command(const std::vector<std::string>& args) {
  const char* env = std::getenv("SLSTM_PYTHON");
  const std::string python = (env != nullptr && *env != '\0') ? env : "python3";
  const int found = run_python_check(
      python.c_str(),
      "import importlib.util, sys\n"
      "sys.exit(0 if importlib.util.find_spec('stacklstm') is not None else 3)\n");
  if (found == 127) {
    throw Failure("cannot run " + python +
                  " (convert needs Python with the stacklstm package; put python3 on PATH or "
                  "set SLSTM_PYTHON to an interpreter)");
  }
  if (found == 3) {
    throw Failure("the stacklstm Python package is not importable by " + python +
                  "; install it with `" + python + " -m pip install stacklstm` (or "
                  "`pip install ./python` from a source checkout)");
  }
  if (found != 0) {
    throw Failure(python + " failed (exit status " + std::to_string(found) +
                  ") while looking for the stacklstm package");
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
