#!/usr/bin/env bash
# Run the libFuzzer targets `ocsp_head` and `csr_parse` (fuzz/), one after the other.
#
# Usage:   tools/fuzz.sh [SECONDS] [TARGET...]
#          SECONDS  fuzzing time per target (default 300)
#          TARGET   ocsp_head and/or csr_parse (default: both)
#          CMIN=0   skip minimizing the corpus after each run (default: minimize)
# Example: tools/fuzz.sh 600 csr_parse
#
# Needs:   cargo install cargo-fuzz   (tested with cargo-fuzz 0.13.2 on stable rustc 1.95).
#          No nightly: RUSTC_BOOTSTRAP=1 lets stable rustc accept the -Z flags cargo-fuzz passes.
#
# Each run: `cargo fuzz run T fuzz/corpus/T fuzz/seeds/T` (new inputs go to corpus/T, seeds/T is
# read-only), single job, -rss_limit_mb=2048, then `cargo fuzz cmin T fuzz/corpus/T`. Build
# output goes to fuzz/target (not the main crate's target/), crashes to fuzz/artifacts/T/, logs
# to fuzz/target/fuzz-logs/. Exit status is non-zero if any target failed (crash, leak, OOM...).
set -uo pipefail

secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(ocsp_head csr_parse)
case $secs in '' | *[!0-9]*) echo "SECONDS must be a number, got '$secs'" >&2; exit 2 ;; esac

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }

cd "$(dirname "$0")/../fuzz" || exit 2
export RUSTC_BOOTSTRAP=1
unset CARGO_TARGET_DIR # keep the fuzz build in fuzz/target
mkdir -p target/fuzz-logs

max_len() {
    case $1 in
        ocsp_head) echo 10240 ;; # a bit over the 8 KiB head limit of the direct path
        csr_parse) echo 20000 ;; # over MAX_CSR_LEN * 2 (16 KiB), the text-input cap
        *) echo 4096 ;;
    esac
}

status=0
for t in "${targets[@]}"; do
    len=$(max_len "$t")
    log=target/fuzz-logs/$t-$(date +%Y%m%d-%H%M%S).log
    mkdir -p "corpus/$t" "seeds/$t"
    echo "== $t: ${secs}s, max_len $len, log fuzz/$log"
    if ! cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len="$len" -print_final_stats=1 \
        >"$log" 2>&1; then
        echo "!! $t FAILED, see fuzz/$log and fuzz/artifacts/$t/" >&2
        status=1
    fi
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs|^stat::' "$log" || tail -n 30 "$log"
    if [ "${CMIN:-1}" != 0 ]; then
        if cargo fuzz cmin "$t" "corpus/$t" -- -rss_limit_mb=2048 -max_len="$len" >>"$log" 2>&1; then
            echo "   corpus/$t after cmin: $(find "corpus/$t" -type f | wc -l) files, $(cat "corpus/$t"/* | wc -c) bytes"
        else
            echo "!! cmin of $t failed, see fuzz/$log" >&2
            status=1
        fi
    fi
done
exit $status
