// Command seed_checksum runs the seed scenario of examples/seed_demo.c through the Go
// binding: 3 layers [100, 200, 300], batch 10, input 128, time 7, model seed 42, inputs from
// the C library's srand(7)/rand() exactly as seed_demo makes them, on the CPU backend. It
// prints the same lines as examples/seed_checksum.c (shapes, the bitwise final-state checks,
// values, FNV-1a 64 checksums, a refused call), which examples/check_foreign.sh compares.
// Exit 0 when both checks hold and the bad call is refused with StatusOutOfRange.
package main

// seed_demo.c draws its inputs from the C library's generator; so does this program, to get
// the very same floats.

// #include <stdlib.h>
import "C"

import (
	"errors"
	"fmt"
	"math"
	"os"

	"example.com/stacklstm/stacklstm"
)

// cRand is seed_demo's (float)rand() / (float)RAND_MAX. Scaling it by 2 is exact, so no
// fused multiply-add can change what is made of it.
func cRand() float32 { return float32(C.rand()) / float32(C.RAND_MAX) }

// fnv1a64 hashes each float's bits as 4 little-endian bytes.
func fnv1a64(values []float32) uint64 {
	h := uint64(0xcbf29ce484222325)
	for _, v := range values {
		bits := math.Float32bits(v)
		for k := 0; k < 4; k++ {
			h ^= uint64((bits >> (8 * k)) & 0xff)
			h *= 0x100000001b3
		}
	}
	return h
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

func truth(ok bool) string {
	if ok {
		return "true"
	}
	return "FALSE"
}

func main() {
	ok, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "seed_checksum:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func run() (bool, error) {
	const B, D, T = 10, 128, 7
	model, err := stacklstm.NewRandomModel(D, []int64{100, 200, 300}, 1.0, 42, 0)
	if err != nil {
		return false, err
	}
	defer model.Close()
	layers, err := model.NumLayers()
	if err != nil {
		return false, err
	}
	hidden := make([]int64, layers)
	for l := range hidden {
		if hidden[l], err = model.HiddenSize(int32(l)); err != nil {
			return false, err
		}
	}
	hLast := int(hidden[layers-1])
	inputSize, err := model.InputSize()
	if err != nil {
		return false, err
	}

	fmt.Printf("libstacklstm %s\n", stacklstm.Version())
	fmt.Printf("seed scenario: %d layers [%d, %d, %d], batch %d, input %d, time %d, "+
		"model seed 42, CPU\n", layers, hidden[0], hidden[1], hidden[2], B, inputSize, T)

	session, err := stacklstm.NewSession(model, stacklstm.SessionOptions{
		Backend: stacklstm.BackendCPU, MaxBatch: B, MaxTime: T})
	if err != nil {
		return false, err
	}
	defer session.Close()
	nState, err := model.StateCount(B)
	if err != nil {
		return false, err
	}
	C.srand(7)
	x := make([]float32, B*T*D)
	for k := range x {
		x[k] = cRand()*2 - 1
	}
	state0 := make([]float32, nState)
	for k := range state0 {
		state0[k] = cRand() - 0.5
	}
	out := make([]float32, B*T*hLast)
	state := make([]float32, nState)
	if err := session.Forward(stacklstm.ForwardArgs{Batch: B, Time: T, Input: x, Output: out,
		FinalState: state}); err != nil {
		return false, err
	}

	fmt.Printf("inputs        shape (%d, %d, %d)\n", B, T, D)
	fmt.Printf("outputs       shape (%d, %d, %d)\n", B, T, hLast)
	for l, h := range hidden {
		fmt.Printf("states[%d].c   shape (%d, %d)\n", l, B, h)
		fmt.Printf("states[%d].h   shape (%d, %d)\n", l, B, h)
	}
	hOff, err := model.StateOffset(B, layers-1, stacklstm.StateH)
	if err != nil {
		return false, err
	}
	lastOK := true
	for b := 0; b < B; b++ {
		lastStep := (b*T + T - 1) * hLast
		lastOK = lastOK && sameBits(state[hOff+b*hLast:hOff+(b+1)*hLast], out[lastStep:lastStep+hLast])
	}
	fmt.Printf("final_state[-1].h == outputs[:, -1, :]: %s (bitwise)\n", truth(lastOK))

	stepOut := make([]float32, B*hLast)
	stepState := make([]float32, nState)
	if err := session.Step(B, x[:B*D], state0, stepOut, stepState); err != nil {
		return false, err
	}
	fmt.Printf("step: outputs shape (%d, %d); states[0].h shape (%d, %d); "+
		"states[%d].h shape (%d, %d)\n", B, hLast, B, hidden[0], layers-1, B, hLast)
	stepOK := sameBits(stepState[hOff:hOff+B*hLast], stepOut)
	fmt.Printf("step: states[-1].h == outputs: %s (bitwise)\n", truth(stepOK))

	first := out[(T-1)*hLast:]
	fmt.Printf("outputs[0, -1, 0:4]: %.6f %.6f %.6f %.6f\n", float64(first[0]),
		float64(first[1]), float64(first[2]), float64(first[3]))
	fmt.Printf("fnv1a64 outputs     %016x\n", fnv1a64(out))
	fmt.Printf("fnv1a64 final_state %016x\n", fnv1a64(state))
	fmt.Printf("fnv1a64 step output %016x\n", fnv1a64(stepOut))
	fmt.Printf("fnv1a64 step state  %016x\n", fnv1a64(stepState))

	// A call the library must refuse: batch above the session's max_batch.
	err = session.Forward(stacklstm.ForwardArgs{Batch: B + 1, Time: T, Input: x, Output: out,
		FinalState: state})
	var e *stacklstm.Error
	refusedOK := errors.As(err, &e) && e.Status == stacklstm.StatusOutOfRange
	if err != nil {
		fmt.Printf("refused: forward with batch %d: %v\n", B+1, err)
	} else {
		fmt.Printf("refused: forward with batch %d: accepted\n", B+1)
	}
	return lastOK && stepOK && refusedOK, nil
}
