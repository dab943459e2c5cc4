// Import and export of the framework weight layouts (DESIGN §3, docs/cells.md) to and from
// the canonical per-direction weights of src/model.hpp (CellWeights: W_x, W_h, b, and b_h,
// w_peep, W_proj where the cell has them).
//
// Every format is described, per layer and direction, by where each canonical element lives
// in the caller's tensors (a DirMap, built by layout()).  That one description drives the
// shape checks, slstm_format_tensors, import and export, so they cannot disagree; what a
// format cannot express is refused there, naming the layer's field and the format.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "model.hpp"
#include "number_text.hpp"

namespace slstm {
namespace {

std::string shape_str(const std::int64_t* shape, std::int32_t ndim) {
  std::string s = "[";
  for (std::int32_t d = 0; d < ndim; ++d) {
    if (d) s += ", ";
    s += std::to_string(shape[d]);
  }
  return s + "]";
}

// One expected tensor: its name (the format's own, as slstm_format_tensors reports it) and
// its shape.
struct Expect {
  std::string name;
  std::int32_t ndim = 0;
  std::int64_t shape[3] = {};
};

std::string where(std::size_t index, std::size_t layer, const std::string& name) {
  return "tensors[" + std::to_string(index) + "] (layer " + std::to_string(layer) + " " + name +
         ")";
}

// Checks a caller tensor (const or mutable) against `e`; `index` is its position in the array.
template <typename Tensor>
void check_tensor(const Tensor& t, const Expect& e, std::size_t index, std::size_t layer) {
  const std::string at = where(index, layer, e.name);
  if (t.data == nullptr) fail(SLSTM_ERR_INVALID_ARGUMENT, at + ": data is NULL");
  if (t.ndim < 1 || t.ndim > SLSTM_MAX_DIMS) {
    fail(SLSTM_ERR_SHAPE_MISMATCH,
         at + ": ndim must be in 1.." + std::to_string(SLSTM_MAX_DIMS) + ", got " +
             std::to_string(t.ndim));
  }
  bool ok = t.ndim == e.ndim;
  for (std::int32_t d = 0; ok && d < e.ndim; ++d) ok = t.shape[d] == e.shape[d];
  if (!ok) {
    fail(SLSTM_ERR_SHAPE_MISMATCH, at + ": expected shape " + shape_str(e.shape, e.ndim) +
                                       ", got " + shape_str(t.shape, t.ndim));
  }
}

std::size_t elements(const Expect& e) {
  std::size_t n = 1;
  for (std::int32_t d = 0; d < e.ndim; ++d) n *= static_cast<std::size_t>(e.shape[d]);
  return n;
}

const char* format_name(slstm_weight_format format) {
  switch (format) {
    case SLSTM_FORMAT_CANONICAL: return "SLSTM_FORMAT_CANONICAL";
    case SLSTM_FORMAT_TF: return "SLSTM_FORMAT_TF";
    case SLSTM_FORMAT_PYTORCH: return "SLSTM_FORMAT_PYTORCH";
    case SLSTM_FORMAT_KERAS: return "SLSTM_FORMAT_KERAS";
    case SLSTM_FORMAT_KERAS_CUDNN: return "SLSTM_FORMAT_KERAS_CUDNN";
    case SLSTM_FORMAT_ONNX: return "SLSTM_FORMAT_ONNX";
    case SLSTM_FORMAT_CUDNN: return "SLSTM_FORMAT_CUDNN";
  }
  return "unknown";
}

// Formats without a forget_bias of their own (everything but CANONICAL and TF).
bool has_forget_bias(slstm_weight_format format) {
  return format == SLSTM_FORMAT_CANONICAL || format == SLSTM_FORMAT_TF;
}

// ---- Where each canonical element lives --------------------------------------------------------

// A canonical vector of rows x cols (row-major) is cut into `nblocks` row blocks of `block`
// rows (a gate's H rows, or all rows as one block); element (q * block + u, k) lives in the
// layer's tensor b[q].tensor at b[q].base + u * row_stride + k * col_stride.
struct Block {
  int tensor = -1;  // relative to the layer's first tensor
  std::size_t base = 0, row_stride = 0, col_stride = 0;
};
struct Place {
  std::size_t block = 0;
  int nblocks = 0;
  Block b[4];
  // Keras CuDNNLSTM/CuDNNGRU input kernels: column block q, read in C order, is W_q [block,
  // cols] (see the header), so element (u, k) is the n = u * cols + k-th of the block, at
  // base + (n / block) * row_stride + n % block.
  bool cudnn_bytes = false;
};
// Where one canonical vector is stored: on import the sum of its places (none: it stays 0),
// on export the value goes to the first place and every other place is written as 0.
struct VecMap {
  int n = 0;
  Place p[2];
};
struct DirMap {
  VecMap w_x, w_h, bias, bias_h, peep, w_proj;
  bool fold_forget = false;  // LSTM in a format without forget_bias: export adds it to b's f
  bool fold_bias_h = false;  // GRU in a format without b_h: export writes b_x + b_h as b_x
};
// The tensors of one layer in a format, in API order, and each direction's map.
struct LayerLayout {
  std::vector<Expect> expect;
  std::vector<int> direction;  // per tensor: 0 forward/only, 1 reverse half, -1 both (ONNX)
  std::vector<DirMap> dirs;    // per direction of the layer
};

constexpr int kIdentity[4] = {0, 1, 2, 3};
// TF's column block for canonical LSTM gate q: canonical i, f, g, o sit in TF's i, j, f, o at
// 0, 2, 1, 3.
constexpr int kTfBlock[4] = {0, 2, 1, 3};
// ONNX's row block for canonical LSTM gate q: canonical i, f, g, o sit in ONNX's i, o, f, c
// at 0, 2, 3, 1.
constexpr int kOnnxBlock[4] = {0, 2, 3, 1};
// ONNX's peephole block for canonical w_peep row q: i, f, o sit in ONNX's P (i, o, f) at
// 0, 2, 1.
constexpr int kOnnxPeep[3] = {0, 2, 1};
// ONNX's and Keras' GRU block for canonical gate q: r, z, n sit in their z, r, h at 1, 0, 2.
constexpr int kZrhBlock[3] = {1, 0, 2};

std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }

// Blocks of rows of a row-major matrix with `ncols` columns: canonical block q is the
// matrix's row block perm[q] (from element base0 on).
Place rows_of(int tensor, int nblocks, std::size_t block, const int* perm, std::size_t ncols,
              std::size_t base0) {
  Place p;
  p.block = block;
  p.nblocks = nblocks;
  for (int q = 0; q < nblocks; ++q) {
    p.b[q] = {tensor, base0 + sz(perm[q]) * block * ncols, ncols, 1};
  }
  return p;
}
// Blocks of columns of a row-major matrix with `ncols` columns (the transposed layouts):
// canonical row q * block + u is the matrix's column perm[q] * block + u.
Place cols_of(int tensor, int nblocks, std::size_t block, const int* perm, std::size_t ncols,
              std::size_t base0) {
  Place p;
  p.block = block;
  p.nblocks = nblocks;
  for (int q = 0; q < nblocks; ++q) p.b[q] = {tensor, base0 + sz(perm[q]) * block, 1, ncols};
  return p;
}
VecMap one(const Place& a) {
  VecMap m;
  m.n = 1;
  m.p[0] = a;
  return m;
}
VecMap two(const Place& a, const Place& b) {
  VecMap m;
  m.n = 2;
  m.p[0] = a;
  m.p[1] = b;
  return m;
}

// ---- What each format can express --------------------------------------------------------------

[[noreturn]] void refuse(slstm_weight_format format, std::size_t l, const std::string& field,
                         const std::string& why) {
  fail(SLSTM_ERR_UNSUPPORTED, "config->layers[" + std::to_string(l) + "]." + field + ": " +
                                  format_name(format) + " cannot express it: " + why +
                                  " (SLSTM_FORMAT_CANONICAL takes every layer; docs/cells.md)");
}

// Refuses what `format` cannot express of layer `l` (docs/cells.md, README "Weights").
void check_expressible(slstm_weight_format format, const LayerSpec& s, std::size_t l) {
  const bool lstm = s.cell == CellKind::kLstm;
  const bool reverse_only = s.direction == Direction::kReverse;
  switch (format) {
    case SLSTM_FORMAT_CANONICAL:
      return;
    case SLSTM_FORMAT_TF:
      if (!lstm && s.reset_after) {
        refuse(format, l, "gru_reset_after",
               "it is 1, and TF's GRUCell applies the reset before the recurrent matmul "
               "(gru_reset_after 0); SLSTM_FORMAT_KERAS, SLSTM_FORMAT_PYTORCH and "
               "SLSTM_FORMAT_ONNX express a reset-after GRU");
      }
      return;
    case SLSTM_FORMAT_PYTORCH:
    case SLSTM_FORMAT_CUDNN: {
      const bool pt = format == SLSTM_FORMAT_PYTORCH;
      if (reverse_only) {
        refuse(format, l, "direction",
               std::string("it is SLSTM_DIRECTION_REVERSE, and ") +
                   (pt ? "nn.LSTM / nn.GRU have" : "cuDNN has") +
                   " no reverse-only layer (only a bidirectional one)");
      }
      if (s.peepholes) {
        refuse(format, l, "peepholes",
               std::string("it is 1, and ") + (pt ? "nn.LSTM" : "cuDNN's LSTM") +
                   " has no peephole connections");
      }
      if (s.cell_clip != 0.0f) {
        refuse(format, l, "cell_clip",
               "it is " + float_text(s.cell_clip) + ", and " + (pt ? "nn.LSTM" : "this format") +
                   " does not clip the cell state");
      }
      if (!pt && s.proj_size != 0) {
        refuse(format, l, "proj_size",
               "it is " + std::to_string(s.proj_size) +
                   ", and this format has no projection matrix (SLSTM_FORMAT_PYTORCH's "
                   "weight_hr and SLSTM_FORMAT_TF's projection/kernel do)");
      }
      if (s.proj_clip != 0.0f) {
        refuse(format, l, "proj_clip",
               "it is " + float_text(s.proj_clip) + ", and nn.LSTM(proj_size=...) does not clip "
               "its projection");
      }
      if (!lstm && !s.reset_after) {
        refuse(format, l, "gru_reset_after",
               std::string("it is 0, and ") + (pt ? "nn.GRU" : "cuDNN's GRU") +
                   " applies the reset after the recurrent matmul (gru_reset_after 1); "
                   "SLSTM_FORMAT_TF, SLSTM_FORMAT_KERAS and SLSTM_FORMAT_ONNX express a "
                   "reset-before GRU");
      }
      return;
    }
    case SLSTM_FORMAT_KERAS:
    case SLSTM_FORMAT_KERAS_CUDNN: {
      const bool cudnn = format == SLSTM_FORMAT_KERAS_CUDNN;
      if (cudnn && !lstm && !s.reset_after) {
        refuse(format, l, "gru_reset_after",
               "it is 0, and Keras' CuDNNGRU applies the reset after the recurrent matmul "
               "(gru_reset_after 1); SLSTM_FORMAT_KERAS expresses a reset-before GRU");
      }
      const char* keras = cudnn ? "Keras' CuDNNLSTM" : "Keras' LSTM";
      if (s.peepholes) {
        refuse(format, l, "peepholes", std::string("it is 1, and ") + keras +
                                           " has no peephole connections");
      }
      if (s.cell_clip != 0.0f) {
        refuse(format, l, "cell_clip",
               "it is " + float_text(s.cell_clip) + ", and " + keras +
                   " does not clip the cell state");
      }
      if (s.proj_size != 0) {
        refuse(format, l, "proj_size",
               "it is " + std::to_string(s.proj_size) + ", and " + keras +
                   " has no output projection");
      }
      return;
    }
    case SLSTM_FORMAT_ONNX:
      if (s.cell_clip != 0.0f) {
        refuse(format, l, "cell_clip",
               "it is " + float_text(s.cell_clip) +
                   ", and ONNX LSTM's `clip` attribute clips the gates' pre-activations, not "
                   "the cell state: another function");
      }
      if (s.proj_size != 0) {
        refuse(format, l, "proj_size",
               "it is " + std::to_string(s.proj_size) +
                   ", and the ONNX LSTM operator has no output projection");
      }
      return;
  }
  fail(SLSTM_ERR_INVALID_ARGUMENT, "format: unknown value " + std::to_string(format));
}

// A direction's tensor name: the framework's own prefix or suffix for the reverse half of a
// bidirectional layer (TF's bidirectional_dynamic_rnn scopes fw/ and bw/, Keras'
// Bidirectional forward_/backward_ layers, PyTorch's and cuDNN's _reverse).  CANONICAL
// names both halves alike (slstm_tensor_info.direction tells them apart).
std::string dir_name(slstm_weight_format format, const char* base, int d, int nd) {
  if (nd == 1) return base;
  switch (format) {
    case SLSTM_FORMAT_TF: return std::string(d ? "bw/" : "fw/") + base;
    case SLSTM_FORMAT_KERAS:
    case SLSTM_FORMAT_KERAS_CUDNN: return std::string(d ? "backward/" : "forward/") + base;
    case SLSTM_FORMAT_PYTORCH:
    case SLSTM_FORMAT_CUDNN: return d ? std::string(base) + "_reverse" : std::string(base);
    default: return base;
  }
}

// The tensors `format` takes for layer `l` (checked spec `s`) and where each canonical
// element lives in them; refuses what the format cannot express.
LayerLayout layout(slstm_weight_format format, const LayerSpec& s, std::size_t l) {
  check_expressible(format, s, l);
  LayerLayout out;
  const bool lstm = s.cell == CellKind::kLstm;
  const std::size_t in = sz(s.input_size), h = sz(s.hidden_size), r = sz(s.cell_output_size());
  const std::size_t p = sz(s.proj_size);
  const int g = s.gates();
  const std::size_t gh = static_cast<std::size_t>(g) * h;
  const int nd = s.directions();
  const bool fold_forget = lstm && !has_forget_bias(format);
  auto add = [&out](std::string name, int direction, std::initializer_list<std::int64_t> shape) {
    Expect e;
    e.name = std::move(name);
    for (std::int64_t d : shape) e.shape[e.ndim++] = d;
    out.expect.push_back(std::move(e));
    out.direction.push_back(direction);
    return static_cast<int>(out.expect.size() - 1);
  };
  const auto i64 = [](std::size_t v) { return static_cast<std::int64_t>(v); };

  if (format == SLSTM_FORMAT_ONNX) {  // one node per layer: every direction in each tensor
    const int both = nd == 2 ? -1 : 0;
    const int* perm = lstm ? kOnnxBlock : kZrhBlock;
    const int tw = add("W", both, {nd, i64(gh), i64(in)});
    const int tr = add("R", both, {nd, i64(gh), i64(h)});
    const int tb = add("B", both, {nd, i64(2 * gh)});
    const int tp = lstm && s.peepholes ? add("P", both, {nd, i64(3 * h)}) : -1;
    for (int d = 0; d < nd; ++d) {
      const std::size_t dd = static_cast<std::size_t>(d);
      DirMap m;
      m.w_x = one(rows_of(tw, g, h, perm, in, dd * gh * in));
      m.w_h = one(rows_of(tr, g, h, perm, h, dd * gh * h));
      const Place wb = rows_of(tb, g, h, perm, 1, dd * 2 * gh);
      const Place rb = rows_of(tb, g, h, perm, 1, dd * 2 * gh + gh);
      if (lstm) {
        m.bias = two(wb, rb);  // b = Wb + Rb
        if (tp >= 0) m.peep = one(rows_of(tp, 3, h, kOnnxPeep, 1, dd * 3 * h));
      } else {
        m.bias = one(wb);  // b_x = Wb, b_h = Rb
        m.bias_h = one(rb);
      }
      m.fold_forget = fold_forget;
      out.dirs.push_back(m);
    }
    return out;
  }

  for (int d = 0; d < nd; ++d) {  // the other formats: a set of tensors per direction
    auto name = [&](const char* base) { return dir_name(format, base, d, nd); };
    DirMap m;
    m.fold_forget = fold_forget;
    switch (format) {
      case SLSTM_FORMAT_CANONICAL: {
        m.w_x = one(rows_of(add("W_x", d, {i64(gh), i64(in)}), 1, gh, kIdentity, in, 0));
        m.w_h = one(rows_of(add("W_h", d, {i64(gh), i64(r)}), 1, gh, kIdentity, r, 0));
        if (lstm) {
          m.bias = one(rows_of(add("b", d, {i64(gh)}), 1, gh, kIdentity, 1, 0));
          if (s.peepholes) {
            m.peep = one(rows_of(add("w_peep", d, {3, i64(h)}), 1, 3 * h, kIdentity, 1, 0));
          }
          if (p > 0) {
            m.w_proj = one(rows_of(add("W_proj", d, {i64(p), i64(h)}), 1, p, kIdentity, h, 0));
          }
        } else {
          m.bias = one(rows_of(add("b_x", d, {i64(gh)}), 1, gh, kIdentity, 1, 0));
          m.bias_h = one(rows_of(add("b_h", d, {i64(gh)}), 1, gh, kIdentity, 1, 0));
        }
        break;
      }
      case SLSTM_FORMAT_TF: {
        if (lstm) {  // LSTMCell: kernel [I + R, 4H] (x rows, then h rows), columns i, j, f, o
          const int tk = add(name("kernel"), d, {i64(in + r), i64(gh)});
          m.w_x = one(cols_of(tk, 4, h, kTfBlock, gh, 0));
          m.w_h = one(cols_of(tk, 4, h, kTfBlock, gh, in * gh));
          m.bias = one(rows_of(add(name("bias"), d, {i64(gh)}), 4, h, kTfBlock, 1, 0));
          if (s.peepholes) {
            Place pp;
            pp.block = h;
            pp.nblocks = 3;
            const char* diag[3] = {"w_i_diag", "w_f_diag", "w_o_diag"};
            for (int q = 0; q < 3; ++q) pp.b[q] = {add(name(diag[q]), d, {i64(h)}), 0, 1, 0};
            m.peep = one(pp);
          }
          if (p > 0) {  // TF computes m @ kernel [H, P]: W_proj [P, H] is its transpose
            const int tp = add(name("projection/kernel"), d, {i64(h), i64(p)});
            m.w_proj = one(cols_of(tp, 1, p, kIdentity, p, 0));
          }
        } else {  // GRUCell: gates (r, u = z) and candidate kernels over [x, h], b_h = 0
          const int tgk = add(name("gates/kernel"), d, {i64(in + h), i64(2 * h)});
          const int tgb = add(name("gates/bias"), d, {i64(2 * h)});
          const int tck = add(name("candidate/kernel"), d, {i64(in + h), i64(h)});
          const int tcb = add(name("candidate/bias"), d, {i64(h)});
          Place wx, wh, b;
          wx.block = wh.block = b.block = h;
          wx.nblocks = wh.nblocks = b.nblocks = 3;
          for (int q = 0; q < 2; ++q) {
            const std::size_t col = static_cast<std::size_t>(q) * h;
            wx.b[q] = {tgk, col, 1, 2 * h};
            wh.b[q] = {tgk, in * 2 * h + col, 1, 2 * h};
            b.b[q] = {tgb, col, 1, 0};
          }
          wx.b[2] = {tck, 0, 1, h};
          wh.b[2] = {tck, in * h, 1, h};
          b.b[2] = {tcb, 0, 1, 0};
          m.w_x = one(wx);
          m.w_h = one(wh);
          m.bias = one(b);
          m.fold_bias_h = true;
        }
        break;
      }
      case SLSTM_FORMAT_PYTORCH:
      case SLSTM_FORMAT_CUDNN: {
        const bool pt = format == SLSTM_FORMAT_PYTORCH;
        m.w_x = one(rows_of(add(name(pt ? "weight_ih" : "W"), d, {i64(gh), i64(in)}), 1, gh,
                            kIdentity, in, 0));
        m.w_h = one(rows_of(add(name(pt ? "weight_hh" : "R"), d, {i64(gh), i64(r)}), 1, gh,
                            kIdentity, r, 0));
        const Place bx =
            rows_of(add(name(pt ? "bias_ih" : "bW"), d, {i64(gh)}), 1, gh, kIdentity, 1, 0);
        const Place bh =
            rows_of(add(name(pt ? "bias_hh" : "bR"), d, {i64(gh)}), 1, gh, kIdentity, 1, 0);
        if (lstm) {
          m.bias = two(bx, bh);  // b = bias_ih + bias_hh
          if (p > 0) {
            m.w_proj = one(rows_of(add(name("weight_hr"), d, {i64(p), i64(h)}), 1, p,
                                   kIdentity, h, 0));
          }
        } else {
          m.bias = one(bx);
          m.bias_h = one(bh);
        }
        break;
      }
      case SLSTM_FORMAT_KERAS: {
        if (lstm) {  // kernel [I, 4H], recurrent_kernel [H, 4H]: column blocks i, f, c, o
          m.w_x = one(cols_of(add(name("kernel"), d, {i64(in), i64(gh)}), 1, gh, kIdentity, gh, 0));
          m.w_h = one(cols_of(add(name("recurrent_kernel"), d, {i64(h), i64(gh)}), 1, gh,
                              kIdentity, gh, 0));
          m.bias = one(rows_of(add(name("bias"), d, {i64(gh)}), 1, gh, kIdentity, 1, 0));
        } else {  // column blocks z, r, h
          m.w_x = one(cols_of(add(name("kernel"), d, {i64(in), i64(gh)}), 3, h, kZrhBlock, gh, 0));
          m.w_h = one(cols_of(add(name("recurrent_kernel"), d, {i64(h), i64(gh)}), 3, h,
                              kZrhBlock, gh, 0));
          if (s.reset_after) {  // bias [2, 3H]: input bias, then recurrent bias
            const int tb = add(name("bias"), d, {2, i64(gh)});
            m.bias = one(rows_of(tb, 3, h, kZrhBlock, 1, 0));
            m.bias_h = one(rows_of(tb, 3, h, kZrhBlock, 1, gh));
          } else {  // bias [3H]: no b_h
            m.bias = one(rows_of(add(name("bias"), d, {i64(gh)}), 3, h, kZrhBlock, 1, 0));
            m.fold_bias_h = true;
          }
        }
        break;
      }
      case SLSTM_FORMAT_KERAS_CUDNN: {
        // CuDNNLSTM (blocks i, f, c, o) and CuDNNGRU (blocks z, r, h, reset after): each
        // column block of `kernel`, read in C order, is cuDNN's W_q [H, I]; each block of
        // `recurrent_kernel` is R_q itself; `bias` is [input biases; recurrent biases].
        const int* perm = lstm ? kIdentity : kZrhBlock;
        const int tk = add(name("kernel"), d, {i64(in), i64(gh)});
        const int trk = add(name("recurrent_kernel"), d, {i64(h), i64(gh)});
        const int tb = add(name("bias"), d, {i64(2 * gh)});
        Place wx, wh;
        wx.block = wh.block = h;
        wx.nblocks = wh.nblocks = g;
        wx.cudnn_bytes = true;
        for (int q = 0; q < g; ++q) {
          wx.b[q] = {tk, sz(perm[q]) * h, gh, 0};
          wh.b[q] = {trk, sz(perm[q]) * h, gh, 1};
        }
        m.w_x = one(wx);
        m.w_h = one(wh);
        const Place bx = rows_of(tb, g, h, perm, 1, 0);
        const Place bh = rows_of(tb, g, h, perm, 1, gh);
        if (lstm) {
          m.bias = two(bx, bh);  // b = first half + second half
        } else {
          m.bias = one(bx);  // b_x, b_h
          m.bias_h = one(bh);
        }
        break;
      }
      default:
        fail(SLSTM_ERR_INVALID_ARGUMENT, "format: unknown value " + std::to_string(format));
    }
    out.dirs.push_back(m);
  }
  return out;
}

// ---- Moving values -----------------------------------------------------------------------------

// The caller's element for canonical element (row, k) of a vector with `cols` columns.
template <typename Tensor>
auto element(const Place& p, const Tensor* t, std::size_t row, std::size_t k, std::size_t cols)
    -> decltype(t->data) {
  const std::size_t q = row / p.block, u = row % p.block;
  const Block& b = p.b[q];
  if (p.cudnn_bytes) {
    const std::size_t n = u * cols + k;
    return t[b.tensor].data + b.base + (n / p.block) * b.row_stride + n % p.block;
  }
  return t[b.tensor].data + b.base + u * b.row_stride + k * b.col_stride;
}

// Copies a canonical vector (rows x cols, row-major at `canon`) from the caller's tensors
// (import: Tensor = slstm_tensor) or to them (export: slstm_tensor_out, `canon` const) for
// a place without cudnn_bytes, a tile of rows at a time: the rows of a tile lie in one
// block, so (row, k) is at start + (row - row0) * row_stride + k * col_stride.  Contiguous
// rows are memcpy'd; the transposed layouts (col_stride > 1) go column by column over the
// tile, which keeps both sides' cache lines in use.
constexpr std::size_t kTileRows = 32;

template <typename Tensor, typename Canon>
void move_rows(const Place& p, const Tensor* t, Canon* canon, std::size_t rows,
               std::size_t cols) {
  constexpr bool import = std::is_const_v<std::remove_pointer_t<decltype(t->data)>>;
  for (std::size_t row0 = 0; row0 < rows;) {
    const std::size_t q = row0 / p.block;
    const std::size_t row1 = std::min({rows, row0 + kTileRows, (q + 1) * p.block});
    const Block& b = p.b[q];
    auto* start = element(p, t, row0, 0, cols);
    if (b.col_stride == 1 || cols == 1) {
      for (std::size_t r = row0; r < row1; ++r) {
        if constexpr (import) {
          std::memcpy(canon + r * cols, start + (r - row0) * b.row_stride, cols * sizeof(float));
        } else {
          std::memcpy(start + (r - row0) * b.row_stride, canon + r * cols, cols * sizeof(float));
        }
      }
    } else {
      for (std::size_t k = 0; k < cols; ++k) {
        for (std::size_t r = row0; r < row1; ++r) {
          if constexpr (import) {
            canon[r * cols + k] = start[(r - row0) * b.row_stride + k * b.col_stride];
          } else {
            start[(r - row0) * b.row_stride + k * b.col_stride] = canon[r * cols + k];
          }
        }
      }
    }
    row0 = row1;
  }
}

// The canonical vectors of one direction with their column counts (a vector of `cols`
// columns has size() / cols rows). An array, not a vector: export calls it between writes to
// the caller's tensors, where nothing may fail (an allocation there failed half-way through).
template <typename W>
auto vectors(W& w, const DirMap& m, const LayerSpec& s) {
  using V = decltype(&w.w_x);
  struct Item {
    V v;
    const VecMap* map;
    std::size_t cols;
  };
  return std::array<Item, 6>{{{&w.w_x, &m.w_x, sz(s.input_size)},
                           {&w.w_h, &m.w_h, sz(s.cell_output_size())},
                           {&w.bias, &m.bias, 1},
                           {&w.bias_h, &m.bias_h, 1},
                           {&w.peep, &m.peep, 1},
                           {&w.w_proj, &m.w_proj, sz(s.hidden_size)}}};
}

// Every caller value of a layer must be finite (a model that holds a NaN or an infinity
// could be saved but not loaded again: see the header's "Model files").  Reads the caller's
// tensors only.
void check_finite(const LayerLayout& lay, const slstm_tensor* t, std::size_t first,
                  std::size_t l) {
  for (std::size_t k = 0; k < lay.expect.size(); ++k) {
    const std::size_t n = elements(lay.expect[k]);
    const float* data = t[k].data;
    for (std::size_t e = 0; e < n; ++e) {
      if (!std::isfinite(data[e])) {
        fail(SLSTM_ERR_INVALID_ARGUMENT,
             where(first + k, l, lay.expect[k].name) + ": element " + std::to_string(e) +
                 " is " + (std::isnan(data[e]) ? "NaN" : "infinite") +
                 "; weights must be finite");
      }
    }
  }
}

// Fills a freshly allocated (zeroed, not yet shared) layer from the caller's tensors `t` (the
// layer's first is tensors[first]).  A bias a format stores as the sum of two tensors must be
// finite as a sum (else SLSTM_ERR_INVALID_ARGUMENT naming both; the model is discarded).
void import_layer(const LayerLayout& lay, Layer& layer, const slstm_tensor* t, std::size_t first,
                  std::size_t l) {
  for (int d = 0; d < layer.spec.directions(); ++d) {
    for (const auto& item : vectors(layer.dir(d), lay.dirs[static_cast<std::size_t>(d)],
                                    layer.spec)) {
      const VecMap& m = *item.map;
      std::vector<float>& v = *item.v;
      if (m.n == 0 || v.empty()) continue;
      const std::size_t cols = item.cols, rows = v.size() / cols;
      if (m.n == 1 && !m.p[0].cudnn_bytes) {
        move_rows(m.p[0], t, v.data(), rows, cols);
        continue;
      }
      for (std::size_t row = 0; row < rows; ++row) {
        for (std::size_t k = 0; k < cols; ++k) {
          const float* pa = element(m.p[0], t, row, k, cols);
          float x = *pa;
          if (m.n == 2) {
            const float* pb = element(m.p[1], t, row, k, cols);
            x += *pb;
            if (!std::isfinite(x)) {
              // Each term by its place in the caller's tensor (flat index), not in ours.
              const int a = m.p[0].b[row / m.p[0].block].tensor;
              const int b = m.p[1].b[row / m.p[1].block].tensor;
              const std::string dir =
                  layer.spec.directions() == 2 ? (d ? ", reverse direction" : ", forward direction")
                                               : "";
              fail(SLSTM_ERR_INVALID_ARGUMENT,
                   "layer " + std::to_string(l) + ": the bias is the sum of " +
                       lay.expect[sz(a)].name + " and " + lay.expect[sz(b)].name + ", and " +
                       lay.expect[sz(a)].name + "[" + std::to_string(pa - t[a].data) + "] + " +
                       lay.expect[sz(b)].name + "[" + std::to_string(pb - t[b].data) +
                       "] overflows float32 (tensors[" + std::to_string(first + sz(a)) +
                       "] + tensors[" + std::to_string(first + sz(b)) + "]" + dir +
                       "; flat indices)");
            }
          }
          v[row * cols + k] = x;
        }
      }
    }
  }
}

// The value export writes for canonical bias row `row` of direction `d`: the stored b, plus
// forget_bias in an LSTM's f block and b_h where the format folds them.
float export_bias(const Model& model, const Layer& layer, const DirMap& m, int d,
                  std::size_t row) {
  float x = m.fold_forget ? model.folded_bias(layer, row, d) : layer.dir(d).bias[row];
  if (m.fold_bias_h) x += layer.dir(d).bias_h[row];
  return x;
}

// Every folded value export will write must be finite: checked before anything is written.
void check_export_values(const Model& model, const std::vector<LayerLayout>& lays,
                         slstm_weight_format format) {
  for (std::size_t l = 0; l < lays.size(); ++l) {
    const Layer& layer = model.layer(l);
    for (int d = 0; d < layer.spec.directions(); ++d) {
      const DirMap& m = lays[l].dirs[static_cast<std::size_t>(d)];
      if (!m.fold_forget && !m.fold_bias_h) continue;
      for (std::size_t row = 0; row < layer.dir(d).bias.size(); ++row) {
        if (std::isfinite(export_bias(model, layer, m, d, row))) continue;
        const std::string dir =
            layer.spec.directions() == 2 ? (d ? " (reverse direction)" : " (forward direction)")
                                         : "";
        if (m.fold_forget) {
          fail(SLSTM_ERR_OUT_OF_RANGE,
               "format: exporting folds forget_bias into the f-gate bias, and for layer " +
                   std::to_string(l) + dir + " unit " +
                   std::to_string(row - sz(layer.hidden_size)) + " the sum overflows float32");
        }
        fail(SLSTM_ERR_OUT_OF_RANGE,
             std::string("format: ") + format_name(format) +
                 " has no GRU recurrent bias b_h, so exporting writes b_x + b_h, and for "
                 "layer " + std::to_string(l) + dir + " element " + std::to_string(row) +
                 " the sum overflows float32");
      }
    }
  }
}

// Writes layer l in the format (every check done).
void export_layer(const Model& model, std::size_t l, const LayerLayout& lay,
                  const slstm_tensor_out* t) {
  const Layer& layer = model.layer(l);
  for (int d = 0; d < layer.spec.directions(); ++d) {
    const DirMap& dm = lay.dirs[static_cast<std::size_t>(d)];
    for (const auto& item : vectors(layer.dir(d), dm, layer.spec)) {
      const VecMap& m = *item.map;
      const std::vector<float>& v = *item.v;
      if (m.n == 0 || v.empty()) continue;
      const bool bias = item.v == &layer.dir(d).bias;
      const std::size_t cols = item.cols, rows = v.size() / cols;
      if (!bias && m.n == 1 && !m.p[0].cudnn_bytes) {
        move_rows(m.p[0], t, v.data(), rows, cols);
        continue;
      }
      for (std::size_t row = 0; row < rows; ++row) {
        for (std::size_t k = 0; k < cols; ++k) {
          *element(m.p[0], t, row, k, cols) =
              bias ? export_bias(model, layer, dm, d, row) : v[row * cols + k];
          if (m.n == 2) *element(m.p[1], t, row, k, cols) = 0.0f;
        }
      }
    }
  }
}

// The layouts of a stack, the tensor count and every tensor's pointer and shape: the checks
// that read no weight.  `count_message` phrases a wrong num_tensors.
template <typename Tensor>
std::vector<LayerLayout> check_tensors(const std::vector<LayerSpec>& specs,
                                       slstm_weight_format format, const Tensor* tensors,
                                       std::size_t num_tensors, bool basic_count_message,
                                       const char* what) {
  if (tensors_per_layer(format) == 0) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "format: unknown value " + std::to_string(format));
  }
  std::vector<LayerLayout> lays;
  lays.reserve(specs.size());
  std::size_t want = 0;
  for (std::size_t l = 0; l < specs.size(); ++l) {
    lays.push_back(layout(format, specs[l], l));
    want += lays.back().expect.size();
  }
  if (num_tensors != want) {
    if (basic_count_message) {
      fail(SLSTM_ERR_SHAPE_MISMATCH,
           "num_tensors: expected " + std::to_string(want) + " (" +
               std::to_string(specs.size()) + " layers x " +
               std::to_string(tensors_per_layer(format)) + "), got " +
               std::to_string(num_tensors));
    }
    fail(SLSTM_ERR_SHAPE_MISMATCH, "num_tensors: expected " + std::to_string(want) + " for this " +
                                       what + " in " + format_name(format) +
                                       " (slstm_format_tensors lists them), got " +
                                       std::to_string(num_tensors));
  }
  if (tensors == nullptr) fail(SLSTM_ERR_INVALID_ARGUMENT, "tensors is NULL");
  std::size_t index = 0;
  for (std::size_t l = 0; l < lays.size(); ++l) {
    for (const Expect& e : lays[l].expect) {
      check_tensor(tensors[index], e, index, l);
      ++index;
    }
  }
  return lays;
}

// The output tensors of an export (shapes checked) lie apart: two of them in one place would
// leave whichever values were written last.  Sorted by address, a tensor overlaps an earlier
// one exactly when it starts before the furthest end seen so far.
void check_disjoint(const std::vector<LayerLayout>& lays, const slstm_tensor_out* tensors) {
  struct Span {
    std::uintptr_t begin, end;
    std::size_t index, layer;
    const std::string* name;
  };
  std::vector<Span> spans;
  std::size_t index = 0;
  for (const LayerLayout& lay : lays) index += lay.expect.size();
  spans.reserve(index);
  index = 0;
  for (std::size_t l = 0; l < lays.size(); ++l) {
    for (const Expect& e : lays[l].expect) {
      const auto begin = reinterpret_cast<std::uintptr_t>(tensors[index].data);
      spans.push_back({begin, begin + elements(e) * sizeof(float), index, l, &e.name});
      ++index;
    }
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.index < b.index;
  });
  const Span* furthest = nullptr;
  for (const Span& s : spans) {
    if (furthest != nullptr && s.begin < furthest->end) {
      const Span& later = s.index > furthest->index ? s : *furthest;
      const Span& earlier = s.index > furthest->index ? *furthest : s;
      fail(SLSTM_ERR_ALIASING, where(later.index, later.layer, *later.name) + " overlaps " +
                                   where(earlier.index, earlier.layer, *earlier.name));
    }
    if (furthest == nullptr || s.end > furthest->end) furthest = &s;
  }
}

// Import of a checked stack (`specs` from Model::check_layers or basic_specs).
ModelPtr import_checked(std::int64_t input_size, std::vector<LayerSpec> specs, float forget_bias,
                        slstm_weight_format format, const slstm_tensor* tensors,
                        std::size_t num_tensors, bool basic) {
  // Every check that reads no weight comes before the model is allocated; the weights
  // themselves are read only once memory for them exists: a caller's tensors are as large as
  // their shapes say, and an architecture too large to allocate is refused before a byte of
  // them is read.
  const std::vector<LayerLayout> lays =
      check_tensors(specs, format, tensors, num_tensors, basic, "architecture");
  auto model = std::make_shared<Model>(input_size, std::move(specs), forget_bias);
  std::size_t first = 0;
  for (std::size_t l = 0; l < lays.size(); ++l) {
    check_finite(lays[l], tensors + first, first, l);
    first += lays[l].expect.size();
  }
  first = 0;
  for (std::size_t l = 0; l < lays.size(); ++l) {
    import_layer(lays[l], model->mutable_layer(l), tensors + first, first, l);
    first += lays[l].expect.size();
  }
  return model;
}

}  // namespace

int tensors_per_layer(slstm_weight_format format) {
  switch (format) {
    case SLSTM_FORMAT_CANONICAL: return 3;
    case SLSTM_FORMAT_TF: return 2;
    case SLSTM_FORMAT_PYTORCH: return 4;
    case SLSTM_FORMAT_KERAS: return 3;
    case SLSTM_FORMAT_KERAS_CUDNN: return 3;
    case SLSTM_FORMAT_ONNX: return 3;
    case SLSTM_FORMAT_CUDNN: return 4;
  }
  return 0;
}

ModelPtr import_model(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes,
                      float forget_bias, slstm_weight_format format,
                      const slstm_tensor* tensors, std::size_t num_tensors) {
  if (tensors_per_layer(format) != 0 && !has_forget_bias(format)) forget_bias = 0.0f;
  Model::check_architecture(input_size, hidden_sizes, forget_bias);
  return import_checked(input_size, Model::basic_specs(input_size, hidden_sizes), forget_bias,
                        format, tensors, num_tensors, true);
}

ModelPtr import_model(std::int64_t input_size, std::vector<LayerSpec> specs, float forget_bias,
                      slstm_weight_format format, const slstm_tensor* tensors,
                      std::size_t num_tensors) {
  if (tensors_per_layer(format) != 0 && !has_forget_bias(format)) forget_bias = 0.0f;
  specs = Model::check_layers(input_size, std::move(specs), forget_bias);
  bool basic = true;
  for (const LayerSpec& s : specs) basic = basic && s.is_basic_lstm();
  return import_checked(input_size, std::move(specs), forget_bias, format, tensors, num_tensors,
                        basic);
}

void export_model(const Model& model, slstm_weight_format format,
                  const slstm_tensor_out* tensors, std::size_t num_tensors) {
  std::vector<LayerSpec> specs;
  specs.reserve(model.layers().size());
  for (std::size_t l = 0; l < model.layers().size(); ++l) specs.push_back(model.spec(l));
  const std::vector<LayerLayout> lays =
      check_tensors(specs, format, tensors, num_tensors, model.all_basic(), "model");
  check_disjoint(lays, tensors);
  check_export_values(model, lays, format);
  std::size_t first = 0;
  for (std::size_t l = 0; l < lays.size(); ++l) {
    export_layer(model, l, lays[l], tensors + first);
    first += lays[l].expect.size();
  }
}

std::vector<TensorInfo> format_tensors(const std::vector<LayerSpec>& specs,
                                       slstm_weight_format format) {
  if (tensors_per_layer(format) == 0) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "format: unknown value " + std::to_string(format));
  }
  std::vector<TensorInfo> out;
  for (std::size_t l = 0; l < specs.size(); ++l) {
    const LayerLayout lay = layout(format, specs[l], l);
    for (std::size_t k = 0; k < lay.expect.size(); ++k) {
      TensorInfo info;
      info.layer = static_cast<std::int32_t>(l);
      info.direction = lay.direction[k];
      info.ndim = lay.expect[k].ndim;
      for (std::int32_t d = 0; d < info.ndim; ++d) info.shape[d] = lay.expect[k].shape[d];
      info.name = lay.expect[k].name;
      out.push_back(std::move(info));
    }
  }
  return out;
}

ModelPtr random_model(std::int64_t input_size, const std::vector<std::int64_t>& hidden_sizes,
                      float forget_bias, std::uint64_t seed, float scale) {
  Model::check_architecture(input_size, hidden_sizes, forget_bias);
  return random_model(input_size, Model::basic_specs(input_size, hidden_sizes), forget_bias,
                      seed, scale);
}

ModelPtr random_model(std::int64_t input_size, std::vector<LayerSpec> specs, float forget_bias,
                      std::uint64_t seed, float scale) {
  if (!std::isfinite(scale) || scale < 0.0f) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "scale must be finite and >= 0");
  }
  auto model = std::make_shared<Model>(input_size, std::move(specs), forget_bias);
  std::uint64_t state = seed;
  auto next = [&state]() {  // splitmix64: the same stream on every platform
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  for (std::size_t l = 0; l < model->layers().size(); ++l) {
    Layer& layer = model->mutable_layer(l);
    const float s = scale > 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(layer.hidden_size));
    auto fill = [&](std::vector<float>& v) {
      for (float& x : v) {
        const float u = static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);  // [0, 1)
        x = s * (2.0f * u - 1.0f);
      }
    };
    // A forward BasicLSTMCell layer draws w_x, w_h, bias: the same values as before layers
    // had options.  Extra tensors and the reverse direction follow.
    for (int d = 0; d < layer.spec.directions(); ++d) {
      CellWeights& w = layer.dir(d);
      for (std::vector<float>* v : {&w.w_x, &w.w_h, &w.bias, &w.bias_h, &w.peep, &w.w_proj}) {
        fill(*v);
      }
    }
  }
  return model;
}

}  // namespace slstm
