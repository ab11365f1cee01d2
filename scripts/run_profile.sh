#!/usr/bin/env bash
# Run a params profile's pipeline (params/<profile>.yaml) and bring its reports into this workspace:
#
#   make profile PROFILE=qwen2.5-coder-0.5b                # every stage up to report_claims
#   scripts/run_profile.sh qwen2.5-coder-0.5b report_e1    # or the dvc repro targets named
#
# A profile's outputs take the same paths as the default profile's, so it runs in a checkout of its own:
# a git worktree at .profiles/<profile> (git-ignored), made at this checkout's commit, that shares this
# checkout's DVC cache, so an interrupted run resumes where it stopped. An existing checkout is reused as
# it is (delete it to start again at the current commit); PROFILE_TREE=<folder> names another clone to use
# instead, whose params.yaml must hold the profile's values. The profile's reports (claims, tables,
# plots) and the params.yaml they came from are then copied to reports/profiles/<profile>/, whose claims
# the main claims table includes (`dvc repro report_claims`), with SOURCE.md naming the commit.
set -euo pipefail

[ -n "${1:-}" ] || { echo "error: name a profile: scripts/run_profile.sh <profile> [targets...] (make profile PROFILE=<profile>)" >&2; exit 2; }
profile=$1
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(report_claims)
root=$(git rev-parse --show-toplevel)
cd "$root"
[ -f "params/$profile.yaml" ] || { echo "error: params/$profile.yaml: no such profile (params/ holds them)" >&2; exit 2; }
tree=${PROFILE_TREE:-.profiles/$profile}

if [ ! -d "$tree" ]; then
    git worktree add --quiet --detach "$tree" HEAD
    cp "params/$profile.yaml" "$tree/params.yaml"
    rm -rf "$tree"/reports/profiles/*/  # the other models' claims: its own table holds its model's only
    (cd "$tree" && dvc cache dir --local "$root/.dvc/cache" && { [ ! -f data.dvc ] || dvc checkout --quiet data.dvc; })
fi
tree=$(cd "$tree" && pwd)
# The same values, whatever the comments: a reused checkout may be older than this one.
python - "params/$profile.yaml" "$tree/params.yaml" <<'EOF'
import sys
from deceptionlab.core.params import load_params
profile, used = sys.argv[1:]
if load_params(profile) != load_params(used):
    sys.exit(f"error: {used}: not the values of {profile}; delete its checkout to start again")
EOF

# Its own code, not this checkout's (the editable install points here).
(cd "$tree" && PYTHONPATH="$tree/src" dvc repro "${targets[@]}")

dest=reports/profiles/$profile
mkdir -p reports/profiles
staging=$(mktemp -d "reports/profiles/.$profile.XXXXXX")
trap 'rm -rf "$staging"' EXIT
# The reports its dvc.yaml writes (outs and plots), not the other pipelines' files the checkout carries from git.
mapfile -t reports < <(cd "$tree" && python - <<'EOF'
import yaml
for stage in yaml.safe_load(open("dvc.yaml"))["stages"].values():
    for out in stage.get("do", stage).get("outs", []) + stage.get("do", stage).get("plots", []):
        path = next(iter(out)) if isinstance(out, dict) else out
        if path.startswith("reports/") and "${" not in path:
            print(path)
EOF
)
for report in "${reports[@]}"; do
    [ ! -f "$tree/$report" ] || cp "$tree/$report" "$staging"/
done
cp "$tree/params.yaml" "$staging"/
[ -f "$staging/claims.csv" ] || { echo "error: $tree/reports/claims.csv: not written; run the target report_claims" >&2; exit 1; }
commit=$(git -C "$tree" rev-parse HEAD)
dirty=$(cd "$tree" && dvc status --quiet dvc.yaml >/dev/null 2>&1 && echo "up to date" || echo "not up to date (dvc status there)")
cat > "$staging/SOURCE.md" <<EOF
# $profile

Copied by \`scripts/run_profile.sh $profile\` on $(date -u +%F) from $tree, commit $commit
(branch $(git -C "$tree" rev-parse --abbrev-ref HEAD)), the reports its dvc.yaml writes; params.yaml =
params/$profile.yaml; its pipeline (dvc.yaml): $dirty.
EOF
rm -rf "$dest"
mv "$staging" "$dest"
trap - EXIT
echo "reports of $profile: $dest (then: dvc repro report_claims)"
