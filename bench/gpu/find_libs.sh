# shellcheck shell=bash disable=SC2034  # FOUND, FOUND_OWNED, SAN are for the caller
# Sourced (not run) by check.sh and mechanisms.sh: finds the libraries a GPU run needs and
# puts their folders on LD_LIBRARY_PATH.
#
#   . bench/gpu/find_libs.sh; slstm_find_libs "$BUILD"
#
# Puts first BUILD and BUILD/carry-libs (what pack_carry.sh packs), then the folders of
# libcublas.so.13, libcublasLt.so.13 and libcudart.so.13 when the loader cache lacks them, on
# LD_LIBRARY_PATH (exported). Sets FOUND (a file listing every hit of ONE bounded pass over the
# file system; the caller removes it when FOUND_OWNED=1) and SAN (compute-sanitizer, or empty),
# and exports SLSTM_FIND_CACHE=$FOUND for the scripts run later (bench/run.sh,
# bench/anchors/run.sh, mechanisms.sh), which then reuse the list instead of searching again:
# one full `find /` over an image with PyTorch, JAX and the toolkit can take tens of seconds.
slstm_find_libs() {
  local build=$1 libdirs="" want hit
  _slstm_add_dir() { case ":$libdirs:" in *":$1:"*) ;; *) libdirs="${libdirs:+$libdirs:}$1" ;; esac; }
  _slstm_add_dir "$build"
  [ -d "$build/carry-libs" ] && _slstm_add_dir "$build/carry-libs"
  if [ -n "${SLSTM_FIND_CACHE:-}" ] && [ -f "$SLSTM_FIND_CACHE" ]; then
    FOUND=$SLSTM_FIND_CACHE
    FOUND_OWNED=0
    echo "libraries: reusing the search of $FOUND"
  else
    FOUND=$(mktemp)
    FOUND_OWNED=1
    timeout 120 find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o \
        \( \( -name 'libcublas.so.13*' -o -name 'libcublasLt.so.13*' -o -name 'libcudart.so.13*' \
           -o -name 'libcudnn.so.9*' -o -name compute-sanitizer \) \( -type f -o -type l \) \) \
        -print 2>/dev/null > "$FOUND"
  fi
  for want in libcublas.so.13 libcublasLt.so.13 libcudart.so.13; do
    if ! ldconfig -p 2>/dev/null | grep -q "$want"; then
      hit=$(grep -m1 "/$want" "$FOUND")
      [ -n "$hit" ] && _slstm_add_dir "$(dirname "$hit")"
      echo "$want: ${hit:-not found}"
    else
      echo "$want: in the loader cache"
    fi
  done
  grep -E '/lib(cudnn\.so\.9|cublas\.so\.13)' "$FOUND" | head -8
  export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  # (`ls ... | head -1` succeeds even when ls finds nothing, so each fallback is its own test.)
  SAN=$(command -v compute-sanitizer || true)
  [ -n "$SAN" ] || SAN=$(ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  [ -n "$SAN" ] || SAN=$(grep -m1 '/compute-sanitizer$' "$FOUND")
  export SLSTM_FIND_CACHE="$FOUND"
  unset -f _slstm_add_dir
}
