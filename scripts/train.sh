#!/usr/bin/env bash
# TRAIN: train a new run from presets, then generate 64 faces and print where they are.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/entry.sh"

usage() {
  cat <<'USAGE'
usage: TRAIN PRESET [PART...] [--dry-run] [ENTRY flags...]
       TRAIN PART [PART...] [--dry-run] [ENTRY flags...]      (base preset S,1)
       TRAIN -h
  PRESET  S,{1..3} | M,{1..3} | L,{1..3}    S = shortest, for a 2-core CPU; M and L are for a GPU
          AC,{1..3} | WG,{1..3} | HG,{1..3} the acgan, wgan-gp and hinge variants at S sizes (2-core CPU)
  PART    D,{E,C,P},{1..3}  exponential / piecewise-constant / polynomial decay, level 1..3
          LR,{1..3}         fixed learning rate      E,{1..3}  epochs
          N,{1..3}          noise vector size        B,{1..3}  batch size
  --dry-run      print the ENTRY command and exit
  ENTRY flags    passed on last, so they win, e.g. --data-dir ~/pics --run-dir runs/mine
examples: TRAIN S,1     TRAIN M,2 D,E,1     TRAIN D,C,2 E,1 B,3     TRAIN AC,3     TRAIN S,1 --dry-run
USAGE
}

gan_help_more() {
  echo
  echo "presets (ENTRY = scripts/entry.sh = python -m gan_anime; parts start from S,1):"
  "$(gan_python)" "$GAN_ROOT/gan_anime/cli/presets.py" table
}

gan_split_args "$@"
presets=(${positional[@]+"${positional[@]}"})
[[ ${#presets[@]} -gt 0 ]] || gan_usage_error TRAIN "expected a preset, e.g. S,1"

PY="$(gan_python)"
# presets.py prints one ENTRY argument per line, or one error line (exit 2).
# With the user's own --data-dir the presets' count of built-in faces does not apply (--folder drops it).
folder=()
for arg in ${extra[@]+"${extra[@]}"}; do
  if [[ "$arg" == --data-dir || "$arg" == --data-dir=* ]]; then folder=(--folder); fi
done
resolved="$("$PY" "$GAN_ROOT/gan_anime/cli/presets.py" args ${folder[@]+"${folder[@]}"} "${presets[@]}")" \
  || { usage >&2; exit 2; }
mapfile -t args <<<"$resolved"
gan_run_entry "${args[@]}"
