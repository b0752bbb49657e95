#!/usr/bin/env bash
# Makes two private PostgreSQL clusters for tests/postgres_tls.rs and prints the directory that
# describes them (target/pg-tls, absolute). The machine's own server on 127.0.0.1:5432 is left
# alone.
#   certs/      ca.pem (the CA, CN "ds test CA"), server.pem/.key (CN and SAN DNS:localhost only:
#               verify-full to host 127.0.0.1 fails, verify-ca passes), wrong-ca.pem (an
#               unrelated CA), client.pem/.key (CN dscert, for cert authentication); EC P-256,
#               PKCS#8 keys. Reused while they still verify against ca.pem.
#   tls/        port 55433 (also in tls.port): SSL only; role dscert must present a client
#               certificate, every other role is trusted; plaintext connections are refused.
#   plain/      port 55434 (also in plain.port): no SSL at all, trust.
# Both have database test. A cluster already answering on its port is reused.
# Progress goes to stderr; the directory alone to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

answers() { (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
root() { [ "$(id -u)" = 0 ]; }
run() { if root; then runuser -u postgres -- "$@"; else "$@"; fi; }

top="$PWD/target/pg-tls"
certs="$top/certs"
tls_port=55433
plain_port=55434
mkdir -p "$certs"

# == certificates
if ! command -v openssl >/dev/null; then
  echo "installing openssl from the distribution's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq openssl >&2
fi
certs_ok() {
  local f
  for f in ca.pem ca.key server.pem server.key wrong-ca.pem client.pem client.key; do
    [ -s "$certs/$f" ] || return 1
  done
  # Still valid for a day, and signed by this ca.pem.
  openssl x509 -checkend 86400 -noout -in "$certs/server.pem" >/dev/null &&
    openssl x509 -checkend 86400 -noout -in "$certs/client.pem" >/dev/null &&
    openssl verify -CAfile "$certs/ca.pem" "$certs/server.pem" "$certs/client.pem" >/dev/null 2>&1
}
if certs_ok; then
  echo "reusing the certificates in $certs" >&2
else
  echo "generating certificates in $certs" >&2
  tmp=$(mktemp -d "$top/certs.XXXXXX")
  (
    umask 077
    cd "$tmp"
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    serial() { echo "0x$(openssl rand -hex 15)"; }
    ca() { # ca NAME CN
      key "$1.key"
      openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/CN=$2" -set_serial "$(serial)" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$1.pem"
    }
    leaf() { # leaf NAME CN EXTENSIONS
      key "$1.key"
      openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
      printf '%s\n' "$3" > "$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial "$(serial)" -sha256 \
        -days 3650 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
      rm "$1.csr" "$1.ext"
    }
    ca ca "ds test CA"
    ca wrong-ca "ds wrong CA"
    rm wrong-ca.key
    leaf server localhost "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"
    leaf client dscert "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"
    chmod 0644 ./*.pem
    chmod 0600 ./*.key
  )
  for f in ca.pem ca.key wrong-ca.pem server.pem server.key client.pem client.key; do
    mv -f "$tmp/$f" "$certs/$f"
  done
  rmdir "$tmp"
  certs_ok || { echo "the generated certificates do not verify" >&2; exit 1; }
fi

# == PostgreSQL binaries
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$bin" ]; then
  echo "installing PostgreSQL from the distribution's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi

# Listen on ::1 too when the loopback has it and `localhost` resolves to it, so that clients
# connecting to localhost reach the cluster whichever address they try first.
listen=127.0.0.1
if ip -6 addr show lo 2>/dev/null | grep -q 'inet6 ::1/' &&
  getent ahosts localhost 2>/dev/null | awk '{print $1}' | grep -qx '::1'; then
  listen="127.0.0.1,::1"
fi

# sql PORT SQL...: as postgres over the unix socket in /tmp.
sql() { local port=$1; shift; run "$bin/psql" -h /tmp -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq "$@"; }

# install SRC DEST: copies a file into a data directory, owned by postgres and private to it;
# reports (status 0) whether it changed.
install_file() {
  if [ -f "$2" ] && cmp -s "$1" "$2"; then return 1; fi
  cp "$1" "$2"
  chmod 0600 "$2"
  if root; then chown postgres: "$2"; fi
  return 0
}

# cluster NAME PORT: writes the cluster's settings (ds.conf, pg_hba.conf: the caller fills
# $conf and $hba), then starts it unless it already answers, in which case it is reloaded when
# something changed.
cluster() {
  local name=$1 port=$2 dir="$top/$1" changed=0
  # The port this cluster used before, if any; a port another server holds (another
  # checkout's clusters, say) is skipped, never taken over.
  if [ -f "$dir/PG_VERSION" ] && [ -s "$top/$name.port" ]; then port=$(cat "$top/$name.port"); fi
  local tries=0
  while answers "$port"; do
    local actual
    actual=$(sql "$port" -c 'show data_directory' 2>/dev/null || true)
    [ "$actual" = "$dir" ] && break
    echo "port $port answers but is not the cluster in $dir (data_directory: ${actual:-unknown}); trying $((port + 10))" >&2
    port=$((port + 10))
    tries=$((tries + 1))
    [ "$tries" -lt 20 ] || { echo "no free port for cluster $name" >&2; exit 1; }
  done
  cluster_port=$port
  if [ ! -f "$dir/PG_VERSION" ]; then
    echo "creating cluster $name in $dir" >&2
    mkdir -p "$dir"
    if root; then chown postgres: "$dir"; fi
    chmod 0700 "$dir"
    run "$bin/initdb" -D "$dir" -U postgres --auth=trust >&2
  fi
  for f in "${files[@]}"; do
    install_file "$certs/$f" "$dir/$f" && changed=1
  done
  local t
  t=$(mktemp)
  printf '%s\n' "$conf" > "$t"; install_file "$t" "$dir/ds.conf" && changed=1
  printf '%s\n' "$hba" > "$t"; install_file "$t" "$dir/pg_hba.conf" && changed=1
  rm -f "$t"
  grep -qx "include 'ds.conf'" "$dir/postgresql.conf" || echo "include 'ds.conf'" >> "$dir/postgresql.conf"
  if answers "$port"; then
    echo "reusing cluster $name on port $port" >&2
    if [ "$changed" = 1 ]; then
      echo "reloading cluster $name: its settings or certificates changed" >&2
      sql "$port" -c 'select pg_reload_conf()' >/dev/null
    fi
  else
    echo "starting cluster $name in $dir on port $port" >&2
    run "$bin/pg_ctl" -D "$dir" -l "$dir/log" -w \
      -o "-p $port -k /tmp -c listen_addresses=$listen" start >&2 ||
      { echo "cluster $name did not start; $dir/log says:" >&2; tail -n 20 "$dir/log" >&2 || true; exit 1; }
  fi
  [ "$(sql "$port" -c "select 1 from pg_database where datname = 'test'")" = 1 ] ||
    sql "$port" -c "create database test"
  echo "$port" > "$top/$name.port"
}

# == cluster tls
files=(server.pem server.key ca.pem)
conf="# Written by .ci/postgres-tls.sh; rewritten on every run.
ssl = on
ssl_cert_file = 'server.pem'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.pem'"
hba="# Written by .ci/postgres-tls.sh; rewritten on every run.
# TYPE    DATABASE USER   ADDRESS       METHOD
hostssl   all      dscert 127.0.0.1/32  cert
hostssl   all      dscert ::1/128       cert
hostssl   all      all    127.0.0.1/32  trust
hostssl   all      all    ::1/128       trust
hostnossl all      all    0.0.0.0/0     reject
hostnossl all      all    ::/0          reject
local     all      all                  trust"
cluster tls "$tls_port"
tls_port=$cluster_port
sql "$tls_port" -c "do \$\$ begin
  if not exists (select from pg_roles where rolname = 'dscert') then
    create role dscert login superuser;
  end if;
end \$\$" -c "grant all on database test to dscert"

# == cluster plain
files=()
conf="# Written by .ci/postgres-tls.sh; rewritten on every run.
ssl = off"
hba="# Written by .ci/postgres-tls.sh; rewritten on every run.
# TYPE DATABASE USER ADDRESS      METHOD
host   all      all  127.0.0.1/32 trust
host   all      all  ::1/128      trust
local  all      all               trust"
cluster plain "$plain_port"

echo "$top"
