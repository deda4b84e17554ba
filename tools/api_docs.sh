#!/bin/sh
# The API reference: HTML made by Doxygen (Debian: apt-get install doxygen)
# from the `///` comments of the public headers, libactors/include/actors/
# (detail/ left out). Fails on any warning, so CI keeps the comments whole.
#
# usage: tools/api_docs.sh [OUTPUT_DIR]   (default build-api)
# then open OUTPUT_DIR/html/index.html
set -eu
cd "$(dirname "$0")/.."
out=${1:-build-api}
mkdir -p "$out"
log="$out/warnings.log"
status=0
# docs/Doxyfile, with this run's output directory.
{ cat docs/Doxyfile; echo "OUTPUT_DIRECTORY = $out"; } | doxygen - 2> "$log" \
  || status=$?
if [ "$status" -ne 0 ] || [ -s "$log" ]; then
  cat "$log" >&2
  echo "api_docs: Doxygen failed or warned (above)" >&2
  exit 1
fi
echo "api_docs: $out/html/index.html"
