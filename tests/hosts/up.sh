#!/usr/bin/env bash
# usage: HOSTS_DIR=DIR AUTHORIZED_KEYS=FILE tests/hosts/up.sh NAME IP
#
# A real host on this machine for multi-host tests: network namespace NAME with address IP on
# the bridge cutover0 (10.77.0.1/24 on this side), its own hostname, process ids, /run, and its
# own /var/www, /srv, /etc/hosts, /etc/apache2 and /var/log/apache2 (kept in DIR/NAME), with sshd on IP:2222
# taking root logins by key only. Everything started over SSH there (Apache, PHP-FPM) lives in
# that view. tests/hosts/down.sh NAME takes it down. Needs root, iproute2 and openssh-server.
set -euo pipefail
N=${1:?usage: up.sh NAME IP}
IP=${2:?usage: up.sh NAME IP}
BASE=${HOSTS_DIR:?HOSTS_DIR must name the directory that keeps the hosts\' files}
KEYS=${AUTHORIZED_KEYS:?AUTHORIZED_KEYS must name the authorized_keys file for root}
BRIDGE=cutover0
B=$BASE/$N

if ! ip link show $BRIDGE >/dev/null 2>&1; then
    ip link add $BRIDGE type bridge
    ip addr add 10.77.0.1/24 dev $BRIDGE
    ip link set $BRIDGE up
fi
mkdir -p "$B/www" "$B/log-apache2" "$B/srv" "$B/var-lib-cutover-web"
# The apache_vhost role records each host's set-up in /var/lib/cutover-web: the host's own, not this machine's
# (the directory here is only the mount point).
mkdir -p /var/lib/cutover-web
if [[ ! -d $B/etc-apache2 ]]; then
    # This machine's Apache configuration without the sites and ports other tests added.
    cp -a /etc/apache2 "$B/etc-apache2"
    find "$B/etc-apache2/sites-enabled" -mindepth 1 ! -name 000-default.conf -delete
    printf 'Listen 80\n' >"$B/etc-apache2/ports.conf"
fi
# Its name resolves from its own /etc/hosts, as on any Debian host (no DNS lookups to wait for).
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' "$N" >"$B/hosts"
[[ -f $B/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -f "$B/ssh_host_ed25519_key"
cat >"$B/sshd_config" <<EOC
Port 2222
ListenAddress $IP
HostKey $B/ssh_host_ed25519_key
AuthorizedKeysFile $KEYS
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp /usr/lib/openssh/sftp-server
PidFile /run/sshd.pid
LogLevel ERROR
EOC
ip netns add "$N"
ip link add "v-$N" type veth peer name eth0 netns "$N"
ip link set "v-$N" master $BRIDGE up
ip -n "$N" addr add "$IP/24" dev eth0
ip -n "$N" link set eth0 up
ip -n "$N" link set lo up
ip -n "$N" route add default via 10.77.0.1
setsid ip netns exec "$N" unshare --mount --uts --pid --fork --mount-proc --propagation private bash -c "
  hostname '$N'
  mount --bind '$B/www' /var/www
  mount --bind '$B/etc-apache2' /etc/apache2
  mount --bind '$B/log-apache2' /var/log/apache2
  mount --bind '$B/srv' /srv
  mount --bind '$B/var-lib-cutover-web' /var/lib/cutover-web
  mount --bind '$B/hosts' /etc/hosts
  mount -t tmpfs tmpfs /run && mkdir -p /run/sshd /run/lock /run/apache2 /run/php
  exec /usr/sbin/sshd -D -f '$B/sshd_config'
" </dev/null >"$B/sshd.log" 2>&1 &
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$IP/2222") 2>/dev/null && { echo "$N up ($IP:2222)"; exit 0; }
    sleep 0.1
done
echo "sshd on $N did not come up:" >&2
cat "$B/sshd.log" >&2
exit 1
