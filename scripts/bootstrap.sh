#!/usr/bin/env bash
# Idempotent installer for everything podtrail builds and tests with.
# Sourced or executed by ./dev; safe to run repeatedly.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The eBPF nightly is pinned in exactly one place: ebpf-toolchain.txt.
EBPF_NIGHTLY="$(tr -d '[:space:]' < "$ROOT/ebpf-toolchain.txt")"
HOST_TOOLCHAIN="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml")"
BPF_LINKER_VERSION="0.13.0"
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTUP_AUTO_INSTALL=0

# grep -q exits at the first match; under pipefail the writer's SIGPIPE then fails the
# whole pipeline. `has` reads all of its input.
has() { grep "$@" >/dev/null; }
log() { printf '[bootstrap] %s\n' "$*" >&2; }

have_toolchain() { rustup toolchain list | has "^$1"; }

if ! command -v rustup >/dev/null; then
  log "rustup is required (https://rustup.rs); not found on PATH"; exit 1
fi

if ! have_toolchain "$HOST_TOOLCHAIN"; then
  log "installing host toolchain $HOST_TOOLCHAIN"
  rustup toolchain install "$HOST_TOOLCHAIN" --profile minimal -c clippy -c rustfmt
fi
if ! have_toolchain "$EBPF_NIGHTLY"; then
  log "installing eBPF toolchain $EBPF_NIGHTLY (+rust-src)"
  rustup toolchain install "$EBPF_NIGHTLY" --profile minimal -c rust-src
elif ! rustup component list --toolchain "$EBPF_NIGHTLY" --installed | has '^rust-src'; then
  rustup component add rust-src --toolchain "$EBPF_NIGHTLY"
fi

# bpf-linker must link against the nightly's own libLLVM (not Debian's LLVM 14).
SYSROOT="$(rustc +"$EBPF_NIGHTLY" --print sysroot)"
LIBLLVM="$(ls "$SYSROOT"/lib/libLLVM.so.* 2>/dev/null | head -n1)"
if [ -z "$LIBLLVM" ]; then
  log "no libLLVM.so.* in $SYSROOT/lib: cannot build bpf-linker"; exit 1
fi
LLVM_MAJOR="$(basename "$LIBLLVM" | sed -E 's/^libLLVM\.so\.([0-9]+).*/\1/')"
LLVM_PREFIX_DIR="$HOME/.cache/podtrail/llvm-$EBPF_NIGHTLY"
STAMP="$LLVM_PREFIX_DIR/bpf-linker.stamp"
want_stamp="$BPF_LINKER_VERSION llvm-$LLVM_MAJOR $LIBLLVM"
if ! command -v bpf-linker >/dev/null || [ "$(cat "$STAMP" 2>/dev/null)" != "$want_stamp" ] \
   || ! bpf-linker --version >/dev/null 2>&1; then
  log "building bpf-linker $BPF_LINKER_VERSION against $LIBLLVM (llvm-$LLVM_MAJOR)"
  mkdir -p "$LLVM_PREFIX_DIR/lib"
  SONAME="$(objdump -p "$LIBLLVM" | awk '/SONAME/ {print $2}')"
  ln -sf "$LIBLLVM" "$LLVM_PREFIX_DIR/lib/libLLVM.so"
  [ -n "$SONAME" ] && ln -sf "$LIBLLVM" "$LLVM_PREFIX_DIR/lib/$SONAME"
  LLVM_PREFIX="$LLVM_PREFIX_DIR" cargo +"$HOST_TOOLCHAIN" install bpf-linker --locked \
    --version "$BPF_LINKER_VERSION" --no-default-features --features "llvm-$LLVM_MAJOR" --force
  echo "$want_stamp" > "$STAMP"
fi

# Debian packages the tests use: util-linux (unshare, nsenter, setpriv), binutils (objdump
# for the SONAME above), python3 (the OOM test's allocator), protobuf-compiler (the CRI
# client's generated code in the containerd tests), prometheus (a real Prometheus and
# promtool scrape and lint the daemon in the metrics tests), python3-venv (the manifest
# validator from PyPI in the deploy test).
APT_PKGS=(util-linux binutils python3 python3-venv protobuf-compiler prometheus)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# tracefs is where tracepoint record formats live.
if [ ! -d /sys/kernel/tracing/events ] && [ "$(id -u)" = 0 ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi
log "toolchains ready: host $HOST_TOOLCHAIN, eBPF $EBPF_NIGHTLY, bpf-linker $(bpf-linker --version 2>/dev/null | head -n1)"
