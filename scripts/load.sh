#!/usr/bin/env bash
# LOAD: continue the latest run (or --run-dir DIR) with its saved config.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/entry.sh"

usage() {
  cat <<'USAGE'
usage: LOAD [K [E [A]]] [--dry-run] [ENTRY flags...]
  K  images written per epoch into <run>/samples/epoch_NNNN/ (0 or more)
  E  epochs MORE to train (1 or more; default: finish the run's saved total)
  A  0 = augment (random flips), 1 = no augmentation
  ENTRY flags, e.g. --run-dir runs/mine (default: the latest run under runs/)
runs: ENTRY --load --generate-per-epoch K --epochs E --augment|--no-augment [ENTRY flags]
examples: LOAD     LOAD 0 2 0     LOAD 8 5 1 --run-dir runs/faces-20250101-120000
USAGE
}

gan_split_args "$@"
[[ ${#positional[@]} -le 3 ]] || gan_usage_error LOAD "expected at most 3 numbers K E A, got ${#positional[@]}"
args=(--load)
if [[ ${#positional[@]} -ge 1 ]]; then
  [[ "${positional[0]}" =~ ^[0-9]+$ ]] \
    || gan_usage_error LOAD "K (images per epoch) must be an integer >= 0, got '${positional[0]}'"
  args+=(--generate-per-epoch "${positional[0]}")
fi
if [[ ${#positional[@]} -ge 2 ]]; then
  [[ "${positional[1]}" =~ ^[1-9][0-9]*$ ]] \
    || gan_usage_error LOAD "E (more epochs) must be an integer >= 1, got '${positional[1]}'"
  args+=(--epochs "${positional[1]}")
fi
if [[ ${#positional[@]} -ge 3 ]]; then
  case "${positional[2]}" in
    0) args+=(--augment) ;;
    1) args+=(--no-augment) ;;
    *) gan_usage_error LOAD "A must be 0 (augment) or 1 (no augmentation), got '${positional[2]}'" ;;
  esac
fi
gan_run_entry "${args[@]}"
