#!/bin/sh
# make-certs.sh - a development PKI for fedc: one CA, the coordinator's
# certificate (SAN localhost and 127.0.0.1) and N client certificates.
#
#   certs/make-certs.sh DIR [N] [CLIENT_PREFIX]
#
# writes DIR/ca.pem DIR/ca.key DIR/server.pem DIR/server.key and
# DIR/client-1.pem DIR/client-1.key ... DIR/client-N.*, all EC P-256,
# valid 825 days; and DIR/client-K.fpr holding the SHA-256 fingerprint of
# each client certificate (what `fedc-coordinator allow` and the store use).
# Private keys are created mode 0600 and never committed (see .gitignore).
# For production, use your own CA; this is for development and tests.
set -eu
DIR=${1:?usage: make-certs.sh DIR [N] [CLIENT_PREFIX]}
N=${2:-4}
PREFIX=${3:-client}
umask 077
mkdir -p "$DIR"
cd "$DIR"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -f ca.pem ]; then
  key ca.key
  openssl req -x509 -new -key ca.key -sha256 -days 825 -subj "/CN=fedc development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem 2>/dev/null
fi

# sign NAME CN EXT: a certificate for NAME.key signed by the CA
sign() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

if [ ! -f server.pem ]; then
  sign server "fedc coordinator" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
fi

i=1
while [ "$i" -le "$N" ]; do
  name="$PREFIX-$i"
  if [ ! -f "$name.pem" ]; then
    sign "$name" "$name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
  fi
  openssl x509 -in "$name.pem" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1 >"$name.fpr"
  i=$((i + 1))
done
chmod 644 ./*.pem ./*.fpr
echo "certs: CA, server and $N client certificates in $DIR" >&2
