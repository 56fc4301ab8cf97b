#!/usr/bin/env bash
# What a deploy leaves when it fails, and what the next one finds: the deploy and rollback
# playbooks on a deploy root that is a small tmpfs, without Apache. A push that fills the disk,
# the leftovers of a killed run, a failed deploy, a stray file in the staging area, settings
# refused before anything changes, failures after the switch, check mode with an archive; the
# hooks around the switch and on failure, of the deploy and of the rollback.
set -eu -o pipefail

BASE=/tmp/cutover-recovery
ROOT=$BASE/site
STAGING=$ROOT/.cutover/staging
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$HERE/../setup_collection/collection.sh"
OUT=$(mktemp -d)
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1

clean_up() {
    if mountpoint -q "$ROOT"; then umount "$ROOT"; fi
    rm -rf "$BASE" "$OUT"
}
trap clean_up EXIT
clean_up
OUT=$(mktemp -d)
mkdir -p "$ROOT"
# A disk of 4 MB: a site of 6 MB cannot fit, nor one of 1 MB beside 3.5 MB of leftovers.
mount -t tmpfs -o size=4m,mode=0755 cutover-recovery "$ROOT"

play() {
    local name=$1
    shift
    ansible-playbook -i "$HERE/inventory.ini" "cutover.web.$name" "$@" 2>&1 | tee "$OUT/last"
}
expect_output() {
    grep -q -- "$1" "$OUT/last" || fail "expected '$1' in the playbook output"
}
current() { basename "$(readlink "$ROOT/current")"; }
staging_holds() { ls -A "$STAGING"; }
expect_staging() { # the names the staging area should hold, sorted, space-separated
    [[ $(staging_holds | sort | xargs) == "$1" ]] || fail "the staging area holds '$(staging_holds | xargs)', expected '$1'"
}
no_upload_archive() {
    [[ ! -e $ROOT/.cutover/upload-archive ]] || fail "an archive was left in $ROOT/.cutover/upload-archive"
}
site() { # NAME [MEGABYTES]: a site whose page says NAME, with a MEGABYTES file of random bytes
    mkdir -p "$OUT/$1/public"
    echo "page $1" >"$OUT/$1/public/index.html"
    if [[ -n ${2:-} ]]; then
        head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$OUT/$1/public/big.bin"
    fi
}
site v1
site v2
site v3 1
site huge 6
mkdir -p "$OUT/empty"

# The hooks a user gives: those around the switch write a line each to $HOOKS_LOG (the release live
# when they run), the on_failure hooks what they are told, as JSON; a broken one writes, then fails.
HOOKS_LOG=$OUT/hooks.log
for role in deploy rollback; do
    if [[ $role == deploy ]]; then told='new={{ deploy_release.id }}'; else
        told='from={{ rollback_plan.from }} to={{ rollback_plan.to }} root={{ rollback_plan.root }} moves={{ rollback_plan.moves }}'
    fi
    for when in before_switch after_switch; do
        cat >"$OUT/$role-$when.yml" <<EOF
- name: Record the release live when the $role's $when hook runs
  ansible.builtin.shell: echo "$role $when live=\$(basename "\$(readlink '$ROOT/current')") $told" >>'$HOOKS_LOG'
  changed_when: true
EOF
    done
    cat >"$OUT/$role-on_failure.yml" <<EOF
- name: Record what the $role's on_failure hook is told
  ansible.builtin.copy:
    dest: $OUT/$role-failure.json
    content: "{{ ${role}_failure | to_json }}"
    mode: "0644"
EOF
    cat >"$OUT/$role-on_failure-broken.yml" <<EOF
- name: Record that the broken on_failure hook ran
  ansible.builtin.copy:
    dest: $OUT/$role-broken-ran
    content: "{{ ${role}_failure.step }}"
    mode: "0644"
- name: Break
  ansible.builtin.fail:
    msg: the on_failure hook broke
EOF
done
hooks() { # ROLE HOOK[=FILE]... : the -e argument giving ROLE's hooks from the files above
    local role=$1 json='' h
    shift
    for h in "$@"; do json+="${json:+, }\"${h%%=*}\": \"$OUT/$role-${h#*=}.yml\""; done
    printf '{"%s_hooks": {%s}}' "$role" "$json"
}
# told ROLE KEY: a field of what ROLE's on_failure hook was told
told() { jq -r ".$2" "$OUT/$1-failure.json"; }
# The message the play failed with (the last task that failed).
failed_with() { sed -n 's/^fatal: [^>]*=> //p' "$OUT/last" | tail -n 1 | jq -r .msg; }
expect_hooks_log() {
    [[ $(cat "$HOOKS_LOG") == "$1" ]] || fail "the hooks logged '$(cat "$HOOKS_LOG")', expected '$1'"
    rm "$HOOKS_LOG"
}

step "deploy_keep 0 and writable paths outside the release are refused before anything changes"
play_fails deploy -e deploy_src="$OUT/v1" -e deploy_keep=0
expect_output "deploy_keep must be at least 1"
[[ -z $(ls -A "$ROOT") ]] || fail "a refused deploy wrote $(ls -A "$ROOT")"
play_fails deploy -e deploy_src="$OUT/v1" -e '{"deploy_writable_dirs": ["var/cache", "../../outside"], "deploy_writable_files": [".cutover/history.jsonl"]}'
expect_output "deploy_writable_dirs and deploy_writable_files must be relative paths inside the release, not under .cutover"
expect_output 'refused: \\"\.\./\.\./outside\\", \\"\.cutover/history\.jsonl\\")'
[[ -z $(ls -A "$ROOT") ]] || fail "a refused deploy wrote $(ls -A "$ROOT")"

step "check mode with an archive on a new root: says a new release would be made, changes nothing"
tar czf "$OUT/site.tgz" -C "$OUT/v1" .
play deploy --check -e deploy_src="$OUT/site.tgz"
expect_output "a new release of $OUT/site.tgz"
[[ -z $(ls -A "$ROOT") ]] || fail "check mode wrote $(ls -A "$ROOT")"

step "deploy v1 from that archive; the uploaded archive is removed once the release is made"
play deploy -e deploy_src="$OUT/site.tgz"
V1=$(current)
[[ $(cat "$ROOT/current/public/index.html") == "page v1" ]] || fail "v1 does not serve"
expect_staging ""
no_upload_archive

step "check mode with a changed archive of the same name: predicts the new release, leaves nothing"
tar czf "$OUT/site.tgz" -C "$OUT/v2" .
play deploy --check -e deploy_src="$OUT/site.tgz"
expect_output "(a new release from $OUT/site.tgz"
[[ $(current) == "$V1" ]] || fail "check mode moved current"
expect_staging ""
no_upload_archive

step "a push that fills the disk: a clear error, no push left, the old release serves"
play_fails deploy -e deploy_src="$OUT/huge"
expect_output "the disk filled up while pushing $OUT/huge (No space left on device); the partial push was removed."
expect_output "The release live before ($V1) keeps serving."
expect_staging ""
[[ $(current) == "$V1" ]] || fail "the failed push moved current"

step "the next deploy of a small site succeeds on the same root"
play deploy -e deploy_src="$OUT/v2"
[[ $(cat "$ROOT/current/public/index.html") == "page v2" ]] || fail "v2 does not serve"

step "what a killed run left in the staging area goes first, so a site that fits only without it deploys"
now=$(date +%s)
dead_push=push-20261204T101010123456Z-77.$now.0.ansible
dead_build=20261204T101010Z-0123456789ab.$now.4242.$(hostname -s)
young_check=check-20261204T101010123456Z-78.$now.0.ansible
mkdir -p "$STAGING/$dead_push/public" "$STAGING/$dead_build" "$STAGING/$young_check"
head -c $((2 * 1024 * 1024)) /dev/urandom >"$STAGING/$dead_push/public/big.bin"
head -c $((1024 * 1024 + 512 * 1024)) /dev/urandom >"$STAGING/$dead_build/part.bin"
play deploy -e deploy_src="$OUT/v3"
[[ $(cat "$ROOT/current/public/index.html") == "page v3" ]] || fail "v3 does not serve"
expect_staging "$young_check"
rmdir "$STAGING/$young_check"

step "a failed deploy (empty source) leaves no push and no uploaded archive"
V3=$(current)
play_fails deploy -e deploy_src="$OUT/empty"
expect_output "The source $OUT/empty is empty"
expect_staging ""
tar czf "$OUT/empty.tgz" -C "$OUT/empty" .
play_fails deploy -e deploy_src="$OUT/empty.tgz"
expect_output "The source $OUT/empty.tgz is empty"
expect_staging ""
no_upload_archive
[[ $(current) == "$V3" ]] || fail "a failed deploy moved current"

step "a file in the staging area does not fail the deploy: it is left and reported"
echo "not mine" >"$STAGING/notes.txt"
play deploy -e deploy_src="$OUT/v1"
[[ $(cat "$ROOT/current/public/index.html") == "page v1" ]] || fail "v1 does not serve again"
expect_output "notes.txt in place"
expect_staging "notes.txt"
rm "$STAGING/notes.txt"

step "a live probe that fails: switched back, the message says the release live before is live now, the on_failure hook is told"
play_fails deploy -e deploy_src="$OUT/v2" -e deploy_release_id=v2-probed -e deploy_probe_url=http://127.0.0.1:9/ \
    -e deploy_probe_retries=1 -e deploy_probe_delay=0 -e "$(hooks deploy on_failure)"
expect_output "switched back to $V1, and marked v2-probed bad. The release live now is $V1, live before this deploy."
[[ $(current) == "$V1" ]] || fail "current is $(current), expected $V1"
[[ $(told deploy step) == "Fetch the probe URL" ]] || fail "the on_failure hook was told the step '$(told deploy step)'"
[[ $(told deploy message) == "$(failed_with)" ]] || fail "the on_failure hook was told '$(told deploy message)', the deploy failed with '$(failed_with)'"
[[ $(failed_with) == 'The deploy to '"$ROOT"' stopped at "Fetch the probe URL": After v2-probed went live, the probe of http://127.0.0.1:9/ failed'* ]] ||
    fail "the deploy failed with '$(failed_with)'"
[[ $(told deploy 'release, .previous, .live, .switched, .root' | xargs) == "v2-probed $V1 $V1 true $ROOT" ]] ||
    fail "the on_failure hook was told $(cat "$OUT/deploy-failure.json")"

step "hooks run before the switch (the old release live) and after it (the new one); a failure after the switch says which release is live now; a broken on_failure hook does not hide it"
echo '- ansible.builtin.fail: {msg: the hook failed}' >>"$OUT/deploy-after_switch.yml"
play_fails deploy -e deploy_src="$OUT/v2" -e deploy_release_id=v2-hooked \
    -e "$(hooks deploy before_switch after_switch on_failure=on_failure-broken)"
expect_hooks_log "deploy before_switch live=$V1 new=v2-hooked
deploy after_switch live=v2-hooked new=v2-hooked"
expect_output 'stopped at "ansible.builtin.fail": the hook failed. The release live now is v2-hooked'
[[ $(failed_with) == 'The deploy to '"$ROOT"' stopped at "ansible.builtin.fail": the hook failed. The release live now is v2-hooked, the new one: the step that failed came after the switch. The on_failure hook '"$OUT"'/deploy-on_failure-broken.yml failed too, at "Break": the on_failure hook broke.' ]] ||
    fail "the deploy failed with '$(failed_with)'"
[[ $(cat "$OUT/deploy-broken-ran") == ansible.builtin.fail ]] || fail "the broken on_failure hook did not run"
[[ $(current) == v2-hooked ]] || fail "current is $(current), expected v2-hooked"

step "a rollback whose probe fails says which release is live now; its on_failure hook is told"
play_fails rollback -e rollback_probe_url=http://127.0.0.1:9/ -e "$(hooks rollback on_failure)"
expect_output "The release live now is $V1, switched to by this rollback"
[[ $(current) == "$V1" ]] || fail "the rollback did not switch to $V1"
[[ $(told rollback step) == "Fetch the probe URL" ]] || fail "the on_failure hook was told the step '$(told rollback step)'"
[[ $(told rollback message) == "$(failed_with)" ]] || fail "the on_failure hook was told '$(told rollback message)', the rollback failed with '$(failed_with)'"
[[ $(told rollback 'release, .previous, .live, .switched, .root' | xargs) == "$V1 v2-hooked $V1 true $ROOT" ]] ||
    fail "the on_failure hook was told $(cat "$OUT/rollback-failure.json")"

step "rollback hooks run before the switch (the release left live) and after it (the release gone back to)"
play rollback -e rollback_to="$V3" -e "$(hooks rollback before_switch after_switch)"
expect_hooks_log "rollback before_switch live=$V1 from=$V1 to=$V3 root=$ROOT moves=True
rollback after_switch live=$V3 from=$V1 to=$V3 root=$ROOT moves=True"
[[ $(current) == "$V3" ]] || fail "the rollback did not switch to $V3"

step "a failing build command: the on_failure hook is told the step and the message, the old release serves"
play_fails deploy -e deploy_src="$OUT/v1" -e deploy_release_id=v1-unbuilt -e '{"deploy_build_commands": ["echo no compiler >&2; exit 3"]}' \
    -e "$(hooks deploy on_failure)"
[[ $(told deploy step) == "Run the build commands" ]] || fail "the on_failure hook was told the step '$(told deploy step)'"
[[ $(told deploy message) == "$(failed_with)" ]] || fail "the on_failure hook was told '$(told deploy message)', the deploy failed with '$(failed_with)'"
[[ $(failed_with) == 'The deploy to '"$ROOT"' stopped at "Run the build commands": the command "echo no compiler >&2; exit 3" exited 3: no compiler. The release live before ('"$V3"') keeps serving.' ]] ||
    fail "the deploy failed with '$(failed_with)'"
[[ $(told deploy 'release, .previous, .live, .switched' | xargs) == "v1-unbuilt $V3 $V3 false" ]] ||
    fail "the on_failure hook was told $(cat "$OUT/deploy-failure.json")"
[[ $(current) == "$V3" ]] || fail "current is $(current), expected $V3"

step "a root and excluded names with spaces and shell words are one word each to rsync: only what is excluded is left out"
ODD="$BASE/odd root ü"
mkdir -p "$OUT/odd/public"
echo "page odd" >"$OUT/odd/public/index.html"
echo "secret" >"$OUT/odd/public/secret notes.txt"
echo "kept" >"$OUT/odd/public/notes.txt"
odd_deploy() {
    play deploy -e "{\"deploy_root\": \"$ODD\", \"deploy_src\": \"$OUT/odd\",
                     \"deploy_exclude\": [\"public/secret notes.txt\", \"x --remove-source-files\"]}"
}
odd_deploy
[[ $(cat "$ODD/current/public/index.html") == "page odd" && -e "$ODD/current/public/notes.txt" ]] || fail "the odd root does not serve the site"
[[ ! -e "$ODD/current/public/secret notes.txt" ]] || fail "the excluded file was pushed"
[[ -e "$OUT/odd/public/index.html" && -e "$OUT/odd/public/secret notes.txt" ]] || fail "the push removed files of the source"
# Again, now with current (its path holding the space) as rsync's --link-dest: nothing to change.
odd_deploy
expect_output "changed=0"
[[ $(find "$ODD/releases" -mindepth 1 -maxdepth 1 | wc -l) == 1 ]] || fail "the same source again made another release"

echo "deploy_recovery: all passed"
