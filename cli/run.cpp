// `stacklstm run MODEL INPUT.npy -o OUTPUT.npy`: one forward call over a whole batch.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>

#include "commands.hpp"
#include "npy.hpp"
#include "util.hpp"

namespace slstm_cli {

const char* const kRunHelp =
    "usage: stacklstm run MODEL.safetensors INPUT.npy -o OUTPUT.npy [options]\n"
    "\n"
    "Runs the model over a batch of sequences (one forward call; TF 1.x dynamic_rnn numbers)\n"
    "and writes the last layer's outputs as a float32 .npy file.\n"
    "\n"
    "  INPUT.npy               [batch, time, input_size] (with --time-major: [time, batch,\n"
    "                          input_size]); float32, or float64/float16 converted to float32\n"
    "                          (a note says so on stderr)\n"
    "  -o, --output PATH       writes [batch, time, H_last] (or [time, batch, H_last])\n"
    "  --lengths L.npy         sequence lengths [batch] (int32 or int64, each in 0..time):\n"
    "                          outputs past a row's length are 0, its final state is the one\n"
    "                          after its last step\n"
    "  --initial-state S.npy   the packed initial state (default zeros): float32, 1-D, layer\n"
    "                          after layer c_l [batch, H_l] then h_l [batch, H_l], row-major\n"
    "                          (a GRU: h only; a projection: h_l [batch, proj]; both\n"
    "                          directions of a bidirectional layer, forward first)\n"
    "  --final-state F.npy     writes the packed final state (same layout)\n"
    "  --time-major            INPUT and OUTPUT are [time, batch, ...]\n"
    "  --backend cpu|cuda      (default cpu)\n"
    "  --cpu-path auto|reference|fast   the CPU implementation (default auto)\n"
    "  --threads N             CPU worker threads (default 0: one per core)\n"
    "  --device N              CUDA device index (default 0)\n"
    "  --tf32                  CUDA: allow TF32 tensor-core math (error ~1e-3)\n"
    "  --precision P           default|fp32|tf32|bf16|fp16: the products' arithmetic\n"
    "                          (docs/precision.md; what the backend does not run is refused)\n"
    "  --config \"k=v;...\"      keyed backend settings, e.g. \"cpu.kernel=avx2\"\n"
    "  -q, --quiet             no note when the input is converted\n"
    "  -h, --help              this text\n"
    "\n"
    "At least one of -o and --final-state is needed.  The session is sized to the input\n"
    "exactly (max_batch = batch, max_time = time).  Exit status: 0 done, 1 failure (a file,\n"
    "a shape, the library), 2 bad usage.\n"
    "\n"
    "example: stacklstm run model.safetensors x.npy -o y.npy --lengths lengths.npy\n";

std::vector<OptionSpec> session_option_specs() {
  return {{"backend", 0, true},  {"cpu-path", 0, true}, {"threads", 0, true},
          {"device", 0, true},   {"tf32", 0, false},    {"config", 0, true},
          {"precision", 0, true}};
}

stacklstm::SessionOptions session_options(const ParsedArgs& a, std::int64_t batch,
                                          std::int64_t time) {
  stacklstm::SessionOptions o(batch, time < 1 ? 1 : time);
  const std::string backend = a.get_choice("backend", "cpu", {"cpu", "cuda"});
  o.backend(backend == "cuda" ? SLSTM_BACKEND_CUDA : SLSTM_BACKEND_CPU);
  const std::string path = a.get_choice("cpu-path", "auto", {"auto", "reference", "fast"});
  o.cpu_path(path == "reference" ? SLSTM_CPU_PATH_REFERENCE
             : path == "fast"    ? SLSTM_CPU_PATH_FAST
                                 : SLSTM_CPU_PATH_AUTO);
  o.num_threads(static_cast<std::int32_t>(a.get_int("threads", 0, 0, 4096)));
  o.device(static_cast<std::int32_t>(
      a.get_int("device", 0, 0, std::numeric_limits<std::int32_t>::max())));
  o.allow_tf32(a.has("tf32"));
  const std::string precision =
      a.get_choice("precision", "default", {"default", "fp32", "tf32", "bf16", "fp16"});
  o.precision(precision == "fp32"   ? SLSTM_PRECISION_FP32
              : precision == "tf32" ? SLSTM_PRECISION_TF32
              : precision == "bf16" ? SLSTM_PRECISION_BF16
              : precision == "fp16" ? SLSTM_PRECISION_FP16
                                    : SLSTM_PRECISION_DEFAULT);
  if (a.has("config")) o.config(a.get("config"));
  return o;
}

namespace {

// What a file that is not safetensors is, from its first bytes, when it is one of the files
// commonly handed to a model loader ("" otherwise, or when it may be safetensors: the JSON
// header starts at byte 8).
std::string foreign_file_kind(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  unsigned char head[9] = {0};
  const std::size_t n = std::fread(head, 1, sizeof head, f);
  std::fclose(f);
  if (n == 9 && head[8] == '{') return "";
  const auto starts = [&](const char* magic, std::size_t len) {
    return n >= len && std::memcmp(head, magic, len) == 0;
  };
  if (starts("PK\x03\x04", 4)) {
    return "a ZIP archive, as torch.save writes a .pt file: a PyTorch state_dict converts with "
           "`stacklstm convert torch SRC OUT.safetensors`";
  }
  if (starts("\x89HDF\r\n\x1a\n", 8)) {
    return "an HDF5 file, e.g. a Keras .h5 model: it converts with "
           "`stacklstm convert keras SRC OUT.safetensors`";
  }
  if (starts("\x93NUMPY", 6)) return "a NumPy .npy array (the model comes first, then the input)";
  if (starts("\x1f\x8b", 2)) return "a gzip-compressed file";
  if (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) {
    return "a Python pickle, as older torch.save writes: a PyTorch state_dict converts with "
           "`stacklstm convert torch SRC OUT.safetensors`";
  }
  return "";
}

}  // namespace

stacklstm::Model load_model(const std::string& path) {
  try {
    return stacklstm::Model::load(path);
  } catch (const stacklstm::Error& e) {
    const std::string kind =
        e.status() == SLSTM_ERR_INVALID_ARGUMENT ? foreign_file_kind(path) : std::string();
    if (!kind.empty()) {
      throw Failure(quoted(path) + ": not a safetensors model file; it is " + kind);
    }
    const std::string message = e.what();
    if (message.find(path) != std::string::npos) throw;
    throw stacklstm::Error(e.status(), quoted(path) + ": " + message);
  }
}

int run_command(const std::vector<std::string>& args) {
  std::vector<OptionSpec> specs = session_option_specs();
  specs.push_back({"output", 'o', true});
  specs.push_back({"lengths", 0, true});
  specs.push_back({"initial-state", 0, true});
  specs.push_back({"final-state", 0, true});
  specs.push_back({"time-major", 0, false});
  specs.push_back({"quiet", 'q', false});
  const ParsedArgs a = parse_args(args, specs);
  if (a.positionals.size() != 2) {
    throw UsageError(a.positionals.size() < 2
                         ? "needs MODEL.safetensors and INPUT.npy"
                         : "takes two files (MODEL.safetensors INPUT.npy), got " +
                               std::to_string(a.positionals.size()) + " words");
  }
  if (!a.has("output") && !a.has("final-state")) {
    throw UsageError("nothing to write: give -o OUTPUT.npy and/or --final-state F.npy");
  }
  if (a.has("output") && a.has("final-state") && same_file(a.get("output"), a.get("final-state"))) {
    throw UsageError("-o and --final-state name the same file (" + quoted(a.get("output")) +
                     "): one would replace the other");
  }
  (void)session_options(a, 1, 1);  // checks the option values before any file is read
  const std::string& model_path = a.positionals[0];
  const std::string& input_path = a.positionals[1];
  const bool time_major = a.has("time-major");
  const bool quiet = a.has("quiet");

  const stacklstm::Model model = load_model(model_path);
  FloatArray input = read_npy_floats(input_path);
  if (input.shape.size() != 3) {
    throw Failure(quoted(input_path) + ": the input must be 3-D " +
                  (time_major ? "[time, batch, input_size]" : "[batch, time, input_size]") +
                  ", got shape " + shape_string(input.shape));
  }
  const std::int64_t batch = time_major ? input.shape[1] : input.shape[0];
  const std::int64_t time = time_major ? input.shape[0] : input.shape[1];
  const std::int64_t depth = input.shape[2];
  if (batch < 1) throw Failure(quoted(input_path) + ": the batch is empty (shape " +
                               shape_string(input.shape) + ")");
  if (depth != model.input_size()) {
    throw Failure(quoted(input_path) + ": the last dimension is " + std::to_string(depth) +
                  ", the model's input size is " + std::to_string(model.input_size()));
  }
  if (!input.converted_from.empty() && !quiet) {
    std::fprintf(stderr, "stacklstm: run: note: %s is %s; converted to float32\n",
                 input_path.c_str(), input.converted_from.c_str());
  }

  stacklstm::ForwardOptions fo;
  fo.layout = time_major ? SLSTM_TIME_MAJOR : SLSTM_BATCH_MAJOR;
  std::vector<std::int32_t> lengths;
  if (a.has("lengths")) {
    const std::string p = a.get("lengths");
    std::vector<std::int64_t> shape;
    lengths = read_npy_lengths(p, &shape);
    if (shape[0] != batch) {
      throw Failure(quoted(p) + ": " + std::to_string(shape[0]) +
                    " sequence lengths for a batch of " + std::to_string(batch));
    }
    fo.sequence_lengths = lengths;
  }
  const std::size_t state_count = model.state_count(batch);
  FloatArray initial;
  if (a.has("initial-state")) {
    const std::string p = a.get("initial-state");
    initial = read_npy_floats(p);
    if (initial.shape.size() != 1 || initial.values.size() != state_count) {
      throw Failure(quoted(p) + ": the packed initial state for a batch of " +
                    std::to_string(batch) + " is 1-D of " + std::to_string(state_count) +
                    " floats, got shape " + shape_string(initial.shape));
    }
    if (!initial.converted_from.empty() && !quiet) {
      std::fprintf(stderr, "stacklstm: run: note: %s is %s; converted to float32\n",
                   p.c_str(), initial.converted_from.c_str());
    }
    fo.initial_state = initial.values;
  }

  stacklstm::Session session(model, session_options(a, batch, time));
  const std::int64_t h_last = model.output_size();
  std::vector<float> output;
  std::vector<float> final_state;
  if (a.has("output")) {
    output.resize(static_cast<std::size_t>(batch) * static_cast<std::size_t>(time) *
                  static_cast<std::size_t>(h_last));
  }
  if (a.has("final-state")) final_state.resize(state_count);
  session.forward(batch, time, input.values,
                  a.has("output") ? stacklstm::span<float>(output.data(), output.size())
                                  : stacklstm::span<float>(),
                  a.has("final-state")
                      ? stacklstm::span<float>(final_state.data(), final_state.size())
                      : stacklstm::span<float>(),
                  fo);
  // Both files staged before either is committed: a failure leaves neither.
  std::unique_ptr<OutputFile> out_file, state_file;
  if (a.has("output")) {
    const std::vector<std::int64_t> shape =
        time_major ? std::vector<std::int64_t>{time, batch, h_last}
                   : std::vector<std::int64_t>{batch, time, h_last};
    out_file = std::make_unique<OutputFile>(a.get("output"),
                                            npy_image_float32(output.data(), shape));
  }
  if (a.has("final-state")) {
    state_file = std::make_unique<OutputFile>(
        a.get("final-state"),
        npy_image_float32(final_state.data(), {static_cast<std::int64_t>(state_count)}));
  }
  if (out_file) out_file->commit();
  if (state_file) state_file->commit();
  return kExitOk;
}

}  // namespace slstm_cli
