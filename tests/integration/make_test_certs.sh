#!/usr/bin/env bash
# Test certificates for the TLS tests, made with the openssl command (P-256 keys):
#   ca.pem ca.key              a test CA
#   node.pem node.key          signed by it, for 127.0.0.1 and localhost (server and client)
#   client.pem client.key      signed by it, a client's
#   expired.pem expired.key    signed by it, for 127.0.0.1, expired a day ago
#   other-ca.pem               another CA
#   other.pem other.key        signed by the other CA, for 127.0.0.1
#   node2.pem node2.key        signed by the other CA, for 127.0.0.1 (a rotation's new pair)
#   n1.pem n1.key ... n4       signed by the test CA, for 127.0.0.1, each naming its node id
#                              as Common Name (CN=n1 ...), for --tls-node-identity
#
#   make_test_certs.sh DIR
set -euo pipefail
dir=${1:?usage: make_test_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {  # ca NAME
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 30 -subj "/CN=ringcache test $1" \
    2>/dev/null
}
leaf() {  # leaf NAME CA DAYS [CN]
  local name=$1 ca=$2 days=$3 cn=${4:-ringcache test $1}
  key "$name.key"
  openssl req -new -key "$name.key" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
    >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial \
    -out "$name.pem" -days "$days" -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

ca ca
ca other-ca
leaf node ca 30
leaf client ca 30
leaf expired ca -1
leaf other other-ca 30
leaf node2 other-ca 30
for i in 1 2 3 4; do leaf "n$i" ca 30 "n$i"; done
