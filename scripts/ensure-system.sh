#!/usr/bin/env bash
# Install the Debian packages and start the local services the tests need (idempotent).
# Used by `make test` and by CI; safe to run again. Needs root for apt-get and services;
# without root it only reports what is missing.
set -euo pipefail

need_pkgs=()
for tool in tcpdump:tcpdump tcpreplay:tcpreplay tshark:tshark capinfos:wireshark-common \
            mosquitto:mosquitto ip:iproute2 psql:postgresql-client \
            systemd-analyze:systemd openssl:openssl chromium:chromium \
            rsyslogd:rsyslog dpkg-deb:dpkg; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need_pkgs+=("${tool##*:}")
done
# rsyslog's TLS driver (forwarding tests: syslog over TLS, RFC 5425).
compgen -G "/usr/lib/*/rsyslog/lmnsd_gtls.so" >/dev/null || need_pkgs+=(rsyslog-gnutls)
if ((${#need_pkgs[@]})); then
    if [ "$(id -u)" = 0 ]; then
        echo "ensure-system: installing ${need_pkgs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
        apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
    else
        echo "ensure-system: missing ${need_pkgs[*]} (run as root or install them)" >&2
    fi
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 1883 && [ "$(id -u)" = 0 ] && [ -f /etc/mosquitto/mosquitto.conf ]; then
    echo "ensure-system: starting mosquitto"
    mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
fi
if ! port_open 5432 && [ "$(id -u)" = 0 ] && [ -d /etc/postgresql ]; then
    echo "ensure-system: starting postgresql"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
exit 0
