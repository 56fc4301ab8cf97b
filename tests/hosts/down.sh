#!/usr/bin/env bash
# usage: tests/hosts/down.sh NAME: stop every process of host NAME (sshd, Apache, PHP-FPM, ...)
# and remove its network namespace; the bridge goes with the last host. Its files stay.
N=${1:?usage: down.sh NAME}
for sig in TERM KILL; do
    pids=$(ip netns pids "$N" 2>/dev/null) || break
    [[ -n $pids ]] || break
    # shellcheck disable=SC2086
    kill -s $sig $pids 2>/dev/null
    for _ in $(seq 20); do
        [[ -z $(ip netns pids "$N" 2>/dev/null) ]] && break
        sleep 0.1
    done
done
ip link del "v-$N" 2>/dev/null
ip netns del "$N" 2>/dev/null
[[ -z $(ip netns list) ]] && ip link del cutover0 2>/dev/null
echo "$N down"
exit 0
