// Package stacklstm is a small cgo binding of libstacklstm's C ABI (stacklstm.h, 0.2): a
// Model and the Sessions that run it, each freed by Close (or, failing that, by a
// finalizer), and every failed call as an *Error carrying the library's status and message
// (slstm_last_error), which names the argument at fault.
//
// It finds the installed library with pkg-config (PKG_CONFIG_PATH=<prefix>/lib/pkgconfig);
// at run time the loader must find libstacklstm.so (LD_LIBRARY_PATH, or a prefix it
// searches).
//
// Buffers are Go slices whose lengths go to the library as element counts; the library
// refuses (StatusShapeMismatch) any count that differs from what the shapes need, before it
// touches a byte. A nil or empty slice means "not given" (NULL).
//
// Threads: a Model may be used by any number of goroutines at once; a Session by one at a
// time (a concurrent call returns StatusBusy). Close must not race with other calls on the
// same object.
package stacklstm

/*
#cgo pkg-config: stacklstm
#include <stdlib.h>
#include "stacklstm/stacklstm.h"

// cgo forbids storing Go pointers in memory passed to C, so the structs that hold buffer
// pointers are filled here, on the C stack, from pointers passed as arguments (allowed:
// they point to float/int memory holding no Go pointers).
static slstm_status slstm_go_model_create_random(int64_t input_size, int32_t num_layers,
                                                 const int64_t* hidden_sizes,
                                                 float forget_bias, uint64_t seed, float scale,
                                                 slstm_model** out_model) {
  slstm_model_config config;
  slstm_model_config_init_sized(&config, sizeof config);
  config.input_size = input_size;
  config.num_layers = num_layers;
  config.hidden_sizes = hidden_sizes;
  config.forget_bias = forget_bias;
  return slstm_model_create_random(&config, seed, scale, out_model);
}

static slstm_status slstm_go_forward(slstm_session* session, int layout, int64_t batch,
                                     int64_t time, const float* input, size_t input_count,
                                     const int32_t* lengths, size_t lengths_count,
                                     const float* initial_state, size_t initial_state_count,
                                     float* output, size_t output_count, float* final_state,
                                     size_t final_state_count) {
  slstm_forward_args args;
  slstm_forward_args_init_sized(&args, sizeof args);
  args.layout = (slstm_layout)layout;
  args.batch = batch;
  args.time = time;
  args.input = input;
  args.input_count = input_count;
  args.sequence_lengths = lengths;
  args.sequence_lengths_count = lengths_count;
  args.initial_state = initial_state;
  args.initial_state_count = initial_state_count;
  args.output = output;
  args.output_count = output_count;
  args.final_state = final_state;
  args.final_state_count = final_state_count;
  return slstm_session_forward(session, &args);
}
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

// Status is the library's slstm_status.
type Status int

// The statuses of libstacklstm 0.2 (a newer library may return others; Error() names them).
const (
	StatusOK                 Status = C.SLSTM_OK
	StatusInvalidArgument    Status = C.SLSTM_ERR_INVALID_ARGUMENT
	StatusShapeMismatch      Status = C.SLSTM_ERR_SHAPE_MISMATCH
	StatusOutOfRange         Status = C.SLSTM_ERR_OUT_OF_RANGE
	StatusSizeOverflow       Status = C.SLSTM_ERR_SIZE_OVERFLOW
	StatusOutOfMemory        Status = C.SLSTM_ERR_OUT_OF_MEMORY
	StatusBackendUnavailable Status = C.SLSTM_ERR_BACKEND_UNAVAILABLE
	StatusUnsupported        Status = C.SLSTM_ERR_UNSUPPORTED
	StatusBackendFailure     Status = C.SLSTM_ERR_BACKEND_FAILURE
	StatusAliasing           Status = C.SLSTM_ERR_ALIASING
	StatusInternal           Status = C.SLSTM_ERR_INTERNAL
	StatusBusy               Status = C.SLSTM_ERR_BUSY
)

// String is the library's short text for the status (slstm_status_string).
func (s Status) String() string {
	if s < math.MinInt32 || s > math.MaxInt32 { // not a C int: no status the library has
		return C.GoString(C.slstm_status_string(C.slstm_status(math.MaxInt32)))
	}
	return C.GoString(C.slstm_status_string(C.slstm_status(s)))
}

// cEnum is an enum value as the C int the library takes, or StatusInvalidArgument naming
// it: a Go int is 64 bits, and a value beyond a C int would otherwise be cut to another one.
func cEnum[T ~int](v T, name string) (C.int, error) {
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, &Error{Status: StatusInvalidArgument,
			Message: fmt.Sprintf("%s: %d is not a value of the library's enum", name, int64(v))}
	}
	return C.int(v), nil
}

// Error is a failed call: the status and the library's message.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return e.Status.String() + ": " + e.Message }

// call runs one library call and, when it fails, reads the message it left. The message is
// per OS thread and a goroutine may change threads between two cgo calls, so both run with
// the goroutine locked to its thread.
func call(f func() C.slstm_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := f()
	if st == C.SLSTM_OK {
		return nil
	}
	n := C.slstm_last_error_copy(nil, 0)
	buf := make([]byte, int(n)+1)
	C.slstm_last_error_copy((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return &Error{Status: Status(st), Message: string(buf[:n])}
}

// closedError is returned by calls on a Model or Session after its Close.
func closedError(what string) error {
	return &Error{Status: StatusInvalidArgument, Message: what + " is closed"}
}

// Version is "major.minor.patch" of the library loaded at run time.
func Version() string { return C.GoString(C.slstm_version_string()) }

// Backend is where a session runs.
type Backend int

const (
	BackendCPU  Backend = C.SLSTM_BACKEND_CPU
	BackendCUDA Backend = C.SLSTM_BACKEND_CUDA
)

// StatePart names the c or h block of a layer in a packed state.
type StatePart int

const (
	StateC StatePart = C.SLSTM_STATE_C
	StateH StatePart = C.SLSTM_STATE_H
)

// Layout of a forward call's input and output.
type Layout int

const (
	BatchMajor Layout = C.SLSTM_BATCH_MAJOR // [batch, time, ...], tf.nn.dynamic_rnn's default
	TimeMajor  Layout = C.SLSTM_TIME_MAJOR  // [time, batch, ...]
)

// Model is an immutable stacked-LSTM model (its weights are copied into the library). Copies
// of a Model value share its handle: closing one closes them all, never twice.
type Model struct {
	h *modelHandle
}

// modelHandle owns the C model; the finalizer sits on it, so that a copied Model value
// neither frees it twice nor keeps a freed pointer.
type modelHandle struct {
	ptr *C.slstm_model
}

func (h *modelHandle) close() {
	if h.ptr != nil {
		C.slstm_model_destroy(h.ptr)
		h.ptr = nil
		runtime.SetFinalizer(h, nil)
	}
}

// NewRandomModel makes a model with seeded pseudo-random weights, uniform in [-scale, scale]
// (scale 0: 1/sqrt(H) per layer); the same seed gives the same weights on every platform.
// forgetBias is added to the f gate (TF's BasicLSTMCell default: 1.0).
func NewRandomModel(inputSize int64, hiddenSizes []int64, forgetBias float32, seed uint64,
	scale float32) (*Model, error) {
	if len(hiddenSizes) > C.SLSTM_MAX_LAYERS {
		return nil, &Error{Status: StatusInvalidArgument, Message: fmt.Sprintf(
			"hiddenSizes: %d layers, at most %d", len(hiddenSizes), C.SLSTM_MAX_LAYERS)}
	}
	var ptr *C.slstm_model
	err := call(func() C.slstm_status {
		return C.slstm_go_model_create_random(C.int64_t(inputSize), C.int32_t(len(hiddenSizes)),
			(*C.int64_t)(slicePtr(hiddenSizes)), C.float(forgetBias), C.uint64_t(seed),
			C.float(scale), &ptr)
	})
	if err != nil {
		return nil, err
	}
	h := &modelHandle{ptr: ptr}
	runtime.SetFinalizer(h, (*modelHandle).close)
	return &Model{h: h}, nil
}

// Close releases the model (sessions made from it keep it alive in the library). Calling it
// again, or on a copy, does nothing.
func (m *Model) Close() {
	if m.h != nil {
		m.h.close()
	}
}

// live is the C model, or nil once closed (or for a zero Model).
func (m *Model) live() *C.slstm_model {
	if m.h == nil {
		return nil
	}
	return m.h.ptr
}

// query runs a getter on the live model; KeepAlive stops the finalizer from destroying the
// model while the call runs.
func (m *Model) query(f func(*C.slstm_model) C.slstm_status) error {
	p := m.live()
	if p == nil {
		return closedError("model")
	}
	err := call(func() C.slstm_status { return f(p) })
	runtime.KeepAlive(m.h)
	return err
}

func (m *Model) NumLayers() (int32, error) {
	var out C.int32_t
	err := m.query(func(p *C.slstm_model) C.slstm_status { return C.slstm_model_num_layers(p, &out) })
	return int32(out), err
}

func (m *Model) InputSize() (int64, error) {
	var out C.int64_t
	err := m.query(func(p *C.slstm_model) C.slstm_status { return C.slstm_model_input_size(p, &out) })
	return int64(out), err
}

// HiddenSize of layer (0-based); StatusOutOfRange past the last layer.
func (m *Model) HiddenSize(layer int32) (int64, error) {
	var out C.int64_t
	err := m.query(func(p *C.slstm_model) C.slstm_status {
		return C.slstm_model_hidden_size(p, C.int32_t(layer), &out)
	})
	return int64(out), err
}

// ForgetBias is the constant added to every layer's f gate.
func (m *Model) ForgetBias() (float32, error) {
	var out C.float
	err := m.query(func(p *C.slstm_model) C.slstm_status { return C.slstm_model_forget_bias(p, &out) })
	return float32(out), err
}

// StateCount is the number of floats in a packed state (c_0, h_0, c_1, h_1, ...) for batch rows.
func (m *Model) StateCount(batch int64) (int, error) {
	var out C.size_t
	err := m.query(func(p *C.slstm_model) C.slstm_status {
		return C.slstm_model_state_count(p, C.int64_t(batch), &out)
	})
	return int(out), err
}

// StateOffset is the offset, in floats, of layer's c or h block ([batch, H_layer]) in a
// packed state.
func (m *Model) StateOffset(batch int64, layer int32, part StatePart) (int, error) {
	cpart, err := cEnum(part, "part")
	if err != nil {
		return 0, err
	}
	var out C.size_t
	err = m.query(func(p *C.slstm_model) C.slstm_status {
		return C.slstm_model_state_offset(p, C.int64_t(batch), C.int32_t(layer),
			C.slstm_state_part(cpart), &out)
	})
	return int(out), err
}

// SessionOptions: the backend and the largest batch and time of a session's calls.
type SessionOptions struct {
	Backend  Backend
	MaxBatch int64
	MaxTime  int64
	// NumThreads: CPU worker threads; 0: one per CPU the creating thread may run on.
	NumThreads int32
}

// Session is a model bound to a backend with its workspace. It keeps its model alive in the
// library, so the Model may be closed first. Copies of a Session value share its handle.
type Session struct {
	h *sessionHandle
}

// sessionHandle owns the C session (see modelHandle).
type sessionHandle struct {
	ptr *C.slstm_session
}

func (h *sessionHandle) close() {
	if h.ptr != nil {
		C.slstm_session_destroy(h.ptr)
		h.ptr = nil
		runtime.SetFinalizer(h, nil)
	}
}

// live is the C session, or nil once closed (or for a zero Session).
func (s *Session) live() *C.slstm_session {
	if s.h == nil {
		return nil
	}
	return s.h.ptr
}

// NewSession binds m to opt.Backend and allocates the workspace.
func NewSession(m *Model, opt SessionOptions) (*Session, error) {
	mp := m.live()
	if mp == nil {
		return nil, closedError("model")
	}
	backend, err := cEnum(opt.Backend, "Backend")
	if err != nil {
		return nil, err
	}
	var raw C.slstm_session_options
	C.slstm_session_options_init_sized(&raw, C.sizeof_slstm_session_options)
	raw.backend = C.slstm_backend(backend)
	raw.max_batch = C.int64_t(opt.MaxBatch)
	raw.max_time = C.int64_t(opt.MaxTime)
	raw.num_threads = C.int32_t(opt.NumThreads)
	var ptr *C.slstm_session
	err = call(func() C.slstm_status { return C.slstm_session_create(mp, &raw, &ptr) })
	runtime.KeepAlive(m.h)
	if err != nil {
		return nil, err
	}
	h := &sessionHandle{ptr: ptr}
	runtime.SetFinalizer(h, (*sessionHandle).close)
	return &Session{h: h}, nil
}

// Close releases the session. Calling it again, or on a copy, does nothing.
func (s *Session) Close() {
	if s.h != nil {
		s.h.close()
	}
}

// ForwardArgs are the arguments of Session.Forward; nil slices are not given.
type ForwardArgs struct {
	Layout          Layout
	Batch, Time     int64
	Input           []float32 // [Batch, Time, D] (or [Time, Batch, D])
	SequenceLengths []int32   // Batch lengths in [0, Time]; nil: all Time
	InitialState    []float32 // packed state; nil: zeros
	Output          []float32 // [Batch, Time, H_last] (or [Time, Batch, H_last]); nil: not written
	FinalState      []float32 // packed state after the last step; nil: not written
}

// slicePtr is the address of a slice's first element, or nil for an empty slice.
func slicePtr[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

// Forward runs the stack over a sequence (tf.nn.dynamic_rnn). On error nothing is written.
func (s *Session) Forward(a ForwardArgs) error {
	sp := s.live()
	if sp == nil {
		return closedError("session")
	}
	layout, err := cEnum(a.Layout, "Layout")
	if err != nil {
		return err
	}
	err = call(func() C.slstm_status {
		return C.slstm_go_forward(sp, layout, C.int64_t(a.Batch), C.int64_t(a.Time),
			(*C.float)(slicePtr(a.Input)), C.size_t(len(a.Input)),
			(*C.int32_t)(slicePtr(a.SequenceLengths)), C.size_t(len(a.SequenceLengths)),
			(*C.float)(slicePtr(a.InitialState)), C.size_t(len(a.InitialState)),
			(*C.float)(slicePtr(a.Output)), C.size_t(len(a.Output)),
			(*C.float)(slicePtr(a.FinalState)), C.size_t(len(a.FinalState)))
	})
	runtime.KeepAlive(s.h)
	return err
}

// Step runs one step (MultiRNNCell.__call__): input [batch, D] and a packed state (nil:
// zeros) in, the last layer's new h [batch, H_last] into output and the new packed state
// into newState (either may be nil; newState may be state itself).
func (s *Session) Step(batch int64, input, state, output, newState []float32) error {
	sp := s.live()
	if sp == nil {
		return closedError("session")
	}
	err := call(func() C.slstm_status {
		return C.slstm_session_step(sp, C.int64_t(batch),
			(*C.float)(slicePtr(input)), C.size_t(len(input)),
			(*C.float)(slicePtr(state)), C.size_t(len(state)),
			(*C.float)(slicePtr(output)), C.size_t(len(output)),
			(*C.float)(slicePtr(newState)), C.size_t(len(newState)))
	})
	runtime.KeepAlive(s.h)
	return err
}
