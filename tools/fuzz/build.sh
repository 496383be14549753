#!/bin/sh
# Build the libFuzzer targets (clang, AddressSanitizer + UBSan) against the project's sources
# and the system libraries, into OUT (default build-fuzz/ at the top of the tree):
#   tools/fuzz/build.sh [OUT [TARGET...]]
# Then, one target at a time (new inputs go to the first directory; copy the seeds from the
# kept corpus so it is not modified):
#   mkdir -p /tmp/corpus-idx && cp tests/fuzz/corpus/idx/* /tmp/corpus-idx/
#   build-fuzz/fuzz_idx -max_total_time=600 /tmp/corpus-idx
# and minimise into the kept corpus:
#   build-fuzz/fuzz_idx -merge=1 tests/fuzz/corpus/idx.new /tmp/corpus-idx
# Targets: fuzz_config (job YAML + --set), fuzz_idx (gzip IDX), fuzz_image (PNG/JPEG).
# The same targets are replayed over tests/fuzz/ by the normal build's test fuzz_replay.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/build-fuzz}
mkdir -p "$out"
CC=${CC:-clang}
CFLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
inc="-I$top/include $(pkg-config --cflags hdf5-openmpi ompi-c libpng yaml-0.1 zlib libjpeg)"
libs="$(pkg-config --libs hdf5-openmpi ompi-c libpng yaml-0.1 zlib libjpeg) -lm"
# what every target links: the checked allocators and error reporting (MPI/HDF5 for beit_fatal)
core="src/core/error.c src/core/alloc.c src/core/log.c src/core/fsutil.c src/core/time.c src/core/sha256.c"
config="src/io/config_schema.c src/io/config_value.c src/io/config_load.c src/io/config_set.c"
config="$config src/io/config_output.c"

build() { # name, sources...
    name=$1
    shift
    srcs=""
    for s in "$@"; do srcs="$srcs $top/$s"; done
    echo "building $out/$name"
    # shellcheck disable=SC2086
    $CC $CFLAGS $inc -I"$top/src/io" $srcs -o "$out/$name" $libs
}
[ $# -gt 0 ] && shift
targets=${*:-fuzz_config fuzz_idx fuzz_image}
for t in $targets; do
    case $t in
    fuzz_config) build fuzz_config tools/fuzz/fuzz_config.c $config $core ;;
    fuzz_idx) build fuzz_idx tools/fuzz/fuzz_idx.c src/io/idx.c $core ;;
    fuzz_image) build fuzz_image tools/fuzz/fuzz_image.c src/io/image.c $core ;;
    *) echo "unknown target $t (fuzz_config, fuzz_idx, fuzz_image)" >&2; exit 2 ;;
    esac
done
