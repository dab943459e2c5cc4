// Writes the files cli_tests.sh drives the tool with, into the directory argv[1]:
//   model.safetensors     a random model, input 4, hidden [5, 3], forget_bias 0.5
//   x.npy                 float32 [2, 3, 4];  x64.npy the same values as float64
//   x_tm.npy              x transposed to [3, 2, 4] (time-major)
//   lengths.npy           int64 [2] = {3, 1};  lengths3.npy int32 [3]
//   state0.npy            a packed initial state for batch 2 (float32, 1-D)
//   expected.npy          forward(x) [2, 3, 3], computed here through the C++ API
//   expected_tm.npy       expected transposed to [3, 2, 3], by hand (index arithmetic)
//   expected_len.npy      forward(x, lengths)
//   expected_state.npy    forward(x, initial_state=state0)'s final state
//   wrong_depth.npy [2, 3, 5], rank2.npy [2, 4], big_endian.npy, fortran.npy,
//   truncated.npy, not_npy.npy (text), not_a_model.safetensors (text)
//   lengths1.npy int32 [1], state0_2d.npy (state0 as [2, 16]), x_empty.npy [0, 3, 4],
//   x_t0.npy [2, 0, 4] and expected_t0.npy [2, 0, 3]
//   cells.safetensors     input 4: LSTM 4 with projection 3, peepholes, clips, bidirectional;
//                         GRU 6 reset after, residual; GRU 2 reset before, reverse;
//                         LSTM 2 with a cell clip
//   deep.safetensors      input 1, eleven layers of hidden 1 (layers.10 after layers.9)
//   header640.safetensors a safetensors file (header length 640: bytes 0x80 0x02, as a
//                         pickle starts) that the library refuses: it holds no tensors
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "npy.hpp"
#include "stacklstm/stacklstm.hpp"

namespace {

std::vector<std::uint8_t> raw_npy(const std::string& dict, std::size_t data_bytes) {
  std::string h = dict;
  const std::size_t total = (10 + h.size() + 1 + 63) / 64 * 64;
  h.append(total - 10 - h.size() - 1, ' ');
  h.push_back('\n');
  std::string image = "\x93NUMPY";
  image.push_back('\x01');
  image.push_back('\x00');
  image.push_back(static_cast<char>(h.size() & 0xff));
  image.push_back(static_cast<char>(h.size() >> 8));
  image += h;
  image.append(data_bytes, '\0');
  return std::vector<std::uint8_t>(image.begin(), image.end());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = std::string(argv[1]) + "/";
  try {
    using slstm_cli::write_file_atomically;
    using slstm_cli::write_npy_float32;
    const std::int64_t B = 2, T = 3, D = 4, H = 3;
    const stacklstm::Model model = stacklstm::Model::random(D, {5, H}, 42, 0.5f);
    model.save(dir + "model.safetensors", "canonical");

    std::vector<float> x(B * T * D);
    for (std::size_t i = 0; i < x.size(); ++i) {
      x[i] = static_cast<float>((static_cast<int>(i * 37 % 23) - 11)) / 7.0f;
    }
    write_npy_float32(dir + "x.npy", x.data(), {B, T, D});
    {
      std::vector<double> x64(x.begin(), x.end());
      std::vector<std::uint8_t> img =
          raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3, 4), }", 0);
      const auto* p = reinterpret_cast<const std::uint8_t*>(x64.data());
      img.insert(img.end(), p, p + x64.size() * 8);
      write_file_atomically(dir + "x64.npy", img);
    }
    std::vector<float> x_tm(x.size());
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t d = 0; d < D; ++d) x_tm[(t * B + b) * D + d] = x[(b * T + t) * D + d];
    write_npy_float32(dir + "x_tm.npy", x_tm.data(), {T, B, D});

    {
      const std::int64_t len[2] = {3, 1};
      std::vector<std::uint8_t> img =
          raw_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", 0);
      const auto* p = reinterpret_cast<const std::uint8_t*>(len);
      img.insert(img.end(), p, p + sizeof len);
      write_file_atomically(dir + "lengths.npy", img);
      std::vector<std::uint8_t> img3 =
          raw_npy("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", 12);
      write_file_atomically(dir + "lengths3.npy", img3);
    }
    std::vector<float> state0(model.state_count(B));
    for (std::size_t i = 0; i < state0.size(); ++i) state0[i] = 0.05f * static_cast<float>(i % 9) - 0.2f;
    write_npy_float32(dir + "state0.npy", state0.data(), {static_cast<std::int64_t>(state0.size())});

    stacklstm::Session s(model, stacklstm::SessionOptions(B, T));
    const stacklstm::ForwardResult plain = s.forward(B, T, x);
    write_npy_float32(dir + "expected.npy", plain.output.data(), {B, T, H});
    std::vector<float> out_tm(plain.output.size());
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t h = 0; h < H; ++h)
          out_tm[(t * B + b) * H + h] = plain.output[(b * T + t) * H + h];
    write_npy_float32(dir + "expected_tm.npy", out_tm.data(), {T, B, H});

    stacklstm::ForwardOptions with_len;
    const std::int32_t len32[2] = {3, 1};
    with_len.sequence_lengths = len32;
    const stacklstm::ForwardResult lengths = s.forward(B, T, x, with_len);
    write_npy_float32(dir + "expected_len.npy", lengths.output.data(), {B, T, H});

    stacklstm::ForwardOptions with_state;
    with_state.initial_state = state0;
    const stacklstm::ForwardResult stated = s.forward(B, T, x, with_state);
    write_npy_float32(dir + "expected_state.npy", stated.final_state.data(),
                      {static_cast<std::int64_t>(stated.final_state.size())});

    std::vector<float> wd(B * T * 5, 0.5f);
    write_npy_float32(dir + "wrong_depth.npy", wd.data(), {B, T, 5});
    write_npy_float32(dir + "rank2.npy", wd.data(), {2, 4});
    write_file_atomically(dir + "big_endian.npy",
                          raw_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3, 4), }", 96));
    write_file_atomically(dir + "fortran.npy",
                          raw_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 4), }", 96));
    write_file_atomically(dir + "truncated.npy",
                          raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", 50));
    {
      std::vector<std::uint8_t> img1 =
          raw_npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }", 4);
      write_file_atomically(dir + "lengths1.npy", img1);
    }
    write_npy_float32(dir + "state0_2d.npy", state0.data(),
                      {B, static_cast<std::int64_t>(state0.size()) / B});
    write_npy_float32(dir + "x_empty.npy", nullptr, {0, T, D});
    write_npy_float32(dir + "x_t0.npy", nullptr, {B, 0, D});
    write_npy_float32(dir + "expected_t0.npy", nullptr, {B, 0, H});

    slstm_layer_config l0 = stacklstm::lstm_layer(4);
    l0.proj_size = 3;
    l0.peepholes = 1;
    l0.cell_clip = 2.5f;
    l0.proj_clip = 1.5f;
    l0.direction = SLSTM_DIRECTION_BIDIRECTIONAL;
    slstm_layer_config l1 = stacklstm::gru_layer(6, true);
    l1.residual = 1;
    slstm_layer_config l2 = stacklstm::gru_layer(2, false);
    l2.direction = SLSTM_DIRECTION_REVERSE;
    slstm_layer_config l3 = stacklstm::lstm_layer(2);
    l3.cell_clip = 0.75f;
    stacklstm::Model::random(D, stacklstm::Layers{l0, l1, l2, l3}, 7)
        .save(dir + "cells.safetensors", "canonical");
    stacklstm::Model::random(1, std::vector<std::int64_t>(11, 1), 8)
        .save(dir + "deep.safetensors", "canonical");
    {
      std::string st = std::string("\x80\x02", 2) + std::string(6, '\0') + "{" +
                       std::string(638, ' ') + "}";
      write_file_atomically(dir + "header640.safetensors",
                            std::vector<std::uint8_t>(st.begin(), st.end()));
    }

    const std::string text = "this is not a binary file\n";
    write_file_atomically(dir + "not_npy.npy", std::vector<std::uint8_t>(text.begin(), text.end()));
    write_file_atomically(dir + "not_a_model.safetensors",
                          std::vector<std::uint8_t>(text.begin(), text.end()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_test_files: %s\n", e.what());
    return 1;
  }
  return 0;
}
