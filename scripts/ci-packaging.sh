#!/usr/bin/env bash
# CI step for the Debian packages (issue 9). Needs root; works without a running systemd.
#   1. build centre-agent and centre-gateway .debs once (packaging/debian/build.sh)
#   2. dpkg -i both, check the installed result (packaging/checks/test_installed.py: files, owners,
#      modes, users, unit syntax and exposure, `centre-agent doctor --simulate`, the agent and the
#      gateway run as their units would run them, the agent answering on /run/centre-agent/agent.sock;
#      then the README's provisioning: the installed gateway with [identity] on, a centre and a token
#      from its CLI with no --config, `centre-agent enroll` as root, the agent run as centre-agent
#      like its unit until it reports over mTLS: packaging/checks/enrol_flow.py; and the installed
#      agent with its own, unedited config finding real peers (a vpcd reader in a private pcscd, the
#      SANE test backend, ippeveprinter over mDNS), all in a network namespace with only lo, checked
#      with `centre-agent devices --json` and `centre-agent doctor`: packaging/checks/real_peers.py)
#   3. upgrade in place: state in /var/lib and a locally edited conffile survive
#   4. dpkg -r: code gone, data and config kept; dpkg --purge: nothing left, users gone
# REUSE_DEBS=1 skips the build when both .debs are already in packaging/debian/out.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=packaging/debian/out
PY=${PYTHON:-.venv/bin/python}
PACKAGES=(centre-agent centre-gateway)

fail() { echo "ci-packaging.sh: FAIL: $*" >&2; exit 1; }
step() { echo "== packaging: $*"; }

[ "$(id -u)" -eq 0 ] || fail "run as root (dpkg -i)"
# the installed programs must find their installed configs, as on a counter PC
unset CENTRE_AGENT_CONFIG CENTRE_GATEWAY_CONFIG

for p in "${PACKAGES[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
        step "purging a $p left by an earlier run"
        dpkg --purge "$p" >/dev/null
    fi
done

debs() { ls "$OUT"/centre-agent_*.deb "$OUT"/centre-gateway_*.deb 2>/dev/null; }
if [ "${REUSE_DEBS:-0}" = 1 ] && [ "$(debs | wc -l)" -eq 2 ]; then
    step "reusing $(debs | xargs)"
else
    rm -f "$OUT"/*.deb
    step "build"
    packaging/debian/build.sh
fi
mapfile -t DEBS < <(debs)
[ "${#DEBS[@]}" -eq 2 ] || fail "expected two .debs in $OUT"
for deb in "${DEBS[@]}"; do
    dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Installed-Size\|Depends\):/  \1:/p'
done

step "install (dpkg -i, no systemd running)"
dpkg -i "${DEBS[@]}"

step "check the installed packages"
if ! "$PY" -m pytest -p no:cacheprovider -q packaging/checks/test_installed.py > "$OUT/installed-checks.log" 2>&1
then
    tail -60 "$OUT/installed-checks.log"
    fail "installed-package checks (output above)"
fi
tail -1 "$OUT/installed-checks.log"
echo "  the installed doctor against the real peers (packaging/checks/real_peers.py):"
sed 's/^/    /' "$OUT/real-peers-doctor.txt"
for p in "${PACKAGES[@]}"; do
    systemd-analyze security --offline=yes --no-pager "/lib/systemd/system/$p.service" | tail -1
done

step "upgrade in place keeps state and local config"
runuser -u centre-agent -- sh -c 'echo keep > /var/lib/centre-agent/ci-marker'
echo "# local edit by ci-packaging.sh" >> /etc/centre-agent/agent.toml
dpkg -i --force-confold "${DEBS[@]}" >/dev/null
[ -f /var/lib/centre-agent/ci-marker ] || fail "upgrade deleted /var/lib/centre-agent"
grep -q "local edit by ci-packaging.sh" /etc/centre-agent/agent.toml || fail "upgrade overwrote the edited conffile"
[ "$(stat -c '%U:%G %a' /etc/centre-agent/agent.toml)" = "root:centre-agent 640" ] || fail "conffile mode after upgrade"
/opt/centre-agent/venv/bin/centre-agent --help >/dev/null || fail "agent does not start after the upgrade"

step "remove keeps data and config"
dpkg -r "${PACKAGES[@]}" >/dev/null
for gone in /opt/centre-agent /opt/centre-gateway /usr/bin/centre-agent /usr/bin/centre-gateway \
            /lib/systemd/system/centre-agent.service /lib/systemd/system/centre-gateway.service \
            /lib/udev/rules.d/60-centre-agent.rules /usr/share/polkit-1/rules.d/60-centre-agent.rules; do
    [ ! -e "$gone" ] && [ ! -L "$gone" ] || fail "$gone left after dpkg -r"
done
[ -f /var/lib/centre-agent/ci-marker ] || fail "dpkg -r deleted /var/lib/centre-agent"
[ -f /etc/centre-agent/agent.toml ] || fail "dpkg -r deleted the conffile"
getent passwd centre-agent >/dev/null || fail "dpkg -r deleted the user"

step "purge leaves nothing"
dpkg --purge "${PACKAGES[@]}" >/dev/null
left=$(find /etc /lib /usr /var /opt /run \( -name '*centre-agent*' -o -name '*centre-gateway*' \) \
        -not -path '/var/lib/dpkg/*' -print 2>/dev/null || true)
[ -z "$left" ] || fail "left after purge: $left"
for p in "${PACKAGES[@]}"; do
    ! getent passwd "$p" >/dev/null || fail "user $p left after purge"
    ! getent group "$p" >/dev/null || fail "group $p left after purge"
    ! dpkg-query -W "$p" >/dev/null 2>&1 || fail "$p still known to dpkg"
done
step "ok"
