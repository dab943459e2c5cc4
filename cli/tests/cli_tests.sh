#!/bin/sh
# The stacklstm tool as a user meets it: every command's results, and for every kind of bad
# input its exit status (1 failure, 2 usage) and its single stderr line
# `stacklstm: <command>: <message>`.
# Usage: cli_tests.sh <stacklstm binary> <make_test_files binary> <scratch dir>
set -u
cli=$1
make_files=$2
dir=$3
case $cli in /*) ;; *) cli="$PWD/$cli" ;; esac
case $make_files in /*) ;; *) make_files="$PWD/$make_files" ;; esac
rm -rf "$dir"
mkdir -p "$dir"
"$make_files" "$dir" || { echo "FAIL: could not write the test files"; exit 1; }
cd "$dir" || exit 1

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect_error STATUS FRAGMENT -- COMMAND...: exits with STATUS, prints nothing on stdout and
# exactly one line on stderr, which starts with "stacklstm: " and contains FRAGMENT.
expect_error() {
  want=$1; fragment=$2; shift 3
  "$@" > out.txt 2> err.txt
  got=$?
  lines=$(wc -l < err.txt)
  if [ "$got" -ne "$want" ]; then
    bad "$*: exit status $got, expected $want; stderr: $(cat err.txt)"
  elif [ -s out.txt ]; then
    bad "$*: wrote to stdout: $(cat out.txt)"
  elif [ "$lines" -ne 1 ]; then
    bad "$*: $lines lines on stderr, expected 1: $(cat err.txt)"
  elif ! head -c 11 err.txt | grep -q '^stacklstm: '; then
    bad "$*: stderr does not start with 'stacklstm: ': $(cat err.txt)"
  elif ! grep -qF -- "$fragment" err.txt; then
    bad "$*: stderr lacks '$fragment': $(cat err.txt)"
  else
    ok
  fi
}

# expect_ok COMMAND...: exit status 0 and nothing on stderr.
expect_ok() {
  "$@" > out.txt 2> err.txt
  got=$?
  if [ "$got" -ne 0 ]; then bad "$*: exit status $got: $(cat err.txt)"
  elif [ -s err.txt ]; then bad "$*: wrote to stderr: $(cat err.txt)"
  else ok; fi
}

# same_file A B: byte-identical files.
same_file() {
  if cmp -s "$1" "$2"; then ok; else bad "$1 differs from $2"; fi
}

# ---- top level ---------------------------------------------------------------------------
expect_ok "$cli" --version
grep -q '^stacklstm [0-9]*\.[0-9]*\.[0-9]*$' out.txt && ok || bad "--version printed: $(cat out.txt)"
expect_ok "$cli" --help
grep -q 'run' out.txt && grep -q 'inspect' out.txt && grep -q 'bench' out.txt && grep -q 'convert' out.txt \
  && ok || bad "--help does not list every command"
for c in run inspect bench convert; do
  expect_ok "$cli" "$c" --help
  grep -q "^usage: stacklstm $c " out.txt && ok || bad "$c --help printed: $(head -n 1 out.txt)"
done
"$cli" > out.txt 2> err.txt; [ $? -eq 2 ] && grep -q '^usage: stacklstm' err.txt && ok \
  || bad "no command: expected exit 2 and the usage on stderr"
expect_error 2 "unknown command 'frob'" -- "$cli" frob
expect_error 2 "unknown option --frob" -- "$cli" --frob

# ---- run: usage --------------------------------------------------------------------------
expect_error 2 "run: needs MODEL.safetensors and INPUT.npy" -- "$cli" run model.safetensors
expect_error 2 "run: takes two files" -- "$cli" run model.safetensors x.npy extra.npy -o y.npy
expect_error 2 "run: nothing to write" -- "$cli" run model.safetensors x.npy
expect_error 2 "run: unknown option --frob" -- "$cli" run model.safetensors x.npy -o y.npy --frob
expect_error 2 "run: --backend must be cpu or cuda, got \"tpu\"" -- \
  "$cli" run model.safetensors x.npy -o y.npy --backend tpu
expect_error 2 "run: --threads needs an integer" -- \
  "$cli" run model.safetensors x.npy -o y.npy --threads many
expect_error 2 "run: -o needs a value" -- "$cli" run model.safetensors x.npy -o
expect_error 2 "run: --output is given more than once" -- \
  "$cli" run model.safetensors x.npy -o a.npy --output b.npy

# ---- run: files that are missing or wrong ------------------------------------------------
expect_error 1 "run: " -- "$cli" run missing.safetensors x.npy -o y.npy
[ "$(grep -o missing.safetensors err.txt | wc -l)" -eq 1 ] && ok \
  || bad "a missing model's message does not name its path once: $(cat err.txt)"
# The options are checked before any file is read: a bad value is bad usage whatever the files.
expect_error 2 "run: --threads needs an integer" -- \
  "$cli" run missing.safetensors x.npy -o y.npy --threads many
expect_error 1 "run: not_a_model.safetensors: " -- "$cli" run not_a_model.safetensors x.npy -o y.npy
printf 'PK\003\004 not really a zip archive' > state_dict.pt
expect_error 1 "run: state_dict.pt: not a safetensors model file; it is a ZIP archive, as torch.save writes" -- \
  "$cli" run state_dict.pt x.npy -o y.npy
grep -qF "stacklstm convert torch" err.txt && ok || bad "a .pt model: the message does not say how to convert it"
expect_error 1 "run: x.npy: not a safetensors model file; it is a NumPy .npy array" -- \
  "$cli" run x.npy model.safetensors -o y.npy
printf '\200\002}q\000(X\001\000\000\000' > old_pickle.pt
expect_error 1 "run: old_pickle.pt: not a safetensors model file; it is a Python pickle" -- \
  "$cli" run old_pickle.pt x.npy -o y.npy
# A safetensors file the library refuses whose header length starts like a pickle (0x80 0x02):
# the library's own reason, not a guess at the file's kind.
expect_error 1 "run: header640.safetensors: " -- "$cli" run header640.safetensors x.npy -o y.npy
! grep -q "pickle" err.txt && ok || bad "a safetensors file was called a pickle: $(cat err.txt)"
expect_error 1 "run: cannot open missing.npy" -- "$cli" run model.safetensors missing.npy -o y.npy
expect_error 1 "run: not_npy.npy: not a .npy file" -- "$cli" run model.safetensors not_npy.npy -o y.npy
expect_error 1 "run: big_endian.npy: big-endian data" -- "$cli" run model.safetensors big_endian.npy -o y.npy
expect_error 1 "run: fortran.npy: the array is in Fortran order" -- "$cli" run model.safetensors fortran.npy -o y.npy
expect_error 1 "run: truncated.npy: truncated" -- "$cli" run model.safetensors truncated.npy -o y.npy
expect_error 1 "run: rank2.npy: the input must be 3-D [batch, time, input_size], got shape (2, 4)" -- \
  "$cli" run model.safetensors rank2.npy -o y.npy
expect_error 1 "run: wrong_depth.npy: the last dimension is 5, the model's input size is 4" -- \
  "$cli" run model.safetensors wrong_depth.npy -o y.npy
expect_error 1 "run: lengths3.npy: 3 sequence lengths for a batch of 2" -- \
  "$cli" run model.safetensors x.npy -o y.npy --lengths lengths3.npy
expect_error 1 "run: lengths1.npy: 1 sequence lengths for a batch of 2" -- \
  "$cli" run model.safetensors x.npy -o y.npy --lengths lengths1.npy
expect_error 1 "run: x_empty.npy: the batch is empty (shape (0, 3, 4))" -- \
  "$cli" run model.safetensors x_empty.npy -o y.npy
expect_error 1 "run: x.npy: sequence lengths must be integers" -- \
  "$cli" run model.safetensors x.npy -o y.npy --lengths x.npy
expect_error 1 "run: x.npy: the packed initial state for a batch of 2 is 1-D of 32 floats" -- \
  "$cli" run model.safetensors x.npy -o y.npy --initial-state x.npy
expect_error 1 "run: state0_2d.npy: the packed initial state for a batch of 2 is 1-D of 32" -- \
  "$cli" run model.safetensors x.npy -o y.npy --initial-state state0_2d.npy
grep -qF "got shape (2, 16)" err.txt && ok || bad "a 2-D initial state: $(cat err.txt)"
expect_error 1 "run: options->precision is SLSTM_PRECISION_FP32 but options->allow_tf32" -- \
  "$cli" run model.safetensors x.npy -o y.npy --tf32 --precision fp32
expect_error 1 "run: cannot write no-such-dir/y.npy" -- "$cli" run model.safetensors x.npy -o no-such-dir/y.npy
expect_error 1 "run: " -- "$cli" run model.safetensors x.npy -o y.npy --config "no.such.key=1"
grep -qF "no.such.key" err.txt && ok || bad "an unknown --config key is not named: $(cat err.txt)"
[ ! -e y.npy ] && ok || bad "a failed run left y.npy behind"
# CUDA: runs where a GPU is usable, otherwise one line saying why not.
"$cli" run model.safetensors x.npy -o y_cuda.npy --backend cuda > out.txt 2> err.txt
st=$?
if [ $st -eq 0 ]; then ok
elif [ $st -eq 1 ] && [ "$(wc -l < err.txt)" -eq 1 ] && grep -q '^stacklstm: run: ' err.txt; then ok
else bad "run --backend cuda: exit $st: $(cat err.txt)"; fi

# ---- run: results ------------------------------------------------------------------------
expect_ok "$cli" run model.safetensors x.npy -o y.npy
same_file y.npy expected.npy
expect_ok "$cli" run model.safetensors x_tm.npy --time-major -o y_tm.npy
same_file y_tm.npy expected_tm.npy
expect_ok "$cli" run model.safetensors x.npy -o y_len.npy --lengths lengths.npy
same_file y_len.npy expected_len.npy
expect_ok "$cli" run model.safetensors x.npy --initial-state state0.npy --final-state f.npy
same_file f.npy expected_state.npy
[ -z "$(find . -name '.*.tmp-*')" ] && ok || bad "temporary files left behind"
# float64 input: converted (the values are exact in float32), with a note unless --quiet.
"$cli" run model.safetensors x64.npy -o y64.npy > out.txt 2> err.txt
[ $? -eq 0 ] && grep -q "^stacklstm: run: note: x64.npy is float64; converted to float32$" err.txt \
  && ok || bad "float64 input: no note or a failure: $(cat err.txt)"
same_file y64.npy expected.npy
expect_ok "$cli" run model.safetensors x64.npy -o y64q.npy --quiet
same_file y64q.npy expected.npy
# No time steps: an empty output, the initial state as the final state.
expect_ok "$cli" run model.safetensors x_t0.npy -o y_t0.npy --initial-state state0.npy \
  --final-state f_t0.npy
same_file y_t0.npy expected_t0.npy
same_file f_t0.npy state0.npy
# Every CPU path and thread count gives the same bits (the library's promise, seen from here).
expect_ok "$cli" run model.safetensors x.npy -o y_ref.npy --cpu-path reference --threads 1
expect_ok "$cli" run model.safetensors x.npy -o y_t2.npy --threads 2
same_file y_t2.npy expected.npy

# ---- run: where the outputs go -----------------------------------------------------------
# A file replaced keeps its permissions; a symbolic link's target is written, the link kept.
printf 'old' > private.npy && chmod 600 private.npy
expect_ok "$cli" run model.safetensors x.npy -o private.npy
same_file private.npy expected.npy
[ "$(stat -c %a private.npy)" = 600 ] && ok || bad "a replaced output lost its mode 600: $(stat -c %a private.npy)"
ln -sf private.npy link.npy
expect_ok "$cli" run model.safetensors x.npy -o link.npy --lengths lengths.npy
[ -L link.npy ] && ok || bad "the symbolic link link.npy was replaced by a file"
same_file private.npy expected_len.npy
# A device is written in place, never replaced (as root, a rename would delete /dev/null).
expect_ok "$cli" run model.safetensors x.npy -o /dev/null --initial-state state0.npy \
  --final-state f2.npy
[ -c /dev/null ] && ok || bad "/dev/null is no longer a character device"
same_file f2.npy expected_state.npy
# The two outputs on one path, also spelt two ways: refused (one would replace the other).
expect_error 2 "run: -o and --final-state name the same file" -- \
  "$cli" run model.safetensors x.npy -o same.npy --final-state same.npy
expect_error 2 "run: -o and --final-state name the same file" -- \
  "$cli" run model.safetensors x.npy -o same.npy --final-state ./same.npy
[ ! -e same.npy ] && ok || bad "a refused run left same.npy behind"
# A link to a file not made yet: the file is made (the link kept); a link to a pipe
# (/dev/stdout into a pipe) is written through.
rm -f made.npy && ln -sf made.npy dangling.npy
expect_ok "$cli" run model.safetensors x.npy -o dangling.npy
[ -L dangling.npy ] && ok || bad "the dangling link dangling.npy was replaced by a file"
same_file made.npy expected.npy
# ... through a chain of links too (each link kept, the file at its end made).
rm -f chained.npy && ln -sf hop.npy chain.npy && ln -sf chained.npy hop.npy
expect_ok "$cli" run model.safetensors x.npy -o chain.npy
[ -L chain.npy ] && [ -L hop.npy ] && ok || bad "a link of chain.npy -> hop.npy was replaced"
same_file chained.npy expected.npy
"$cli" run model.safetensors x.npy -o /dev/stdout 2> err.txt | cat > piped.npy
same_file piped.npy expected.npy
# One output that cannot be written: neither is left behind.
rm -f y_fail.npy
expect_error 1 "run: cannot write no-such-dir/f.npy" -- \
  "$cli" run model.safetensors x.npy -o y_fail.npy --final-state no-such-dir/f.npy
[ ! -e y_fail.npy ] && ok || bad "a failed run left its other output y_fail.npy behind"
# A report that cannot be written out is a failure (exit 1), not a success.
if [ -w /dev/full ]; then
  "$cli" inspect model.safetensors > /dev/full 2> err.txt
  [ $? -eq 1 ] && grep -q "^stacklstm: inspect: cannot write to standard output" err.txt && ok \
    || bad "inspect > /dev/full: not a failure: $(cat err.txt)"
fi

# ---- inspect -----------------------------------------------------------------------------
expect_ok "$cli" inspect model.safetensors
sum=$(sha256sum model.safetensors | cut -d' ' -f1)
grep -q "^sha256 *$sum$" out.txt && ok || bad "inspect: sha256 is not sha256sum's $sum: $(grep sha256 out.txt)"
grep -q "^input size *4$" out.txt && ok || bad "inspect: input size"
grep -q "^forget bias *0.5$" out.txt && ok || bad "inspect: forget bias"
grep -q "layer 1 .*lstm, hidden 3 (input 5)" out.txt && ok || bad "inspect: layer 1 line"
grep -q "^parameters *308$" out.txt && ok || bad "inspect: parameter count is not 4*5*(4+5+1) + 4*3*(5+3+1) = 308"
# Every kind of layer described: projection, peepholes, clips, directions, GRU, residual;
# each layer's input is the one below's output (both directions of a bidirectional layer).
expect_ok "$cli" inspect cells.safetensors
want="lstm, hidden 4, projection 3, peepholes, cell_clip 2.5, proj_clip 1.5, bidirectional"
grep -q "layer 0 .*$want (input 4)," out.txt && ok \
  || bad "inspect: the LSTMP layer's line: $(grep 'layer 0' out.txt)"
grep -q "layer 1 .*gru (reset after), hidden 6, residual (input 6)," out.txt && ok \
  || bad "inspect: the residual GRU's line: $(grep 'layer 1' out.txt)"
grep -q "layer 2 .*gru (reset before), hidden 2, reverse (input 6)," out.txt && ok \
  || bad "inspect: the reverse GRU's line: $(grep 'layer 2' out.txt)"
grep -q "layer 3 .*lstm, hidden 2, cell_clip 0.75 (input 2)," out.txt && ok \
  || bad "inspect: the clipped LSTM's line: $(grep 'layer 3' out.txt)"
# Parameters: per direction 4*4*(4 + 3 + 1) + 3*4 peepholes + 4*3 projection = 152, twice;
# 3*6*(6 + 6 + 2); 3*2*(6 + 2 + 2); 4*2*(2 + 2 + 1): 304 + 252 + 60 + 40.
grep -q "layer 0 .*, 304 parameters$" out.txt && grep -q "layer 2 .*, 60 parameters$" out.txt &&
  grep -q "^parameters *656$" out.txt && ok || bad "inspect: parameter counts: $(cat out.txt)"
# Every metadata entry the library writes for these layers is shown as the layers above.
! grep -q "other metadata" out.txt && ok || bad "inspect: $(sed -n '/other metadata/,$p' out.txt)"
# Tensors in layer order, a layer's forward cell before its reverse cell.
names=$(sed -n 's/^  \(layers\.[^ ]*\) .*/\1/p' out.txt | tr '\n' ' ')
case $names in
  "layers.0.W_x layers.0.W_h layers.0.b layers.0.w_peep layers.0.W_proj layers.0.reverse."*)
    ok ;;
  *) bad "inspect: tensors not in layer order: $names" ;;
esac
expect_ok "$cli" inspect deep.safetensors
names=$(sed -n 's/^  \(layers\.[^ .]*\)\..*/\1/p' out.txt | uniq | tr '\n' ' ')
[ "$names" = "$(seq -f 'layers.%g' 0 10 | tr '\n' ' ')" ] && ok \
  || bad "inspect: layers not in numeric order: $names"
expect_ok "$cli" inspect cells.safetensors --json
grep -q '"direction": "bidirectional"' out.txt && grep -q '"proj_size": 3' out.txt &&
  grep -q '"residual": true' out.txt && grep -q '"gru_reset_after": true' out.txt && ok \
  || bad "inspect --json: the layers' settings"
expect_ok "$cli" inspect model.safetensors --json
grep -q "\"sha256\": \"$sum\"" out.txt && ok || bad "inspect --json: sha256"
grep -q '"hidden_sizes": \[' out.txt && ok || bad "inspect --json: hidden_sizes"
expect_error 1 "inspect: " -- "$cli" inspect not_a_model.safetensors
expect_error 2 "inspect: needs MODEL.safetensors" -- "$cli" inspect
expect_error 2 "inspect: unknown option --yaml" -- "$cli" inspect model.safetensors --yaml

# ---- bench -------------------------------------------------------------------------------
expect_ok "$cli" bench model.safetensors --batch 2 --time 5 --repeat 3 --warmup 1
grep -q "median ms" out.txt && ok || bad "bench: no table: $(cat out.txt)"
grep -q "batch 2, time 5; 3 timed calls after 1 warm-up" out.txt && ok || bad "bench: shape line"
# On a terminal (script(1) gives it one) a progress bar is drawn on stderr, the table still printed.
if command -v script > /dev/null; then
  script -qec "'$cli' bench model.safetensors --time 5 --repeat 3 --warmup 1" /dev/null > tty.txt 2>&1
  grep -q 'timing *\[#*' tty.txt && ok || bad "bench on a terminal: no progress bar: $(cat tty.txt)"
  grep -q 'median ms' tty.txt && ok || bad "bench on a terminal: no table"
fi
# The precision and CPU path asked for are the ones run (the plan's words).
expect_ok "$cli" bench model.safetensors --time 2 --repeat 1 --precision bf16 --cpu-path reference
grep -q "path reference, precision bf16" out.txt && ok || bad "bench: $(grep backend out.txt)"
expect_ok "$cli" bench model.safetensors --time 2 --repeat 1 --precision fp16 --cpu-path fast
grep -q "path fast, precision fp16" out.txt && ok || bad "bench: $(grep backend out.txt)"
expect_ok "$cli" bench model.safetensors --time 5 --repeat 2 --json
grep -q '"median_ms"' out.txt && ok || bad "bench --json: no median_ms"
expect_error 2 "bench: --repeat must be between 1 and" -- "$cli" bench model.safetensors --repeat 0
expect_error 1 "bench: " -- "$cli" bench missing.safetensors

# ---- convert -----------------------------------------------------------------------------
expect_error 1 "convert: cannot run /nonexistent/python3" -- \
  env SLSTM_PYTHON=/nonexistent/python3 "$cli" convert torch a.pt b.safetensors
# A Python that cannot see the package (isolated mode, no site-packages).
if command -v python3 > /dev/null; then
  printf '#!/bin/sh\nexec python3 -I -S "$@"\n' > bare-python
  chmod +x bare-python
  expect_error 1 "convert: the stacklstm Python package is not importable" -- \
    env SLSTM_PYTHON="$PWD/bare-python" "$cli" convert torch a.pt b.safetensors
  grep -qF "pip install ./python" err.txt && ! grep -qF "pip install stacklstm" err.txt &&
    ok || bad "convert: the message does not say how to install"
fi

# SLSTM_PYTHON set but empty: python3, as when it is unset (whatever python3 then says).
if command -v python3 > /dev/null; then
  env SLSTM_PYTHON= "$cli" convert torch missing.pt out.safetensors > out.txt 2> err.txt
  [ $? -eq 1 ] && ! grep -q "cannot run" err.txt && ok \
    || bad "convert with SLSTM_PYTHON empty: $(cat err.txt)"
fi

# A package that is found but does not import (numpy missing, the library not loadable):
# one line with the reason, no traceback.
if command -v python3 > /dev/null; then
  mkdir -p brokenpkg/stacklstm
  printf 'raise ImportError("no module named numpy (a test stand-in)")\n' \
    > brokenpkg/stacklstm/__init__.py
  expect_error 1 "convert: the stacklstm Python package of python3 cannot be imported: ImportError" \
    -- env PYTHONPATH="$PWD/brokenpkg" SLSTM_PYTHON=python3 "$cli" convert torch a.pt b.safetensors
  grep -qF "(a test stand-in)" err.txt && ok || bad "convert: the import error is not given: $(cat err.txt)"
fi

echo "cli_tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
