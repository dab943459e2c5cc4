package stacklstm_test

// The binding's contract, each test one behaviour: errors carry the library's status and
// message, wrong buffers are refused without writes, every argument reaches the library in
// its place (layout, sequence lengths, initial state, step's buffers), Close is safe.

import (
	"errors"
	"math"
	"strings"
	"testing"

	"example.com/stacklstm/stacklstm"
)

const (
	B     = 3
	T     = 4
	D     = 5
	HLast = 7
)

var hidden = []int64{6, 7}

func newModel(t *testing.T) *stacklstm.Model {
	t.Helper()
	m, err := stacklstm.NewRandomModel(D, hidden, 1.0, 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func newSession(t *testing.T, m *stacklstm.Model) *stacklstm.Session {
	t.Helper()
	s, err := stacklstm.NewSession(m, stacklstm.SessionOptions{MaxBatch: B, MaxTime: T})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// values are deterministic numbers in [-1, 1).
func values(n int, salt uint32) []float32 {
	v := make([]float32, n)
	for k := range v {
		v[k] = float32((uint32(k)*2654435761^salt)%2000)/1000 - 1
	}
	return v
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if math.Float32bits(a[k]) != math.Float32bits(b[k]) {
			return false
		}
	}
	return true
}

func stateCount(t *testing.T, m *stacklstm.Model) int {
	t.Helper()
	n, err := m.StateCount(B)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestARefusedCallReturnsTheStatusAndTheMessageNamingTheArgument(t *testing.T) {
	_, err := stacklstm.NewRandomModel(D, []int64{6, 0}, 1.0, 7, 0)
	var e *stacklstm.Error
	if !errors.As(err, &e) || e.Status != stacklstm.StatusInvalidArgument {
		t.Fatalf("want an *Error with StatusInvalidArgument, got %v", err)
	}
	if !strings.Contains(e.Message, "hidden_sizes") {
		t.Errorf("message does not name hidden_sizes: %q", e.Message)
	}
	if err.Error() != e.Status.String()+": "+e.Message {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestTheArchitectureReachesTheModel(t *testing.T) {
	m, err := stacklstm.NewRandomModel(D, hidden, 0.25, 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if n, err := m.InputSize(); err != nil || n != D {
		t.Errorf("InputSize() = %d, %v", n, err)
	}
	if n, err := m.NumLayers(); err != nil || n != 2 {
		t.Errorf("NumLayers() = %d, %v", n, err)
	}
	for l, want := range hidden {
		if h, err := m.HiddenSize(int32(l)); err != nil || h != want {
			t.Errorf("HiddenSize(%d) = %d, %v", l, h, err)
		}
	}
	if fb, err := m.ForgetBias(); err != nil || fb != 0.25 {
		t.Errorf("ForgetBias() = %v, %v", fb, err)
	}
	var e *stacklstm.Error
	if _, err := m.HiddenSize(2); !errors.As(err, &e) || e.Status != stacklstm.StatusOutOfRange {
		t.Errorf("HiddenSize(2): want StatusOutOfRange, got %v", err)
	}
}

func TestABufferOfTheWrongLengthIsRefusedAndNothingIsWritten(t *testing.T) {
	m := newModel(t)
	s := newSession(t, m)
	sentinel := math.Float32frombits(0x7fc01234)
	state := make([]float32, stateCount(t, m))
	for k := range state {
		state[k] = sentinel
	}
	err := s.Forward(stacklstm.ForwardArgs{Batch: B, Time: T, Input: values(B*T*D, 1),
		Output: make([]float32, B*T*HLast-1), FinalState: state})
	var e *stacklstm.Error
	if !errors.As(err, &e) || e.Status != stacklstm.StatusShapeMismatch {
		t.Fatalf("want StatusShapeMismatch, got %v", err)
	}
	if !strings.Contains(e.Message, "output") {
		t.Errorf("message does not name the output: %q", e.Message)
	}
	for k, v := range state {
		if math.Float32bits(v) != 0x7fc01234 {
			t.Fatalf("final_state[%d] was written", k)
		}
	}
}

func TestTimeMajorOutputIsTheBatchMajorOutputTransposed(t *testing.T) {
	s := newSession(t, newModel(t))
	x := values(B*T*D, 2)
	xTM := make([]float32, len(x))
	for b := 0; b < B; b++ {
		for ti := 0; ti < T; ti++ {
			copy(xTM[(ti*B+b)*D:(ti*B+b+1)*D], x[(b*T+ti)*D:(b*T+ti+1)*D])
		}
	}
	out := make([]float32, B*T*HLast)
	outTM := make([]float32, B*T*HLast)
	if err := s.Forward(stacklstm.ForwardArgs{Batch: B, Time: T, Input: x, Output: out}); err != nil {
		t.Fatal(err)
	}
	if err := s.Forward(stacklstm.ForwardArgs{Layout: stacklstm.TimeMajor, Batch: B, Time: T,
		Input: xTM, Output: outTM}); err != nil {
		t.Fatal(err)
	}
	for b := 0; b < B; b++ {
		for ti := 0; ti < T; ti++ {
			bm := out[(b*T+ti)*HLast : (b*T+ti+1)*HLast]
			tm := outTM[(ti*B+b)*HLast : (ti*B+b+1)*HLast]
			if !sameBits(bm, tm) {
				t.Fatalf("row %d step %d differs between the layouts", b, ti)
			}
		}
	}
}

func TestARowOfLengthZeroKeepsItsInitialStateAndOutputsZeros(t *testing.T) {
	m := newModel(t)
	s := newSession(t, m)
	n := stateCount(t, m)
	initial := values(n, 4)
	out := make([]float32, B*T*HLast)
	state := make([]float32, n)
	for k := range out {
		out[k] = float32(math.NaN())
	}
	for k := range state {
		state[k] = float32(math.NaN())
	}
	if err := s.Forward(stacklstm.ForwardArgs{Batch: B, Time: T, Input: values(B*T*D, 3),
		SequenceLengths: []int32{T, 0, 2}, InitialState: initial, Output: out,
		FinalState: state}); err != nil {
		t.Fatal(err)
	}
	for k, v := range out[T*HLast : 2*T*HLast] {
		if math.Float32bits(v) != 0 {
			t.Fatalf("row 1 output %d = %v, want +0", k, v)
		}
	}
	for layer, h := range hidden {
		for _, part := range []stacklstm.StatePart{stacklstm.StateC, stacklstm.StateH} {
			block, err := m.StateOffset(B, int32(layer), part)
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := block+int(h), block+2*int(h)
			if !sameBits(state[lo:hi], initial[lo:hi]) {
				t.Errorf("layer %d part %d: row 1's final state is not its initial state", layer, part)
			}
		}
	}
	if sameBits(state[:hidden[0]], initial[:hidden[0]]) {
		t.Error("row 0 ran T steps but kept its initial state")
	}
}

func TestAStepGivesWhatAForwardCallOfOneStepGives(t *testing.T) {
	m := newModel(t)
	s := newSession(t, m)
	n := stateCount(t, m)
	x := values(B*D, 5)
	state0 := values(n, 6)
	out, state := make([]float32, B*HLast), make([]float32, n)
	if err := s.Forward(stacklstm.ForwardArgs{Batch: B, Time: 1, Input: x, InitialState: state0,
		Output: out, FinalState: state}); err != nil {
		t.Fatal(err)
	}
	stepOut, stepState := make([]float32, B*HLast), make([]float32, n)
	if err := s.Step(B, x, state0, stepOut, stepState); err != nil {
		t.Fatal(err)
	}
	if !sameBits(stepOut, out) || !sameBits(stepState, state) {
		t.Error("step and a one-step forward call differ")
	}
}

func TestASessionKeepsWorkingAfterItsModelIsClosed(t *testing.T) {
	m := newModel(t)
	s := newSession(t, m)
	m.Close()
	out := make([]float32, B*T*HLast)
	if err := s.Forward(stacklstm.ForwardArgs{Batch: B, Time: T, Input: values(B*T*D, 7),
		Output: out}); err != nil {
		t.Fatal(err)
	}
	for _, v := range out {
		if v != 0 {
			return
		}
	}
	t.Error("no output written")
}

func TestCallsAfterCloseAreRefusedAndCloseTwiceDoesNothing(t *testing.T) {
	m := newModel(t)
	s := newSession(t, m)
	s.Close()
	s.Close()
	err := s.Step(B, values(B*D, 8), nil, nil, nil)
	var e *stacklstm.Error
	if !errors.As(err, &e) || e.Status != stacklstm.StatusInvalidArgument {
		t.Errorf("step on a closed session: want StatusInvalidArgument, got %v", err)
	}
	m.Close()
	m.Close()
	if _, err := m.NumLayers(); !errors.As(err, &e) {
		t.Errorf("NumLayers on a closed model: want an *Error, got %v", err)
	}
	if _, err := stacklstm.NewSession(m, stacklstm.SessionOptions{MaxBatch: 1, MaxTime: 1}); err == nil {
		t.Error("NewSession on a closed model succeeded")
	}
}

func TestClosingACopyClosesTheOriginalWithoutFreeingTwice(t *testing.T) {
	m := newModel(t)
	s := newSession(t, m)
	sCopy := *s
	sCopy.Close()
	var e *stacklstm.Error
	if err := s.Step(B, values(B*D, 8), nil, nil, nil); !errors.As(err, &e) ||
		e.Status != stacklstm.StatusInvalidArgument {
		t.Errorf("step on a session whose copy was closed: want StatusInvalidArgument, got %v", err)
	}
	s.Close() // nothing: the copy freed it once
	mCopy := *m
	mCopy.Close()
	if _, err := m.NumLayers(); !errors.As(err, &e) {
		t.Errorf("NumLayers on a model whose copy was closed: want an *Error, got %v", err)
	}
	m.Close()
}

func TestEnumValuesBeyondACIntAreRefusedNotCut(t *testing.T) {
	m := newModel(t)
	s := newSession(t, m)
	var e *stacklstm.Error
	// 1<<32 | 1 would become 1 (time-major) in a C int.
	err := s.Forward(stacklstm.ForwardArgs{Layout: stacklstm.Layout(1<<32 | 1), Batch: B, Time: T,
		Input: values(B*T*D, 1)})
	if !errors.As(err, &e) || e.Status != stacklstm.StatusInvalidArgument ||
		!strings.Contains(e.Message, "Layout") {
		t.Errorf("Layout 1<<32|1: want StatusInvalidArgument naming Layout, got %v", err)
	}
	_, err = stacklstm.NewSession(m, stacklstm.SessionOptions{Backend: stacklstm.Backend(1 << 32),
		MaxBatch: 1, MaxTime: 1})
	if !errors.As(err, &e) || !strings.Contains(e.Message, "Backend") {
		t.Errorf("Backend 1<<32: want an *Error naming Backend, got %v", err)
	}
	if _, err = m.StateOffset(B, 0, stacklstm.StatePart(1<<32|1)); !errors.As(err, &e) {
		t.Errorf("StatePart 1<<32|1: want an *Error, got %v", err)
	}
	if got := stacklstm.Status(1 << 32).String(); got == stacklstm.StatusOK.String() {
		t.Errorf("Status(1<<32).String() = %q, the text of StatusOK", got)
	}
}
