# Sourced by the bench scripts from the repository's root, after they
# list in the array `need` the Debian packages they lack: installs them
# (apt-get update once, then install), builds the release binary (unless
# release_build=no), and
# makes `work`, a folder removed on exit after every PID in its *.pid
# files (one a line) is killed.
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing: ${need[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# A bench that builds something else (bench/fuzz.sh) sets release_build=no.
[ "${release_build:-yes}" = no ] || cargo build --release --quiet
work=$(mktemp -d)
# (`|| true`: with `set -e`, a kill with no PIDs would end the script with
# its failure, after the bench itself passed.)
trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
