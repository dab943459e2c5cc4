"""The `stacklstm` command: the wheel's console script and `python -m stacklstm`.

    stacklstm run MODEL.safetensors INPUT.npy -o OUTPUT.npy [--backend cpu|cuda] [--lengths L.npy]
    stacklstm inspect MODEL.safetensors [--json]
    stacklstm bench MODEL.safetensors [--batch B] [--time T] [--repeat N]
    stacklstm convert KIND SRC DST.safetensors

`convert` runs stacklstm.convert in this process. `run`, `inspect`, `bench` and `--version`
are the native tool's (a C++ program over the C API, docs/cli.md): this script hands over to
it with exec. It is, in order: $SLSTM_CLI (when set, the only candidate), the one shipped in
the wheel (<package>/bin/stacklstm), then a `stacklstm` executable on PATH that is a native
program (not a script such as this one). `--help` needs neither the tool nor the library.
"""

import os
import sys
from typing import List, Optional, Sequence

__all__ = ["main", "find_tool", "ToolNotFoundError"]

COMMANDS = ("run", "inspect", "bench", "convert")

USAGE = """usage: stacklstm <command> [options]

Stacked LSTM models (libstacklstm model files, .safetensors) from the command line.

commands:
  run      run a model over a batch in a .npy file, write the outputs as .npy
  inspect  architecture, tensors, metadata and SHA-256 of a model file
  bench    time a model on the CPU or CUDA backend
  convert  convert a PyTorch / TensorFlow / ONNX / Keras file (needs Python)

  stacklstm <command> --help   that command's options
  stacklstm --version          the libstacklstm version in use

Exit status: 0 done, 1 failure, 2 bad usage.  Documentation: docs/cli.md.
"""

CONVERT_USAGE = """usage: stacklstm convert KIND SRC DST.safetensors [options]

Converts a framework's file to a stacklstm model file (stacklstm.convert, in this process).

  KIND                 torch (a state_dict .pt), tf (a checkpoint prefix, or a .npz of
                       its variables by name), onnx, keras (.h5)
  --prefix P           torch: the state_dict key prefix (e.g. rnn.)
  --scope S            tf: the variable scope of the RNN
  --forget-bias F      tf: BasicLSTMCell's forget_bias (not in checkpoints; default 1.0)
  --cell-clip C[,C..]  tf: LSTMCell's cell_clip, every LSTM layer or one per layer
  --proj-clip P[,P..]  tf: LSTMCell's proj_clip, every projected layer or one per layer
  --residual L[,L..]   tf: the layers in a ResidualWrapper (indices from 0)
  -h, --help           this text

example: stacklstm convert torch lstm_state_dict.pt model.safetensors --prefix rnn.
"""


class ToolNotFoundError(RuntimeError):
    """The native stacklstm tool was not found; the message lists where it was looked for."""


def _is_native_executable(path: str) -> bool:
    """An executable regular file that starts like an ELF program (not a #! script)."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def find_tool() -> str:
    """The path of the native `stacklstm` program (see the module's docstring for the
    order); raises ToolNotFoundError naming every place tried."""
    env = os.environ.get("SLSTM_CLI")
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return env
        raise ToolNotFoundError("$SLSTM_CLI is %s, which is not an executable file" % env)
    from ._lib import package_dirs   # (loads no library)
    tried = []
    for d in package_dirs():   # the wheel's, or an editable install's site-packages copy
        bundled = os.path.join(d, "bin", "stacklstm")
        if _is_native_executable(bundled):
            return bundled
        tried.append(bundled)
    for d in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(d or ".", "stacklstm")
        if _is_native_executable(candidate):
            return candidate
    tried.append("a native `stacklstm` on PATH")
    raise ToolNotFoundError(
        "the native stacklstm tool was not found (tried $SLSTM_CLI, %s); install the "
        "stacklstm wheel, or build the tool (cmake, SLSTM_BUILD_CLI=ON) and set SLSTM_CLI to "
        "it" % ", ".join(tried))


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _convert(args: List[str]) -> int:
    if len(args) == 1 and args[0] in ("-h", "--help"):
        sys.stdout.write(CONVERT_USAGE)
        return 0
    try:
        from . import convert
    except ImportError as e:   # e.g. the library cannot be loaded
        print("stacklstm: convert: %s" % _one_line(e), file=sys.stderr)
        return 1
    return convert.main(list(args))


def _version_without_tool() -> int:
    """`--version` when the native tool is absent: the library's version as the package
    loads it, else the package's own."""
    from . import __version__
    try:
        from . import version
        print("stacklstm %s" % version())
    except Exception:   # the library cannot load: say which version this package is
        print("stacklstm %s (Python package; libstacklstm not loaded)" % __version__)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line `argv` (default sys.argv[1:]); returns the exit status (the
    native commands never return: the process becomes the tool)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stderr.write(USAGE)
        return 2
    first = args[0]
    if first in ("-h", "--help") or (first == "help" and len(args) == 1):
        sys.stdout.write(USAGE)
        return 0
    if first == "convert" or (first == "help" and args[1:2] == ["convert"]):
        return _convert(args[1:] if first == "convert" else ["--help"])
    if first not in COMMANDS + ("help", "-V", "--version"):
        what = "option" if first.startswith("-") else "command"
        print("stacklstm: unknown %s '%s' (commands: %s; see stacklstm --help)"
              % (what, _one_line(first), ", ".join(COMMANDS)), file=sys.stderr)
        return 2
    try:
        tool = find_tool()
    except ToolNotFoundError as e:
        if first in ("-V", "--version"):
            return _version_without_tool()
        where = "" if first.startswith("-") else first + ": "
        print("stacklstm: %s%s" % (where, _one_line(e)), file=sys.stderr)
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(tool, [tool] + args)
    except OSError as e:
        print("stacklstm: cannot run %s: %s" % (tool, _one_line(e)), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
