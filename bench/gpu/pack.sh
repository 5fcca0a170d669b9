#!/usr/bin/env bash
# Packs a CUDA build for the one-call GPU check (bench/gpu/check.sh) on a machine with no Debian packages:
# the binaries go to bin/ (debug info stripped), and every shared library they load, per ldd, to lib/ under
# its soname (the real file, symlinks followed) -- except the C/C++ runtime (glibc, libstdc++, libgcc_s,
# ld-linux, libm, libpthread, libdl, librt, ...: the GPU machine has newer ones) and the CUDA libraries
# (libcuda, libcudart, libcublas(Lt), libnccl, libcudnn*: it has its own, in the CUDA toolkit and in
# Python's nvidia/* packages). Fails when what travels is over PACK_LIMIT_MIB (default 48 MiB; a device
# call's whole upload, the repository included, is 64 MiB).
#
# usage: bench/gpu/pack.sh BUILD_DIR       (run here, from anywhere; writes <repo>/.gpu)
#
#   PACK_FORMAT=xz   (default) .gpu/pack.tar.xz holding bin/ lib/ MANIFEST, which check.sh unpacks there
#                    (with Python's tarfile): openblas alone is 35 MiB raw, so the raw pack plus the 14 MiB
#                    repository come close to the 64 MiB upload limit, while xz brings the pack to ~1/4.
#   PACK_FORMAT=dir  .gpu/bin and .gpu/lib as plain files (and .gpu/MANIFEST).
#   PACK_CLI=auto|1|0  also pack BUILD_DIR/src/tessera: auto (default) when it still fits the limit,
#                    1 always (fail if it does not fit), 0 never. (The CLI links MPI, whose plugins are not
#                    packed: expect it to run only commands that never start MPI.)
#   PACK_BINS="a b"  the binaries, relative to BUILD_DIR (default: bench/tessera_gpu_bench
#                    tests/cuda/tessera_cuda_tests); PACK_DEST: where (default <repo>/.gpu).
#   A dry run on the CPU build: PACK_BINS=src/tessera PACK_CLI=0 PACK_DEST=/tmp/p bench/gpu/pack.sh build
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: bench/gpu/pack.sh BUILD_DIR}
build=$(cd "$build" && pwd)
limit_mib=${PACK_LIMIT_MIB:-48}
limit=$((limit_mib * 1024 * 1024))
format=${PACK_FORMAT:-xz}
pack_cli=${PACK_CLI:-auto}
dest=${PACK_DEST:-$repo/.gpu}
cli=$build/src/tessera
[[ $format == xz || $format == dir ]] || { echo "pack.sh: PACK_FORMAT is xz or dir" >&2; exit 2; }

bins=()
for b in ${PACK_BINS:-bench/tessera_gpu_bench tests/cuda/tessera_cuda_tests}; do
  [[ -x $build/$b ]] || { echo "pack.sh: $build/$b is missing (build it first)" >&2; exit 1; }
  bins+=("$build/$b")
done
if [[ $pack_cli == 1 && ! -x $cli ]]; then
  echo "pack.sh: PACK_CLI=1 but $cli is missing" >&2
  exit 1
fi

skip_lib() {  # $1 = soname: the runtime the GPU machine has (newer), and CUDA's own libraries
  case "$1" in
    linux-vdso.so* | linux-gate.so* | ld-linux*.so* | libc.so.* | libm.so.* | libmvec.so.* | libpthread.so.* | \
      libdl.so.* | librt.so.* | libutil.so.* | libresolv.so.* | libstdc++.so.* | libgcc_s.so.* | \
      libcuda.so* | libcudart.so* | libcublas.so* | libcublasLt.so* | libnccl.so* | libcudnn*.so* | \
      libnvidia-*.so*)
      return 0 ;;
  esac
  return 1
}

# stage DIR BINARY...: copies the binaries (stripped) and their libraries into DIR/bin, DIR/lib, with a
# MANIFEST; prints the bytes that would travel (the tarball's size for xz).
stage() {
  local dir=$1 bin so path missing=0
  shift
  mkdir -p "$dir/bin" "$dir/lib"
  declare -A want=()
  for bin in "$@"; do
    while read -r so path; do
      skip_lib "$so" && continue
      if [[ $path == not ]]; then
        echo "pack.sh: $(basename "$bin") needs $so, which ldd cannot find here" >&2
        missing=1
        continue
      fi
      want[$so]=$path
    done < <(ldd "$bin" | awk '/=>/ { print $1, $3 }')
    cp "$bin" "$dir/bin/"
    strip --strip-debug "$dir/bin/$(basename "$bin")" 2>/dev/null || true
  done
  ((missing == 0)) || { echo "pack.sh: some libraries are not found here; fix the build first" >&2; return 1; }
  for so in "${!want[@]}"; do cp -L "${want[$so]}" "$dir/lib/$so"; done  # the real file, under its soname
  chmod -R u+w "$dir"
  # What was packed, from where, and the newest glibc / libstdc++ symbol versions each file asks for (the
  # GPU machine must have at least those; check.sh prints this next to its ldd).
  {
    echo "packed $(date -u +%FT%TZ) from $build (git $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet 2>/dev/null || echo '+dirty'))"
    echo "host: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(ldd --version | head -1)"
    local f v
    for f in "$dir"/bin/* "$dir"/lib/*; do
      v=$(objdump -T "$f" 2>/dev/null | grep -oE '(GLIBC|GLIBCXX|CXXABI)_[0-9.]+' | sort -u -V |
        awk -F_ '{ m[$1] = $0 } END { for (k in m) printf "%s ", m[k] }')
      printf '%-40s %10d  needs %s\n' "${f#"$dir"/}" "$(stat -c %s "$f")" "${v:-?}"
    done
  } >"$dir/MANIFEST"
  if [[ $format == xz ]]; then
    tar -C "$dir" -cf - bin lib MANIFEST | xz -T0 -6 >"$dir.tar.xz"
    stat -c %s "$dir.tar.xz"
  else
    du -cb "$dir/bin" "$dir/lib" | tail -1 | cut -f1
  fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

chosen=("${bins[@]}")
if [[ $pack_cli != 0 && -x $cli ]]; then chosen+=("$cli"); fi
size=$(stage "$tmp/pack" "${chosen[@]}")
if ((size > limit)) && [[ $pack_cli == auto && ${chosen[-1]} == "$cli" ]]; then
  echo "pack.sh: leaving out $cli: with it the pack would be $(mib "$size") (> ${limit_mib} MiB)" >&2
  rm -rf "$tmp/pack" "$tmp/pack.tar.xz"
  chosen=("${bins[@]}")
  size=$(stage "$tmp/pack" "${chosen[@]}")
fi

echo "pack.sh: $(basename -a "${chosen[@]}" | tr '\n' ' ')+ $(ls "$tmp/pack/lib" | wc -l) libraries:"
(cd "$tmp/pack" && ls -l bin lib | awk '$5 ~ /^[0-9]+$/ && NF >= 9 { printf "  %10d  %s\n", $5, $9 }')
raw=$(du -cb "$tmp/pack/bin" "$tmp/pack/lib" | tail -1 | cut -f1)
echo "pack.sh: total $(mib "$raw") unpacked; $(mib "$size") travels ($format; limit ${limit_mib} MiB)"
if ((size > limit)); then
  echo "pack.sh: FAIL: the pack is over ${limit_mib} MiB" >&2
  exit 1
fi

mkdir -p "$dest"
rm -rf "${dest:?}/bin" "${dest:?}/lib" "${dest:?}/pack.tar.xz" "${dest:?}/MANIFEST"
if [[ $format == xz ]]; then
  mv "$tmp/pack.tar.xz" "$dest/pack.tar.xz"
  cp "$tmp/pack/MANIFEST" "$dest/MANIFEST"
else
  mv "$tmp/pack/bin" "$tmp/pack/lib" "$tmp/pack/MANIFEST" "$dest/"
fi
echo "pack.sh: wrote $dest ($(ls "$dest" | tr '\n' ' '))"

# The pack reaches the GPU machine as a carried path (carry: [".gpu"]), so git must ignore it;
# .git/info/exclude is local to this checkout and never committed.
if [[ $dest == "$repo/.gpu" ]] && ! git -C "$repo" check-ignore -q .gpu/MANIFEST 2>/dev/null; then
  exclude=$(git -C "$repo" rev-parse --git-path info/exclude)
  [[ $exclude == /* ]] || exclude=$repo/$exclude
  mkdir -p "$(dirname "$exclude")"
  echo "/.gpu/" >>"$exclude"
  echo "pack.sh: added /.gpu/ to $exclude"
fi
