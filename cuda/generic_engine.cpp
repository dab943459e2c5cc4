// The generic path's engine (generic_engine.hpp): the checks of the description, the
// uploads and buffers, and a forward call as operations on a Device.
#include "generic_engine.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "common.hpp"
#include "stacklstm/stacklstm.h"

namespace slstm_cuda::generic {

using slstm::fail;

namespace {

// a * b for non-negative sizes, or SLSTM_ERR_SIZE_OVERFLOW naming `what`.
std::int64_t times(std::int64_t a, std::int64_t b, const char* what) {
  if (a < 0 || b < 0 || (a != 0 && b > std::numeric_limits<std::int64_t>::max() / a)) {
    fail(SLSTM_ERR_SIZE_OVERFLOW, std::string(what) + ": size overflows int64");
  }
  return a * b;
}

[[noreturn]] void bad_desc(std::size_t l, const std::string& what) {
  fail(SLSTM_ERR_INTERNAL, "generic path: layer " + std::to_string(l) + ": " + what);
}

std::size_t bytes_of(std::int64_t floats) {
  return static_cast<std::size_t>(floats) * sizeof(float);
}

}  // namespace

Engine::Engine(const slstm_cuda_session_desc& d, Device& device) : dev_(device) {
  if (d.num_layers < 1 || d.layers == nullptr) fail(SLSTM_ERR_INTERNAL, "generic path: no layers");
  if (d.input_size < 1 || d.max_batch < 1 || d.max_time < 1 || d.state_row_floats < 1) {
    fail(SLSTM_ERR_INTERNAL, "generic path: sizes out of range");
  }
  if (d.precision < kOperandsF32 || d.precision > kOperandsFp16) {
    fail(SLSTM_ERR_INTERNAL, "generic path: precision out of range");
  }
  format_ = d.precision;
  input_size_ = d.input_size;
  max_batch_ = d.max_batch;
  max_time_ = d.max_time;
  state_row_floats_ = d.state_row_floats;
  // The description, checked whole before anything is allocated.
  std::int64_t in = d.input_size, widest = d.input_size, gate_rows = 1, hidden = 1, proj = 1;
  for (std::int32_t k = 0; k < d.num_layers; ++k) {
    const auto l = static_cast<std::size_t>(k);
    const slstm_cuda_layer_desc& s = d.layers[k];
    Layer L;
    L.cell = s.cell;
    L.direction = s.direction;
    L.in = s.input_size;
    L.hidden = s.hidden_size;
    L.proj = s.proj_size;
    L.cell_clip = s.cell_clip;
    L.proj_clip = s.proj_clip;
    L.reset_after = s.reset_after != 0;
    L.residual = s.residual != 0;
    L.state_parts = s.state_parts;
    if (L.cell != 0 && L.cell != 1) bad_desc(l, "unknown cell kind " + std::to_string(L.cell));
    if (L.direction < 0 || L.direction > 2) bad_desc(l, "unknown direction");
    if (L.in != in) bad_desc(l, "input_size " + std::to_string(L.in) + " != " + std::to_string(in));
    if (L.hidden < 1 || L.proj < 0 || (L.cell == 1 && L.proj != 0)) bad_desc(l, "sizes");
    if (L.state_parts != (L.cell == 0 ? 2 : 1) * L.directions()) bad_desc(l, "state_parts");
    if (L.residual && L.width() != L.in) bad_desc(l, "residual with input width != output width");
    for (int p = 0; p < L.state_parts; ++p) {
      L.state_part_row[p] = s.state_part_row[p];
      const std::int64_t w = (L.cell == 0 && p % 2 == 0) ? L.hidden : L.out_width();
      if (L.state_part_row[p] < 0 || L.state_part_row[p] > d.state_row_floats - w) {
        bad_desc(l, "state piece " + std::to_string(p) + " outside the packed state");
      }
    }
    for (int dir = 0; dir < L.directions(); ++dir) {
      const slstm_cuda_cell_desc& c = s.cells[dir];
      if (c.w_x == nullptr || c.w_h == nullptr || c.bias == nullptr) bad_desc(l, "no weights");
      if ((L.cell == 1 && L.reset_after) != (c.bias_hn != nullptr)) bad_desc(l, "bias_hn");
      if ((s.peepholes != 0) != (c.peep != nullptr) || (L.proj > 0) != (c.w_proj != nullptr)) {
        bad_desc(l, "peepholes or projection weights");
      }
    }
    gate_rows = std::max<std::int64_t>(gate_rows, L.gates() * L.hidden);
    hidden = std::max(hidden, L.hidden);
    proj = std::max(proj, L.proj);
    widest = std::max(widest, L.width());
    in = L.width();
    layers_.push_back(L);
  }
  const std::int64_t B = d.max_batch;
  const std::int64_t rows = times(d.max_batch, d.max_time, "max_batch x max_time");
  try {
    x_ = dev_.alloc_floats(times(rows, d.input_size, "input"), "generic path: input");
    owned_.push_back(x_);
    for (float*& y : y_) {
      y = dev_.alloc_floats(times(rows, widest, "layer output"), "generic path: layer output");
      owned_.push_back(y);
    }
    gx_ = dev_.alloc_floats(times(rows, gate_rows, "input projections"),
                            "generic path: input projections");
    owned_.push_back(gx_);
    z_ = dev_.alloc_floats(times(B, gate_rows, "recurrent sums"), "generic path: recurrent sums");
    owned_.push_back(z_);
    aux_ = dev_.alloc_floats(times(B, hidden, "cell output"), "generic path: cell output");
    owned_.push_back(aux_);
    p_ = dev_.alloc_floats(times(B, proj, "projection"), "generic path: projection");
    owned_.push_back(p_);
    state_ = dev_.alloc_floats(times(B, d.state_row_floats, "state"), "generic path: state");
    owned_.push_back(state_);
    lengths_ = dev_.alloc_ints(B, "generic path: lengths");
    owned_.push_back(lengths_);
    if (format_ != kOperandsF32) {
      x16_ = dev_.alloc_codes(times(rows, widest, "16-bit input"), "generic path: 16-bit input");
      owned_.push_back(x16_);
      op16_ = dev_.alloc_codes(times(B, std::max(hidden, proj), "16-bit operand"),
                               "generic path: 16-bit operand");
      owned_.push_back(op16_);
    }
    host_lengths_.assign(static_cast<std::size_t>(B), 0);
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      const slstm_cuda_layer_desc& s = d.layers[l];
      const std::int64_t GH = L.gates() * L.hidden;
      for (int dir = 0; dir < L.directions(); ++dir) {
        const slstm_cuda_cell_desc& c = s.cells[dir];
        Cell& w = L.cells[dir];
        if (format_ == kOperandsF32) {
          w.w_x = upload(c.w_x, times(GH, L.in, "W_x"), "generic path: W_x");
          w.w_h = upload(c.w_h, times(GH, L.out_width(), "W_h"), "generic path: W_h");
        } else {
          w.w_x16 = upload16(c.w_x, times(GH, L.in, "W_x"), "generic path: W_x");
          w.w_h16 = upload16(c.w_h, times(GH, L.out_width(), "W_h"), "generic path: W_h");
        }
        w.bias = upload(c.bias, GH, "generic path: bias");
        if (c.bias_hn != nullptr) w.bias_hn = upload(c.bias_hn, L.hidden, "generic path: b_hn");
        if (c.peep != nullptr) w.peep = upload(c.peep, 3 * L.hidden, "generic path: peepholes");
        if (c.w_proj != nullptr && format_ == kOperandsF32) {
          w.w_proj = upload(c.w_proj, times(L.proj, L.hidden, "W_proj"), "generic path: W_proj");
        } else if (c.w_proj != nullptr) {
          w.w_proj16 = upload16(c.w_proj, times(L.proj, L.hidden, "W_proj"),
                                "generic path: W_proj");
        }
      }
    }
    dev_.end_call(true);  // the weights are borrowed until session_create returns
  } catch (...) {
    for (void* p : owned_) dev_.release(p);
    throw;
  }
}

Engine::~Engine() {
  for (void* p : owned_) dev_.release(p);
}

float* Engine::upload(const float* host, std::int64_t count, const char* what) {
  float* p = dev_.alloc_floats(count, what);
  owned_.push_back(p);
  dev_.copy(p, host, bytes_of(count), what);
  return p;
}

// The 16-bit codes of a BF16 / FP16 session's weights (rounded once, on the host).
std::uint16_t* Engine::upload16(const float* host, std::int64_t count, const char* what) {
  std::vector<std::uint16_t> codes(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = operand_code(format_, host[i]);
  std::uint16_t* p = dev_.alloc_codes(count, what);
  owned_.push_back(p);
  dev_.copy(p, codes.data(), codes.size() * sizeof(std::uint16_t), what);
  dev_.end_call(true);  // (codes is freed on return)
  return p;
}

void Engine::product(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                     std::int64_t lda, std::uint16_t* a16, const float* w,
                     const std::uint16_t* w16, std::int64_t ldw, float* c, std::int64_t ldc) {
  if (format_ == kOperandsF32) {
    dev_.gemm(Gemm{m, n, k, a, lda, w, ldw, c, ldc, kOperandsF32, nullptr, nullptr});
    return;
  }
  // Every a here is a contiguous [m][k] (lda == k): its codes the same.
  Round16 r;
  r.src = a;
  r.dst = a16;
  r.n = m * k;
  r.format = format_;
  dev_.round16(r);
  dev_.gemm(Gemm{m, n, k, nullptr, k, nullptr, ldw, c, ldc, format_, a16, w16});
}

void Engine::forward(const slstm_cuda_forward_desc& c) {
  const bool host = c.memory == SLSTM_MEMORY_HOST;
  if (c.batch < 1 || c.batch > max_batch_ || c.time < 0 || c.time > max_time_) {
    fail(SLSTM_ERR_INTERNAL, "forward: unvalidated batch/time reached the CUDA module");
  }
  if (!host) {
    if (c.time > 0) dev_.check_device_pointer(c.input, "input");
    dev_.check_device_pointer(c.initial_state, "initial_state");
    if (c.time > 0) dev_.check_device_pointer(c.output, "output");
    dev_.check_device_pointer(c.final_state, "final_state");
  }
  const std::int64_t B = c.batch, T = c.time;
  const std::size_t state_bytes = bytes_of(B * state_row_floats_);
  if (T == 0) {  // no step: final state = initial state, or zeros
    if (c.final_state != nullptr && c.final_state != c.initial_state) {
      if (host) {  // (the device's zero is a memset on device memory)
        if (c.initial_state != nullptr) {
          std::memcpy(c.final_state, c.initial_state, state_bytes);
        } else {
          std::memset(c.final_state, 0, state_bytes);
        }
      } else if (c.initial_state != nullptr) {
        dev_.copy(c.final_state, c.initial_state, state_bytes, "final_state");
      } else {
        dev_.zero(c.final_state, state_bytes, "final_state");
      }
    }
    dev_.end_call(host);
    return;
  }
  std::int64_t steps = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int32_t len = c.lengths != nullptr ? c.lengths[b] : static_cast<std::int32_t>(T);
    host_lengths_[static_cast<std::size_t>(b)] = len;
    steps = std::max<std::int64_t>(steps, len);
  }
  dev_.copy(lengths_, host_lengths_.data(), static_cast<std::size_t>(B) * sizeof(std::int32_t),
            "sequence_lengths");
  // 16-bit input and output (data_type): codes in format io16, device memory (checked by
  // the core).
  const std::int32_t io16 = c.data_type == SLSTM_DATA_BF16  ? kOperandsBf16
                            : c.data_type == SLSTM_DATA_F16 ? kOperandsFp16
                                                            : kOperandsF32;
  if (io16 != kOperandsF32 && host) {
    fail(SLSTM_ERR_INTERNAL, "forward: 16-bit host buffers reached the CUDA module");
  }
  const float* x = c.input;
  if (io16 != kOperandsF32) {
    Widen16 w;
    w.src = reinterpret_cast<const std::uint16_t*>(c.input);
    w.dst = x_;
    w.n = T * B * input_size_;
    w.format = io16;
    dev_.widen16(w);
    x = x_;
  } else if (host || dev_.records()) {  // (a replayed compute reads the first call's buffers)
    dev_.copy(x_, c.input, bytes_of(T * B * input_size_), "input");
    x = x_;
  }
  if (c.initial_state != nullptr) {
    dev_.copy(state_, c.initial_state, state_bytes, "initial_state");
  } else {
    dev_.zero(state_, state_bytes, "state");
  }
  Rows rows;
  rows.batch = B;
  rows.time = T;
  rows.time_major = c.layout == SLSTM_TIME_MAJOR ? 1 : 0;
  rows.lengths = lengths_;
  // A recorded compute is keyed on its steps: with lengths that change from call to call,
  // the longest row's length is rounded up to one of 8 buckets of T (steps past a row's
  // length skip that row, as the rows shorter than the longest always do), so that a few
  // graphs serve every call instead of one capture per call.
  if (dev_.records() && steps > 0) {
    const std::int64_t bucket = (T + 7) / 8;
    steps = std::min<std::int64_t>(T, (steps + bucket - 1) / bucket * bucket);
  }
  Compute compute{this, x, rows, steps};
  ComputeKey key;
  key.batch = B;
  key.time = T;
  key.steps = steps;
  key.layout = c.layout;
  dev_.compute(key, &Engine::enqueue_compute, &compute);
  const std::size_t last = layers_.size() - 1;
  if (c.output != nullptr && io16 != kOperandsF32) {
    Round16 r;
    r.src = y_[last % 2];
    r.dst = reinterpret_cast<std::uint16_t*>(c.output);
    r.n = T * B * layers_[last].width();
    r.format = io16;
    dev_.round16(r);
  } else if (c.output != nullptr) {
    dev_.copy(c.output, y_[last % 2], bytes_of(T * B * layers_[last].width()), "output");
  }
  if (c.final_state != nullptr) dev_.copy(c.final_state, state_, state_bytes, "final_state");
  dev_.end_call(host);
}

// Every layer, each direction over the whole sequence, then the layer's finish; the last
// layer's output ends in y_[(L - 1) % 2].
void Engine::enqueue_compute(void* compute) {
  const Compute& c = *static_cast<const Compute*>(compute);
  Engine& e = *c.self;
  const float* x = c.x;
  std::int64_t x_ld = e.input_size_;
  for (std::size_t l = 0; l < e.layers_.size(); ++l) {
    const Layer& L = e.layers_[l];
    float* y = e.y_[l % 2];
    for (int d = 0; d < L.directions(); ++d) e.run_direction(L, d, x, x_ld, y, c.rows, c.steps);
    LayerFinish fin;
    fin.rows = c.rows;
    fin.width = L.width();
    fin.y = y;
    fin.x = L.residual ? x : nullptr;
    e.dev_.layer_finish(fin);
    x = y;
    x_ld = L.width();
  }
}

// Direction d of layer l over the whole sequence: its input projections for every step in
// one GEMM, then `steps` steps (the longest row's length).
void Engine::run_direction(const Layer& l, int d, const float* x, std::int64_t x_ld, float* y,
                           const Rows& rows, std::int64_t steps) {
  const Cell& w = l.cells[d];
  const std::int64_t GH = l.gates() * l.hidden;
  product(rows.batch * rows.time, GH, l.in, x, x_ld, x16_, w.w_x, w.w_x16, l.in, gx_, GH);
  Rows r = rows;
  r.backwards = (l.direction == 1 || d == 1) ? 1 : 0;
  for (std::int64_t k = 0; k < steps; ++k) {
    r.step = k;
    step(l, d, y, r);
  }
}

void Engine::step(const Layer& l, int d, float* y, const Rows& rows) {
  const Cell& w = l.cells[d];
  const std::int64_t B = rows.batch, H = l.hidden, R = l.out_width();
  const std::int64_t GH = l.gates() * H;
  const int parts = l.cell == 0 ? 2 : 1;  // per direction: LSTM c, h; GRU h
  float* h = state_ + B * l.state_part_row[d * parts + parts - 1];
  Out out;
  out.y = y;
  out.ld = l.width();
  out.col = d * R;
  if (l.cell == 0) {
    product(B, GH, R, h, R, op16_, w.w_h, w.w_h16, R, z_, GH);  // z = h . W_h^T
    LstmStep a;
    a.rows = rows;
    a.hidden = H;
    a.out_width = R;
    a.gx = gx_;
    a.z = z_;
    a.bias = w.bias;
    a.peep = w.peep;
    a.cell_clip = l.cell_clip;
    a.c = state_ + B * l.state_part_row[d * parts];
    a.h = h;
    a.m = l.proj > 0 ? aux_ : nullptr;
    a.out = out;
    dev_.lstm_step(a);
    if (l.proj > 0) {
      product(B, l.proj, H, aux_, H, op16_, w.w_proj, w.w_proj16, H, p_, l.proj);  // p = m . W_proj^T
      LstmProject p;
      p.rows = rows;
      p.proj = l.proj;
      p.p = p_;
      p.proj_clip = l.proj_clip;
      p.h = h;
      p.out = out;
      dev_.lstm_project(p);
    }
    return;
  }
  GruStep a;
  a.rows = rows;
  a.hidden = H;
  a.gx = gx_;
  a.z = z_;
  a.bias = w.bias;
  a.bias_hn = l.reset_after ? w.bias_hn : nullptr;
  a.rh = aux_;
  a.h = h;
  a.out = out;
  if (l.reset_after) {
    product(B, GH, H, h, H, op16_, w.w_h, w.w_h16, H, z_, GH);  // z = h . W_h^T
  } else {
    product(B, 2 * H, H, h, H, op16_, w.w_h, w.w_h16, H, z_, GH);  // r and z
    dev_.gru_reset(a);
    // z_n = (r o h) . W_hn^T (the same 16-bit buffer: the product above was issued first)
    product(B, H, H, aux_, H, op16_, w.w_h == nullptr ? nullptr : w.w_h + 2 * H * H,
            w.w_h16 == nullptr ? nullptr : w.w_h16 + 2 * H * H, H, z_ + 2 * H, GH);
  }
  dev_.gru_step(a);
}

}  // namespace slstm_cuda::generic
