#!/usr/bin/env bash
# Make a throwaway CA and certificates for a test or lab otwatch deployment (openssl, EC P-256).
#
#   make-test-certs.sh [-d DAYS] [-b BROKER_NAME]... OUTDIR SENSOR_ID [SENSOR_ID...]
#
# Writes into OUTDIR (created 0700; keys 0600, certificates 0644):
#   ca.crt, ca.key                     the CA (reused when OUTDIR already has one, so sensors
#                                      can be added later)
#   broker.crt, broker.key             the broker, for localhost and 127.0.0.1 plus each -b
#                                      name (a DNS name or an IP address)
#   SENSOR_ID.crt, SENSOR_ID.key       one client certificate per sensor, CN = sensor id (the
#                                      broker's user name with use_identity_as_username)
#   otwatch-central.crt/.key           central's client certificate, CN = otwatch-central
#
# Not for production: the CA key sits beside the certificates, unprotected. Use your PKI.
set -euo pipefail

usage() { sed -n '4p' "$0" | sed 's/^#   /usage: /'; }

days=30
names=()
while getopts "d:b:h" opt; do
    case $opt in
        d) days=$OPTARG ;;
        b) names+=("$OPTARG") ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if (($# < 2)); then
    usage >&2
    exit 2
fi
[[ $days =~ ^[1-9][0-9]*$ ]] || { echo "make-test-certs: -d wants a number of days, not '$days'" >&2; exit 2; }
out=$1
shift
for id in "$@"; do
    if ! [[ $id =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] || [[ $id =~ ^(ca|broker|otwatch-central)$ ]]; then
        echo "make-test-certs: invalid sensor id '$id': use 1-64 letters, digits, '_', '.' or '-'" \
             "starting with a letter or digit (not ca, broker or otwatch-central)" >&2
        exit 2
    fi
done
command -v openssl >/dev/null || { echo "make-test-certs: openssl not found (apt-get install openssl)" >&2; exit 1; }

umask 077
mkdir -p "$out"
cd "$out"

newkey() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }

if [ ! -f ca.key ] || [ ! -f ca.crt ]; then
    newkey ca
    openssl req -x509 -new -key ca.key -out ca.crt -days "$days" -subj "/CN=otwatch test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
fi

# issue FILE CN EXTENSIONS...
issue() {
    local file=$1 cn=$2
    shift 2
    newkey "$file"
    openssl req -new -key "$file.key" -subj "/CN=$cn" -out "$file.csr"
    printf '%s\n' "basicConstraints=CA:FALSE" "$@" > "$file.ext"
    openssl x509 -req -in "$file.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
        -out "$file.crt" -extfile "$file.ext" 2>/dev/null
    rm -f "$file.csr" "$file.ext"
    echo "make-test-certs: $out/$file.crt (CN=$cn)"
}

san="DNS:localhost,IP:127.0.0.1"
for name in "${names[@]}"; do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san+=",IP:$name"; else san+=",DNS:$name"; fi
done
issue broker localhost "subjectAltName=$san" "extendedKeyUsage=serverAuth" \
    "keyUsage=critical,digitalSignature"
for id in "$@"; do
    issue "$id" "$id" "extendedKeyUsage=clientAuth" "keyUsage=critical,digitalSignature"
done
issue otwatch-central otwatch-central "extendedKeyUsage=clientAuth" \
    "keyUsage=critical,digitalSignature"

chmod 0644 ./*.crt
chmod 0600 ./*.key
