#!/bin/sh
# The README's worked example built as the README says, against the
# installed package: installs the build tree into a fresh prefix, builds
# demos/parallel_grep as a project of its own with find_package(actors), and
# runs it on the demos. The commands between the readme markers are the
# README's block, word for word.
#
# usage: parallel_grep.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -eu
source_dir=$1
build_dir=$2
work=$3
rm -rf "$work"
mkdir -p "$work/home"
cd "$work"
# The layout the README's commands assume: the top of a clone, with the
# build tree of ./run.sh in build/.
ln -s "$source_dir/demos" demos
ln -s "$build_dir" build
HOME="$work/home"
# readme: begin install
cmake --install build --prefix "$HOME/.local"
cmake -S demos/parallel_grep -B build-grep -G Ninja -DCMAKE_PREFIX_PATH="$HOME/.local"
cmake --build build-grep
build-grep/parallel_grep 'actors::init(argc, argv);' demos
# readme: end install
# Reached only when every step succeeded (set -e) and a line matched.
echo "parallel_grep.sh: every step succeeded"
