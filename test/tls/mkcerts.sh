#!/bin/sh
# test/tls/mkcerts.sh DIR - certificates for the TLS tests, made with the
# openssl command (EC P-256 keys: quick to make), valid for two days:
#   ca.pem ca.key            a test CA ("CN=klog test CA")
#   server.pem server.key    CN=localhost,O=klog, names localhost and 127.0.0.1, signed by the CA
#   alice.pem alice.key      a client, CN=alice,O=klog, signed by the CA
#   bob.pem bob.key          a client, CN=bob,O=klog, signed by the CA
#   other-ca.pem, mallory.pem mallory.key   a second CA and a client it signed (not trusted)
#   server2.pem server2.key  CN=localhost,O=klog-reloaded (for reload tests), signed by the CA
#   enc.key                  server.key encrypted with the passphrase "s3cret"
set -eu
d=$1
mkdir -p "$d"
cd "$d"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
ca() {  # NAME CN
    openssl req -x509 $ec -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" 2>/dev/null
}
leaf() {  # NAME SUBJECT CA [SAN]
    openssl req $ec -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    if [ -n "${4:-}" ]; then printf 'subjectAltName=%s\n' "$4" > "$1.ext"; else : > "$1.ext"; fi
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -out "$1.pem" \
        -days 2 -extfile "$1.ext" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
ca ca "klog test CA"
ca other-ca "someone else's CA"
leaf server "/O=klog/CN=localhost" ca "DNS:localhost,IP:127.0.0.1"
leaf server2 "/O=klog-reloaded/CN=localhost" ca "DNS:localhost,IP:127.0.0.1"
leaf alice "/O=klog/CN=alice" ca
leaf bob "/O=klog/CN=bob" ca
leaf mallory "/O=klog/CN=mallory" other-ca
openssl pkey -in server.key -out enc.key -aes256 -passout pass:s3cret 2>/dev/null
