#!/usr/bin/env bash
# Build dist/otwatch_VERSION_amd64.deb: a virtual environment with otwatch and every Python
# dependency under /opt/otwatch, the systemd units, sysusers.d/tmpfiles.d snippets, the
# configuration as a conffile and /usr/bin/otwatch. Nothing is downloaded at install time.
#
#   packaging/deb/build-deb.sh [OUT_DIR]            (make package: OUT_DIR=dist)
#
# Environment: DEB_REVISION (default 1; the package version is <otwatch version>-<revision>),
# WHEELHOUSE (a directory of wheels to build from and fill; default a temporary one),
# DEB_COMPRESSION (dpkg-deb -Z: gzip by default; the tests use none, faster to build),
# PYTHON (default the real file behind /usr/bin/python3: the package depends on it).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="$(mkdir -p "${1:-$REPO/dist}" && cd "${1:-$REPO/dist}" && pwd)"
PYTHON="${PYTHON:-$(readlink -f /usr/bin/python3)}"
PREFIX=/opt/otwatch
EXTRAS="postgres,metrics"

WORK="$(mktemp -d -t otwatch-deb.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
WHEELHOUSE="${WHEELHOUSE:-$WORK/wheels}"
mkdir -p "$WHEELHOUSE"

UPSTREAM="$("$PYTHON" -c 'import ast, sys
for node in ast.parse(open(sys.argv[1]).read()).body:
    if isinstance(node, ast.Assign) and node.targets[0].id == "__version__":
        print(node.value.value)' "$REPO/otwatch/__init__.py")"
VERSION="$UPSTREAM-${DEB_REVISION:-1}"
PYVER="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"

# Sources copied out of the checkout, so that the build leaves no build/ or egg-info in it.
SRC="$WORK/src"
mkdir -p "$SRC"
cp "$REPO/pyproject.toml" "$REPO/README.md" "$SRC/"
(cd "$REPO" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - otwatch) | tar -xf - -C "$SRC"

# The venv is created at its final path inside the staging root; the only absolute paths it
# records (script shebangs, activate scripts) are rewritten below.
ROOT="$WORK/root"
VENV="$ROOT$PREFIX"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip wheel -q --wheel-dir "$WHEELHOUSE" "$SRC[$EXTRAS]"
"$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELHOUSE" --no-compile \
    "otwatch[$EXTRAS]==$UPSTREAM"
"$VENV/bin/python" -m pip uninstall -q -y pip setuptools wheel 2>/dev/null || true
grep -rlI --null "$ROOT" "$VENV/bin" "$VENV/pyvenv.cfg" | xargs -0 -r sed -i "s#$ROOT##g"
if grep -rlI "$ROOT" "$VENV" >/dev/null; then
    echo "build-deb: staging path left in: $(grep -rlI "$ROOT" "$VENV" | head -3)" >&2
    exit 1
fi
# Byte-compile with the installed path in tracebacks; shipping the .pyc files means the
# daemons (read-only /opt under ProtectSystem=strict) never try to write them.
"$VENV/bin/python" -m compileall -q -j 0 -s "$ROOT" -p / "$VENV/lib" >/dev/null

install -D -m 0644 "$REPO/docs/deploy.md" "$VENV/share/doc/otwatch/deploy.md"
install -D -m 0644 "$REPO/deploy/otwatch.toml" "$ROOT/etc/otwatch/otwatch.toml"
install -d "$ROOT/usr/bin"
ln -s "$PREFIX/bin/otwatch" "$ROOT/usr/bin/otwatch"
for unit in "$REPO"/systemd/otwatch-*.service; do
    install -D -m 0644 "$unit" "$ROOT/lib/systemd/system/$(basename "$unit")"
done
install -D -m 0644 "$REPO/systemd/sysusers.d/otwatch.conf" "$ROOT/usr/lib/sysusers.d/otwatch.conf"
install -D -m 0644 "$REPO/systemd/tmpfiles.d/otwatch.conf" "$ROOT/usr/lib/tmpfiles.d/otwatch.conf"
DOC="$ROOT/usr/share/doc/otwatch"
install -D -m 0644 "$HERE/copyright" "$DOC/copyright"
install -D -m 0644 "$REPO/systemd/restart-backoff.conf" "$DOC/examples/restart-backoff.conf"
for f in "$REPO"/deploy/mosquitto/*; do
    install -D -m 0644 "$f" "$DOC/examples/mosquitto/$(basename "$f")"
done

install -d -m 0755 "$ROOT/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "$HERE/$script" "$ROOT/DEBIAN/$script"
done
echo /etc/otwatch/otwatch.toml > "$ROOT/DEBIAN/conffiles"
SIZE="$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@PYVER@/$PYVER/g" -e "s/@SIZE@/$SIZE/" \
    "$HERE/control.in" > "$ROOT/DEBIAN/control"

DEB="$OUT/otwatch_${VERSION}_amd64.deb"
dpkg-deb --root-owner-group "-Z${DEB_COMPRESSION:-gzip}" --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
