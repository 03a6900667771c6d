#!/usr/bin/env bash
# Build the Debian packages centre-agent and centre-gateway, each with its own virtualenv:
#
#   packaging/debian/build.sh            -> packaging/debian/out/centre-{agent,gateway}_VERSION_ARCH.deb
#
# Environment: OUT (output directory), DEB_PYTHON (interpreter of the target, default Debian's
# /usr/bin/python3, 3.11 on bookworm), DEB_REVISION (default 1), KEEP_WORK=1 keeps the staging trees.
#
# The virtualenvs are made by the TARGET's interpreter (Debian's python3, never a pyenv or a
# developer venv), in a staging tree, then relocated to /opt/<package>/venv: script shebangs and
# activate scripts are rewritten and byte code is compiled with the final paths. Every Python
# dependency is built once into a wheelhouse (native ones against Debian's headers) and both
# virtualenvs install from it without network access.
set -euo pipefail
umask 022

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${OUT:-$ROOT/packaging/debian/out}
PYTHON=${DEB_PYTHON:-/usr/bin/python3}
REVISION=${DEB_REVISION:-1}
ARCH=$(dpkg --print-architecture)
WORK=$OUT/work

die() { echo "build.sh: $*" >&2; exit 1; }
step() { echo "== $*"; }

[ -x "$PYTHON" ] || die "$PYTHON not found (apt-get install python3 python3-venv python3-dev)"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || die "$PYTHON is not Python 3.11 (the project requires 3.11)"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || die "python3-venv is missing"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing"

UPSTREAM=$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$ROOT/pyproject.toml")
VERSION="$UPSTREAM-$REVISION"

rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"

step "source tree (tracked and new files, nothing ignored)"
mkdir "$WORK/src"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | grep -zv -e '^packaging/debian/out/' -e '^clients/js/' \
        | xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$WORK/src"
else  # an unpacked source archive
    tar -C "$ROOT" -cf - --exclude=./.venv --exclude=./packaging/debian/out --exclude=./clients/js \
        --exclude=./build --exclude='*.egg-info' --exclude=__pycache__ . | tar -xf - -C "$WORK/src"
fi

step "wheelhouse (project + dependencies, built with $PYTHON)"
"$PYTHON" -m venv "$WORK/buildenv"
"$WORK/buildenv/bin/python" -m pip install -q --upgrade wheel
"$WORK/buildenv/bin/python" -m pip wheel -q -w "$WORK/wheelhouse" "$WORK/src"
ls "$WORK/wheelhouse" | sed 's/^/   /'

copy() {  # copy SRC DEST MODE
    install -D -m "$3" "$1" "$2"
}

build_package() {
    local pkg=$1 config_src=$2 config_name=$3
    local stage="$WORK/$pkg"
    local venv_final="/opt/$pkg/venv"
    local venv="$stage$venv_final"
    step "$pkg: virtualenv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --no-index --no-compile --find-links "$WORK/wheelhouse" centre-devices
    # the shipped venv is for running, not for installing
    "$venv/bin/python" -m pip uninstall -q -y pip setuptools
    find "$venv" -name '__pycache__' -type d -prune -exec rm -rf {} +

    step "$pkg: relocate to $venv_final"
    local file
    for file in "$venv"/bin/* "$venv/pyvenv.cfg"; do
        [ -f "$file" ] && [ ! -L "$file" ] || continue
        sed -i "s|$venv|$venv_final|g" "$file"
    done
    # byte code with the final paths (tracebacks name /opt/...); dpkg keeps mtimes, so it stays valid
    "$PYTHON" -m compileall -q -j 0 -s "$stage" -p / "$venv/lib" >/dev/null
    if grep -rIl --exclude-dir=__pycache__ -- "$stage" "$stage" >/dev/null; then
        grep -rIl --exclude-dir=__pycache__ -- "$stage" "$stage" | head >&2
        die "$pkg: staging path left in the files above"
    fi

    step "$pkg: system files"
    mkdir -p "$stage/usr/bin"
    ln -s "$venv_final/bin/$pkg" "$stage/usr/bin/$pkg"
    copy "$ROOT/packaging/systemd/$pkg.service" "$stage/lib/systemd/system/$pkg.service" 0644
    copy "$config_src" "$stage/etc/$pkg/$config_name" 0640
    copy "$ROOT/README.md" "$stage/usr/share/doc/$pkg/README.md" 0644
    printf 'centre-devices %s\n\nLicense: Apache-2.0 (see /usr/share/common-licenses/Apache-2.0).\n' "$UPSTREAM" \
        > "$stage/usr/share/doc/$pkg/copyright"
    if [ "$pkg" = centre-agent ]; then
        copy "$ROOT/packaging/udev/60-centre-agent.rules" "$stage/lib/udev/rules.d/60-centre-agent.rules" 0644
        copy "$ROOT/packaging/polkit/60-centre-agent.rules" \
            "$stage/usr/share/polkit-1/rules.d/60-centre-agent.rules" 0644
        install -d -m 0755 "$stage/etc/centre-agent/csca"
    else
        # monitoring for IT staff: Prometheus alert rules and the Grafana fleet dashboard
        copy "$ROOT/packaging/prometheus/alerts.yml" "$stage/usr/share/centre-gateway/prometheus/alerts.yml" 0644
        copy "$ROOT/packaging/grafana/centre-fleet.json" "$stage/usr/share/centre-gateway/grafana/centre-fleet.json" 0644
    fi

    step "$pkg: control"
    mkdir -p "$stage/DEBIAN"
    local size
    size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
    sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$size/" \
        "$ROOT/packaging/debian/$pkg/control" > "$stage/DEBIAN/control"
    copy "$ROOT/packaging/debian/$pkg/conffiles" "$stage/DEBIAN/conffiles" 0644
    local script
    for script in postinst prerm postrm; do
        copy "$ROOT/packaging/debian/$pkg/$script" "$stage/DEBIAN/$script" 0755
    done
    (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
        | xargs -0 md5sum > DEBIAN/md5sums)

    step "$pkg: dpkg-deb"
    dpkg-deb --root-owner-group -Zgzip --build "$stage" "$OUT/${pkg}_${VERSION}_${ARCH}.deb" >/dev/null
    echo "   $OUT/${pkg}_${VERSION}_${ARCH}.deb ($(du -h "$OUT/${pkg}_${VERSION}_${ARCH}.deb" | cut -f1))"
}

# the packaged agent logs to journald with structured fields
sed 's/^log_target = "stderr"/log_target = "journald"/' "$ROOT/config/agent.example.toml" > "$WORK/agent.toml"
grep -q '^log_target = "journald"' "$WORK/agent.toml" || die "config/agent.example.toml has no log_target line"

build_package centre-agent "$WORK/agent.toml" agent.toml
build_package centre-gateway "$ROOT/config/gateway.example.toml" gateway.toml

if [ "${KEEP_WORK:-0}" != 1 ]; then
    rm -rf "$WORK"
fi
step "done: $OUT"
