#!/usr/bin/env bash
# Installs what the tests need (Debian packages: Knot and kdig, NSD, BIND, dig, openssl, socat, Chromium, MariaDB, etcd,
# dnspython for the TSIG tests, Unbound, Zonemaster and the DNSSEC zone verifiers of ldns and Knot for the DNSSEC tests,
# iproute2 and iptables for the cluster's cut links, systemd-analyze and man for
# the package test) when
# they are missing, then runs every test. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/knotd ] || need+=(knot)
[ -x /usr/sbin/nsd ] || need+=(nsd)
[ -x /usr/sbin/named ] || need+=(bind9)
command -v kdig >/dev/null || need+=(knot-dnsutils)
[ -x /usr/sbin/unbound ] || need+=(unbound)
command -v ldns-verify-zone >/dev/null || need+=(ldnsutils)
command -v kzonecheck >/dev/null || need+=(knot-dnssecutils)
command -v zonemaster-cli >/dev/null || need+=(zonemaster-cli)
command -v dnssec-signzone >/dev/null || need+=(bind9-utils)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v openssl >/dev/null || need+=(openssl)
command -v socat >/dev/null || need+=(socat)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/sbin/mariadbd ] || need+=(mariadb-server mariadb-client)
[ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v man >/dev/null || need+=(man-db)
/usr/bin/python3 -c "import dns.tsig" 2>/dev/null || need+=(python3-dnspython)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing test dependencies: ${need[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
  # The package starts a system resolver on port 53 under systemd; the
  # tests run their own Unbound on loopback ports and need none.
  if [[ " ${need[*]} " == *" unbound "* ]] && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now unbound.service unbound-resolvconf.service 2>/dev/null || true
  fi
fi

cargo test --locked "$@"
