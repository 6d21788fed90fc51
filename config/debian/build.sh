#!/usr/bin/env bash
# Builds target/debian/geofailover_VERSION_ARCH.deb with dpkg-deb (on every
# Debian machine, nothing to install; the package is small enough to list
# by hand): the release binary (or $GEOFAILOVER_BIN), its man pages and
# bash/zsh/fish completions generated from the command line's own
# definitions, the commented config and example zones in /etc/geofailover
# (conffiles), the systemd unit, and the maintainer scripts here.
#   usage: bash config/debian/build.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
here=config/debian
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
bin=${GEOFAILOVER_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet
  bin=target/release/geofailover
fi

root=target/debian/root
rm -rf "$root"
mkdir -p "$root/DEBIAN"
install -D -m 0755 "$bin" "$root/usr/bin/geofailover"
strip --strip-unneeded "$root/usr/bin/geofailover"
run="$root/usr/bin/geofailover"

mkdir -p "$root/usr/share/man/man1"
"$run" man "$root/usr/share/man/man1"
gzip -9n "$root"/usr/share/man/man1/*.1
install -d "$root/usr/share/bash-completion/completions" \
  "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
"$run" completions bash >"$root/usr/share/bash-completion/completions/geofailover"
"$run" completions zsh >"$root/usr/share/zsh/vendor-completions/_geofailover"
"$run" completions fish >"$root/usr/share/fish/vendor_completions.d/geofailover.fish"

install -D -m 0644 "$here/config.yaml" "$root/etc/geofailover/config.yaml"
for zone in zones/*.zone; do
  install -D -m 0644 "$zone" "$root/etc/geofailover/zones/$(basename "$zone")"
done
install -D -m 0644 "$here/geofailover.service" "$root/usr/lib/systemd/system/geofailover.service"
install -D -m 0644 README.md "$root/usr/share/doc/geofailover/README.md"
gzip -9n "$root/usr/share/doc/geofailover/README.md"
install -D -m 0644 "$here/copyright" "$root/usr/share/doc/geofailover/copyright"

(cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$root/DEBIAN/$script"
done
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
# The newest glibc symbol version the binary needs is the libc6 it needs.
glibc=$(objdump -T "$run" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  -e "s/@GLIBC@/${glibc:-2.34}/" "$here/control" >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort |
  xargs md5sum) >"$root/DEBIAN/md5sums"

deb="target/debian/geofailover_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "$deb"
