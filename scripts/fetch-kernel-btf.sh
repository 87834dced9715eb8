#!/usr/bin/env bash
# Obtains the raw BTF of a SECOND kernel -- Debian bookworm's 6.1 -- so tests can check our
# BTF parser and offset resolution against a kernel other than the one we run on.
#
#   scripts/fetch-kernel-btf.sh   -> prints <cache>/kernel-6.1/vmlinux-6.1.btf on stdout
#
# Steps: apt-get download linux-image-6.1.0-N-cloud-amd64 (newest with an apt candidate) ->
# extract /boot/vmlinuz from the .deb -> find the compressed payload inside the bzImage by its
# magic bytes and decompress it to an ELF vmlinux (same approach as the kernel's
# scripts/extract-vmlinux) -> objcopy the .BTF section out as raw BTF.
# Idempotent: once the .btf exists only the (cheap) tool check runs. It also installs the
# tools the cross-check test needs (pahole from `dwarves`), because the test installs nothing.
# Needs root only when something has to be installed or downloaded.
set -euo pipefail

CACHE="${PODTRAIL_CACHE:-$HOME/.cache/podtrail}/kernel-6.1"
OUT="$CACHE/vmlinux-6.1.btf"
SOURCE="$CACHE/source.txt" # which package/version the BTF came from, for humans
export LC_ALL=C            # byte-wise grep over the bzImage
export DEBIAN_FRONTEND=noninteractive

log() { printf '[fetch-kernel-btf] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# apt-get as root into a dir the _apt user cannot read warns about the sandbox; we are root
# anyway when we get here, so run the download as root quietly.
APT=(apt-get -q -o APT::Sandbox::User=root)
apt_updated=0
apt_update() {
  [ "$apt_updated" = 1 ] && return 0
  log "apt-get update"
  "${APT[@]}" update >&2
  apt_updated=1
}

# --- 1. tools (command -> Debian package); only missing ones are installed -----------------
# Debian's 6.1 images are LZ4-compressed (CONFIG_KERNEL_LZ4=y); gzip/xz/zstd are handled too
# so a different flavour or a future rebuild keeps working.
declare -A TOOL_PKG=(
  [objcopy]=binutils [lz4]=lz4 [xz]=xz-utils [zstd]=zstd [gzip]=gzip [pahole]=dwarves
)
missing=()
for tool in "${!TOOL_PKG[@]}"; do
  command -v "$tool" >/dev/null || missing+=("${TOOL_PKG[$tool]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "need root to install: ${missing[*]}"
  log "installing ${missing[*]}"
  # Stale package lists give 404s; refresh once and retry.
  "${APT[@]}" install -y --no-install-recommends "${missing[@]}" >&2 \
    || { apt_update && "${APT[@]}" install -y --no-install-recommends "${missing[@]}" >&2; }
fi

is_btf() { [ -s "$1" ] && [ "$(od -An -tx1 -N2 "$1" | tr -d ' ')" = "9feb" ]; }
is_elf() { [ -s "$1" ] && [ "$(od -An -tx1 -N4 "$1" | tr -d ' ')" = "7f454c46" ]; }

if is_btf "$OUT"; then
  echo "$OUT"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "need root (apt) to fetch the 6.1 kernel image"
mkdir -p "$CACHE"
WORK="$CACHE/work"
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

# --- 2. pick the newest bookworm 6.1 image that apt can actually fetch -----------------------
# `pkgnames` also lists 6.12 backports (linux-image-6.12...), hence the strict regex; names
# without a Candidate are leftovers of stale lists.
pick_pkg() {
  local flavour pkg
  for flavour in cloud-amd64 amd64; do
    while read -r pkg; do
      if [ "$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')" != "(none)" ]; then
        echo "$pkg"
        return 0
      fi
    done < <(apt-cache pkgnames linux-image-6.1.0- \
      | grep -E "^linux-image-6\.1\.0-[0-9]+-${flavour}\$" | sort -V -r)
  done
  return 1
}
PKG="$(pick_pkg || true)"
if [ -z "$PKG" ]; then apt_update; PKG="$(pick_pkg)" || die "no linux-image-6.1.0-*-amd64 in apt"; fi
log "downloading $PKG"
(cd "$WORK" && "${APT[@]}" download "$PKG" >&2) \
  || { apt_update; PKG="$(pick_pkg)"; (cd "$WORK" && "${APT[@]}" download "$PKG" >&2); }
DEB="$(ls "$WORK"/*.deb)"

# --- 3. extract only /boot (the modules are ~100 MB we do not need) --------------------------
dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$WORK" --wildcards './boot/vmlinuz-*' './boot/config-*'
VMLINUZ="$(ls "$WORK"/boot/vmlinuz-*)"

# --- 4. bzImage -> vmlinux: try each magic's offsets until one decompresses to an ELF --------
# Decompressors exit non-zero on the trailing bzImage bytes after the stream; ignore that
# and judge by the output, as extract-vmlinux does.
VMLINUX="$WORK/vmlinux"
try_decompress() { # $1 = grep -P pattern of the magic, $2... = decompressor
  local magic="$1" off; shift
  for off in $(grep -aboP "$magic" "$VMLINUZ" | cut -d: -f1); do
    tail -c +"$((off + 1))" "$VMLINUZ" | "$@" > "$VMLINUX" 2>/dev/null || true
    if is_elf "$VMLINUX"; then log "payload at offset $off: $*"; return 0; fi
  done
  return 1
}
try_decompress '\x02\x21\x4c\x18' lz4 -dc \
  || try_decompress '\xfd\x37\x7a\x58\x5a\x00' xz -dc \
  || try_decompress '\x28\xb5\x2f\xfd' zstd -dc \
  || try_decompress '\x1f\x8b\x08' gzip -dc \
  || die "no known compressed vmlinux payload in $VMLINUZ ($(grep CONFIG_KERNEL_ "$WORK"/boot/config-* | grep =y))"

# --- 5. .BTF section -> raw BTF (the same bytes as /sys/kernel/btf/vmlinux on that kernel) ---
objcopy -O binary --only-section=.BTF "$VMLINUX" "$WORK/vmlinux.btf"
chmod 644 "$WORK/vmlinux.btf"
is_btf "$WORK/vmlinux.btf" || die "$VMLINUX has no usable .BTF section"
mv "$WORK/vmlinux.btf" "$OUT"
echo "$PKG $(dpkg-deb -f "$DEB" Version)" > "$SOURCE"
log "wrote $OUT from $(cat "$SOURCE")"
echo "$OUT"
