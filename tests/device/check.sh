#!/usr/bin/env bash
# The GPU check (issue 17): run on a machine with an NVIDIA GPU and the CUDA
# 13 toolkit, from the repository root:
#     bash tests/device/check.sh [BUILD_DIR]
# 1. builds with -Dcuda=enabled (the module libdisclvlm-cuda.so);
# 2. runs every op on the cuda backend against the CPU
#    (tests/backend/test_ops_backends.c; it also prints which ops the cuda
#    backend does not implement);
# 3. runs the transformers/PEFT/autograd goldens (embeddings, one training
#    step, the optimizer) with DLV_TEST_BACKEND=cuda;
# 4. times dlv_matmul on the GPU (bench/bench_matmul);
# and prints one summary table. Meant to finish in a few minutes; each step
# has its own time limit. Exit status: 0 when every step passed.
set -u
cd "$(dirname "$0")/../.."
# The kernels that have not yet run on a GPU are off by default
# (docs/backends.md): this script is what checks them.
export DLV_CUDA_EXPERIMENTAL=1
B=${1:-build-gpu}
export PATH=$PATH:/usr/local/cuda/bin
LOG=$(mktemp -d)
declare -a NAMES RESULTS TIMES
step() { # step NAME TIMEOUT_S CMD...
    local name=$1 limit=$2; shift 2
    local t0=$(date +%s.%N)
    timeout "$limit" "$@" >"$LOG/$name.log" 2>&1
    local rc=$?
    local t1=$(date +%s.%N)
    NAMES+=("$name"); TIMES+=("$(printf '%.1f' "$(echo "$t1 - $t0" | bc)")")
    if [ $rc -eq 0 ]; then RESULTS+=("pass"); else RESULTS+=("FAIL ($rc)"); fi
    echo "== $name: ${RESULTS[-1]} (log $LOG/$name.log)"
    tail -n 25 "$LOG/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [ ! -f "$B/build.ninja" ]; then
    step configure 300 meson setup "$B" -Dcuda=enabled -Dbuildtype=debugoptimized
fi
step build 420 ninja -C "$B"
step module-loads 60 env DLV_CUDA_MODULE="$PWD/$B/lib/libdisclvlm-cuda.so" \
    "$B/tests/backend/test_cuda_loader" "$B/tests/model/emb-clip_llama_f32" \
    "$B/lib/libdisclvlm.so" "$B/tests/backend/libfake-cuda-wrong-version.so" \
    "$B/tests/backend/libfake-cuda-no-device.so" "$B/tests/backend/libfake-cuda-create-fails.so" \
    "$B/lib/libdisclvlm-cuda.so"
step ops-vs-cpu 300 meson test -C "$B" --no-rebuild ops_backends backend_ops backend_registry -v
step goldens-cuda 600 env DLV_TEST_BACKEND=cuda meson test -C "$B" --no-rebuild \
    embed embed-next train-golden optim-golden -v
step bench-matmul 120 "$B/bench/bench_matmul" 5

echo
printf '%-16s %-12s %8s\n' step result seconds
for i in "${!NAMES[@]}"; do
    printf '%-16s %-12s %8s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${TIMES[$i]}"
done
for r in "${RESULTS[@]}"; do [ "$r" = pass ] || exit 1; done
exit 0
