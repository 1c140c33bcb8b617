#!/usr/bin/env bash
# cmake --install into a temporary prefix: the program, man page, job templates and
# package config are in place, and a consumer project builds with find_package(segrec).
# usage: install_test.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
BUILD=$1 SRC=$2
PREFIX=$(mktemp -d "${TMPDIR:-/tmp}/segrec-install.XXXXXX")
trap 'rm -rf "$PREFIX"' EXIT
fail() { echo "FAIL $*"; exit 1; }
cmake --install "$BUILD" --prefix "$PREFIX/usr" >"$PREFIX/install.log" 2>&1 ||
  fail "cmake --install: $(tail -5 "$PREFIX/install.log")"
P="$PREFIX/usr"
for f in bin/segrec share/man/man1/segrec.1 include/segrec/comm.hpp \
         share/segrec/scripts/plot_report.py share/segrec/scripts/example_read.py; do
  [[ -s $P/$f ]] || fail "$f not installed"
done
ls "$P"/lib*/cmake/segrec/segrecConfig.cmake >/dev/null 2>&1 || fail "segrecConfig.cmake not installed"
ls "$P"/lib*/libsegrec_core.* >/dev/null 2>&1 || fail "libsegrec_core not installed"
if [[ -d $SRC/jobs ]]; then
  for f in $(cd "$SRC/jobs" && find . -type f); do
    [[ -f $P/share/segrec/jobs/$f ]] || fail "jobs/$f not installed in share/segrec/jobs"
  done
fi
"$P/bin/segrec" --version | grep -q "^segrec [0-9]" || fail "installed segrec --version"
head -1 "$P/share/man/man1/segrec.1" | grep -q '^\.TH SEGREC 1' || fail "man page header"
for s in "EXIT STATUS" "ENVIRONMENT" "segrec cluster"; do
  grep -q "$s" "$P/share/man/man1/segrec.1" || fail "man page lacks '$s'"
done
if command -v man >/dev/null && man -l "$P/share/man/man1/segrec.1" >/dev/null 2>"$PREFIX/man.err"; then
  [[ -s $PREFIX/man.err ]] && fail "man reports: $(head -3 "$PREFIX/man.err")"
fi
cmake -S "$SRC/tests/install/consumer" -B "$PREFIX/consumer" -DCMAKE_PREFIX_PATH="$P" \
  >"$PREFIX/c.log" 2>&1 || fail "consumer configure: $(tail -15 "$PREFIX/c.log")"
cmake --build "$PREFIX/consumer" >"$PREFIX/b.log" 2>&1 || fail "consumer build: $(tail -15 "$PREFIX/b.log")"
out=$("$PREFIX/consumer/consumer") || fail "consumer run"
[[ $out == "ranks 1 sum 4.0 block 4..7 exit-usage 2" ]] || fail "consumer printed '$out'"
echo "ok: installed to a temporary prefix, find_package(segrec) consumer printed: $out"
