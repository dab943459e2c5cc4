#!/usr/bin/env python3
# A CPU-only model of the CUDA forward in cuda/session.cpp + cuda/schedule.cpp +
# cuda/kernels.cu, used to check its index arithmetic and its stream/event schedule where no
# GPU exists: the same
# buffers and offsets (augmented W_x with the bias column, or with allow_tf32 the bias added
# in the step kernel; time-major pre-activations,
# packed state, hseq strides, batch-/time-major output rows), cuBLAS column-major SGEMM
# semantics, the fused step kernel, and the per-layer streams and events executed by a
# RANDOM scheduler that honours only stream order and event waits (a missing dependency
# shows up as a wrong result). Compared with a float64 reference of TF semantics.
# Not run by ctest; it mirrors the C++ by hand, so keep it in step when the schedule changes.
#   python3 tests/gpu/emulate_forward.py [seed]      (numpy; about a second)
import numpy as np, random, sys

def round_up4(v): return (v + 3) // 4 * 4

def sgemm(transa, transb, m, n, k, alpha, A, a_off, lda, Bm, b_off, ldb, beta, C, c_off, ldc):
    assert transa == 'T' and transb == 'N'
    assert lda >= k and ldb >= k and ldc >= m
    i = np.arange(m)[:, None]; p = np.arange(k)[None, :]
    opA = A[a_off + p + i * lda].astype(np.float64)          # [m, k]: op_T(A)[i,p] = A[p + i*lda]
    p2 = np.arange(k)[:, None]; j = np.arange(n)[None, :]
    Bv = Bm[b_off + p2 + j * ldb].astype(np.float64)          # [k, n]
    ci = np.arange(m)[:, None] + np.arange(n)[None, :] * ldc + c_off
    C[ci] = (alpha * (opA @ Bv) + beta * C[ci].astype(np.float64)).astype(np.float32)

def sig(x): return 1.0 / (1.0 + np.exp(-x))

def lstm_cell(zi, zf, zg, zo, fb, c):
    cn = c * sig(zf + fb) + sig(zi) * np.tanh(zg)
    return cn, np.tanh(cn) * sig(zo)

class Emu:
    def __init__(s, D, Hs, Wx, Wh, bias, fb, Bmax, Tmax, chunk_override=0, tf32=False, fused=True):
        s.D, s.Hs, s.fb, s.Bmax, s.Tmax = D, Hs, fb, Bmax, Tmax
        # per layer, as the session decides (StepPlan, from rec_step_preferred): a stack may mix both paths
        s.fused = list(fused) if isinstance(fused, (list, tuple)) else [fused] * len(Hs)
        s.chunk_override = chunk_override
        L = len(Hs); rows = Bmax * Tmax
        s.layers = []
        prefix = 0
        I = D
        for l, H in enumerate(Hs):
            ld = dict(inp=I, hid=H, ld_x=round_up4(I + 1), prefix=prefix)
            prefix += H
            s.layers.append(ld); I = H
        for l in range(L - 1): s.layers[l]['ld_next'] = s.layers[l + 1]['ld_x']
        s.layers[-1]['ld_next'] = 0
        s.d_in = np.zeros(rows * D, np.float32)
        s.d_x = np.zeros(rows * s.layers[0]['ld_x'], np.float32)
        s.d_x[np.arange(rows) * s.layers[0]['ld_x'] + D] = 1.0
        s.d_out = np.zeros(rows * Hs[-1], np.float32)
        s.d_state = np.zeros(2 * Bmax * prefix, np.float32)
        s.d_len = np.zeros(Bmax, np.int32)
        for l, ld in enumerate(s.layers):
            H, I, G = ld['hid'], ld['inp'], 4 * ld['hid']
            wx = np.zeros(G * ld['ld_x'], np.float32)
            # allow_tf32: the bias column stays zero and the step kernel adds ld['bias']
            ld['bias'] = np.zeros(G, np.float32) if tf32 else None
            for r in range(G):
                wx[r * ld['ld_x']: r * ld['ld_x'] + I] = Wx[l][r]
                b = np.float32(bias[l][r] + (fb if H <= r < 2 * H else 0.0))
                if tf32: ld['bias'][r] = b
                else: wx[r * ld['ld_x'] + I] = b
            ld['wx'] = wx
            ld['wh'] = Wh[l].astype(np.float32).reshape(-1).copy()
            ld['zx'] = np.zeros(rows * G, np.float32)
            # the fused step's second h buffer (rec_step_fits(1, H) holds for these sizes)
            ld['hbuf'] = np.zeros(Bmax * H, np.float32) if s.fused[l] else None
            if l + 1 < L:
                ld['hseq'] = np.zeros(rows * ld['ld_next'], np.float32)
                ld['hseq'][np.arange(rows) * ld['ld_next'] + H] = 1.0

    def chunk_steps(s, B, T):
        if len(s.layers) == 1: return T
        c = s.chunk_override if s.chunk_override > 0 else (64 + B - 1) // B
        if s.chunk_override <= 0: c = min(max(c, 1), 8)
        return max(1, min(c, T))

    # ---- a tiny stream/event machine
    def reset_streams(s):
        s.ops = {}       # stream -> list of (deps, fn, id)
        s.last = {}      # stream -> id of last op
        s.events = {}    # event -> id
        s.nid = 0
    def enqueue(s, stream, fn, deps=()):
        s.nid += 1
        prev = s.last.get(stream)
        s.ops.setdefault(stream, []).append((set(deps), fn, s.nid))
        s.last[stream] = s.nid
    def record(s, ev, stream):
        s.events[ev] = s.last.get(stream)
    def wait(s, stream, ev):
        dep = s.events.get(ev)
        s.enqueue(stream, None, [dep] if dep is not None else [])
    def run(s, rng):
        done = set(); heads = {k: 0 for k in s.ops}
        while True:
            ready = [k for k in s.ops if heads[k] < len(s.ops[k]) and s.ops[k][heads[k]][0] <= done]
            if not ready:
                assert all(heads[k] == len(s.ops[k]) for k in s.ops), "deadlock"
                return
            k = rng.choice(ready)
            deps, fn, i = s.ops[k][heads[k]]
            if fn: fn()
            done.add(i); heads[k] += 1

    def input_gemm(s, ld, x, row0, rows):
        sgemm('T', 'N', 4 * ld['hid'], rows, ld['inp'] + 1, 1.0, ld['wx'], 0, ld['ld_x'],
              x, row0 * ld['ld_x'], ld['ld_x'], 0.0, ld['zx'], row0 * 4 * ld['hid'], 4 * ld['hid'])

    def step_kernel(s, z_arr, bias, z_off, c_off, h_off, y_arr, y_off, y_stride, t, B, H):
        for i in range(B * H):
            b, u = divmod(i, H)
            out = 0.0
            if t < s.d_len[b]:
                zr = z_off + b * 4 * H
                zq = [z_arr[zr + q * H + u] + (bias[q * H + u] if bias is not None else 0.0)
                      for q in range(4)]
                cn, hn = lstm_cell(zq[0], zq[1], zq[2], zq[3], 0.0, s.d_state[c_off + i])
                s.d_state[c_off + i] = cn; s.d_state[h_off + i] = hn; out = hn
            if y_arr is not None: y_arr[y_off + b * y_stride + u] = out

    def rec_step_kernel(s, ld, z_off, c_off, hp_arr, hp_off, hn_arr, hn_off, y_arr, y_off,
                        y_stride, t, B):
        # launch_lstm_rec_step: z = zx + h_prev . W_h^T (+ bias); h_prev -> h_next; c in place
        H = ld['hid']
        wh = ld['wh'].reshape(4 * H, H).astype(np.float64)
        hp = hp_arr[hp_off:hp_off + B * H].reshape(B, H).copy()  # staged before any write
        acc = (hp.astype(np.float64) @ wh.T).astype(np.float32)    # [B, 4H]
        for i in range(B * H):
            b, u = divmod(i, H)
            out = 0.0
            if t < s.d_len[b]:
                zr = z_off + b * 4 * H
                zq = [ld['zx'][zr + q * H + u] + acc[b, q * H + u] +
                      (ld['bias'][q * H + u] if ld['bias'] is not None else 0.0) for q in range(4)]
                cn, hn = lstm_cell(zq[0], zq[1], zq[2], zq[3], 0.0, s.d_state[c_off + i])
                s.d_state[c_off + i] = cn; hn_arr[hn_off + i] = hn; out = hn
            else:
                hn_arr[hn_off + i] = hp[b, u]
            if y_arr is not None: y_arr[y_off + b * y_stride + u] = out

    def enqueue_compute(s, B, T, layout):
        L = len(s.layers)
        s.record('fork', 'main')
        for l in range(L):
            s.wait(('rec', l), 'fork')
            if l > 0: s.wait(('proj', l), 'fork')
        l0 = s.layers[0]
        s.enqueue(('rec', 0), lambda: s.input_gemm(l0, s.d_x, 0, T * B))
        C = s.chunk_steps(B, T)
        last = s.layers[-1]
        for t0 in range(0, T, C):
            t1 = min(T, t0 + C)
            for l in range(L):
                ld = s.layers[l]; H = ld['hid']; G = 4 * H
                if l > 0:
                    s.wait(('proj', l), ('done', l - 1))
                    prev = s.layers[l - 1]
                    s.enqueue(('proj', l), lambda ld=ld, prev=prev, t0=t0, t1=t1: s.input_gemm(ld, prev['hseq'], t0 * B, (t1 - t0) * B))
                    s.record(('projev', l), ('proj', l))
                    s.wait(('rec', l), ('projev', l))
                c_off = 2 * B * ld['prefix']; h_off = c_off + B * H
                fused = s.fused[l] and B <= 16
                for t in range(t0, t1):
                    z_off = t * B * G
                    if not fused:
                        s.enqueue(('rec', l), lambda ld=ld, z_off=z_off, h_off=h_off, G=G: sgemm(
                            'T', 'N', G, B, ld['hid'], 1.0, ld['wh'], 0, ld['hid'], s.d_state, h_off,
                            ld['hid'], 1.0, ld['zx'], z_off, G))
                    if l + 1 < L:
                        y, y_off, ys = ld['hseq'], t * B * ld['ld_next'], ld['ld_next']
                    elif layout == 'tm':
                        y, y_off, ys = s.d_out, t * B * last['hid'], last['hid']
                    else:
                        y, y_off, ys = s.d_out, t * last['hid'], T * last['hid']
                    if fused:
                        # even steps read the state's h and write hbuf; odd steps the reverse
                        hp = (s.d_state, h_off) if t % 2 == 0 else (ld['hbuf'], 0)
                        hn = (ld['hbuf'], 0) if t % 2 == 0 else (s.d_state, h_off)
                        s.enqueue(('rec', l), lambda ld=ld, z_off=z_off, c_off=c_off, hp=hp, hn=hn, y=y, y_off=y_off, ys=ys, t=t: s.rec_step_kernel(
                            ld, z_off, c_off, hp[0], hp[1], hn[0], hn[1], y, y_off, ys, t, B))
                    else:
                        s.enqueue(('rec', l), lambda ld=ld, z_off=z_off, c_off=c_off, h_off=h_off, y=y, y_off=y_off, ys=ys, t=t: s.step_kernel(
                            ld['zx'], ld['bias'], z_off, c_off, h_off, y, y_off, ys, t, B, ld['hid']))
                if fused and t1 == T and T % 2 == 1:
                    def copy_back(ld=ld, h_off=h_off, H=H):
                        s.d_state[h_off:h_off + B * H] = ld['hbuf'][:B * H]
                    s.enqueue(('rec', l), copy_back)
                if l + 1 < L: s.record(('done', l), ('rec', l))
        for l in range(L):
            s.record(('jr', l), ('rec', l)); s.wait('main', ('jr', l))
            if l > 0: s.record(('jp', l), ('proj', l)); s.wait('main', ('jp', l))

    def forward(s, B, T, layout, x, lengths, init, rng):
        # host path: lengths, input copy + pack, state, compute, copy out
        s.d_len[:B] = lengths if lengths is not None else T
        s.d_in[:B * T * s.D] = x
        ldx = s.layers[0]['ld_x']
        for i in range(T * B * s.D):
            row, k = divmod(i, s.D); t, b = divmod(row, B)
            src_row = b * T + t if layout == 'bm' else row
            s.d_x[row * ldx + k] = s.d_in[src_row * s.D + k]
        n_state = sum(2 * B * H for H in s.Hs)
        s.d_state[:n_state] = init if init is not None else 0.0
        s.reset_streams()
        s.enqueue_compute(B, T, layout)
        s.run(rng)
        return s.d_out[:B * T * s.Hs[-1]].copy(), s.d_state[:n_state].copy()

def reference(D, Hs, Wx, Wh, bias, fb, B, T, layout, x, lengths, init):
    xs = x.reshape(B, T, D) if layout == 'bm' else x.reshape(T, B, D).transpose(1, 0, 2)
    L = len(Hs); st = []; off = 0
    for H in Hs:
        c = (init[off:off + B * H].reshape(B, H) if init is not None else np.zeros((B, H))).astype(np.float64); off += B * H
        h = (init[off:off + B * H].reshape(B, H) if init is not None else np.zeros((B, H))).astype(np.float64); off += B * H
        st.append([c, h])
    out = np.zeros((B, T, Hs[-1]))
    for t in range(T):
        for b in range(B):
            active = lengths is None or t < lengths[b]
            if active:
                inp = xs[b, t].astype(np.float64)
                for l, H in enumerate(Hs):
                    z = Wx[l] @ inp + Wh[l] @ st[l][1][b] + bias[l]
                    cn, hn = lstm_cell(z[:H], z[H:2*H], z[2*H:3*H], z[3*H:], fb, st[l][0][b])
                    st[l][0][b] = cn; st[l][1][b] = hn; inp = hn
                out[b, t] = st[-1][1][b]
    if layout == 'tm': out = out.transpose(1, 0, 2)
    fin = np.concatenate([np.concatenate([c.reshape(-1), h.reshape(-1)]) for c, h in st])
    return out.reshape(-1), fin

rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
nrs = np.random.default_rng(1)
worst = 0.0
for trial in range(60):
    D = rng.choice([1, 3, 5, 8]); L = rng.choice([1, 2, 3]); Hs = [rng.choice([1, 2, 3, 5, 7]) for _ in range(L)]
    Bmax = rng.choice([1, 3, 7]); Tmax = rng.choice([1, 4, 9])
    B = rng.randint(1, Bmax); T = rng.randint(0, Tmax)
    if T == 0: continue
    layout = rng.choice(['bm', 'tm']); fb = rng.choice([0.0, 1.0, 0.5])
    Wx, Wh, bias = [], [], []
    I = D
    for H in Hs:
        Wx.append(nrs.uniform(-1, 1, (4 * H, I)).astype(np.float32)); Wh.append(nrs.uniform(-1, 1, (4 * H, H)).astype(np.float32))
        bias.append(nrs.uniform(-1, 1, 4 * H).astype(np.float32)); I = H
    x = nrs.uniform(-1, 1, B * T * D).astype(np.float32)
    lengths = None if rng.random() < 0.3 else np.array([rng.choice([0, 1, max(T - 1, 0), T]) for _ in range(B)], np.int32)
    n_state = sum(2 * B * H for H in Hs)
    init = None if rng.random() < 0.3 else nrs.uniform(-1, 1, n_state).astype(np.float32)
    emu = Emu(D, Hs, Wx, Wh, bias, fb, Bmax, Tmax, chunk_override=rng.choice([0, 0, 1, 2, 3]),
              tf32=rng.random() < 0.5, fused=[rng.random() < 0.6 for _ in Hs])
    o, f = emu.forward(B, T, layout, x, lengths, init, rng)
    ro, rf = reference(D, Hs, [w.astype(np.float64) for w in Wx], [w.astype(np.float64) for w in Wh], [b.astype(np.float64) for b in bias], fb, B, T, layout, x, lengths, init)
    e = max(np.max(np.abs(o - ro), initial=0) / max(np.max(np.abs(ro), initial=0), 1e-30), np.max(np.abs(f - rf)) / max(np.max(np.abs(rf)), 1e-30))
    # masked zeros exact
    if lengths is not None:
        oo = o.reshape(B, T, -1) if layout == 'bm' else o.reshape(T, B, -1).transpose(1, 0, 2)
        for b in range(B):
            assert np.all(oo[b, lengths[b]:] == 0.0)
    worst = max(worst, e)
    assert e < 1e-5, (trial, D, Hs, B, T, layout, e)
print("ok worst rel err", worst)
