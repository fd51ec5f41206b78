#!/usr/bin/env bash
# Static checks of the shell scripts (scripts/, perf/, .ci/run): shellcheck,
# and one defect shellcheck does not see. Under `set -o pipefail`,
# `producer | head` fails with status 141 whenever head exits before the
# producer has written everything, which depends on timing (perf/flamegraph.sh
# once died of it): take lines with `awk 'NR <= N'` instead, which reads all.
set -euo pipefail
cd "$(dirname "$0")/.."

files=(scripts/*.sh perf/*.sh .ci/run)
if ! command -v shellcheck >/dev/null; then
  echo "lint-shell: shellcheck is missing (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
shellcheck -x "${files[@]}"

bad=$(grep -nE '\|[[:space:]]*head([[:space:]]|$)' "${files[@]}" || true)
if [ -n "$bad" ]; then
  echo "lint-shell: a pipe into head under pipefail can exit 141 (SIGPIPE); use awk 'NR <= N':" >&2
  echo "$bad" >&2
  exit 1
fi
echo "lint-shell: ${#files[@]} scripts clean"
