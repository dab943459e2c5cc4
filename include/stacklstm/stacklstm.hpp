// libstacklstm — a header-only C++17 wrapper over the C API of stacklstm.h.
//
//   #include <stacklstm/stacklstm.hpp>
//
//   auto model = stacklstm::Model::random(128, {100, 200, 300}, /*seed=*/42);
//   stacklstm::Session session(model, stacklstm::SessionOptions(/*max_batch=*/10, /*time=*/50));
//   auto r = session.forward(10, 50, x);             // x: std::vector<float> [10, 50, 128]
//   // r.output [10, 50, 300]; r.final_state packed (c_0, h_0, c_1, h_1, c_2, h_2)
//   auto h_last = model.state_part(r.final_state, 10, 2, SLSTM_STATE_H);   // [10, 300]
//
// What it adds to the C API, and nothing more:
//   - RAII: Model and Session free their C handles; nothing leaks on any path.
//   - Exceptions: every failed C call throws stacklstm::Error, which carries the slstm_status
//     and the library's message (slstm_last_error(), copied when thrown).  The C API's
//     guarantee holds: when a call throws, nothing the caller passed for output was written.
//   - Spans: buffers are passed as stacklstm::span<T> (pointer + element count), built
//     implicitly from std::vector, std::array, C arrays and any contiguous container with
//     data() and size(); the count reaches the library, which checks it against the shapes.
//   - Convenience overloads that size and return std::vector results.
//
// Semantics, shapes, the packed-state layout, weight formats, model files and statuses are
// those of the C header (stacklstm.h): read it; this file documents only what differs.
//
// THREADS (the C header's rules): a Model is immutable, and one Model object, or copies of
// it, may be used by any number of threads at once (copies share the C model through an
// atomic reference count).  A Session is used by one thread at a time (guard it yourself or
// give each thread its own).  Error messages are per thread, as in C.
//
// OWNERSHIP: Model is a shared, copyable handle (like std::shared_ptr): copies refer to the
// same immutable weights, and the C model is destroyed when the last copy goes.  Session is
// move-only (like std::unique_ptr).  A Session keeps its model alive on its own (the C
// library holds a reference), so a Model may go out of scope while its sessions still run.
// A default-constructed or moved-from handle is empty (operator bool is false); calls on
// it throw Error(SLSTM_ERR_INVALID_ARGUMENT) with the library's "is NULL" message.
//
// ABI: only inline code, no exported symbol of its own; option structs are initialised with
// the C header's *_init macros, so they have the size this header gives them (see "ABI" in
// stacklstm.h).  Raw handles and structs stay reachable (get(), c_struct()) for calls this
// wrapper does not cover.
#ifndef STACKLSTM_STACKLSTM_HPP
#define STACKLSTM_STACKLSTM_HPP

// (MSVC reports __cplusplus as 199711L unless /Zc:__cplusplus; _MSVC_LANG is the standard.)
#if (defined(_MSVC_LANG) ? _MSVC_LANG : __cplusplus) < 201703L
#error "stacklstm.hpp needs C++17 (-std=c++17 or later); C and older C++ use stacklstm.h"
#endif

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "stacklstm/stacklstm.h"

namespace stacklstm {

// ------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------

/// The exception every failed call throws.  what() is the library's message (the text of
/// slstm_last_error() at the time of the failure: which argument was wrong and why), or the
/// status's text when the library gave none.
class Error : public std::runtime_error {
 public:
  Error(slstm_status status, const std::string& message)
      : std::runtime_error(message.empty() ? std::string(slstm_status_string(status)) : message),
        status_(status) {}

  /// The C status code (never SLSTM_OK).
  slstm_status status() const noexcept { return status_; }
  /// The status's static English text, e.g. "shape mismatch".
  const char* status_string() const noexcept { return slstm_status_string(status_); }

 private:
  slstm_status status_;
};

/// Throws Error(status, slstm_last_error()) unless status is SLSTM_OK.  Call it right after
/// the C call whose status it checks (the message is per thread and the next call may
/// replace it).
inline void check(slstm_status status) {
  if (status != SLSTM_OK) throw Error(status, std::string(slstm_last_error()));
}

// ------------------------------------------------------------------------------------------
// span
// ------------------------------------------------------------------------------------------

namespace detail {
template <class T>
struct is_span : std::false_type {};
template <class C, class T, class = void>
struct has_data_size : std::false_type {};
template <class C, class T>
struct has_data_size<
    C, T, std::void_t<decltype(std::declval<C&>().data()), decltype(std::declval<C&>().size())>>
    : std::integral_constant<
          bool, std::is_convertible<decltype(std::declval<C&>().data()), T*>::value &&
                    // and the same size: a derived-to-base pointer would misread elements
                    sizeof(*std::declval<C&>().data()) == sizeof(T)> {};
}  // namespace detail

/// A borrowed view of `size()` contiguous elements (C++20's std::span, reduced to what this
/// API needs).  It does not own its elements: the container must outlive the call it is
/// passed to.  Built from (pointer, count), a C array, or any contiguous container with
/// data() and size() whose data() converts to T* (std::vector, std::array, std::string
/// for char...; not a std::vector<double> for a span<const float>).  A span of mutable elements
/// binds only to lvalue containers; a span of const elements also binds to a temporary (alive until
/// the end of the full expression). A default-constructed span is empty (data() == nullptr): for
/// optional arguments an empty span means "absent".
template <class T>
class span {
 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using size_type = std::size_t;
  using pointer = T*;
  using iterator = T*;

  constexpr span() noexcept = default;
  constexpr span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
  template <std::size_t N>
  constexpr span(T (&array)[N]) noexcept : data_(array), size_(N) {}  // NOLINT: implicit
  /// From a contiguous container (lvalue; or any value category when T is const).
  template <class C, class = std::enable_if_t<
                         !detail::is_span<std::remove_cv_t<std::remove_reference_t<C>>>::value &&
                         !std::is_array<std::remove_reference_t<C>>::value &&
                         detail::has_data_size<std::remove_reference_t<C>, T>::value &&
                         (std::is_const<T>::value || std::is_lvalue_reference<C>::value)>>
  constexpr span(C&& container) noexcept  // NOLINT: implicit on purpose
      : data_(container.data()), size_(static_cast<std::size_t>(container.size())) {}
  /// span<const T> from span<T>.
  template <class U, class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
  constexpr span(const span<U>& other) noexcept  // NOLINT: implicit on purpose
      : data_(other.data()), size_(other.size()) {}

  constexpr T* data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr T* begin() const noexcept { return data_; }
  constexpr T* end() const noexcept { return data_ + size_; }
  /// Unchecked, like std::span's.
  constexpr T& operator[](std::size_t i) const noexcept { return data_[i]; }
  /// Elements [offset, offset + count); Error(SLSTM_ERR_OUT_OF_RANGE) past the end.
  span subspan(std::size_t offset, std::size_t count) const {
    if (offset > size_ || count > size_ - offset) {
      throw Error(SLSTM_ERR_OUT_OF_RANGE, "span::subspan: [" + std::to_string(offset) + ", " +
                                              std::to_string(offset) + " + " +
                                              std::to_string(count) + ") is past the size " +
                                              std::to_string(size_));
    }
    return span(data_ + offset, count);
  }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

namespace detail {
template <class T>
struct is_span<span<T>> : std::true_type {};

// A NUL-terminated copy's pointer for the C API; a string with an embedded NUL would be cut
// short silently, so it is refused.
inline const char* c_string(const std::string& s, const char* what) {
  if (s.find('\0') != std::string::npos) {
    throw Error(SLSTM_ERR_INVALID_ARGUMENT, std::string(what) + " contains a NUL character");
  }
  return s.c_str();
}

inline std::size_t checked_mul(std::size_t a, std::size_t b, const char* what) {
  if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a) {
    throw Error(SLSTM_ERR_SIZE_OVERFLOW, std::string(what) + " does not fit in size_t");
  }
  return a * b;
}

inline std::size_t to_size(std::int64_t v) { return static_cast<std::size_t>(v); }
}  // namespace detail

// ------------------------------------------------------------------------------------------
// Library-wide queries
// ------------------------------------------------------------------------------------------

/// Whether a backend can run on this machine, and if not, why.
struct Availability {
  bool available = false;
  /// Empty when available; else the library's reason (module not found, no driver, ...).
  std::string reason;
  explicit operator bool() const noexcept { return available; }
};

/// slstm_backend_available(): {true, ""} or {false, reason}.  Throws Error
/// (SLSTM_ERR_INVALID_ARGUMENT) only for a value that is no backend.
[[nodiscard]] inline Availability backend_available(slstm_backend backend) {
  const slstm_status st = slstm_backend_available(backend);
  if (st == SLSTM_OK) return Availability{true, std::string()};
  if (st == SLSTM_ERR_BACKEND_UNAVAILABLE) {
    return Availability{false, std::string(slstm_last_error())};
  }
  check(st);
  return Availability{};  // not reached
}

/// "major.minor.patch" of the library actually loaded (compare SLSTM_VERSION_STRING).
inline std::string version_string() { return std::string(slstm_version_string()); }
/// major*10000 + minor*100 + patch of the library actually loaded.
inline std::uint32_t version_number() noexcept { return slstm_version_number(); }

/// Number of tensors per layer of a weight format (slstm_format_tensors_per_layer).
inline std::int32_t tensors_per_layer(slstm_weight_format format) {
  std::int32_t n = 0;
  check(slstm_format_tensors_per_layer(format, &n));
  return n;
}

// ------------------------------------------------------------------------------------------
// Tensors
// ------------------------------------------------------------------------------------------

namespace detail {
template <class Tensor, class F>
Tensor make_tensor(span<F> data, std::initializer_list<std::int64_t> shape) {
  if (shape.size() < 1 || shape.size() > SLSTM_MAX_DIMS) {
    throw Error(SLSTM_ERR_INVALID_ARGUMENT, "tensor: " + std::to_string(shape.size()) +
                                                " dimensions, expected 1 to " +
                                                std::to_string(SLSTM_MAX_DIMS));
  }
  Tensor t{};
  t.data = data.data();
  t.ndim = static_cast<std::int32_t>(shape.size());
  std::size_t count = 1;
  std::size_t k = 0;
  for (const std::int64_t d : shape) {
    if (d < 0) {
      throw Error(SLSTM_ERR_INVALID_ARGUMENT,
                  "tensor: dimension " + std::to_string(k) + " is negative");
    }
    count = checked_mul(count, to_size(d), "tensor: the element count");
    t.shape[k++] = d;
  }
  if (count != data.size()) {
    throw Error(SLSTM_ERR_SHAPE_MISMATCH, "tensor: the shape holds " + std::to_string(count) +
                                              " elements, the buffer " +
                                              std::to_string(data.size()));
  }
  return t;
}
}  // namespace detail

/// A borrowed slstm_tensor over `data` with `shape` (1 to SLSTM_MAX_DIMS dimensions).  Unlike
/// the C struct, the buffer's size is checked against the shape: Error(SLSTM_ERR_SHAPE_MISMATCH)
/// when they differ.  `data` must outlive every call the tensor is passed to.
inline slstm_tensor tensor(span<const float> data, std::initializer_list<std::int64_t> shape) {
  return detail::make_tensor<slstm_tensor>(data, shape);
}
/// The same for a buffer the library writes (Model::export_weights).
inline slstm_tensor_out tensor_out(span<float> data, std::initializer_list<std::int64_t> shape) {
  return detail::make_tensor<slstm_tensor_out>(data, shape);
}

/// An owning weight tensor: what Model::export_weights returns, and what Model::from_weights
/// also accepts.
struct Tensor {
  std::vector<std::int64_t> shape{};
  std::vector<float> data{};  ///< row-major, product(shape) elements

  /// A borrowed C view (valid while this Tensor is alive and unchanged).
  slstm_tensor view() const noexcept {
    slstm_tensor t{};
    t.data = data.data();
    t.ndim = static_cast<std::int32_t>(shape.size());
    for (std::size_t k = 0; k < shape.size() && k < SLSTM_MAX_DIMS; ++k) t.shape[k] = shape[k];
    return t;
  }
};

// ------------------------------------------------------------------------------------------
// Model
// ------------------------------------------------------------------------------------------

/// A forward LSTM layer of `hidden_size` units without options (set the other fields of the
/// result for peepholes, clipping, a projection, a direction or a residual connection).
inline slstm_layer_config lstm_layer(std::int64_t hidden_size) {
  slstm_layer_config c;
  slstm_layer_config_init(&c);
  c.hidden_size = hidden_size;
  return c;
}
/// A forward GRU layer; reset_after: true for PyTorch / Keras reset_after / cuDNN, false for
/// TF 1.x GRUCell (docs/cells.md).
inline slstm_layer_config gru_layer(std::int64_t hidden_size, bool reset_after) {
  slstm_layer_config c = lstm_layer(hidden_size);
  c.cell = SLSTM_CELL_GRU;
  c.gru_reset_after = reset_after ? 1 : 0;
  return c;
}

/// The layers of a stack, one slstm_layer_config each (a type of its own, so that a braced
/// list of hidden sizes never reads as layers): Model::random(5, Layers{a, b}, seed).
class Layers {
 public:
  explicit Layers(std::vector<slstm_layer_config> layers) : layers_(std::move(layers)) {}
  explicit Layers(std::initializer_list<slstm_layer_config> layers) : layers_(layers) {}
  const std::vector<slstm_layer_config>& get() const noexcept { return layers_; }

 private:
  std::vector<slstm_layer_config> layers_;
};

/// An immutable stack of recurrent layers (slstm_model*), shared by copies: see OWNERSHIP
/// above.
class Model {
 public:
  /// An empty handle.
  Model() noexcept = default;

  /// Takes ownership of a C handle (which the Model will destroy); nullptr gives an empty
  /// Model.
  [[nodiscard]] static Model adopt(slstm_model* model) { return Model(model); }

  /// slstm_model_create_random: seeded pseudo-random weights uniform in [-scale, scale]
  /// (scale 0: 1/sqrt(H_l) per layer), the same on every platform for the same seed.
  [[nodiscard]] static Model random(std::int64_t input_size,
                                    const std::vector<std::int64_t>& hidden_sizes,
                                    std::uint64_t seed, float forget_bias = 1.0f,
                                    float scale = 0.0f) {
    slstm_model_config cfg = config(input_size, hidden_sizes, forget_bias);
    slstm_model* m = nullptr;
    check(slstm_model_create_random(&cfg, seed, scale, &m));
    return Model(m);
  }

  /// The same for any stack (docs/cells.md): one slstm_layer_config per layer (see
  /// stacklstm::lstm_layer / gru_layer).
  [[nodiscard]] static Model random(std::int64_t input_size, const Layers& layers,
                                    std::uint64_t seed, float forget_bias = 1.0f,
                                    float scale = 0.0f) {
    slstm_model_config cfg = config(input_size, layers, forget_bias);
    slstm_model* m = nullptr;
    check(slstm_model_create_random(&cfg, seed, scale, &m));
    return Model(m);
  }
  /// slstm_model_create for any stack: the tensors slstm_format_tensors lists (see
  /// Model::format_tensors), in that order.
  [[nodiscard]] static Model from_weights(slstm_weight_format format, std::int64_t input_size,
                                          const Layers& layers,
                                          span<const slstm_tensor> tensors,
                                          float forget_bias = 1.0f) {
    slstm_model_config cfg = config(input_size, layers, forget_bias);
    slstm_model* m = nullptr;
    check(slstm_model_create(&cfg, format, tensors.data(), tensors.size(), &m));
    return Model(m);
  }
  /// slstm_format_tensors: the tensors `format` takes for the stack, in API order (names,
  /// shapes, layer and direction); Error(SLSTM_ERR_UNSUPPORTED) when the format cannot
  /// express a layer.
  [[nodiscard]] static std::vector<slstm_tensor_info> format_tensors(
      slstm_weight_format format, std::int64_t input_size, const Layers& layers) {
    slstm_model_config cfg = config(input_size, layers, 1.0f);
    std::size_t n = 0;
    check(slstm_format_tensors(&cfg, format, nullptr, 0, &n));
    std::vector<slstm_tensor_info> infos(n);
    for (slstm_tensor_info& i : infos) i.struct_size = sizeof i;
    check(slstm_format_tensors(&cfg, format, infos.data(), infos.size(), &n));
    return infos;
  }

  /// slstm_model_create: weights in `format`, num_layers * tensors_per_layer(format) tensors
  /// layer by layer (see slstm_weight_format; stacklstm::tensor() builds checked views).
  /// forget_bias is used by the CANONICAL and TF formats and ignored by the others (their
  /// models get 0).  The weights are copied.
  [[nodiscard]] static Model from_weights(slstm_weight_format format, std::int64_t input_size,
                                          const std::vector<std::int64_t>& hidden_sizes,
                                          span<const slstm_tensor> tensors,
                                          float forget_bias = 1.0f) {
    slstm_model_config cfg = config(input_size, hidden_sizes, forget_bias);
    slstm_model* m = nullptr;
    check(slstm_model_create(&cfg, format, tensors.data(), tensors.size(), &m));
    return Model(m);
  }
  /// The same from owning tensors (e.g. another model's export_weights()).
  [[nodiscard]] static Model from_weights(slstm_weight_format format, std::int64_t input_size,
                                          const std::vector<std::int64_t>& hidden_sizes,
                                          const std::vector<Tensor>& tensors,
                                          float forget_bias = 1.0f) {
    const std::vector<slstm_tensor> views = tensor_views(tensors);
    return from_weights(format, input_size, hidden_sizes,
                        span<const slstm_tensor>(views.data(), views.size()), forget_bias);
  }
  /// Any stack from owning tensors (e.g. another model's export_weights() with its
  /// layers()).
  [[nodiscard]] static Model from_weights(slstm_weight_format format, std::int64_t input_size,
                                          const Layers& layers,
                                          const std::vector<Tensor>& tensors,
                                          float forget_bias = 1.0f) {
    const std::vector<slstm_tensor> views = tensor_views(tensors);
    return from_weights(format, input_size, layers,
                        span<const slstm_tensor>(views.data(), views.size()), forget_bias);
  }
  /// Checked views of owning tensors (each shape's element count is its data's size).
  static std::vector<slstm_tensor> tensor_views(const std::vector<Tensor>& tensors) {
    std::vector<slstm_tensor> views;
    views.reserve(tensors.size());
    for (const Tensor& t : tensors) {
      if (t.shape.empty() || t.shape.size() > SLSTM_MAX_DIMS) {
        throw Error(SLSTM_ERR_INVALID_ARGUMENT, "tensors[" + std::to_string(views.size()) +
                                                    "]: " + std::to_string(t.shape.size()) +
                                                    " dimensions, expected 1 to " +
                                                    std::to_string(SLSTM_MAX_DIMS));
      }
      std::size_t count = 1;
      for (const std::int64_t d : t.shape) {
        count = d < 0 ? 0 : detail::checked_mul(count, detail::to_size(d), "a tensor's size");
      }
      if (count != t.data.size()) {
        throw Error(SLSTM_ERR_SHAPE_MISMATCH,
                    "tensors[" + std::to_string(views.size()) + "]: the shape holds " +
                        std::to_string(count) + " elements, data " + std::to_string(t.data.size()));
      }
      views.push_back(t.view());
    }
    return views;
  }

  /// slstm_model_load_file: a safetensors model file (every check of the C header applies).
  [[nodiscard]] static Model load(const std::string& path) {
    slstm_model* m = nullptr;
    check(slstm_model_load_file(detail::c_string(path, "path"), &m));
    return Model(m);
  }
  /// slstm_model_load_memory: a safetensors image in memory (e.g. to_bytes()).
  [[nodiscard]] static Model load(span<const std::uint8_t> bytes) {
    return load(bytes.data(), bytes.size());
  }
  [[nodiscard]] static Model load(const void* data, std::size_t size) {
    slstm_model* m = nullptr;
    check(slstm_model_load_memory(data, size, &m));
    return Model(m);
  }

  /// slstm_model_save_file: writes the model atomically (temporary file, fsync, rename).
  /// source_layout: at most 256 bytes of printable ASCII saying where the weights came from.
  void save(const std::string& path, const std::string& source_layout = "canonical") const {
    check(slstm_model_save_file(get(), detail::c_string(path, "path"),
                                detail::c_string(source_layout, "source_layout")));
  }
  /// Bytes to_bytes() / save_to() produce (slstm_model_file_size).
  std::size_t file_size(const std::string& source_layout = "canonical") const {
    std::size_t n = 0;
    check(slstm_model_file_size(get(), detail::c_string(source_layout, "source_layout"), &n));
    return n;
  }
  /// slstm_model_save_memory into a caller buffer; returns the bytes written.
  /// Error(SLSTM_ERR_SHAPE_MISMATCH) when the buffer is smaller than file_size().
  std::size_t save_to(span<std::uint8_t> buffer,
                      const std::string& source_layout = "canonical") const {
    std::size_t n = 0;
    check(slstm_model_save_memory(get(), detail::c_string(source_layout, "source_layout"),
                                  buffer.data(), buffer.size(), &n));
    return n;
  }
  /// The safetensors image as a vector (what save() would write).
  [[nodiscard]] std::vector<std::uint8_t> to_bytes(
      const std::string& source_layout = "canonical") const {
    std::vector<std::uint8_t> bytes(file_size(source_layout));
    const std::size_t n = save_to(bytes, source_layout);
    bytes.resize(n);
    return bytes;
  }

  /// The shapes of the tensors `format` takes for this model's stack, in the order
  /// slstm_model_create takes them (slstm_format_tensors: any stack, every format the
  /// library knows); Error(SLSTM_ERR_UNSUPPORTED) when the format cannot express a layer.
  std::vector<std::vector<std::int64_t>> weight_shapes(slstm_weight_format format) const {
    std::vector<std::vector<std::int64_t>> shapes;
    for (const slstm_tensor_info& t : format_tensors(format, input_size(), layers())) {
      shapes.emplace_back(t.shape, t.shape + t.ndim);
    }
    return shapes;
  }

  /// slstm_model_export into caller buffers (count, order and shapes as for from_weights;
  /// nothing is written unless every check passes).
  void export_weights(slstm_weight_format format, span<const slstm_tensor_out> tensors) const {
    check(slstm_model_export(get(), format, tensors.data(), tensors.size()));
  }
  /// The weights in `format` as owning tensors, shaped by weight_shapes(format).
  [[nodiscard]] std::vector<Tensor> export_weights(slstm_weight_format format) const {
    std::vector<Tensor> out;
    std::vector<slstm_tensor_out> views;
    for (auto& shape : weight_shapes(format)) {
      std::size_t count = 1;
      for (const std::int64_t d : shape) {
        count = detail::checked_mul(count, detail::to_size(d), "a tensor's size");
      }
      Tensor t;
      t.data.resize(count);
      t.shape = std::move(shape);
      out.push_back(std::move(t));
    }
    views.reserve(out.size());
    for (Tensor& t : out) {
      slstm_tensor_out v{};
      v.data = t.data.data();
      v.ndim = static_cast<std::int32_t>(t.shape.size());
      for (std::size_t k = 0; k < t.shape.size(); ++k) v.shape[k] = t.shape[k];
      views.push_back(v);
    }
    export_weights(format, span<const slstm_tensor_out>(views.data(), views.size()));
    return out;
  }

  // Queries (each one C call; every one throws the library's error on an empty Model).

  /// Number of layers L.
  std::int32_t num_layers() const {
    std::int32_t n = 0;
    check(slstm_model_num_layers(get(), &n));
    return n;
  }
  /// Input depth D of layer 0.
  std::int64_t input_size() const {
    std::int64_t n = 0;
    check(slstm_model_input_size(get(), &n));
    return n;
  }
  /// Hidden size of `layer` (0-based); Error(SLSTM_ERR_OUT_OF_RANGE) past the last.
  std::int64_t hidden_size(std::int32_t layer) const {
    std::int64_t n = 0;
    check(slstm_model_hidden_size(get(), layer, &n));
    return n;
  }
  /// H_0 .. H_{L-1}.
  std::vector<std::int64_t> hidden_sizes() const {
    const std::int32_t n = num_layers();
    std::vector<std::int64_t> sizes;
    sizes.reserve(detail::to_size(n));
    for (std::int32_t l = 0; l < n; ++l) sizes.push_back(hidden_size(l));
    return sizes;
  }
  /// The width of the outputs (the last layer's output width: its hidden size, or its
  /// projection size, times 2 when bidirectional).
  std::int64_t output_size() const {
    std::int64_t n = 0;
    check(slstm_model_output_size(get(), &n));
    return n;
  }
  /// Every layer's description, as given at creation (a stack made from hidden sizes: forward
  /// LSTM layers without options).
  Layers layers() const {
    const std::int32_t n = num_layers();
    std::vector<slstm_layer_config> out;
    out.reserve(detail::to_size(n));
    for (std::int32_t l = 0; l < n; ++l) out.push_back(layer(l));
    return Layers(std::move(out));
  }
  /// Layer `layer`'s description (slstm_model_layer).
  slstm_layer_config layer(std::int32_t layer) const {
    slstm_layer_config c;
    slstm_layer_config_init(&c);
    check(slstm_model_layer(get(), layer, &c));
    return c;
  }
  /// Every piece of a packed state of `batch` rows, in packed order (slstm_model_state_piece).
  std::vector<slstm_state_piece> state_pieces(std::int64_t batch) const {
    std::int64_t n = 0;
    check(slstm_model_state_pieces(get(), &n));
    std::vector<slstm_state_piece> pieces(detail::to_size(n));
    for (std::int64_t k = 0; k < n; ++k) {
      slstm_state_piece& p = pieces[detail::to_size(k)];
      p.struct_size = sizeof p;
      check(slstm_model_state_piece(get(), batch, k, &p));
    }
    return pieces;
  }
  /// The model's forget_bias (added to the f gate; 0 for models imported from formats
  /// without one, see slstm_weight_format).
  float forget_bias() const {
    float f = 0.0f;
    check(slstm_model_forget_bias(get(), &f));
    return f;
  }
  /// Floats in a packed state for `batch` rows (slstm_model_state_count).
  std::size_t state_count(std::int64_t batch) const {
    std::size_t n = 0;
    check(slstm_model_state_count(get(), batch, &n));
    return n;
  }
  /// Offset in floats of layer `layer`'s c or h block [batch, H_layer] in a packed state.
  std::size_t state_offset(std::int64_t batch, std::int32_t layer, slstm_state_part part) const {
    std::size_t n = 0;
    check(slstm_model_state_offset(get(), batch, layer, part, &n));
    return n;
  }
  /// The c or h block [batch, H_layer] of layer `layer` inside a packed state of `batch`
  /// rows: `state` must hold exactly state_count(batch) floats
  /// (Error(SLSTM_ERR_SHAPE_MISMATCH) otherwise).  E.g. TF's final_state[-1].h is
  /// state_part(state, B, num_layers() - 1, SLSTM_STATE_H).
  span<const float> state_part(span<const float> state, std::int64_t batch, std::int32_t layer,
                               slstm_state_part part) const {
    const auto r = part_range(state.size(), batch, layer, part);
    return state.subspan(r.first, r.second);
  }
  span<float> state_part(span<float> state, std::int64_t batch, std::int32_t layer,
                         slstm_state_part part) const {
    const auto r = part_range(state.size(), batch, layer, part);
    return state.subspan(r.first, r.second);
  }
  // Containers and arrays (std::vector, std::array, float[N]) pick an overload by their
  // constness: both span overloads would accept one.
  template <typename C, typename T = std::remove_pointer_t<decltype(std::data(
                            std::declval<C&>()))>>
  span<T> state_part(C& state, std::int64_t batch, std::int32_t layer,
                     slstm_state_part part) const {
    return state_part(span<T>(std::data(state), std::size(state)), batch, layer, part);
  }

  /// The C handle (nullptr when empty); the Model keeps owning it.
  const slstm_model* get() const noexcept { return model_.get(); }
  explicit operator bool() const noexcept { return model_ != nullptr; }
  /// Copies of one Model compare equal; models loaded or created separately do not.
  friend bool operator==(const Model& a, const Model& b) noexcept { return a.model_ == b.model_; }
  friend bool operator!=(const Model& a, const Model& b) noexcept { return !(a == b); }

 private:
  struct Deleter {
    void operator()(slstm_model* m) const noexcept { slstm_model_destroy(m); }
  };

  // (should the control block's allocation fail, shared_ptr destroys m before it throws)
  explicit Model(slstm_model* m) : model_(m, Deleter{}) {}

  // A config of `count` layers (checked against int32, the C field's type); the caller sets
  // hidden_sizes or layers.
  static slstm_model_config config_of(std::int64_t input_size, std::size_t count,
                                      const char* what, float forget_bias) {
    if (count > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
      throw Error(SLSTM_ERR_INVALID_ARGUMENT,
                  std::string(what) + ": " + std::to_string(count) +
                      " layers, at most SLSTM_MAX_LAYERS = " + std::to_string(SLSTM_MAX_LAYERS));
    }
    slstm_model_config cfg;
    slstm_model_config_init(&cfg);
    cfg.input_size = input_size;
    cfg.num_layers = static_cast<std::int32_t>(count);
    cfg.forget_bias = forget_bias;
    return cfg;
  }
  static slstm_model_config config(std::int64_t input_size,
                                   const std::vector<std::int64_t>& hidden_sizes,
                                   float forget_bias) {
    slstm_model_config cfg = config_of(input_size, hidden_sizes.size(), "hidden_sizes", forget_bias);
    cfg.hidden_sizes = hidden_sizes.data();
    return cfg;
  }
  static slstm_model_config config(std::int64_t input_size, const Layers& layers,
                                   float forget_bias) {
    slstm_model_config cfg = config_of(input_size, layers.get().size(), "layers", forget_bias);
    cfg.layers = layers.get().data();
    return cfg;
  }

  std::pair<std::size_t, std::size_t> part_range(std::size_t state_size, std::int64_t batch,
                                                 std::int32_t layer, slstm_state_part part) const {
    const std::size_t offset = state_offset(batch, layer, part);  // checks batch, layer, part
    const std::size_t count = state_count(batch);
    if (state_size != count) {
      throw Error(SLSTM_ERR_SHAPE_MISMATCH,
                  "state_part: the state holds " + std::to_string(state_size) +
                      " floats, a packed state of batch " + std::to_string(batch) + " holds " +
                      std::to_string(count));
    }
    for (const slstm_state_piece& p : state_pieces(batch)) {
      if (p.layer == layer && p.direction == 0 && p.part == part && p.offset == offset) {
        return {offset, p.count};
      }
    }
    throw Error(SLSTM_ERR_INTERNAL, "state_part: no piece at the offset the library reported");
  }

  std::shared_ptr<slstm_model> model_{};
};

// ------------------------------------------------------------------------------------------
// Sessions
// ------------------------------------------------------------------------------------------

/// slstm_session_options as a value type, initialised with slstm_session_options_init (CPU,
/// automatic CPU path, one thread per core, device 0, strict FP32, the session's own
/// stream).  max_batch and max_time must be set (the constructor or the setters).  Setters
/// return *this so they chain: SessionOptions(10, 50).backend(SLSTM_BACKEND_CUDA).device(1).
class SessionOptions {
 public:
  SessionOptions() noexcept { slstm_session_options_init(&o_); }
  SessionOptions(std::int64_t max_batch, std::int64_t max_time) noexcept : SessionOptions() {
    o_.max_batch = max_batch;
    o_.max_time = max_time;
  }
  // The C struct points into this object (config, thread_pool): a copy points into its own.
  SessionOptions(const SessionOptions& other)
      : o_(other.o_), config_(other.config_), pool_(other.pool_), has_pool_(other.has_pool_) {
    point_into_this();
  }
  SessionOptions(SessionOptions&& other) noexcept
      : o_(other.o_),
        config_(std::move(other.config_)),
        pool_(other.pool_),
        has_pool_(other.has_pool_) {
    point_into_this();
    other.point_into_this();
  }
  SessionOptions& operator=(const SessionOptions& other) {
    if (this != &other) {
      SessionOptions copy(other);   // what may throw (the string's copy) happens first
      *this = std::move(copy);
    }
    return *this;
  }
  SessionOptions& operator=(SessionOptions&& other) noexcept {
    if (this != &other) {
      o_ = other.o_;
      config_ = std::move(other.config_);
      pool_ = other.pool_;
      has_pool_ = other.has_pool_;
      point_into_this();
      other.point_into_this();
    }
    return *this;
  }
  ~SessionOptions() = default;

  SessionOptions& backend(slstm_backend v) noexcept {
    o_.backend = v;
    return *this;
  }
  SessionOptions& max_batch(std::int64_t v) noexcept {
    o_.max_batch = v;
    return *this;
  }
  SessionOptions& max_time(std::int64_t v) noexcept {
    o_.max_time = v;
    return *this;
  }
  SessionOptions& cpu_path(slstm_cpu_path v) noexcept {
    o_.cpu_path = v;
    return *this;
  }
  SessionOptions& num_threads(std::int32_t v) noexcept {
    o_.num_threads = v;
    return *this;
  }
  SessionOptions& device(std::int32_t v) noexcept {
    o_.device = v;
    return *this;
  }
  SessionOptions& allow_tf32(bool v) noexcept {
    o_.allow_tf32 = v ? 1 : 0;
    return *this;
  }
  /// A cudaStream_t owned by the caller (nullptr: the session's own).
  SessionOptions& cuda_stream(void* v) noexcept {
    o_.cuda_stream = v;
    return *this;
  }
  /// Stream slots the session holds (slstm_session_options.max_slots; header "Stream slots").
  SessionOptions& max_slots(std::int64_t v) noexcept {
    o_.max_slots = v;
    return *this;
  }
  /// The products' arithmetic (slstm_session_options.precision, since 0.5; docs/precision.md).
  SessionOptions& precision(slstm_precision v) noexcept {
    o_.precision = v;
    return *this;
  }
  /// Keyed backend settings, "key=value;..." (slstm_session_options.config), e.g.
  /// "cpu.kernel=avx2;cuda.graphs=off"; validated when the session is created.
  SessionOptions& config(std::string v) {
    if (v.find('\0') != std::string::npos) {
      throw Error(SLSTM_ERR_INVALID_ARGUMENT,
                  "config: contains a NUL character (the library would read it only up to "
                  "there)");
    }
    config_ = std::move(v);
    point_into_this();
    return *this;
  }

  /// A thread pool of the caller's that a CPU session's calls run on
  /// (slstm_session_options.thread_pool, since 0.14).  The struct is copied here (and by
  /// the library at creation); its parallel_for and pool_arg must outlive the session.
  SessionOptions& thread_pool(const slstm_thread_pool& v) noexcept {
    pool_ = v;
    has_pool_ = true;
    point_into_this();
    return *this;
  }

  slstm_backend backend() const noexcept { return o_.backend; }
  std::int64_t max_batch() const noexcept { return o_.max_batch; }
  std::int64_t max_time() const noexcept { return o_.max_time; }
  slstm_cpu_path cpu_path() const noexcept { return o_.cpu_path; }
  std::int32_t num_threads() const noexcept { return o_.num_threads; }
  std::int32_t device() const noexcept { return o_.device; }
  bool allow_tf32() const noexcept { return o_.allow_tf32 != 0; }
  void* cuda_stream() const noexcept { return o_.cuda_stream; }
  std::int64_t max_slots() const noexcept { return o_.max_slots; }
  slstm_precision precision() const noexcept { return static_cast<slstm_precision>(o_.precision); }
  const std::string& config() const noexcept { return config_; }
  /// The pool given to thread_pool(), or nullptr.
  const slstm_thread_pool* thread_pool() const noexcept { return has_pool_ ? &pool_ : nullptr; }

  /// The C struct, for fields a newer C header adds before this wrapper knows them.  Its
  /// `config` points into this object (NULL when no keyed setting was given), as does its
  /// `thread_pool` once thread_pool() was given one.  The const one writes nothing (several
  /// threads may make sessions from one SessionOptions).
  const slstm_session_options& c_struct() const noexcept { return o_; }
  slstm_session_options& c_struct() noexcept {
    point_into_this();
    return o_;
  }

 private:
  void point_into_this() noexcept {
    o_.config = config_.empty() ? nullptr : config_.c_str();
    if (has_pool_) o_.thread_pool = &pool_;
  }

  slstm_session_options o_{};
  std::string config_;
  slstm_thread_pool pool_{};
  bool has_pool_ = false;
};

/// The optional arguments of Session::forward.  Empty spans mean "absent".
struct ForwardOptions {
  /// B values in [0, time]; absent: every row runs `time` steps.
  span<const std::int32_t> sequence_lengths{};
  /// A packed state of state_count(B) floats; absent: zeros.  May be the same buffer as the
  /// final_state output (updated in place).
  span<const float> initial_state{};
  /// Of input and output: SLSTM_BATCH_MAJOR [B, T, .] or SLSTM_TIME_MAJOR [T, B, .].
  slstm_layout layout = SLSTM_BATCH_MAJOR;
  /// Where input, initial_state, output and final_state live (SLSTM_MEMORY_DEVICE: CUDA
  /// device memory, CUDA sessions only).  sequence_lengths are always host memory.
  slstm_memory memory = SLSTM_MEMORY_HOST;
};

/// What the vector-returning forward() gives.
struct ForwardResult {
  std::vector<float> output{};       ///< [B, T, H_last] or [T, B, H_last] (ForwardOptions::layout)
  std::vector<float> final_state{};  ///< packed (c_0, h_0, ..., c_{L-1}, h_{L-1}), each [B, H_l]
};

/// What the vector-returning step() gives.
struct StepResult {
  std::vector<float> output{};  ///< [B, H_last]: the last layer's new h
  std::vector<float> state{};   ///< the new packed state
};

/// A model bound to a backend with a workspace for max_batch x max_time (slstm_session*).
/// Move-only; used by one thread at a time.  Calls allocate nothing in the library; the
/// vector-returning overloads allocate their results.
class Session {
 public:
  /// An empty handle.
  Session() noexcept = default;
  /// slstm_session_create.  Throws Error: SLSTM_ERR_INVALID_ARGUMENT (e.g. max_batch or
  /// max_time unset), SLSTM_ERR_BACKEND_UNAVAILABLE (with the reason), SLSTM_ERR_OUT_OF_MEMORY.
  Session(const Model& model, const SessionOptions& options) : model_(model), options_(options) {
    slstm_session* s = nullptr;
    check(slstm_session_create(model.get(), &options.c_struct(), &s));
    session_.reset(s);
  }

  Session(Session&&) noexcept = default;
  Session& operator=(Session&&) noexcept = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() = default;

  /// Runs the stack over `time` steps of `batch` sequences (slstm_session_forward).
  /// input: B*T*D floats; output: B*T*H_last floats or empty (not wanted); final_state:
  /// state_count(B) floats or empty (not wanted).  Every count is checked by the library;
  /// on an Error nothing was written.
  void forward(std::int64_t batch, std::int64_t time, span<const float> input, span<float> output,
               span<float> final_state, const ForwardOptions& options = ForwardOptions()) {
    slstm_forward_args a;
    slstm_forward_args_init(&a);
    a.layout = options.layout;
    a.batch = batch;
    a.time = time;
    a.input = input.data();
    a.input_count = input.size();
    if (!options.sequence_lengths.empty()) {
      a.sequence_lengths = options.sequence_lengths.data();
      a.sequence_lengths_count = options.sequence_lengths.size();
    }
    if (!options.initial_state.empty()) {
      a.initial_state = options.initial_state.data();
      a.initial_state_count = options.initial_state.size();
    }
    if (!output.empty()) {
      a.output = output.data();
      a.output_count = output.size();
    }
    if (!final_state.empty()) {
      a.final_state = final_state.data();
      a.final_state_count = final_state.size();
    }
    a.memory = options.memory;
    check(slstm_session_forward(session_.get(), &a));
  }

  /// The same, returning the output and the final state as host vectors (so
  /// options.memory must be SLSTM_MEMORY_HOST).  Arguments are checked before anything is
  /// allocated.
  [[nodiscard]] ForwardResult forward(std::int64_t batch, std::int64_t time,
                                      span<const float> input,
                                      const ForwardOptions& options = ForwardOptions()) {
    if (options.memory != SLSTM_MEMORY_HOST) {
      throw Error(SLSTM_ERR_INVALID_ARGUMENT,
                  "the forward() that returns vectors needs options.memory = "
                  "SLSTM_MEMORY_HOST; pass device buffers to the forward() that takes them");
    }
    if (!fits(batch, time)) {
      forward(batch, time, input, span<float>(), span<float>(), options);  // throws
      throw Error(SLSTM_ERR_INTERNAL, "forward: batch/time outside the session's maxima");
    }
    const std::size_t state_count = model_.state_count(batch);
    const std::size_t rows = detail::to_size(batch) * detail::to_size(time);
    if (input.size() != detail::checked_mul(rows, detail::to_size(model_.input_size()),
                                            "the input's size") ||
        (!options.initial_state.empty() && options.initial_state.size() != state_count) ||
        (!options.sequence_lengths.empty() &&
         options.sequence_lengths.size() != detail::to_size(batch))) {
      forward(batch, time, input, span<float>(), span<float>(), options);  // throws
      throw Error(SLSTM_ERR_INTERNAL, "forward: a count the library did not refuse");
    }
    ForwardResult r;
    r.output.resize(detail::checked_mul(rows, detail::to_size(model_.output_size()),
                                        "the output's size"));
    r.final_state.resize(state_count);
    forward(batch, time, input, r.output, r.final_state, options);
    return r;
  }

  /// One step of the stack (slstm_session_step, MultiRNNCell.__call__): input [B, D], state
  /// packed or empty (zeros); output [B, H_last] or empty, new_state packed or empty (may be
  /// the same buffer as state).  The session's max_time must be >= 1.
  void step(std::int64_t batch, span<const float> input, span<const float> state,
            span<float> output, span<float> new_state) {
    check(slstm_session_step(session_.get(), batch, input.data(), input.size(),
                             state.empty() ? nullptr : state.data(), state.size(),
                             output.empty() ? nullptr : output.data(), output.size(),
                             new_state.empty() ? nullptr : new_state.data(), new_state.size()));
  }
  /// The same, returning the output and the new state.
  [[nodiscard]] StepResult step(std::int64_t batch, span<const float> input,
                                span<const float> state = span<const float>()) {
    if (!fits(batch, 1)) {
      step(batch, input, state, span<float>(), span<float>());  // throws
      throw Error(SLSTM_ERR_INTERNAL, "step: batch outside the session's maximum");
    }
    const std::size_t state_count = model_.state_count(batch);
    if (input.size() != detail::to_size(batch) * detail::to_size(model_.input_size()) ||
        (!state.empty() && state.size() != state_count)) {
      step(batch, input, state, span<float>(), span<float>());  // throws
      throw Error(SLSTM_ERR_INTERNAL, "step: a count the library did not refuse");
    }
    StepResult r;
    r.output.resize(detail::to_size(batch) * detail::to_size(model_.output_size()));
    r.state.resize(state_count);
    step(batch, input, state, r.output, r.state);
    return r;
  }

  // ---- stream slots (header "Stream slots"; the session needs SessionOptions::max_slots) ----

  /// Opens the lowest closed slot with `state` (packed, state_count(1) floats) or zeros
  /// (empty); returns its id.  Throws Error SLSTM_ERR_SLOTS_FULL when every slot is open.
  std::int64_t slot_open(span<const float> state = span<const float>()) {
    std::int64_t slot = -1;
    check(slstm_session_slot_open(session_.get(), state.empty() ? nullptr : state.data(),
                                  state.size(), SLSTM_MEMORY_HOST, &slot));
    return slot;
  }
  /// Closes an open slot.
  void slot_close(std::int64_t slot) { check(slstm_session_slot_close(session_.get(), slot)); }
  /// Sets an open slot's state (packed, state_count(1) floats), or zeros when empty.
  void slot_set_state(std::int64_t slot, span<const float> state = span<const float>()) {
    check(slstm_session_slot_set_state(session_.get(), slot,
                                       state.empty() ? nullptr : state.data(), state.size(),
                                       SLSTM_MEMORY_HOST));
  }
  /// Copies an open slot's packed state into `state` (state_count(1) floats).
  void slot_get_state(std::int64_t slot, span<float> state) {
    check(slstm_session_slot_get_state(session_.get(), slot, state.data(), state.size(),
                                       SLSTM_MEMORY_HOST));
  }
  /// How many slots are open.
  std::int64_t slot_open_count() const {
    std::int64_t open = 0;
    check(slstm_session_slot_info(session_.get(), nullptr, &open));
    return open;
  }
  /// Advances the open slots `slots` (distinct; their count is the batch) by `time` steps of
  /// `input` ([B, T, D] or [T, B, D] per options.layout); output [B, T, H_last] or empty.
  /// options.initial_state must be empty (the slots hold the states).
  void slot_forward(span<const std::int64_t> slots, std::int64_t time, span<const float> input,
                    span<float> output, const ForwardOptions& options = ForwardOptions()) {
    if (!options.initial_state.empty()) {
      throw Error(SLSTM_ERR_INVALID_ARGUMENT,
                  "slot_forward: options.initial_state must be empty (the slots hold the "
                  "states)");
    }
    slstm_slot_forward_args a;
    slstm_slot_forward_args_init(&a);
    a.layout = options.layout;
    a.batch = static_cast<std::int64_t>(slots.size());
    a.slot_ids = slots.data();
    a.slot_ids_count = slots.size();
    a.time = time;
    a.input = input.data();
    a.input_count = input.size();
    if (!options.sequence_lengths.empty()) {
      a.sequence_lengths = options.sequence_lengths.data();
      a.sequence_lengths_count = options.sequence_lengths.size();
    }
    if (!output.empty()) {
      a.output = output.data();
      a.output_count = output.size();
    }
    a.memory = options.memory;
    check(slstm_session_slot_forward(session_.get(), &a));
  }

  /// The session's plan (slstm_session_describe): every choice the backend made, as text
  /// for people or JSON for programs.
  std::string describe(slstm_describe_format format = SLSTM_DESCRIBE_TEXT) const {
    // A CUDA session's text may change between two calls (the header): a text counts when
    // it fit the buffer it was written into.
    std::size_t n = 0;
    check(slstm_session_describe(session_.get(), format, nullptr, 0, &n));
    for (;;) {
      std::string text(n + 1, '\0');
      std::size_t got = 0;
      check(slstm_session_describe(session_.get(), format, &text[0], text.size(), &got));
      if (got < text.size()) {
        text.resize(got);
        return text;
      }
      n = got;
    }
  }

  /// The backend the session runs on (slstm_session_backend).
  slstm_backend backend() const {
    slstm_backend b = SLSTM_BACKEND_CPU;
    check(slstm_session_backend(session_.get(), &b));
    return b;
  }
  /// The model the session runs (a copy of the handle it was created from).
  const Model& model() const noexcept { return model_; }
  /// The options it was created with.
  const SessionOptions& options() const noexcept { return options_; }

  /// The C handle (nullptr when empty); the Session keeps owning it.
  slstm_session* get() const noexcept { return session_.get(); }
  /// Gives up ownership: the caller must slstm_session_destroy() the result.
  slstm_session* release() noexcept {
    model_ = Model();
    return session_.release();
  }
  explicit operator bool() const noexcept { return session_ != nullptr; }

 private:
  struct Deleter {
    void operator()(slstm_session* s) const noexcept { slstm_session_destroy(s); }
  };

  // Whether batch x time is within what the session was created for (else the library is
  // asked, so that the error is its own, before anything is allocated here).
  bool fits(std::int64_t batch, std::int64_t time) const noexcept {
    return session_ != nullptr && batch >= 1 && time >= 0 && batch <= options_.max_batch() &&
           time <= options_.max_time();
  }

  Model model_{};
  SessionOptions options_{};
  std::unique_ptr<slstm_session, Deleter> session_{};
};

}  // namespace stacklstm

#endif  // STACKLSTM_STACKLSTM_HPP
