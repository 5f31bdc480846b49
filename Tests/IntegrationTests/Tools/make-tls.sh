#!/bin/sh
# Makes the credentials the TLS tests use, with GnuTLS's certtool as nbdkit-tls(1) shows:
# a CA, then DIR/server (ca-cert.pem, server-cert.pem, server-key.pem; cn and SAN
# localhost and 127.0.0.1) and DIR/client (ca-cert.pem, client-cert.pem, client-key.pem).
# usage: make-tls.sh DIR NAME   (NAME goes into the CA's cn, so two runs give two CAs)
set -eu
dir=$1
name=$2
mkdir -p "$dir/server" "$dir/client"
cd "$dir"
printf 'cn = %s CA\nca\ncert_signing_key\n' "$name" > ca.info
printf 'organization = nbdtap tests\ncn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\n' > server.info
printf 'organization = nbdtap tests\ncn = %s client\ntls_www_client\nencryption_key\nsigning_key\n' "$name" > client.info
certtool --generate-privkey --outfile ca-key.pem 2>/dev/null
certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info --outfile ca-cert.pem 2>/dev/null
for side in server client; do
  cp ca-cert.pem "$side/"
  certtool --generate-privkey --outfile "$side/$side-key.pem" 2>/dev/null
  certtool --generate-certificate --load-ca-certificate ca-cert.pem --load-ca-privkey ca-key.pem \
    --load-privkey "$side/$side-key.pem" --template "$side.info" --outfile "$side/$side-cert.pem" 2>/dev/null
done
chmod 0600 ca-key.pem server/server-key.pem client/client-key.pem
