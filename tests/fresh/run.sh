#!/usr/bin/env bash
# The README's first command on a fresh Debian 12 machine: a minimal root made by debootstrap
# (the image is cached outside the clone, in $CUTOVER_FRESH_CACHE), a clone of this repository
# copied in, then `./dev example`, `./dev example v2` and `./dev example rollback` run there as
# root, each followed by a look at the page the shop serves on http://127.0.0.1:8080/. Nothing
# is installed in the root before: a missing install step fails this test.
#
# The root shares this machine's network (apt and pip reach their registries through it) but
# has its own mount, UTS and PID namespaces: every process started in it (Apache, PHP-FPM) ends
# with it. Its Apache listens on ports 80 and 8080 of this machine, so this machine's own
# Apache is stopped first (the later test steps start it again).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${CUTOVER_FRESH_CACHE:-/var/cache/cutover-fresh}
IMAGE=$CACHE/bookworm-minbase
WORK=${CUTOVER_FRESH_WORK:-/var/tmp/cutover-fresh-root}
SUITE=bookworm

log() { printf -- '--- fresh root: %s\n' "$*"; }
die() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

# The Debian mirror this machine uses (deb822 sources, else sources.list), else Debian's own.
mirror() {
    local uri
    uri=$(awk '$1 == "URIs:" {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $3 == "'$SUITE'" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

build_image() {
    command -v debootstrap >/dev/null || die "debootstrap is not installed (./dev setup installs it)"
    log "making the minimal Debian image $IMAGE (once; a few minutes)"
    rm -rf "$IMAGE.new"
    mkdir -p "$CACHE"
    debootstrap --variant=minbase "$SUITE" "$IMAGE.new" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 ||
        { tail -20 "$CACHE/debootstrap.log"; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    mv "$IMAGE.new" "$IMAGE"
}

# What this machine needs to reach its registries, and nothing more: its apt sources and the CA
# certificates of its network (a TLS-inspecting proxy), as a new machine on this network has.
prepare_root() {
    rm -rf "$WORK"
    cp -a "$IMAGE" "$WORK"
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        mkdir -p "$WORK/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$WORK/usr/local/share/ca-certificates/"
        # minbase has no ca-certificates package yet: the bundle pip and apt read is made from these.
        mkdir -p "$WORK/etc/ssl/certs"
        cat /usr/local/share/ca-certificates/*.crt >>"$WORK/etc/ssl/certs/ca-certificates.crt"
    fi
    [[ -f /etc/apt/sources.list.d/debian.sources ]] && cp /etc/apt/sources.list.d/debian.sources "$WORK/etc/apt/sources.list.d/"
    local conf
    for conf in /etc/apt/apt.conf.d/99*; do
        [[ -f $conf ]] && cp "$conf" "$WORK/etc/apt/apt.conf.d/"
    done
    cp /etc/resolv.conf "$WORK/etc/resolv.conf"
    # A clone of this repository, as a user gets it (only what git tracks, plus uncommitted edits
    # when run from a working tree: the files are what the commit under test holds).
    mkdir -p "$WORK/root/cutover"
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$WORK/root/cutover")
    [[ -x $WORK/root/cutover/dev ]] || die "the repository was not copied into the root"
}

# The commands a user runs, with a look at the page after each (python3 is there by then:
# ./dev installs it).
inside() {
    cat <<'EOF'
set -euo pipefail
export LANG=C.UTF-8
cd /root/cutover
page() {
    python3 - "$1" <<'PY'
import sys, time, urllib.request
want = sys.argv[1]
for _ in range(50):
    try:
        body = urllib.request.urlopen('http://127.0.0.1:8080/', timeout=5).read().decode()
        if want in body:
            print('page shows %r' % want)
            sys.exit(0)
    except OSError as exc:
        body = str(exc)
    time.sleep(0.2)
sys.exit('the shop does not show %r: %s' % (want, body[:300]))
PY
}
step() { printf '\n=== fresh root: %s\n' "$*"; }
step "./dev example"
start=$SECONDS
./dev example
echo "(took $((SECONDS - start)) s)"
page 'version 1 (v1)'
step "./dev example v2"
./dev example v2
page 'version 2 (v2)'
step "./dev example v2 --check --diff"
./dev example v2 --check --diff | tee /tmp/check.out
grep -q 'Check mode: nothing was changed' /tmp/check.out
page 'version 2 (v2)'
step "./dev example rollback"
./dev example rollback
page 'version 1 (v1)'
# Debian enables mod_php with mpm_prefork when libapache2-mod-php is installed (for another site,
# say): the role must take the server back to PHP-FPM (php8.2 off before mpm_prefork, which
# a2dismod otherwise refuses) and serve the next deploy. systemd-sysv makes /sbin/init systemd,
# which is not running here (as in a container): services must still start.
step "apt-get install libapache2-mod-php systemd-sysv, stop PHP-FPM, then ./dev example v2"
apt-get install -y -q -o DPkg::Lock::Timeout=600 libapache2-mod-php systemd-sysv >/dev/null
service php8.2-fpm stop
./dev example v2
page 'version 2 (v2)'
EOF
}

run_inside() {
    unshare --mount --uts --pid --fork --propagation private \
        timeout 3600 bash "$REPO/tests/fresh/enter.sh" "$WORK" "$(inside)"
}

main() {
    [[ $EUID -eq 0 ]] || die "needs root (debootstrap, chroot, mounts)"
    [[ -d $IMAGE ]] || build_image
    prepare_root
    local stopped=0
    if command -v apache2ctl >/dev/null && pgrep -x apache2 >/dev/null; then
        log "stopping this machine's Apache (ports 80 and 8080 are the fresh root's now)"
        apache2ctl stop || true
        stopped=1
        for _ in $(seq 100); do pgrep -x apache2 >/dev/null || break; sleep 0.1; done
    fi
    local rc=0
    run_inside || rc=$?
    # The fresh root's processes ended with its PID namespace: this machine's Apache gets its ports back.
    if [[ $stopped -eq 1 ]]; then
        log "starting this machine's Apache again"
        apache2ctl start || log "this machine's Apache did not start again"
    fi
    # The PID namespace ended with its last process; its mounts went with the mount namespace
    # (never seen here: propagation was private). Never remove through a mount all the same.
    if grep -q " $WORK/" /proc/self/mounts; then
        die "$WORK still has mounts; not removing it"
    fi
    rm -rf "$WORK"
    [[ $rc -eq 0 ]] || die "the README's commands failed on a fresh Debian root (exit $rc)"
    log "passed: ./dev example, v2, v2 --check, rollback on a fresh Debian 12 root"
}

main "$@"
