#!/usr/bin/env bash
# ENTRY: the gan_anime command line (python -m gan_anime) run with this project's Python.
#
#   scripts/entry.sh --train [flags] | --load [flags] | --inference [flags] | --media | --help
#
# Python: $GAN_ANIME_PYTHON if set, else the environment scripts/init.sh made (./.venv, a venv
# or a conda env), else python3.  train.sh, load.sh and inf.sh source this file for the same choice.
set -euo pipefail

GAN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GAN_ENTRY="$GAN_ROOT/scripts/entry.sh"
# Run this checkout's code even where the package is not installed into that Python.
export PYTHONPATH="$GAN_ROOT${PYTHONPATH:+:$PYTHONPATH}"
# TensorFlow's C++ INFO/WARNING lines are noise for users; errors still show.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

gan_python() {
  if [[ -n "${GAN_ANIME_PYTHON:-}" ]]; then
    echo "$GAN_ANIME_PYTHON"
  elif [[ -x "$GAN_ROOT/.venv/bin/python" ]]; then
    echo "$GAN_ROOT/.venv/bin/python"
  elif command -v python3 >/dev/null 2>&1; then
    command -v python3
  else
    echo "gan_anime: no Python found; run scripts/init.sh first" >&2
    return 1
  fi
}

# Usage helpers shared by the wrappers: print an error line and the usage, exit 2.
gan_usage_error() {  # NAME MESSAGE
  echo "$1: error: $2" >&2
  usage >&2
  exit 2
}

# Split a wrapper's arguments: words before the first flag go to `positional` (a negative number
# counts as a word: a wrong value, not a flag), the rest to `extra` (passed on to ENTRY); --dry-run
# anywhere sets `dry_run`; -h/--help before any flag prints `usage` (and `gan_help_more` if the wrapper
# defines it) and exits 0.
gan_split_args() {
  positional=()
  extra=()
  dry_run=0
  local arg
  for arg in "$@"; do
    if [[ "$arg" == "--dry-run" ]]; then
      dry_run=1
    elif [[ ${#extra[@]} -eq 0 && ( "$arg" == "-h" || "$arg" == "--help" ) ]]; then
      usage
      if declare -F gan_help_more >/dev/null; then gan_help_more; fi
      exit 0
    elif [[ ${#extra[@]} -eq 0 && ( "$arg" != -* || "$arg" =~ ^-[0-9] ) ]]; then
      positional+=("$arg")
    else
      extra+=("$arg")
    fi
  done
}

# Run ENTRY with the wrapper's arguments then the user's extra flags (or only print it with --dry-run).
gan_run_entry() {  # ARGS...
  local command=("$GAN_ENTRY" "$@" ${extra[@]+"${extra[@]}"})
  if [[ $dry_run -eq 1 ]]; then
    gan_print_command "${command[@]}"
    exit 0
  fi
  exec "${command[@]}"
}

# Print a command shell-quoted on one line.
gan_print_command() {
  local out="" a
  for a in "$@"; do out+="$(printf '%q' "$a") "; done
  echo "${out% }"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  PY="$(gan_python)"
  exec "$PY" -m gan_anime "$@"
fi
