#!/usr/bin/env bash
# INF: generate faces from the latest run (or --run-dir DIR) into <run>/generated/<NNNN>-seed<S>/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/entry.sh"

usage() {
  cat <<'USAGE'
usage: INF [N] [--dry-run] [ENTRY flags...]
  N  number of faces (1 or more, default 64); they and a grid.png go to a new folder
     <run>/generated/<NNNN>-seed<S>/, whose path is printed
  ENTRY flags, e.g. --seed 7 --run-dir runs/mine --hair blonde --eye blue
runs: ENTRY --inference --inference-count N [ENTRY flags]
examples: INF     INF 16     INF 100 --seed 3
USAGE
}

gan_split_args "$@"
[[ ${#positional[@]} -le 1 ]] || gan_usage_error INF "expected at most one number N, got ${#positional[@]} arguments"
args=(--inference)
if [[ ${#positional[@]} -eq 1 ]]; then
  [[ "${positional[0]}" =~ ^[1-9][0-9]*$ ]] \
    || gan_usage_error INF "N (number of faces) must be an integer >= 1, got '${positional[0]}'"
  args+=(--inference-count "${positional[0]}")
fi
gan_run_entry "${args[@]}"
